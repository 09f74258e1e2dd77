{{- define "secret-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "secret-sync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "secret-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secret-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "secret-sync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "secret-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "secret-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "secret-sync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease's name: unique per release unless set. */}}
{{- define "secret-sync.leaseName" -}}
{{- default (include "secret-sync.fullname" .) .Values.leaderElection.id }}
{{- end }}

{{/* Whether anything listens for pushed changes (and so needs the leader-only Service). */}}
{{- define "secret-sync.listens" -}}
{{- if or .Values.vault.audit.enabled .Values.webhook.enabled }}true{{ end }}
{{- end }}

{{/* Whether the ClusterExternalSecret reconciler runs: it needs every namespace. */}}
{{- define "secret-sync.clusterExternalSecrets" -}}
{{- if and .Values.clusterExternalSecrets.enabled (not .Values.namespace) }}true{{ end }}
{{- end }}

{{/* Whether the ClusterPushSecret reconciler runs: it needs every namespace. */}}
{{- define "secret-sync.clusterPushSecrets" -}}
{{- if and .Values.clusterPushSecrets.enabled (not .Values.namespace) }}true{{ end }}
{{- end }}

{{/* The Secret the sharded replicas sign forwarded changes with. */}}
{{- define "secret-sync.shardSecretName" -}}
{{- .Values.sharding.existingSecret | default (printf "%s-shards" (include "secret-sync.fullname" .)) }}
{{- end }}
