// deploy/compose: both files validated by `docker compose config` (the Compose specification's
// own parser and schema), then checked for what a deployment of Berth needs: the settings they
// give Berth are real config keys making a valid config, the nodes run read-only, non-root-able
// and without capabilities, the HA file has 2 nodes + PostgreSQL + MinIO + nginx, and nginx's
// config streams bodies of any size to both nodes.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { findBinary, requireClients, run } from '../helpers/e2e-process.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DIR = join(ROOT, 'deploy', 'compose')
const docker = findBinary('docker')

async function composePlugin(): Promise<string | undefined> {
  if (!docker) return 'docker is not installed'
  const v = await run(docker, ['compose', 'version']).catch(() => undefined)
  return v && /Docker Compose version/.test(v.stdout) ? undefined : '`docker compose` is not installed (Debian trixie package docker-compose)'
}
const skip = requireClients('compose files', [await composePlugin()])

const SECRETS = { BERTH_ADMIN_PASSWORD: 'an-admin-password', POSTGRES_PASSWORD: 'a-postgres-password', MINIO_ROOT_PASSWORD: 'a-minio-password', BERTH_SECRETS_KEY: 'ab'.repeat(32) }

interface Service {
  image?: string
  environment?: Record<string, string>
  read_only?: boolean
  tmpfs?: string[]
  cap_drop?: string[]
  security_opt?: string[]
  volumes?: { type: string; source?: string; target: string; read_only?: boolean }[]
  depends_on?: Record<string, { condition: string }>
  ports?: { target: number; published: string }[]
  build?: { context: string; args?: Record<string, string> }
}

/** `docker compose config` of a file: validated, interpolated and normalised, as YAML. */
async function composeConfig(file: string, env: Record<string, string>): Promise<{ services: Record<string, Service> }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_') && !(k in SECRETS)))
  const { stdout } = await run(docker!, ['compose', '-f', join(DIR, file), 'config'], { env: { ...base, ...env }, cwd: DIR })
  return parse(stdout) as { services: Record<string, Service> }
}

async function assertBerthNode(name: string, s: Service): Promise<void> {
  assert.equal(s.read_only, true, `${name}: read-only root filesystem`)
  assert.ok(s.tmpfs?.includes('/tmp'), `${name}: a tmpfs on /tmp`)
  assert.deepEqual(s.cap_drop, ['ALL'], `${name}: no capabilities`)
  assert.ok(s.security_opt?.includes('no-new-privileges:true'), `${name}: no-new-privileges`)
  assert.equal(s.build?.context, ROOT, `${name}: builds the repository's Dockerfile`)
  assert.equal(s.build?.args?.BASE_IMAGE, 'node:20-bookworm-slim')
  // What compose passes to Berth is made of real settings, and valid together.
  const loaded = await loadConfig({ env: s.environment })
  assert.deepEqual(loaded.unknownEnv, [], `${name}: every BERTH_* variable is a Berth setting`)
  assert.equal(loaded.adminPassword, SECRETS.BERTH_ADMIN_PASSWORD)
}

describe('the compose files', { skip }, () => {
  it('refuse to start without the passwords they need, naming the variable', async () => {
    await assert.rejects(composeConfig('compose.yaml', {}), /BERTH_ADMIN_PASSWORD/)
    await assert.rejects(composeConfig('compose.ha.yaml', { BERTH_ADMIN_PASSWORD: 'x', POSTGRES_PASSWORD: 'y', MINIO_ROOT_PASSWORD: 'z' }), /BERTH_SECRETS_KEY/)
  })

  it('compose.yaml: one node, its data in a named volume on /data', async () => {
    const { services } = await composeConfig('compose.yaml', SECRETS)
    assert.deepEqual(Object.keys(services), ['berth'])
    const berth = services.berth!
    await assertBerthNode('berth', berth)
    assert.deepEqual(berth.volumes?.map((v) => [v.type, v.source, v.target]), [['volume', 'berth-data', '/data']])
    assert.deepEqual(berth.ports?.map((p) => [p.target, p.published]), [[5000, '5000']])
    const loaded = await loadConfig({ env: berth.environment })
    assert.equal(loaded.config.storage.driver, 'filesystem')
  })

  it('compose.ha.yaml: 2 Berth nodes on PostgreSQL + MinIO behind nginx', async () => {
    const { services } = await composeConfig('compose.ha.yaml', SECRETS)
    assert.deepEqual(Object.keys(services).sort(), ['berth-1', 'berth-2', 'minio', 'minio-bucket', 'nginx', 'postgres'])
    for (const name of ['berth-1', 'berth-2']) {
      const s = services[name]!
      await assertBerthNode(name, s)
      const { config } = await loadConfig({ env: s.environment })
      assert.equal(config.storage.driver, 's3')
      assert.equal(config.storage.s3.endpoint, 'http://minio:9000')
      assert.equal(config.storage.s3.forcePathStyle, true)
      assert.equal(config.database.url, `postgres://berth:${SECRETS.POSTGRES_PASSWORD}@postgres:5432/berth`)
      assert.equal(s.environment?.BERTH_SECRETS_KEY, SECRETS.BERTH_SECRETS_KEY)
      assert.equal(s.environment?.BERTH_STORAGE_S3_SECRET_ACCESS_KEY, SECRETS.MINIO_ROOT_PASSWORD)
      assert.deepEqual(s.depends_on, { postgres: { condition: 'service_healthy', required: true }, 'minio-bucket': { condition: 'service_completed_successfully', required: true } })
      assert.equal(s.ports, undefined, `${name} is reached through nginx only`)
    }
    assert.equal(services.postgres!.environment?.POSTGRES_PASSWORD, SECRETS.POSTGRES_PASSWORD)
    const nginx = services.nginx!
    assert.deepEqual(nginx.volumes?.map((v) => [v.source, v.target, v.read_only]), [[join(DIR, 'nginx.conf'), '/etc/nginx/conf.d/default.conf', true]])
    assert.deepEqual(Object.keys(nginx.depends_on ?? {}).sort(), ['berth-1', 'berth-2'])
  })

  it('nginx.conf streams bodies of any size to both nodes', async () => {
    const conf = await readFile(join(DIR, 'nginx.conf'), 'utf8')
    const directives = new Map<string, string[]>()
    for (const line of conf.split('\n')) {
      const m = /^\s*([a-z_]+)\s+([^;#]*);/.exec(line)
      if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!.trim()])
    }
    assert.deepEqual(directives.get('server')?.map((s) => s.split(' ')[0]), ['berth-1:5000', 'berth-2:5000'])
    assert.deepEqual(directives.get('client_max_body_size'), ['0'])
    assert.deepEqual(directives.get('proxy_request_buffering'), ['off'])
    assert.deepEqual(directives.get('proxy_buffering'), ['off'])
    assert.deepEqual(directives.get('proxy_http_version'), ['1.1'])
    assert.deepEqual(directives.get('proxy_pass'), ['http://berth'])
    assert.ok(directives.get('proxy_set_header')?.includes('X-Forwarded-Proto $scheme'))
    for (const timeout of ['proxy_read_timeout', 'proxy_send_timeout', 'client_body_timeout']) assert.deepEqual(directives.get(timeout), ['900s'], timeout)
  })
})
