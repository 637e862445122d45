# Berth's container image: docs/deployment.md. Two stages: `build` compiles the server (dist/) and
# the web UI (dist/ui) with the full dependency set, then drops the development dependencies;
# the final stage holds Node.js, the production node_modules and dist/ only, and runs as an
# unprivileged user with its data in the /data volume. The root filesystem may be read-only
# (`docker run --read-only --tmpfs /tmp`): Berth writes nothing outside /data and $TMPDIR.
#
#   docker build -t berth .
#   docker run -d -p 5000:5000 -v berth-data:/data --read-only --tmpfs /tmp berth
#
# BASE_IMAGE: any Debian-based image with Node.js 20 (>= 20.19) and npm in /usr/local, as the
# official one (the default); CI builds over one made offline (.ci/deploy-base-image.sh).
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
# better-sqlite3 compiles its addon when no prebuilt binary can be downloaded for this platform
# (or no download is possible): it needs a compiler and Python. The headers are the image's own
# (/usr/local/include/node), so node-gyp downloads nothing.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false
# Behind a TLS-inspecting proxy: a CA bundle that npm trusts, mounted into the build, e.g.
#   buildah bud --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg npm_config_cafile=/run/host-ca.crt .
# (a build argument: nothing of it stays in the image).
ARG npm_config_cafile
WORKDIR /src
# Dependencies first, so that a change of the sources reuses this layer. Without src/ the
# package's own prepare script has nothing to build.
COPY package.json package-lock.json ./
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY ui ./ui
COPY bin ./bin
RUN npm run build \
 && npm run build:ui \
 && npm prune --omit=dev --no-audit --no-fund \
 && find dist -name '*.map' -delete

FROM ${BASE_IMAGE}
ARG BERTH_UID=10001
# /data: the volume of the embedded mode (SQLite + blobs); with PostgreSQL + S3 it stays empty
# except for the generated secrets.key (set BERTH_SECRETS_KEY instead).
RUN groupadd --system --gid "$BERTH_UID" berth \
 && useradd --system --uid "$BERTH_UID" --gid berth --home-dir /data --no-create-home --shell /usr/sbin/nologin berth \
 && mkdir -p /data \
 && chown berth:berth /data \
 && chmod 0750 /data
WORKDIR /opt/berth
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
RUN ln -s /opt/berth/bin/berth.js /usr/local/bin/berth
ENV NODE_ENV=production \
    BERTH_DATA_DIR=/data \
    BERTH_HTTP_ADDR=0.0.0.0:5000 \
    BERTH_LOG_FORMAT=json \
    TMPDIR=/tmp
USER berth:berth
VOLUME ["/data"]
EXPOSE 5000
# /healthz answers 200 while the process serves; the port is the one of BERTH_HTTP_ADDR.
# (Kept by `docker build` and `buildah bud --format docker`; the OCI image format has no health check.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const p = (process.env.BERTH_HTTP_ADDR || ':5000').split(':').pop(); fetch('http://127.0.0.1:' + p + '/healthz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
# bin/serve.sh: `berth serve` with the V8 flags of the runtime tuning, in place of the shell
# (signals reach Node.js). Other commands: docker run --rm --entrypoint berth IMAGE --help
ENTRYPOINT ["/bin/sh", "/opt/berth/bin/serve.sh"]
