{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "berth.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "berth.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "berth.secretName" -}}
{{- default (include "berth.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Settings that cannot work are refused at render time, with the value to set. */}}
{{- define "berth.validate" -}}
{{- if not (has .Values.mode (list "embedded" "stateless")) }}
{{- fail (printf "mode must be embedded or stateless, not %q" .Values.mode) }}
{{- end }}
{{- if eq .Values.mode "stateless" }}
{{- if not .Values.s3.bucket }}
{{- fail "mode stateless stores blobs in S3: set s3.bucket" }}
{{- end }}
{{- if and (not .Values.existingSecret) (not .Values.secret.databaseUrl) }}
{{- fail "mode stateless keeps metadata in PostgreSQL: set existingSecret (with the key secretKeys.databaseUrl) or secret.databaseUrl" }}
{{- end }}
{{- if and (not .Values.existingSecret) (not .Values.secret.secretsKey) }}
{{- fail "mode stateless needs the same secrets key on every pod: set existingSecret (with the key secretKeys.secretsKey) or secret.secretsKey" }}
{{- end }}
{{- end }}
{{- end }}

{{/* An env entry from the Secret; optional ones may be absent from it. */}}
{{- define "berth.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "berth.secretName" .root }}
      key: {{ .key }}
      optional: {{ .optional }}
{{- end }}

{{/* The pod template of both workloads (Deployment and StatefulSet). */}}
{{- define "berth.podTemplate" -}}
metadata:
  labels:
    {{- include "berth.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not .Values.existingSecret }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "berth.serviceAccountName" . }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: berth
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
        {{- if .Values.metrics.port }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
      env:
        - name: BERTH_DATA_DIR
          value: /data
        - name: BERTH_HTTP_ADDR
          value: "0.0.0.0:{{ .Values.containerPort }}"
        - name: TMPDIR
          value: /tmp
        {{- if .Values.metrics.port }}
        - name: BERTH_METRICS_ADDR
          value: "0.0.0.0:{{ .Values.metrics.port }}"
        {{- end }}
        {{- include "berth.secretEnv" (dict "root" . "name" "BERTH_ADMIN_PASSWORD" "key" .Values.secretKeys.adminPassword "optional" true) | nindent 8 }}
        {{- include "berth.secretEnv" (dict "root" . "name" "BERTH_SECRETS_KEY" "key" .Values.secretKeys.secretsKey "optional" (eq .Values.mode "embedded")) | nindent 8 }}
        {{- if eq .Values.mode "stateless" }}
        {{- include "berth.secretEnv" (dict "root" . "name" "BERTH_DATABASE_URL" "key" .Values.secretKeys.databaseUrl "optional" false) | nindent 8 }}
        {{- include "berth.secretEnv" (dict "root" . "name" "BERTH_STORAGE_S3_ACCESS_KEY_ID" "key" .Values.secretKeys.s3AccessKeyId "optional" true) | nindent 8 }}
        {{- include "berth.secretEnv" (dict "root" . "name" "BERTH_STORAGE_S3_SECRET_ACCESS_KEY" "key" .Values.secretKeys.s3SecretAccessKey "optional" true) | nindent 8 }}
        - name: BERTH_STORAGE_DRIVER
          value: s3
        - name: BERTH_STORAGE_S3_BUCKET
          value: {{ .Values.s3.bucket | quote }}
        - name: BERTH_STORAGE_S3_REGION
          value: {{ .Values.s3.region | quote }}
        {{- with .Values.s3.endpoint }}
        - name: BERTH_STORAGE_S3_ENDPOINT
          value: {{ . | quote }}
        {{- end }}
        - name: BERTH_STORAGE_S3_FORCE_PATH_STYLE
          value: {{ .Values.s3.forcePathStyle | quote }}
        - name: BERTH_STORAGE_S3_REDIRECT
          value: {{ .Values.s3.redirect | quote }}
        {{- end }}
        {{- range $name, $value := .Values.env }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: {{ .Values.probes.startup.path }}
          port: http
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: {{ .Values.probes.liveness.path }}
          port: http
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: {{ .Values.probes.readiness.path }}
          port: http
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if eq .Values.mode "stateless" }}
    # Stateless pods keep nothing: /data only holds what a pod makes for itself.
    - name: data
      emptyDir: {}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
