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

{{/*
app.driver.tmpfsSize in MiB (it must be a whole number of Mi or Gi, so that the memory limit can
be derived from it).
*/}}
{{- define "csi.tmpfsMiB" -}}
{{- $size := toString .Values.app.driver.tmpfsSize -}}
{{- if not (regexMatch "^[1-9][0-9]*(Mi|Gi)$" $size) -}}
{{- fail (printf "app.driver.tmpfsSize is %q: give a whole number of Mi or Gi, e.g. 32Mi or 1Gi" $size) -}}
{{- end -}}
{{- $n := regexFind "^[0-9]+" $size | atoi -}}
{{- if hasSuffix "Gi" $size }}{{ mul $n 1024 }}{{ else }}{{ $n }}{{ end -}}
{{- end -}}

{{/*
The driver container's resources: `resources`, with the memory limit derived from the tmpfs size
(twice it: the tmpfs's pages are charged to this container, and the other half is the process's)
unless `resources.limits.memory` is set.
*/}}
{{- define "csi.driverResources" -}}
{{- $r := deepCopy (.Values.resources | default dict) -}}
{{- $limits := get $r "limits" | default dict -}}
{{- if not (hasKey $limits "memory") -}}
{{- $_ := set $limits "memory" (printf "%dMi" (mul (include "csi.tmpfsMiB" . | atoi) 2)) -}}
{{- end -}}
{{- $_ := set $r "limits" $limits -}}
{{- toYaml $r -}}
{{- end -}}
