{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "mental-r1.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release already holds it.
*/}}
{{- define "mental-r1.fullname" -}}
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

{{- define "mental-r1.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mental-r1.labels" -}}
helm.sh/chart: {{ include "mental-r1.chart" . }}
{{ include "mental-r1.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: assessment-api
mental-r1/profile: {{ .Values.profile }}
{{- end }}

{{- define "mental-r1.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mental-r1.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mental-r1.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mental-r1.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The selected resource profile (profiles.cpu or profiles.gpu).
*/}}
{{- define "mental-r1.profile" -}}
{{- $p := index .Values.profiles .Values.profile }}
{{- if not $p }}
{{- fail (printf "profile %q has no entry under profiles" .Values.profile) }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/*
Image reference: repository, then @digest or :tag (default: appVersion + the profile's tagSuffix).
*/}}
{{- define "mental-r1.image" -}}
{{- $p := include "mental-r1.profile" . | fromYaml }}
{{- $tag := .Values.image.tag | default (printf "%s%s" .Chart.AppVersion ($p.tagSuffix | default "")) }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "mental-r1.resources" -}}
{{- if .Values.resources }}
{{- toYaml .Values.resources }}
{{- else }}
{{- $p := include "mental-r1.profile" . | fromYaml }}
{{- toYaml ($p.resources | default dict) }}
{{- end }}
{{- end }}

{{/*
Drain timeout in whole seconds (rounded up).
*/}}
{{- define "mental-r1.drainSeconds" -}}
{{- .Values.settings.drainTimeoutS | float64 | ceil | int }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the explicit value (checked to cover preStop + drain), or
preStop + drain + shutdown buffer.
*/}}
{{- define "mental-r1.terminationGracePeriodSeconds" -}}
{{- $preStop := int .Values.lifecycle.preStopSleepSeconds }}
{{- $drain := include "mental-r1.drainSeconds" . | int }}
{{- $tgps := .Values.lifecycle.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $tgps }}
{{- add $preStop $drain (int .Values.lifecycle.shutdownBufferSeconds) }}
{{- else if lt (int $tgps) (add $preStop $drain) }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds (%d) must be >= lifecycle.preStopSleepSeconds (%d) + settings.drainTimeoutS (%d): the pod would be killed mid-drain" (int $tgps) $preStop $drain) }}
{{- else }}
{{- int $tgps }}
{{- end }}
{{- end }}

{{/*
Name of the Secret with the API key hashes, or empty when there is none (development without keys).
*/}}
{{- define "mental-r1.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else if .Values.auth.apiKeyHashes }}
{{- include "mental-r1.fullname" . }}
{{- end }}
{{- end }}

{{- define "mental-r1.authSecretKey" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecretKey }}
{{- else }}
{{- "api-key-hashes" }}
{{- end }}
{{- end }}

{{/*
Checks that need more than the schema: production needs API keys; the ops port is not the API port.
*/}}
{{- define "mental-r1.validate" -}}
{{- if and (eq .Values.settings.env "production") (not (include "mental-r1.authSecretName" .)) }}
{{- fail "settings.env=production needs API keys: set auth.apiKeyHashes (SHA-256 hex digests: printf %s \"$KEY\" | sha256sum) or auth.existingSecret; an open API is allowed only with settings.env=development" }}
{{- end }}
{{- if eq (int .Values.settings.port) (int .Values.settings.opsPort) }}
{{- fail "settings.opsPort must differ from settings.port: the ops endpoints (metrics, docs) are kept off the API port" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set only one of minAvailable and maxUnavailable (null the other)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable) }}
{{- fail "podDisruptionBudget: set one of minAvailable and maxUnavailable" }}
{{- end }}
{{- end }}
