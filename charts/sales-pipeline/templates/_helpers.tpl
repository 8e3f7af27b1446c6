{{/* The umbrella chart's own objects (Jobs, operators' resources). Connection settings,
     topics and images come from the library chart's helpers (sales-common.*). */}}
{{- define "sales-pipeline.fullname" -}}
{{- printf "%s-sales" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sales-pipeline.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "sales-common.commonLabels" . }}
{{- end -}}

{{/* Job and test Pod labels: a component, so NetworkPolicies can select them. */}}
{{- define "sales-pipeline.componentLabels" -}}
app.kubernetes.io/component: {{ .component }}
{{ include "sales-pipeline.labels" .ctx }}
{{- end -}}

{{- define "sales-pipeline.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "sales-pipeline.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities: {drop: ["ALL"]}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* The migrations Job's hook: CloudNativePG makes the "<cluster>-app" Secret only once the
     (non-hook) Cluster exists, so on install the Job runs after it (post-install); otherwise
     before anything (pre-install). Upgrades always migrate before the pods roll. */}}
{{- define "sales-pipeline.migrationsHook" -}}
{{- if .Values.global.cloudnativepg.enabled -}}post-install,pre-upgrade{{- else -}}pre-install,pre-upgrade{{- end -}}
{{- end -}}

{{/* A hook Job's NetworkPolicy: egress to DNS, Kafka and/or PostgreSQL, no ingress. A hook
     itself, one weight earlier than its Job, so it is there when the Job starts. Call with
     (dict "ctx" . "component" "migrate" "hook" "pre-install" "weight" -1 "kafka" false "postgres" true). */}}
{{- define "sales-pipeline.jobNetworkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "sales-pipeline.fullname" .ctx }}-{{ .component }}
  labels: {{- include "sales-pipeline.labels" .ctx | nindent 4 }}
  annotations:
    helm.sh/hook: {{ .hook }}
    helm.sh/hook-weight: {{ .weight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation
    {{- with .ctx.Values.global.commonAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .ctx.Release.Name }}
      app.kubernetes.io/component: {{ .component }}
  policyTypes: [Ingress, Egress]
  ingress: []
  egress: {{- include "sales-common.egress" . | nindent 4 }}
{{- end -}}

{{/* What each service's Kafka principal may do: the table of sales_common/acls.py (topic
     names, consumer groups and transactional id prefixes as this release configures them).
     Kafka implies Describe from Read and Write; a transactional producer needs no
     IdempotentWrite. Used by the Strimzi KafkaUsers; tests/deploy compares it with the table. */}}
{{- define "sales-pipeline.kafkaAcls" -}}
{{- $t := include "sales-common.topics" . | fromYaml -}}
{{- $vg := .Values.validator.consumer.groupId -}}
{{- $vt := index (.Values.validator.config | default dict) "TRANSACTIONAL_ID_PREFIX" | default "validator" -}}
{{- $lg := .Values.loader.consumer.groupId -}}
ingest:
  {{- range list $t.raw.name $t.rawPriority.name }}
  # writes an upload in one transaction; reads it back to settle an abandoned one
  - {type: topic, name: {{ . | quote }}, pattern: literal, operations: [Write, Read]}
  {{- end }}
  - {type: group, name: ingest-outcome-, pattern: prefix, operations: [Read]}
  - {type: transactionalId, name: ingest-, pattern: prefix, operations: [Write]}
validator:
  {{- range list $t.raw.name $t.rawPriority.name }}
  - {type: topic, name: {{ . | quote }}, pattern: literal, operations: [Read]}
  {{- end }}
  {{- range list $t.validated.name $t.rejected.name $t.validatedPriority.name $t.rejectedPriority.name }}
  - {type: topic, name: {{ . | quote }}, pattern: literal, operations: [Write]}
  {{- end }}
  {{- range list $vg (printf "%s.express" $vg) }}
  - {type: group, name: {{ . | quote }}, pattern: literal, operations: [Read]}
  {{- end }}
  - {type: transactionalId, name: {{ printf "%s-" $vt | quote }}, pattern: prefix, operations: [Write]}
loader:
  {{- range list $t.validated.name $t.rejected.name $t.validatedPriority.name $t.rejectedPriority.name }}
  - {type: topic, name: {{ . | quote }}, pattern: literal, operations: [Read]}
  {{- end }}
  {{- range list $lg (printf "%s.express" $lg) }}
  - {type: group, name: {{ . | quote }}, pattern: literal, operations: [Read]}
  {{- end }}
{{- end -}}
