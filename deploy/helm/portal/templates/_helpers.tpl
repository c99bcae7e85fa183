{{/* Labels of every object; "portal.labels" takes (dict "root" $ "name" NAME). */}}
{{- define "portal.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: portal
{{- end }}

{{/* The selector of one component. */}}
{{- define "portal.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* The restricted Pod Security Standard, pod level; takes the uid. */}}
{{- define "portal.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ . }}
  runAsGroup: {{ . }}
  fsGroup: {{ . }}
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* The restricted Pod Security Standard, container level. */}}
{{- define "portal.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "portal.etcdAddress" -}}
{{- if .Values.etcd.address }}{{ .Values.etcd.address }}{{ else if .Values.etcd.bundled }}etcd:2379{{ else }}{{ fail "etcd.address is required when etcd.bundled is false" }}{{ end }}
{{- end }}

{{- define "portal.redisAddress" -}}
{{- if .Values.redis.address }}{{ .Values.redis.address }}{{ else if .Values.redis.bundled }}redis:6379{{ else }}{{ fail "redis.address or redis.addressSecret is required when redis.bundled is false" }}{{ end }}
{{- end }}

{{- define "portal.natsAddress" -}}
{{- if .Values.nats.address }}{{ .Values.nats.address }}{{ else if .Values.nats.bundled }}nats://nats:4222{{ else }}{{ fail "nats.address or nats.addressSecret is required when nats.bundled is false" }}{{ end }}
{{- end }}

{{- /* Portal's own pods: the only ones let into user, system and the backends. */}}
{{- define "portal.peers" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .Release.Name | quote }}]
      - key: app.kubernetes.io/name
        operator: In
        values: ["web", "user", "system", "config-init"]
{{- end }}
{{- define "portal.metricsRule" -}}
{{- with .Values.networkPolicy.metricsFrom }}
- from:
    {{- toYaml . | nindent 4 }}
  ports:
    - port: metrics
{{- end }}
{{- end }}
