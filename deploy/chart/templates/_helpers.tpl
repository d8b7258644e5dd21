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

{{/* Where the services send their spans: the release's collector, else tracing.endpoint. */}}
{{- define "hookhub.tracingEndpoint" -}}
{{- $tracing := .Values.tracing }}
{{- if not (has $tracing.protocol (list "http/protobuf" "grpc")) }}
{{- fail (printf "tracing.protocol must be http/protobuf or grpc, not %q" $tracing.protocol) }}
{{- end }}
{{- if $tracing.collector.enabled }}
{{- $port := ternary 4317 4318 (eq $tracing.protocol "grpc") -}}
http://otel-collector.{{ .Release.Namespace }}.svc:{{ $port }}
{{- else if $tracing.endpoint }}
{{- $tracing.endpoint }}
{{- else }}
{{- fail "tracing.enabled needs tracing.endpoint (an OTLP collector) or tracing.collector.enabled" }}
{{- end }}
{{- end }}

{{/* The standard OTEL_* variables of one service's container (docs/operations.md, Traces). */}}
{{- define "hookhub.tracingEnv" -}}
{{- $tracing := .root.Values.tracing -}}
- name: OTEL_SERVICE_NAME
  value: hookhub-{{ .name }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ include "hookhub.tracingEndpoint" .root | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $tracing.protocol | quote }}
{{- with $tracing.sampler }}
- name: OTEL_TRACES_SAMPLER
  value: {{ . | quote }}
{{- end }}
{{- if ne (toString $tracing.samplerArg) "" }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ toString $tracing.samplerArg | quote }}
{{- end }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.namespace.name={{ .root.Release.Namespace }},k8s.deployment.name={{ .name }},k8s.pod.name=$(K8S_POD_NAME){{ with $tracing.resourceAttributes }},{{ . }}{{ end }}"
{{- end }}
