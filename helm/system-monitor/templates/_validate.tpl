{{/* Combinations the schema cannot refuse; each fails the render with what to change. */}}
{{- define "system-monitor.validate" -}}
{{- $v := .Values }}
{{- if $v.agent.register }}
{{- if not $v.coordinator.enabled }}
{{- fail "agent.register needs coordinator.enabled: the agents register with this release's coordinator" }}
{{- end }}
{{- if not $v.tokens.cluster }}
{{- fail "agent.register needs tokens.cluster: the coordinator accepts only registrations that carry the cluster token" }}
{{- end }}
{{- if gt (int $v.coordinator.replicas) 1 }}
{{- fail "agent.register needs coordinator.replicas 1: a registration reaches one replica only (use DNS discovery, the default, for several)" }}
{{- end }}
{{- end }}
{{- if and $v.tls.certManager.enabled (not $v.tls.enabled) }}
{{- fail "tls.certManager.enabled needs tls.enabled" }}
{{- end }}
{{- if $v.tls.certManager.enabled }}
{{- if not $v.tls.certManager.issuerRef.name }}
{{- fail "tls.certManager.issuerRef.name is required: the cert-manager Issuer or ClusterIssuer that signs the certificates" }}
{{- end }}
{{- if and $v.coordinator.enabled (not $v.tls.certManager.agentIPAddresses) }}
{{- fail "tls.certManager.agentIPAddresses is required: the coordinator polls agents by address and checks it among the certificate's IP SANs (list the node addresses)" }}
{{- end }}
{{- end }}
{{- end }}
