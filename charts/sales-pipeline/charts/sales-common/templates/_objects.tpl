{{- define "sales-common.serviceaccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- end -}}

{{- define "sales-common.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
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
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicas }}
  {{- end }}
  selector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "sales-common.labels" . | nindent 8 }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include "sales-common.configmap" . | sha256sum }}
    spec:
      serviceAccountName: {{ include "sales-common.fullname" . }}
      automountServiceAccountToken: false
      # Longer than the services' own graceful shutdown (25 s).
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
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
          resources: {{- toYaml .Values.resources | nindent 12 }}
          securityContext: {{- include "sales-common.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: logs, mountPath: /var/log}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: {{ .Values.tmpSizeLimit }}}
        - name: logs
          emptyDir: {sizeLimit: 256Mi}
{{- end -}}

{{- define "sales-common.k8sService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
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
spec:
  podSelector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if .Values.networkPolicy.publicIngress }}
    - ports: [{port: http}]
    {{- end }}
    - from:
        - namespaceSelector: {{- toYaml .Values.global.networkPolicy.metricsNamespaceSelector | nindent 12 }}
      ports: [{port: http}]
  egress:
    - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
    {{- if .Values.uses.kafka }}
    - to: {{- toYaml .Values.global.networkPolicy.kafkaPeers | nindent 8 }}
      ports: [{port: {{ .Values.global.networkPolicy.kafkaPort }}}]
    {{- end }}
    {{- if .Values.uses.postgres }}
    - to: {{- toYaml .Values.global.networkPolicy.postgresPeers | nindent 8 }}
      ports: [{port: {{ .Values.global.networkPolicy.postgresPort }}}]
    {{- end }}
{{- end -}}

{{- define "sales-common.servicemonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels: {{- include "sales-common.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: 15s
{{- end -}}

{{- define "sales-common.ingress" -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "sales-common.fullname" . }}
  labels: {{- include "sales-common.labels" . | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
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
