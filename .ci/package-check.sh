#!/usr/bin/env bash
# The npm package as a user installs it: `npm pack`, `npm install -g` of the tarball into a
# temporary prefix (dependencies from the npm registry, the SQLite addon built or fetched by its
# install script), then the installed `berth` outside the checkout: --help, and `serve` answering
# /healthz and exiting 0 on SIGTERM. Slow (minutes: the install), so a step of .ci/run, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

npm pack --pack-destination "$tmp" >/dev/null
tgz=$(ls "$tmp"/berth-registry-*.tgz)
echo "packed $(basename "$tgz") ($(du -k "$tgz" | cut -f1) KiB)"
npm install -g --prefix "$tmp/prefix" --prefer-offline --no-audit --no-fund "$tgz"
berth="$tmp/prefix/bin/berth"

cd "$tmp"
"$berth" --help | grep -q '^  serve' || { echo "package check: berth --help lists no serve command" >&2; exit 1; }
port=$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })")
"$berth" serve --data-dir "$tmp/data" --addr "127.0.0.1:$port" >"$tmp/serve.log" 2>&1 &
pid=$!
if ! node -e "
  const url = 'http://127.0.0.1:$port/healthz'
  const until = Date.now() + 30000
  const poll = () => fetch(url).then((r) => { if (r.status !== 200) throw new Error(String(r.status)) })
    .catch((e) => { if (Date.now() > until) { console.error('no answer from ' + url + ': ' + e.message); process.exit(1) } return new Promise((ok) => setTimeout(ok, 300)).then(poll) })
  poll()"; then
  cat "$tmp/serve.log" >&2
  exit 1
fi
# The package ships the built web UI: / answers its index.html, not the "not built" page.
if ! node -e "fetch('http://127.0.0.1:$port/').then((r) => r.text()).then((t) => process.exit(t.includes('name=\"berth-runtime\"') ? 0 : 1), () => process.exit(1))"; then
  echo "package check: / does not serve the built web UI (dist/ui missing from the package?)" >&2
  exit 1
fi
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 0 ]; then
  echo "package check: berth serve exited $status on SIGTERM" >&2
  cat "$tmp/serve.log" >&2
  exit 1
fi
cd "$checkout"
echo "package check: npm install -g of the tarball runs berth --help and berth serve"
