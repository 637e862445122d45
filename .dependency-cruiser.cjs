// Import boundaries of docs/architecture.md ("What may import what"): dependencies point down.
// http -> services (registry, auth, ...) -> storage/metadata -> oci/errors.
// Change this file and that table together.
const lower = (name, allowed) => ({
  name: `${name}-imports-only-lower-layers`,
  severity: 'error',
  from: { path: `^src/${name}/` },
  to: { path: '^src/', pathNot: [`^src/${name}/`, ...allowed.map((a) => `^src/${a}/`)] },
})
module.exports = {
  forbidden: [
    lower('oci', []),
    lower('errors', []),
    lower('storage', ['oci', 'errors', 'observability']),
    lower('metadata', ['oci', 'errors', 'observability']),
    lower('config', ['errors']),
    lower('observability', ['errors']),
    lower('runtime', []),
    lower('registry', ['oci', 'errors', 'storage', 'metadata', 'observability', 'config', 'runtime']),
    lower('auth', ['oci', 'errors', 'metadata', 'observability', 'config']),
    lower('jobs', ['oci', 'errors', 'registry', 'observability', 'metadata']),
    lower('gc', ['registry', 'metadata', 'storage', 'oci', 'errors', 'observability', 'jobs', 'config', 'runtime']),
    lower('policy', ['gc', 'metadata', 'oci', 'errors', 'observability', 'jobs', 'config']),
    lower('browse', ['registry', 'metadata', 'oci', 'errors', 'observability', 'runtime']),
    lower('scan', ['browse', 'registry', 'auth', 'metadata', 'storage', 'oci', 'errors', 'observability', 'config', 'jobs', 'policy']),
    lower('charts', ['browse', 'registry', 'metadata', 'oci', 'errors', 'observability']),
    lower('replication', ['registry', 'auth', 'policy', 'gc', 'jobs', 'metadata', 'storage', 'oci', 'errors', 'observability', 'config']),
    lower('transfer', ['registry', 'replication', 'oci', 'errors', 'observability']),
    lower('layout', ['transfer', 'metadata', 'oci', 'errors', 'observability']),
    lower('backup', ['gc', 'registry', 'metadata', 'storage', 'oci', 'errors', 'observability', 'config']),
    lower('trust', ['browse', 'policy', 'registry', 'metadata', 'oci', 'errors', 'observability']),
    lower('adopt', ['auth', 'registry', 'metadata', 'storage', 'oci', 'errors', 'observability', 'config']),
    lower('limits', ['config', 'metadata', 'errors', 'observability']),
    lower('tracing', ['config', 'errors', 'storage', 'metadata', 'observability']),
    lower('events', ['registry', 'auth', 'replication', 'policy', 'jobs', 'metadata', 'oci', 'errors', 'observability', 'config', 'runtime']),
    {
      name: 'http-never-touches-storage-or-metadata',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: '^src/(storage|metadata)/' },
    },
    {
      name: 'services-never-import-http',
      severity: 'error',
      from: { path: '^src/(registry|storage|metadata|oci|errors|jobs|config|gc|policy|runtime|replication|browse|charts|events|scan|transfer|layout|backup|trust|adopt|limits|tracing)/' },
      to: { path: '^src/(http|cli)/' },
    },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    exclude: { path: '\\.test\\.ts$' },
  },
}
