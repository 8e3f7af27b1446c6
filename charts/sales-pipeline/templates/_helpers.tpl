{{- define "sales-pipeline.fullname" -}}
{{- printf "%s-sales" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sales-pipeline.labels" -}}
app.kubernetes.io/part-of: sales-pipeline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sales-pipeline.bootstrapServers" -}}
{{- if .Values.strimzi.enabled -}}
{{- printf "%s-kafka-bootstrap:9092" .Values.strimzi.clusterName -}}
{{- else -}}
{{- .Values.global.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "sales-pipeline.postgresSecretName" -}}
{{- .Values.global.postgres.existingSecret | default (printf "%s-sales-postgres" .Release.Name) -}}
{{- end -}}

{{- define "sales-pipeline.hookSecurity" -}}
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
