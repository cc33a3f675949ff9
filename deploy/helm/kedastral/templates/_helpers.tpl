{{/* The chart name, or nameOverride. */}}
{{- define "kedastral.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: fullnameOverride, or the release name (with the chart name unless it contains it). */}}
{{- define "kedastral.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kedastral.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "kedastral.labels" -}}
helm.sh/chart: {{ include "kedastral.chart" . }}
app.kubernetes.io/name: {{ include "kedastral.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kedastral
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component; call with (dict "ctx" $ "component" "forecaster"). */}}
{{- define "kedastral.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kedastral.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kedastral.componentLabels" -}}
{{ include "kedastral.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kedastral.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kedastral.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kedastral.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kedastral.configName" -}}
{{- printf "%s-config" (include "kedastral.fullname" .) -}}
{{- end -}}

{{/* The policy file: a YAML stream of DataSource and ForecastPolicy objects. */}}
{{- define "kedastral.policyFile" -}}
{{- range .Values.dataSources }}
---
apiVersion: kedastral.io/v1alpha1
kind: DataSource
metadata:
  name: {{ .name }}
  {{- with .labels }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- toYaml .spec | nindent 2 }}
{{- end }}
{{- range .Values.policies }}
---
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: {{ .name }}
  {{- with .labels }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- toYaml .spec | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod scheduling fields of a component's values. */}}
{{- define "kedastral.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
webTLS: the flag, the mounts and the volume of the web endpoints' TLS, and
the probes' scheme.
*/}}
{{- define "kedastral.webTLS.check" -}}
{{- if and .Values.webTLS.enabled (not .Values.webTLS.secretName) }}
{{- fail "webTLS.enabled needs webTLS.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- end }}

{{- define "kedastral.webTLS.args" -}}
{{- if .Values.webTLS.enabled }}
- --web.config.file=/etc/kedastral/web/web-config.yaml
{{- end }}
{{- end }}

{{- define "kedastral.webTLS.mounts" -}}
{{- if .Values.webTLS.enabled }}
- name: web-config
  mountPath: /etc/kedastral/web
  readOnly: true
- name: web-tls
  mountPath: /etc/kedastral/web-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "kedastral.webTLS.volumes" -}}
{{- if .Values.webTLS.enabled }}
- name: web-config
  configMap:
    name: {{ include "kedastral.configName" . }}
    items:
      - key: web-config.yaml
        path: web-config.yaml
- name: web-tls
  secret:
    secretName: {{ .Values.webTLS.secretName }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}

{{- define "kedastral.probeScheme" -}}
{{- if .Values.webTLS.enabled }}
scheme: HTTPS
{{- end }}
{{- end }}
