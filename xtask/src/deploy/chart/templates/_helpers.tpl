{{/*
Helpers of the cert-manager-csi-driver chart. Object names are fixed (one release per cluster), so
that the chart renders the same objects as the manifests in deploy/base/.
*/}}

{{/* Labels every object carries: the static manifests' one, Helm's bookkeeping, commonLabels. */}}
{{- define "csi.labels" -}}
app.kubernetes.io/name: cert-manager-csi-driver
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
An image reference, with the Go chart's rules (so a Go user's values keep their meaning):
- `repository` set: it is used as is (prefixed by the deprecated per-image `registry`, if set);
- else `[imageRegistry/][imageNamespace/]name` (and the deprecated `registry` in front);
- then `:tag@digest`, `:tag` or `@digest`; with neither, the default reference (`:<version>`).
Call with (list <image values> <imageRegistry> <imageNamespace> <default reference>).
*/}}
{{- define "csi.image" -}}
{{- $image := index . 0 -}}
{{- $registry := index . 1 | default "" -}}
{{- $namespace := index . 2 | default "" -}}
{{- $default := index . 3 -}}
{{- $ref := "" -}}
{{- if $image.repository -}}
{{- $ref = $image.repository -}}
{{- else -}}
{{- $ref = required "an image needs `repository` or `name`: set one of them" $image.name -}}
{{- if $namespace }}{{ $ref = printf "%s/%s" $namespace $ref }}{{ end -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- end -}}
{{- if $image.registry }}{{ $ref = printf "%s/%s" $image.registry $ref }}{{ end -}}
{{- if and $image.tag $image.digest -}}
{{- printf "%s:%s@%s" $ref (toString $image.tag) $image.digest -}}
{{- else if $image.tag -}}
{{- printf "%s:%s" $ref (toString $image.tag) -}}
{{- else if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- printf "%s%s" $ref $default -}}
{{- end -}}
{{- end -}}

{{/*
Whether the OpenShift SecurityContextConstraints rule is rendered: `true`, or `detect` on a cluster
that serves security.openshift.io/v1.
*/}}
{{- define "csi.scc" -}}
{{- $enabled := .Values.openshift.securityContextConstraint.enabled -}}
{{- if kindIs "bool" $enabled -}}
{{- if $enabled }}true{{ end -}}
{{- else if and (eq (toString $enabled) "detect") (.Capabilities.APIVersions.Has "security.openshift.io/v1") -}}
true
{{- end -}}
{{- end -}}

{{/* Labels of the Pod signer's objects (deploy/pod-signer/), with Helm's bookkeeping. */}}
{{- define "signer.labels" -}}
app.kubernetes.io/name: cert-manager-pod-signer
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
