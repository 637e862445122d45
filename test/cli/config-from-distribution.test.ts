import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { parse } from 'yaml'
import { readFile } from 'node:fs/promises'
import { renderTranslation, translateDistributionConfig } from '../../src/cli/config-from-distribution.js'
import { loadConfig } from '../../src/config/load.js'
import { freePort, waitHealthy } from '../helpers/e2e-process.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
const FIXTURES = join(import.meta.dirname, 'fixtures', 'distribution')
const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')]

async function berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [...CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )
}

interface Note {
  key: string
  kind: 'action' | 'unmapped'
  message: string
}

async function translate(fixture: string): Promise<{ yaml: string; stderr: string; json: { config: Record<string, unknown>; mapped: { from: string; to: string }[]; notes: Note[] } }> {
  const text = await berth(['config', 'from-distribution', join(FIXTURES, fixture)])
  assert.equal(text.code, 0, text.stderr)
  const json = await berth(['config', 'from-distribution', '--json', join(FIXTURES, fixture)])
  assert.equal(json.code, 0, json.stderr)
  return { yaml: text.stdout, stderr: text.stderr, json: JSON.parse(json.stdout) as never }
}

/** The same translation in process (the CLI's start-up under tsx takes seconds on a busy machine). */
async function translateHere(fixture: string): Promise<{ yaml: string; json: { config: Record<string, unknown>; mapped: { from: string; to: string }[]; notes: Note[] } }> {
  const t = translateDistributionConfig(parse(await readFile(join(FIXTURES, fixture), 'utf8')))
  return { yaml: renderTranslation(t, fixture), json: JSON.parse(JSON.stringify(t)) as never }
}

/** Writes the printed YAML to a file and loads it with Berth's own loader (as `berth serve -c` does). */
async function loadPrinted(yaml: string, dir: string): Promise<Awaited<ReturnType<typeof loadConfig>>['config']> {
  const file = join(dir, 'berth.yml')
  await writeFile(file, yaml)
  return (await loadConfig({ file, env: {} })).config
}

function noteOn(notes: Note[], key: string, kind?: Note['kind']): Note {
  const n = notes.find((x) => x.key === key && (kind === undefined || x.kind === kind))
  assert.ok(n, `a note on ${key}: ${JSON.stringify(notes.map((x) => x.key))}`)
  return n
}

describe('berth config from-distribution', () => {
  it("translates Debian's docker-registry 2.8.2 config, and Berth serves with the result", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-fromdist-'))
    try {
      const { yaml, stderr, json } = await translate('debian-2.8.2.yml')
      const config = await loadPrinted(yaml, dir)
      assert.equal(config.dataDir, '/var/lib/docker-registry')
      assert.equal(config.storage.driver, 'filesystem')
      assert.equal(config.http.addr, '0.0.0.0:5000')
      assert.equal(config.auth.enabled, true)
      // htpasswd: the import command to run, with the file Distribution reads
      assert.match(noteOn(json.notes, 'auth.htpasswd', 'action').message, /berth user import-htpasswd \/etc\/docker\/registry /)
      assert.match(noteOn(json.notes, 'storage.filesystem', 'action').message, /berth adopt distribution --from \/var\/lib\/docker-registry/)
      // every key Berth does not take is named, in the YAML (as comments) and on stderr
      for (const key of ['log.fields', 'storage.cache', 'storage.delete.enabled', 'http.headers', 'health']) {
        noteOn(json.notes, key, 'unmapped')
        assert.match(yaml, new RegExp(`^# - ${key.replace(/\./g, '\\.')}: `, 'm'))
        assert.match(stderr, new RegExp(`not translated: ${key.replace(/\./g, '\\.')}: `))
      }
      assert.equal(json.notes.length, 8, JSON.stringify(json.notes))

      // a server starts with the translated config (on a scratch data dir and port)
      const port = await freePort()
      const child = spawn(process.execPath, [...CLI, 'serve', '--config', join(dir, 'berth.yml'), '--data-dir', join(dir, 'data'), '--addr', `127.0.0.1:${port}`], {
        cwd: ROOT,
        env: { ...process.env, BERTH_ADMIN_PASSWORD: 'admin-password-1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
      try {
        await waitHealthy(`http://127.0.0.1:${port}`, { timeoutMs: 60_000 })
        const res = await fetch(`http://127.0.0.1:${port}/v2/`)
        assert.equal(res.status, 401)
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm=/)
      } finally {
        child.kill('SIGTERM')
        await exited
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("translates Distribution v3's example config (the one its image ships)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-fromdist-'))
    try {
      const { yaml, json } = await translateHere('v3-config-example.yml')
      const config = await loadPrinted(yaml, dir)
      assert.equal(config.dataDir, '/var/lib/registry')
      assert.equal(config.http.addr, '0.0.0.0:5000')
      assert.match(noteOn(json.notes, 'auth.htpasswd', 'action').message, /import-htpasswd \/etc\/registry /)
      noteOn(json.notes, 'storage.tag', 'unmapped')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('translates S3 storage, TLS, an external token issuer, notifications and a pull-through proxy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-fromdist-'))
    try {
      const { yaml, json } = await translateHere('s3-token-notifications-proxy.yml')
      const config = await loadPrinted(yaml, dir)
      assert.equal(config.storage.driver, 's3')
      assert.deepEqual(
        { ...config.storage.s3, cache: undefined, maxAttempts: undefined, requestTimeout: undefined, redirectExpiry: undefined },
        {
          bucket: 'registry',
          region: 'eu-west-1',
          endpoint: 'http://minio.internal:9000',
          forcePathStyle: true,
          accessKeyId: 'AKIAEXAMPLE',
          secretAccessKey: 's3cr3t-example',
          prefix: 'mirror',
          redirect: false,
          multiObjectDelete: true,
          cache: undefined,
          maxAttempts: undefined,
          requestTimeout: undefined,
          redirectExpiry: undefined,
        },
      )
      assert.equal(config.log.level, 'debug')
      assert.equal(config.log.format, 'json')
      assert.equal(config.log.accessLog, false)
      assert.equal(config.uploads.expiry, 7 * 86_400_000)
      assert.equal(config.uploads.purgeInterval, 86_400_000)
      assert.equal(config.http.addr, '127.0.0.1:5001')
      assert.equal(config.http.baseUrl, 'https://registry.example.com')
      assert.equal(config.http.shutdownTimeout, 90_000)
      assert.deepEqual({ ...config.http.tls }, { ...config.http.tls, certificate: '/etc/registry/tls.crt', key: '/etc/registry/tls.key' })
      assert.equal(config.metrics.addr, '0.0.0.0:5002')
      assert.deepEqual(
        { ...config.auth.token },
        { realm: 'https://auth.example.com/token', service: 'registry.example.com', issuer: 'auth.example.com', rootCertBundle: '/etc/registry/token-ca.pem' },
      )
      const [endpoint] = config.notifications.endpoints
      assert.ok(endpoint)
      assert.equal(endpoint.name, 'alistener')
      assert.equal(endpoint.url, 'https://hooks.example.com/registry')
      assert.deepEqual(endpoint.headers, { Authorization: ['Bearer abc'] })
      assert.equal(endpoint.timeout, 500)
      assert.equal(endpoint.threshold, 5)
      assert.equal(endpoint.backoff, 1000)
      assert.deepEqual(endpoint.ignore.actions, ['pull'])

      // the proxy: the API calls creating its registry endpoint and a default proxy project
      const proxy = noteOn(json.notes, 'proxy', 'action').message
      assert.match(proxy, /POST https:\/\/BERTH\/api\/v1\/registries .*"url":"https:\/\/registry-1\.docker\.io","username":"hubuser"/)
      assert.match(proxy, /POST https:\/\/BERTH\/api\/v1\/projects .*"proxy":\{"registry":"upstream","ttl":"7d","default":true\}/)
      assert.ok(!proxy.includes('hubpassword'), 'the proxy password is not echoed')
      assert.match(noteOn(json.notes, 'storage.s3', 'action').message, /--from s3:\/\/registry\/mirror/)
      for (const key of ['storage.s3.encrypt', 'storage.s3.chunksize', 'storage.delete.enabled', 'http.secret', 'auth.token.autoredirect', 'notifications.events', 'redis', 'http.debug.prometheus']) {
        noteOn(json.notes, key, 'unmapped')
      }
      // TLS client CAs: Berth's mTLS also signs the caller in by CN, so the note says how to set it up
      assert.match(noteOn(json.notes, 'http.tls.clientcas', 'action').message, /http\.tls\.clientCA .*clientAuth .*users or robots named after the CNs/)
      assert.ok(!JSON.stringify(json.config).includes('asecret"'), 'redis settings are left out')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('translates GCS to the S3-compatible API, names unknown keys, refuses a file that is no config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-fromdist-'))
    try {
      const gcs = join(dir, 'gcs.yml')
      await writeFile(gcs, 'version: 0.1\nstorage:\n  gcs:\n    bucket: images\n    keyfile: /etc/gcs.json\n    rootdirectory: /reg\nhttp:\n  addr: :5000\n  prefix: /registry\nauth:\n  htpasswd:\n    realm: r\n    path: /auth/htpasswd\nfrobnicate:\n  level: 3\n')
      const t = translateDistributionConfig(parse(await readFile(gcs, 'utf8')))
      const json = JSON.parse(JSON.stringify(t)) as { config: { storage: { driver: string; s3: Record<string, unknown> } }; notes: Note[] }
      assert.equal(json.config.storage.driver, 's3')
      assert.deepEqual(json.config.storage.s3, { endpoint: 'https://storage.googleapis.com', region: 'auto', multiObjectDelete: false, bucket: 'images', prefix: 'reg', redirect: true })
      assert.match(noteOn(json.notes, 'storage.gcs.keyfile', 'action').message, /HMAC key/)
      noteOn(json.notes, 'http.prefix', 'unmapped')
      assert.match(noteOn(json.notes, 'frobnicate.level', 'unmapped').message, /not known/)
      const config = await loadPrinted(renderTranslation(t, 'gcs.yml'), dir)
      assert.equal(config.storage.s3.bucket, 'images')

      const azure = translateDistributionConfig(parse('version: 0.1\nstorage:\n  azure:\n    accountname: acct\n    accountkey: a2V5\n    container: images\n    realm: core.chinacloudapi.cn\n'))
      const azureJson = JSON.parse(JSON.stringify(azure)) as { config: { storage: { driver: string; azure: Record<string, unknown> } }; notes: Note[] }
      assert.equal(azureJson.config.storage.driver, 'azure')
      assert.equal(azureJson.config.storage.azure.realm, 'core.chinacloudapi.cn')
      assert.ok(!azureJson.notes.some((n) => n.key === 'storage.azure.realm'), 'the realm is mapped, not noted')

      const bad = join(dir, 'bad.yml')
      await writeFile(bad, '- just\n- a list\n')
      const refused = await berth(['config', 'from-distribution', bad])
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, /a Distribution config is a YAML mapping/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
