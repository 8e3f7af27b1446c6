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
{{- if and .Values.autoscaling.enabled .Values.autoscaling.keda.enabled }}
{{- fail "autoscaling.enabled (CPU) and autoscaling.keda.enabled (lag) both make an HPA: choose one" }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
---
{{ include "sales-common.hpa" . }}
{{- end }}
{{- if .Values.autoscaling.keda.enabled }}
{{- if not .Values.consumer.topics }}
{{- fail "autoscaling.keda scales consumers on their lag: this service reads no topic" }}
{{- end }}
---
{{ include "sales-common.scaledobject" . }}
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

{{- define "sales-common.serviceaccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" . "extra" .Values.serviceAccount.annotations) | nindent 2 }}
automountServiceAccountToken: false
{{- end -}}

{{- define "sales-common.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
data:
  {{- $p := include "sales-common.prefix" . }}
  {{- range $key, $value := .Values.config }}
  {{ printf "%s_%s" $p $key }}: {{ $value | quote }}
  {{- end }}
  {{ $p }}_LOG_LEVEL: {{ .Values.logLevel | quote }}
{{- end -}}

{{- define "sales-common.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  {{- if not (or .Values.autoscaling.enabled .Values.autoscaling.keda.enabled) }}
  replicas: {{ .Values.replicas }}
  {{- end }}
  selector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "sales-common.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations: {{- include "sales-common.podAnnotations" . | nindent 8 }}
    spec:
      serviceAccountName: {{ include "sales-common.fullname" . }}
      automountServiceAccountToken: false
      # Longer than the preStop pause plus the services' own graceful shutdown (25 s).
      {{- if le (int .Values.terminationGracePeriodSeconds) (add 25 .Values.preStopSleepSeconds | int) }}
      {{- fail "terminationGracePeriodSeconds must exceed preStopSleepSeconds + 25 (the services' drain)" }}
      {{- end }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      {{- include "sales-common.scheduling" . | nindent 6 }}
      securityContext: {{- include "sales-common.podSecurityContext" . | nindent 8 }}
      {{- with .Values.global.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .Chart.Name }}
          image: {{ include "sales-common.image" . }}
          imagePullPolicy: {{ .Values.global.image.pullPolicy }}
          args: [{{ .Chart.Name | quote }}]
          ports:
            - name: http
              containerPort: {{ .Values.port }}
          env: {{- include "sales-common.env" . | nindent 12 }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "sales-common.fullname" . }}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            failureThreshold: 2
          lifecycle:
            # Endpoints and load balancers drop the pod before it stops accepting requests.
            preStop: {sleep: {seconds: {{ .Values.preStopSleepSeconds }}}}
          resources: {{- toYaml .Values.resources | nindent 12 }}
          securityContext: {{- include "sales-common.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: logs, mountPath: /var/log}
            {{- include "sales-common.caVolumeMounts" (dict "ctx" . "kafka" .Values.uses.kafka "postgres" .Values.uses.postgres) | nindent 12 }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: {{ .Values.tmpSizeLimit }}}
        # LOG_FILE rotates at LOG_FILE_MAX_BYTES x (LOG_FILE_BACKUPS + 1) = 200 MiB by default.
        - name: logs
          emptyDir: {sizeLimit: 256Mi}
        {{- include "sales-common.caVolumes" (dict "ctx" . "kafka" .Values.uses.kafka "postgres" .Values.uses.postgres) | nindent 8 }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end -}}

{{- define "sales-common.k8sService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  type: ClusterIP
  selector: {{- include "sales-common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.port }}
      targetPort: http
{{- end -}}

{{- define "sales-common.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "sales-common.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "sales-common.fullname" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ .Values.autoscaling.targetCPUUtilizationPercentage }}}
{{- end -}}

{{/* Ingress only where the service is reachable (ingest, dashboard) and from the scraper;
     egress to Kafka, PostgreSQL and DNS only. */}}
{{- define "sales-common.networkpolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  podSelector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if .Values.networkPolicy.publicIngress }}
    - ports: [{port: http}]
    {{- end }}
    - from: {{- toYaml .Values.global.networkPolicy.metricsPeers | nindent 8 }}
      ports: [{port: http}]
    {{- if .Values.uses.jwt }}
    # The chart's `helm test` Pod.
    - from: [{podSelector: {matchLabels: {app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: test}}}]
      ports: [{port: http}]
    {{- end }}
  egress: {{- include "sales-common.egress" (dict "ctx" . "kafka" .Values.uses.kafka "postgres" .Values.uses.postgres) | nindent 4 }}
{{- end -}}

{{- define "sales-common.servicemonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels:
    {{- include "sales-common.labels" . | nindent 4 }}
    {{- with .Values.global.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  selector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .Values.global.metrics.serviceMonitor.interval }}
{{- end -}}

{{- define "sales-common.ingress" -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" . "extra" .Values.ingress.annotations) | nindent 2 }}
spec:
  {{- with .Values.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with .Values.ingress.tls }}
  tls: {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    - host: {{ required "ingress.host is required when the ingress is enabled" .Values.ingress.host | quote }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {{ include "sales-common.fullname" . }}
                port: {name: http}
{{- end -}}

{{/* Scale a consumer on its group's lag (KEDA's Kafka scaler reads the lag from the brokers),
     one trigger per topic it reads, at most one replica per partition of its largest topic:
     a consumer beyond that would idle. */}}
{{- define "sales-common.scaledobject" -}}
{{- $k := include "sales-common.kafka" . | fromYaml -}}
{{- $topics := include "sales-common.topics" . | fromYaml -}}
{{- $keda := .Values.autoscaling.keda -}}
{{- $partitions := 1 -}}
{{- range .Values.consumer.topics }}{{ $partitions = max $partitions (index $topics .).partitions }}{{ end -}}
{{- $auth := or $k.saslMechanism $k.caSecret (has $k.securityProtocol (list "SSL" "SASL_SSL")) -}}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  scaleTargetRef:
    name: {{ include "sales-common.fullname" . }}
  minReplicaCount: {{ .Values.autoscaling.minReplicas }}
  maxReplicaCount: {{ min .Values.autoscaling.maxReplicas $partitions }}
  pollingInterval: {{ $keda.pollingInterval }}
  cooldownPeriod: {{ $keda.cooldownPeriod }}
  triggers:
    {{- range .Values.consumer.topics }}
    - type: kafka
      metadata:
        bootstrapServers: {{ $k.bootstrapServers | quote }}
        {{- /* The express lane (topics "…Priority") is a consumer group of its own. */}}
        consumerGroup: {{ ternary (printf "%s.express" $.Values.consumer.groupId) $.Values.consumer.groupId (hasSuffix "Priority" .) | quote }}
        topic: {{ (index $topics .).name | quote }}
        lagThreshold: {{ $keda.lagThreshold | quote }}
        offsetResetPolicy: earliest
        {{- if $k.saslMechanism }}
        sasl: {{ index (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") $k.saslMechanism }}
        {{- end }}
        {{- if has $k.securityProtocol (list "SSL" "SASL_SSL") }}
        tls: enable
        {{- end }}
      {{- if $auth }}
      authenticationRef:
        name: {{ include "sales-common.fullname" $ }}
      {{- end }}
    {{- end }}
{{- if $auth }}
---
# The scaler connects as the service does: the same user, password and CA.
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- include "sales-common.annotations" (dict "ctx" .) | nindent 2 }}
spec:
  {{- if $k.saslMechanism }}
  # Read from the Deployment's container env, the password there by secretKeyRef.
  env:
    {{- $p := include "sales-common.prefix" . }}
    - {parameter: username, name: {{ $p }}_KAFKA__SASL_USERNAME, containerName: {{ .Chart.Name }}}
    - {parameter: password, name: {{ $p }}_KAFKA__SASL_PASSWORD, containerName: {{ .Chart.Name }}}
  {{- end }}
  {{- if $k.caSecret }}
  secretTargetRef:
    - {parameter: ca, name: {{ $k.caSecret }}, key: {{ $k.caKey }}}
  {{- end }}
{{- end }}
{{- end -}}
