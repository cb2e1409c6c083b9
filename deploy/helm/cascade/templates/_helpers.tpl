{{/* Names and labels shared by every object of the chart. */}}

{{- define "cascade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects of one service append -<service>, so
it is kept short enough for that. */}}
{{- define "cascade.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cascade.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cascade.labels" -}}
helm.sh/chart: {{ include "cascade.chart" . }}
app.kubernetes.io/name: {{ include "cascade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cascade
{{- end }}

{{/* Selector labels of one service. Call with (dict "root" $ "svc" NAME). */}}
{{- define "cascade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cascade.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .svc }}
{{- end }}

{{/* All labels of one service's objects. */}}
{{- define "cascade.serviceLabels" -}}
{{ include "cascade.labels" .root }}
app.kubernetes.io/component: {{ .svc }}
{{- end }}

{{/* registry/name:tag of one service's image. Call with (dict "root" $
"image" NAME). */}}
{{- define "cascade.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .image $tag }}
{{- else }}
{{- printf "%s:%s" .image $tag }}
{{- end }}
{{- end }}

{{- define "cascade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cascade.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The filesystem path of a file:// store URI ("" for other schemes). */}}
{{- define "cascade.storePath" -}}
{{- if hasPrefix "file://" .Values.store.uri }}
{{- trimPrefix "file://" .Values.store.uri }}
{{- end }}
{{- end }}
