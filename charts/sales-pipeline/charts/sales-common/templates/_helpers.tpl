{{/* Names, labels and the connection settings every object shares. Every helper is prefixed
     "sales-common."; the umbrella chart's own templates (Jobs, operators' resources) call the
     ones that read only .Values.global and .Release, so each concept has one home. */}}

{{- define "sales-common.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sales-common.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* global.commonLabels (GitOps owners, cost centres) on every object the chart makes. */}}
{{- define "sales-common.commonLabels" -}}
app.kubernetes.io/part-of: sales-pipeline
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sales-common.labels" -}}
{{ include "sales-common.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | default .Chart.Version | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "sales-common.commonLabels" . }}
{{- end -}}

{{/* metadata.annotations: global.commonAnnotations merged with the object's own. Call with
     (dict "ctx" . "extra" $annotations); renders nothing when both are empty. */}}
{{- define "sales-common.annotations" -}}
{{- $all := merge (deepCopy (.extra | default dict)) (.ctx.Values.global.commonAnnotations | default dict) -}}
{{- with $all }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* <registry>/<repository>[:tag][@digest]; call with (dict "global" .Values.global.image
     "image" <a service's image values> "name" <service>). A digest pins the image. */}}
{{- define "sales-common.imageRef" -}}
{{- $repo := .image.repository | default (printf "sales-pipeline/%s" .name) -}}
{{- $ref := printf "%s/%s:%s" .global.registry $repo (.image.tag | default .global.tag) -}}
{{- with .image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{- define "sales-common.image" -}}
{{- include "sales-common.imageRef" (dict "global" .Values.global.image "image" .Values.image "name" .Chart.Name) -}}
{{- end -}}

{{/* The env prefix a service's settings class reads: INGEST_, LOADER_, ... */}}
{{- define "sales-common.prefix" -}}
{{- upper .Chart.Name -}}
{{- end -}}

{{- define "sales-common.secretName" -}}
{{- .Values.global.secrets.existingSecret | default (printf "%s-sales-secrets" .Release.Name) -}}
{{- end -}}

{{/* The topics, every role resolved: {raw: {name, partitions}, rawPriority: ...}. An express
     lane left unnamed is "<main topic>.priority", as TopicSettings names it. */}}
{{- define "sales-common.topics" -}}
{{- $t := .Values.global.kafka.topics -}}
{{- $retention := .Values.global.kafka.rawRetentionMs -}}
{{- range $role := list "raw" "validated" "rejected" }}
{{- /* sales.raw and its lane hold (encrypted) customer ids: kept only rawRetentionMs. */}}
{{- $keep := ternary (printf ", retentionMs: %v" (int64 $retention)) "" (eq $role "raw") }}
{{ $role }}: {name: {{ (index $t $role).name | quote }}, partitions: {{ (index $t $role).partitions }}{{ $keep }}}
{{- $lane := index $t (printf "%sPriority" $role) }}
{{ $role }}Priority: {name: {{ $lane.name | default (printf "%s.priority" (index $t $role).name) | quote }}, partitions: {{ $lane.partitions }}{{ $keep }}}
{{- end }}
{{- end -}}

{{/* How to reach Kafka, as the calling chart's service (its own principal). With
     global.strimzi.enabled: the cluster's bootstrap service, its TLS listener with
     SCRAM-SHA-512, the service's KafkaUser "<userName>-<service>" and the password in the Secret
     Strimzi's User Operator makes for it (named after it), the cluster CA Strimzi publishes;
     else global.kafka, with the service's own user from global.kafka.sasl.users.<service>
     when given. */}}
{{- define "sales-common.kafka" -}}
{{- $s := .Values.global.strimzi -}}
{{- if $s.enabled -}}
{{- $user := printf "%s-%s" $s.userName .Chart.Name }}
bootstrapServers: {{ printf "%s-kafka-bootstrap:9093" $s.clusterName | quote }}
port: 9093
securityProtocol: SASL_SSL
saslMechanism: SCRAM-SHA-512
saslUsername: {{ $user }}
passwordSecret: {{ $user }}
passwordKey: password
caSecret: {{ printf "%s-cluster-ca-cert" $s.clusterName }}
caKey: ca.crt
{{- else -}}
{{- $k := .Values.global.kafka -}}
{{- $own := index ($k.sasl.users | default dict) .Chart.Name | default dict -}}
bootstrapServers: {{ $k.bootstrapServers | quote }}
port: {{ .Values.global.networkPolicy.kafkaPort }}
securityProtocol: {{ $k.securityProtocol }}
saslMechanism: {{ $k.sasl.mechanism | quote }}
saslUsername: {{ $own.username | default $k.sasl.username | quote }}
passwordSecret: {{ $own.existingSecret | default $k.sasl.existingSecret | quote }}
passwordKey: {{ $k.sasl.passwordKey }}
caSecret: {{ $k.tls.caSecret | quote }}
caKey: {{ $k.tls.caKey }}
{{- end -}}
{{- end -}}

{{/* How to reach PostgreSQL. With global.cloudnativepg.enabled: the "<cluster>-app" Secret's
     "uri" and the "<cluster>-ca" Secret's ca.crt, both made by CloudNativePG; else global.postgres. */}}
{{- define "sales-common.postgres" -}}
{{- $c := .Values.global.cloudnativepg -}}
{{- $p := .Values.global.postgres -}}
sslmode: {{ $p.sslmode }}
port: {{ .Values.global.networkPolicy.postgresPort }}
{{- if $c.enabled }}
dsnSecret: {{ printf "%s-app" $c.clusterName }}
dsnKey: uri
caSecret: {{ printf "%s-ca" $c.clusterName }}
caKey: ca.crt
{{- else }}
dsnSecret: {{ $p.existingSecret | default (printf "%s-sales-postgres" .Release.Name) }}
dsnKey: {{ $p.dsnKey }}
caSecret: {{ $p.tls.caSecret | quote }}
caKey: {{ $p.tls.caKey }}
{{- end }}
{{- end -}}

{{- define "sales-common.kafkaCaDir" -}}/etc/sales/kafka-ca{{- end -}}
{{- define "sales-common.postgresCaDir" -}}/etc/sales/postgres-ca{{- end -}}

{{/* Kafka settings as a program's env; call with (dict "ctx" . "prefix" "VALIDATOR"). */}}
{{- define "sales-common.kafkaEnv" -}}
{{- $k := include "sales-common.kafka" .ctx | fromYaml -}}
{{- $p := .prefix -}}
- name: {{ $p }}_KAFKA__BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: {{ $p }}_KAFKA__SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if $k.saslMechanism }}
- name: {{ $p }}_KAFKA__SASL_MECHANISM
  value: {{ $k.saslMechanism | quote }}
- name: {{ $p }}_KAFKA__SASL_USERNAME
  value: {{ required "global.kafka.sasl.username is required with SASL" $k.saslUsername | quote }}
- name: {{ $p }}_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "global.kafka.sasl.existingSecret is required with SASL" $k.passwordSecret }}
      key: {{ $k.passwordKey }}
{{- end }}
{{- if $k.caSecret }}
- name: {{ $p }}_KAFKA__SSL_CAFILE
  value: {{ printf "%s/%s" (include "sales-common.kafkaCaDir" .) $k.caKey | quote }}
{{- end }}
{{- range $role, $topic := include "sales-common.topics" .ctx | fromYaml }}
- name: {{ $p }}_KAFKA__TOPICS__{{ $role | snakecase | upper }}
  value: {{ $topic.name | quote }}
{{- end }}
{{- end -}}

{{/* PostgreSQL settings as a program's env; call with (dict "ctx" . "prefix" "LOADER"). */}}
{{- define "sales-common.postgresEnv" -}}
{{- $pg := include "sales-common.postgres" .ctx | fromYaml -}}
- name: {{ .prefix }}_POSTGRES__DSN
  valueFrom:
    secretKeyRef:
      name: {{ $pg.dsnSecret }}
      key: {{ $pg.dsnKey }}
- name: {{ .prefix }}_POSTGRES__SSLMODE
  value: {{ $pg.sslmode | quote }}
{{- if $pg.caSecret }}
- name: {{ .prefix }}_POSTGRES__SSLROOTCERT
  value: {{ printf "%s/%s" (include "sales-common.postgresCaDir" .) $pg.caKey | quote }}
{{- end }}
{{- end -}}

{{/* The CA volumes a program that talks to Kafka and/or PostgreSQL needs; call with
     (dict "ctx" . "kafka" true "postgres" false). "caVolumeMounts" takes the same. */}}
{{- define "sales-common.caVolumes" -}}
{{- $k := include "sales-common.kafka" .ctx | fromYaml -}}
{{- $pg := include "sales-common.postgres" .ctx | fromYaml -}}
{{- if and .kafka $k.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ $k.caSecret }}, items: [{key: {{ $k.caKey }}, path: {{ $k.caKey }}}]}
{{- end }}
{{- if and .postgres $pg.caSecret }}
- name: postgres-ca
  secret: {secretName: {{ $pg.caSecret }}, items: [{key: {{ $pg.caKey }}, path: {{ $pg.caKey }}}]}
{{- end }}
{{- end -}}

{{- define "sales-common.caVolumeMounts" -}}
{{- $k := include "sales-common.kafka" .ctx | fromYaml -}}
{{- $pg := include "sales-common.postgres" .ctx | fromYaml -}}
{{- if and .kafka $k.caSecret }}
- {name: kafka-ca, mountPath: {{ include "sales-common.kafkaCaDir" . }}, readOnly: true}
{{- end }}
{{- if and .postgres $pg.caSecret }}
- {name: postgres-ca, mountPath: {{ include "sales-common.postgresCaDir" . }}, readOnly: true}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rules to DNS, Kafka and/or PostgreSQL; same arguments as caVolumes.
     The peers follow the operators' pod labels when they run the servers. */}}
{{- define "sales-common.egress" -}}
{{- $np := .ctx.Values.global.networkPolicy -}}
- ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
{{- if .kafka }}
{{- $k := include "sales-common.kafka" .ctx | fromYaml }}
- to:
    {{- if .ctx.Values.global.strimzi.enabled }}
    - podSelector: {matchLabels: {strimzi.io/cluster: {{ .ctx.Values.global.strimzi.clusterName }}, strimzi.io/kind: Kafka}}
    {{- else }}
    {{- toYaml $np.kafkaPeers | nindent 4 }}
    {{- end }}
  ports: [{port: {{ $k.port }}}]
{{- end }}
{{- if .postgres }}
{{- $pg := include "sales-common.postgres" .ctx | fromYaml }}
- to:
    {{- if .ctx.Values.global.cloudnativepg.enabled }}
    - podSelector: {matchLabels: {cnpg.io/cluster: {{ .ctx.Values.global.cloudnativepg.clusterName }}}}
    {{- else }}
    {{- toYaml $np.postgresPeers | nindent 4 }}
    {{- end }}
  ports: [{port: {{ $pg.port }}}]
{{- end }}
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
{{ include "sales-common.kafkaEnv" (dict "ctx" . "prefix" $p) }}
{{- end }}
{{- if .Values.consumer.groupId }}
- name: {{ $p }}_GROUP_ID
  value: {{ .Values.consumer.groupId | quote }}
{{- end }}
{{- if .Values.uses.postgres }}
{{ include "sales-common.postgresEnv" (dict "ctx" . "prefix" $p) }}
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

{{/* Pod-template annotations: checksums that roll the pods when their configuration or a
     chart-made secret changes, plus podAnnotations. */}}
{{- define "sales-common.podAnnotations" -}}
checksum/config: {{ include "sales-common.configmap" . | sha256sum }}
{{- if and .Values.global.secrets.create.enabled (not .Values.global.secrets.existingSecret) }}
checksum/secrets: {{ toJson .Values.global.secrets.create | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Scheduling: the user's affinity; unless it says otherwise, prefer spreading the replicas
     over nodes (a node's loss takes one replica, not all). */}}
{{- define "sales-common.scheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := deepCopy (.Values.affinity | default dict) }}
{{- if not (hasKey $affinity "podAntiAffinity") }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "sales-common.selectorLabels" . | fromYaml)) }}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) }}
{{- end }}
affinity: {{- toYaml $affinity | nindent 2 }}
{{- end -}}
