{{/* Names and labels. Every helper is prefixed "sales-common.". */}}

{{- define "sales-common.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sales-common.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sales-common.labels" -}}
{{ include "sales-common.selectorLabels" . }}
app.kubernetes.io/part-of: sales-pipeline
app.kubernetes.io/version: {{ .Chart.AppVersion | default .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sales-common.image" -}}
{{- $g := .Values.global.image -}}
{{- printf "%s/%s:%s" $g.registry (.Values.image.repository | default (printf "sales-pipeline/%s" .Chart.Name)) (.Values.image.tag | default $g.tag) -}}
{{- end -}}

{{/* The env prefix a service's settings class reads: INGEST_, LOADER_, ... */}}
{{- define "sales-common.prefix" -}}
{{- upper .Chart.Name -}}
{{- end -}}

{{- define "sales-common.secretName" -}}
{{- .Values.global.secrets.existingSecret | default (printf "%s-sales-secrets" .Release.Name) -}}
{{- end -}}

{{- define "sales-common.postgresSecretName" -}}
{{- .Values.global.postgres.existingSecret | default (printf "%s-sales-postgres" .Release.Name) -}}
{{- end -}}

{{/* Pod security: the "restricted" Pod Security Standard plus a read-only root filesystem. */}}
{{- define "sales-common.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sales-common.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment every service gets: Kafka and PostgreSQL from `global`, secrets by reference. */}}
{{- define "sales-common.env" -}}
{{- $p := include "sales-common.prefix" . -}}
- name: {{ $p }}_HOST
  value: "0.0.0.0"
- name: {{ $p }}_PORT
  value: {{ .Values.port | quote }}
- name: LOG_FILE
  value: /var/log/sales.log
{{- if .Values.uses.kafka }}
- name: {{ $p }}_KAFKA__BOOTSTRAP_SERVERS
  value: {{ .Values.global.kafka.bootstrapServers | quote }}
- name: {{ $p }}_KAFKA__SECURITY_PROTOCOL
  value: {{ .Values.global.kafka.securityProtocol | quote }}
{{- with .Values.global.kafka.sasl }}
{{- if .mechanism }}
- name: {{ $p }}_KAFKA__SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: {{ $p }}_KAFKA__SASL_USERNAME
  value: {{ .username | quote }}
- name: {{ $p }}_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "global.kafka.sasl.existingSecret is required with SASL" .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.uses.postgres }}
- name: {{ $p }}_POSTGRES__DSN
  valueFrom:
    secretKeyRef:
      name: {{ include "sales-common.postgresSecretName" . }}
      key: {{ .Values.global.postgres.dsnKey }}
- name: {{ $p }}_POSTGRES__SSLMODE
  value: {{ .Values.global.postgres.sslmode | quote }}
{{- end }}
{{- if .Values.uses.jwt }}
- name: {{ $p }}_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "sales-common.secretName" . }}
      key: jwt-secret
- name: {{ $p }}_AUTH__ISSUER
  value: {{ .Values.global.auth.issuer | quote }}
- name: {{ $p }}_AUTH__AUDIENCE
  value: {{ .Values.global.auth.audience | quote }}
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ $p }}_{{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "sales-common.secretName" $ }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{/* The whole set of objects of one service; a subchart's only template includes this. */}}
{{- define "sales-common.service" -}}
{{ include "sales-common.serviceaccount" . }}
---
{{ include "sales-common.configmap" . }}
---
{{ include "sales-common.deployment" . }}
---
{{ include "sales-common.k8sService" . }}
{{- if .Values.pdb.enabled }}
---
{{ include "sales-common.pdb" . }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
---
{{ include "sales-common.hpa" . }}
{{- end }}
{{- if .Values.global.networkPolicy.enabled }}
---
{{ include "sales-common.networkpolicy" . }}
{{- end }}
{{- if .Values.global.metrics.serviceMonitor.enabled }}
---
{{ include "sales-common.servicemonitor" . }}
{{- end }}
{{- if and .Values.ingress .Values.ingress.enabled }}
---
{{ include "sales-common.ingress" . }}
{{- end }}
{{- end -}}
