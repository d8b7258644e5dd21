{{/* Labels of every resource; `component` is the service's name where there is one. */}}
{{- define "hookhub.labels" -}}
app.kubernetes.io/name: hookhub
app.kubernetes.io/part-of: hookhub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* What a service's pods carry and its selectors match: never changed by an upgrade. */}}
{{- define "hookhub.selector" -}}
app.kubernetes.io/name: hookhub
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hookhub.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* The most replicas a Kafka consumer may have: its `max`, never past the partitions. */}}
{{- define "hookhub.maxConsumers" -}}
{{ min .scaling.max .root.Values.kafka.partitions }}
{{- end }}
