{{/* The forecaster's policy arguments: the ConfigMap's file, or the Kubernetes API (kubernetesSource). */}}
{{- define "kedastral.forecaster.policyArgs" -}}
{{- $k := .Values.kubernetesSource -}}
{{- if $k.enabled -}}
- --policies.source=kubernetes
{{- with $k.namespaces }}
- --kubernetes.namespaces={{ join "," . }}
{{- end }}
{{- /* Shards split the series among replicas; a leader would take them all. */}}
{{- if and $k.leaderElection.enabled (le (int (.Values.forecaster.shards | default 1)) 1) }}
- --leader-election.enabled
- --leader-election.namespace={{ .Release.Namespace }}
- --leader-election.lease-name={{ include "kedastral.fullname" . }}-forecaster
- --leader-election.lease-duration={{ $k.leaderElection.leaseDuration }}
- --leader-election.renew-deadline={{ $k.leaderElection.renewDeadline }}
- --leader-election.retry-period={{ $k.leaderElection.retryPeriod }}
{{- end }}
{{- else -}}
- --config.file=/etc/kedastral/config/policies.yaml
{{- end -}}
{{- end -}}

{{/* The forecaster talks to the API server with its service account token in kubernetes mode. */}}
{{- define "kedastral.forecaster.automountToken" -}}
{{- if .Values.kubernetesSource.enabled -}}true{{- else -}}{{ .Values.serviceAccount.automountServiceAccountToken }}{{- end -}}
{{- end -}}
