#!/usr/bin/env bash
# The deployment artifacts for real (docs/deployment.md), a step of .ci/run; slow (minutes), so not
# in npm test (test/deploy/ checks the chart, compose files and unit there). Run as root:
# the image: the Dockerfile's default BASE_IMAGE made offline (.ci/deploy-base-image.sh:
#     mmdebstrap of bookworm + Node.js from npm), `buildah bud` of the Dockerfile, the image run
#     by podman as its non-root user on a read-only root filesystem with its data in a volume;
#     its HEALTHCHECK passes, skopeo pushes the image into that registry and pulls it back
#     (same digest), and the container stops cleanly.
# Downloads are kept in .ci/.cache/deploy; the npm cache of the image build is the machine's own
# (~/.npm, which .ci/run's `npm ci` fills). Whatever it made in the containers storage is removed
# at the end, except the base image when BERTH_DEPLOY_KEEP_BASE=1 (it takes minutes to make).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=localhost/berth:deploy-check
BASE_IMAGE=docker.io/library/node:20-bookworm-slim
CONTAINER=berth-deploy-check-$$
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
  if [ "${BERTH_DEPLOY_KEEP_BASE:-0}" != 1 ]; then podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# podman here: runc, cgroupfs and no raised rlimits (the sandbox lacks CAP_SYS_RESOURCE), file
# events (no systemd: the HEALTHCHECK is run by hand below, `podman healthcheck run`).
cat > "$tmp/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$tmp/containers.conf"
step_started=$SECONDS
timing() { echo "deploy-check: $1 in $((SECONDS - step_started)) s"; step_started=$SECONDS; }
free_port() { node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })"; }
wait_healthy() {
  node -e "
    const url = '$1/healthz'
    const until = Date.now() + ${2:-60} * 1000
    const poll = () => fetch(url).then((r) => { if (r.status !== 200) throw new Error(String(r.status)) })
      .catch((e) => { if (Date.now() > until) { console.error('no answer from ' + url + ': ' + e.message); process.exit(1) } return new Promise((ok) => setTimeout(ok, 500)).then(poll) })
    poll()"
}

# The production install (`npm install --omit=dev`, then `berth serve`) is tested by
# test/deploy/omit-dev.test.ts in npm test; here: the image.
echo "== deploy-check: the base image $BASE_IMAGE, made offline"
bash .ci/deploy-base-image.sh "$BASE_IMAGE"
timing "base image"

echo "== deploy-check: buildah bud of the Dockerfile"
# The build reaches the npm registry and Debian's mirror (host network); the machine's CA bundle
# is mounted for npm in case a TLS-inspecting proxy stands in between.
mkdir -p "$HOME/.npm"
buildah bud --quiet --format docker --network host \
  --volume "$HOME/.npm:/root/.npm" \
  --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg npm_config_cafile=/run/host-ca.crt \
  --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" .
timing "buildah bud ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"

echo "== deploy-check: podman run (non-root, read-only root filesystem, data volume)"
mkdir -p "$tmp/data"
chown 10001:10001 "$tmp/data"
port=$(free_port)
password=$(openssl rand -hex 16)
podman run -d --name "$CONTAINER" --network host --read-only --cap-drop ALL --security-opt no-new-privileges \
  -e BERTH_HTTP_ADDR="127.0.0.1:$port" -e BERTH_ADMIN_PASSWORD="$password" -e BERTH_AUTH_AUTO_CREATE_PROJECTS=true \
  -v "$tmp/data:/data" "$IMAGE" >/dev/null
wait_healthy "http://127.0.0.1:$port" 90 || { podman logs "$CONTAINER" >&2; exit 1; }
[ "$(podman exec "$CONTAINER" id -u)" = 10001 ] || { echo "deploy-check: the server does not run as uid 10001" >&2; exit 1; }
if podman exec "$CONTAINER" touch /opt/berth/written 2>/dev/null; then echo "deploy-check: the root filesystem is writable" >&2; exit 1; fi
podman healthcheck run "$CONTAINER" || { echo "deploy-check: the image's HEALTHCHECK fails" >&2; exit 1; }
[ -s "$tmp/data/berth.db" ] || { echo "deploy-check: no database in the /data volume" >&2; exit 1; }
timing "container healthy"

echo "== deploy-check: skopeo push of the image into itself, and pull back"
ref="127.0.0.1:$port/deploy/berth:check"
skopeo copy --quiet --dest-tls-verify=false --dest-creds "admin:$password" "containers-storage:$IMAGE" "docker://$ref"
# dir: keeps the manifest's bytes as served (oci: would convert it to an OCI manifest).
skopeo copy --quiet --src-tls-verify=false --src-creds "admin:$password" "docker://$ref" "dir:$tmp/pulled"
pushed=$(skopeo inspect --tls-verify=false --creds "admin:$password" --format '{{.Digest}}' "docker://$ref")
pulled="sha256:$(sha256sum "$tmp/pulled/manifest.json" | cut -d' ' -f1)"
[ "$pushed" = "$pulled" ] || { echo "deploy-check: pulled $pulled, pushed $pushed" >&2; exit 1; }
timing "push and pull ($pushed)"

podman stop --time 40 "$CONTAINER" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")
[ "$code" = 0 ] || { echo "deploy-check: the container exited $code on stop" >&2; podman logs "$CONTAINER" | tail -20 >&2; exit 1; }
echo "deploy-check: passed in $SECONDS s"
