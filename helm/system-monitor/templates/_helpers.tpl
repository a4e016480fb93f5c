{{/* Names, labels and the pieces the agent and the coordinator share. */}}

{{- define "system-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; objects add -agent, -agents, -coordinator… to it. */}}
{{- define "system-monitor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "system-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; the component's selector labels are added where it has one. */}}
{{- define "system-monitor.labels" -}}
helm.sh/chart: {{ include "system-monitor.chart" . }}
app.kubernetes.io/name: {{ include "system-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: system-monitor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of a component: (dict "ctx" $ "component" "agent"). */}}
{{- define "system-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "system-monitor.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "system-monitor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "system-monitor.agentServiceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (printf "%s-agent" (include "system-monitor.fullname" .)) .Values.agent.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "system-monitor.coordinatorServiceAccountName" -}}
{{- if .Values.coordinator.serviceAccount.create }}
{{- default (printf "%s-coordinator" (include "system-monitor.fullname" .)) .Values.coordinator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.coordinator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The agents' PriorityClass: the one named, else the chart's own (cluster-scoped, so its name
carries the namespace), else none. */}}
{{- define "system-monitor.agentPriorityClassName" -}}
{{- if .Values.agent.priorityClassName }}
{{- .Values.agent.priorityClassName }}
{{- else if .Values.agent.priorityClass.create }}
{{- printf "%s-%s-agent" .Release.Namespace (include "system-monitor.fullname" .) | trunc 253 }}
{{- end }}
{{- end }}

{{- define "system-monitor.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "system-monitor.fullname" .)) .Values.tokens.existingSecret }}
{{- end }}

{{- define "system-monitor.agentTLSSecretName" -}}
{{- default (printf "%s-agent-tls" (include "system-monitor.fullname" .)) .Values.tls.agentSecretName }}
{{- end }}

{{- define "system-monitor.coordinatorTLSSecretName" -}}
{{- default (printf "%s-coordinator-tls" (include "system-monitor.fullname" .)) .Values.tls.coordinatorSecretName }}
{{- end }}

{{- define "system-monitor.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* Where files are mounted in both containers. */}}
{{- define "system-monitor.tokensDir" -}}/etc/system-monitor/tokens{{- end }}
{{- define "system-monitor.tlsDir" -}}/etc/system-monitor/tls{{- end }}

{{/* The token and TLS flags; (dict "ctx" $ "cluster" BOOL): whether this side uses the cluster token. */}}
{{- define "system-monitor.secretArgs" -}}
{{- $v := .ctx.Values }}
{{- if $v.tokens.auth }}
- --auth-token-file={{ include "system-monitor.tokensDir" . }}/{{ $v.tokens.authTokenKey }}
{{- end }}
{{- if and $v.tokens.cluster .cluster }}
- --cluster-token-file={{ include "system-monitor.tokensDir" . }}/{{ $v.tokens.clusterTokenKey }}
{{- end }}
{{- if $v.tls.enabled }}
- --tls-cert={{ include "system-monitor.tlsDir" . }}/tls.crt
- --tls-key={{ include "system-monitor.tlsDir" . }}/tls.key
- --tls-ca={{ include "system-monitor.tlsDir" . }}/ca.crt
{{- end }}
{{- end }}

{{/* The volumes behind those flags; (dict "ctx" $ "cluster" BOOL "tlsSecret" NAME "mode" INT). */}}
{{- define "system-monitor.secretVolumes" -}}
{{- $v := .ctx.Values }}
{{- if or $v.tokens.auth (and $v.tokens.cluster .cluster) }}
- name: tokens
  secret:
    secretName: {{ include "system-monitor.tokensSecretName" .ctx }}
    defaultMode: {{ .mode }}
    items:
      {{- if $v.tokens.auth }}
      - {key: {{ $v.tokens.authTokenKey }}, path: {{ $v.tokens.authTokenKey }}}
      {{- end }}
      {{- if and $v.tokens.cluster .cluster }}
      - {key: {{ $v.tokens.clusterTokenKey }}, path: {{ $v.tokens.clusterTokenKey }}}
      {{- end }}
{{- end }}
{{- if $v.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .tlsSecret }}
    defaultMode: {{ .mode }}
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      - {key: ca.crt, path: ca.crt}
{{- end }}
{{- end }}

{{- define "system-monitor.secretMounts" -}}
{{- $v := .ctx.Values }}
{{- if or $v.tokens.auth (and $v.tokens.cluster .cluster) }}
- {name: tokens, mountPath: {{ include "system-monitor.tokensDir" . }}, readOnly: true}
{{- end }}
{{- if $v.tls.enabled }}
- {name: tls, mountPath: {{ include "system-monitor.tlsDir" . }}, readOnly: true}
{{- end }}
{{- end }}

{{/* Readiness or liveness on /api/health: (dict "ctx" $ "probe" VALUES). */}}
{{- define "system-monitor.healthProbe" -}}
httpGet:
  path: /api/health
  port: http
  scheme: {{ include "system-monitor.scheme" .ctx | upper }}
{{- with .probe }}
{{ toYaml . }}
{{- end }}
{{- end }}
