import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createRequire } from 'node:module'
import { setImmediate as tick } from 'node:timers/promises'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ConfigError, configLeaves, envName, loadConfig, maskSecrets, parseConfig, releaseConfigModules } from './load.js'

async function yamlFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-config-'))
  const file = join(dir, 'config.yml')
  await writeFile(file, text)
  return file
}

describe('config', () => {
  it('has the documented defaults', async () => {
    const { config } = await loadConfig()
    assert.equal(config.http.addr, '0.0.0.0:5000')
    assert.equal(config.dataDir, './data')
    assert.equal(config.storage.driver, 'filesystem')
    assert.equal(config.manifests.maxSize, 4 * 1024 * 1024)
    assert.equal(config.uploads.expiry, 86_400_000, 'durations are parsed once, into milliseconds')
  })

  it('parses every duration once, into milliseconds, from files and the environment alike', async () => {
    const file = await yamlFile('gc:\n  gracePeriod: 90m\njobs:\n  pollInterval: 250\n')
    const { config } = await loadConfig({ file, env: { BERTH_AUTH_TOKEN_EXPIRY: '2h' } })
    assert.equal(config.gc.gracePeriod, 90 * 60_000)
    assert.equal(config.jobs.pollInterval, 250, 'a plain number is milliseconds')
    assert.equal(config.auth.tokenExpiry, 2 * 3_600_000)
    assert.equal(config.http.shutdownTimeout, 30_000, 'defaults too')
    assert.deepEqual(parseConfig(config), config, 'a parsed config parses to itself')
  })

  const envCases: [string, string, (c: Awaited<ReturnType<typeof loadConfig>>['config']) => unknown, unknown][] = [
    ['BERTH_HTTP_ADDR', '127.0.0.1:5055', (c) => c.http.addr, '127.0.0.1:5055'],
    ['BERTH_DATA_DIR', '/srv/berth', (c) => c.dataDir, '/srv/berth'],
    ['BERTH_LOG_ACCESS_LOG', 'false', (c) => c.log.accessLog, false],
    ['BERTH_UPLOADS_MIN_CHUNK_SIZE', '1048576', (c) => c.uploads.minChunkSize, 1048576],
    ['BERTH_STORAGE_FILESYSTEM_ROOT_DIRECTORY', '/blobs', (c) => c.storage.filesystem.rootDirectory, '/blobs'],
    ['BERTH_HTTP_TLS_CERTIFICATE', '/tls/cert.pem', (c) => c.http.tls.certificate, '/tls/cert.pem'],
  ]
  for (const [name, value, pick, expected] of envCases) {
    it(`${name} overrides its key`, async () => {
      const { config } = await loadConfig({ env: { [name]: value } })
      assert.deepEqual(pick(config), expected)
    })
  }

  it('derives one unambiguous environment name per key', () => {
    const leaves = configLeaves()
    assert.equal(envName(['storage', 's3', 'accessKeyId']), 'BERTH_STORAGE_S3_ACCESS_KEY_ID')
    assert.equal(leaves.get('BERTH_HTTP_ADDR')?.path.join('.'), 'http.addr')
    const names = [...leaves.keys()]
    assert.equal(new Set(names).size, names.length)
  })

  it('applies file, then environment, then flags', async () => {
    const file = await yamlFile('http:\n  addr: 127.0.0.1:6000\ndataDir: /from/file\nlog:\n  level: warn\n')
    const fileOnly = await loadConfig({ file })
    assert.equal(fileOnly.config.http.addr, '127.0.0.1:6000')
    assert.equal(fileOnly.config.log.level, 'warn')
    const env = await loadConfig({ file, env: { BERTH_HTTP_ADDR: '127.0.0.1:7000' } })
    assert.equal(env.config.http.addr, '127.0.0.1:7000')
    assert.equal(env.config.dataDir, '/from/file')
    const flags = await loadConfig({ file, env: { BERTH_HTTP_ADDR: '127.0.0.1:7000' }, flags: { 'http.addr': '127.0.0.1:8000', dataDir: undefined } })
    assert.equal(flags.config.http.addr, '127.0.0.1:8000')
  })

  it('names unknown keys and bad values', async () => {
    const unknown = await yamlFile('http:\n  adr: 1.2.3.4:5\n')
    await assert.rejects(loadConfig({ file: unknown }), (err: Error) => err instanceof ConfigError && /unknown config key http\.adr/.test(err.message))
    const bad = await yamlFile('http:\n  addr: nonsense\n')
    await assert.rejects(loadConfig({ file: bad }), /http\.addr: expected HOST:PORT/)
    await assert.rejects(loadConfig({ env: { BERTH_UPLOADS_MIN_CHUNK_SIZE: 'many' } }), /BERTH_UPLOADS_MIN_CHUNK_SIZE: expected a number/)
    await assert.rejects(loadConfig({ env: { BERTH_UPLOADS_EXPIRY: 'soon' } }), /uploads\.expiry: expected a duration/)
    await assert.rejects(loadConfig({ file: await yamlFile('a: [1,\n') }), /not valid YAML/)
  })

  it('reports BERTH_ variables that name no key', async () => {
    const { unknownEnv } = await loadConfig({ env: { BERTH_NOPE: 'x', BERTH_ADMIN_PASSWORD: 'secret' } })
    assert.deepEqual(unknownEnv, ['BERTH_NOPE'])
  })

  it('masks secrets', async () => {
    const { config } = await loadConfig({ env: { BERTH_DATABASE_URL: 'sqlite:/tmp/x.db' } })
    const masked = maskSecrets(config) as { database: { url: string } }
    assert.equal(masked.database.url, '*****')
  })

  it('releases zod and yaml for the garbage collector, and loads them again when needed', async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const file = await yamlFile('http:\n  addr: 127.0.0.1:6001\n')
    assert.equal((await loadConfig({ file })).config.http.addr, '127.0.0.1:6001')
    // The same module instances the loader holds (one require cache per process); the require
    // function is not kept, as its module lists what it loaded.
    const [zod, yaml] = ['zod', 'yaml'].map((name) => new WeakRef(createRequire(import.meta.url)(name) as object)) as [WeakRef<object>, WeakRef<object>]
    releaseConfigModules()
    for (let i = 0; i < 5 && (zod.deref() || yaml.deref()); i++) {
      await tick()
      gc()
    }
    assert.equal(zod.deref(), undefined, 'zod was collected')
    assert.equal(yaml.deref(), undefined, 'yaml was collected')
    // Reading config again after the release works as before.
    assert.equal((await loadConfig({ file })).config.http.addr, '127.0.0.1:6001')
    assert.throws(() => parseConfig({ http: { addr: 'nonsense' } }), /http\.addr: expected HOST:PORT/)
  })
})
