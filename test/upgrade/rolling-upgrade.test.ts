import assert from 'node:assert/strict'
import { execFile, execSync, spawn } from 'node:child_process'
import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { MIGRATIONS } from '../../src/metadata/migrations/index.js'
import { ADMIN, ADMIN_PASSWORD } from '../helpers/auth.js'
import { freePort, waitHealthy } from '../helpers/e2e-process.js'
import { sha256 } from '../helpers/oci.js'
import { createTestDatabase, dropTestDatabase, postgresSkip, startServer, type TestServer } from '../helpers/server.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
/** The commit the fixture was made by (test/upgrade/make-fixture.ts). */
const OLD = 'a4c2b9c'
const FIXTURE = join(ROOT, 'test/fixtures/upgrade', `${OLD}.tar.gz`)

/** Pushes an image (config + layer + manifest) with the admin's Basic credentials; returns the manifest. */
async function pushImage(base: string, repo: string, tag: string): Promise<Buffer> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }))
  const layer = Buffer.from(`layer ${repo}:${tag} ${Math.random()}`)
  for (const blob of [config, layer]) {
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob as unknown as BodyInit, headers: { authorization: ADMIN } })
    if (res.status !== 201) throw new Error(`blob push ${res.status}: ${await res.text()}`)
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  )
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest as unknown as BodyInit, headers: { authorization: ADMIN, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
  if (res.status !== 201) throw new Error(`manifest push ${res.status}: ${await res.text()}`)
  return manifest
}

async function pull(base: string, repo: string, ref: string): Promise<Buffer> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
  if (res.status !== 200) throw new Error(`pull ${repo}:${ref} ${res.status}: ${await res.text()}`)
  const body = Buffer.from(await res.arrayBuffer())
  const m = JSON.parse(body.toString()) as { layers: { digest: string }[] }
  for (const l of m.layers) {
    const blob = await fetch(`${base}/v2/${repo}/blobs/${l.digest}`, { headers: { authorization: ADMIN } })
    if (blob.status !== 200 || sha256(Buffer.from(await blob.arrayBuffer())) !== l.digest) throw new Error(`blob ${l.digest}: ${blob.status}`)
  }
  return body
}

/** The old version's code, from git (the fixture's commit), in `oldTree`. */
async function checkoutOld(oldTree: string): Promise<void> {
  execSync(`mkdir -p ${oldTree} && git -C ${ROOT} archive ${OLD} | tar -x -C ${oldTree}`)
  await symlink(join(ROOT, 'node_modules'), join(oldTree, 'node_modules'))
}

/** `berth migrate --check` of this version; `env` names the database (BERTH_DATABASE_URL) when not the data directory's. */
async function migrateCheck(dataDir: string, env: NodeJS.ProcessEnv = {}, json = false): Promise<{ code: number; stdout: string }> {
  const args = ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'migrate', '--check', ...(json ? ['--json'] : []), '--data-dir', dataDir]
  return run(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env } }).then(
    (x) => ({ code: 0, stdout: x.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
  )
}

/** A Berth of the old commit serving `dataDir` (and the database of `env`, if any). */
interface OldNode {
  base: string
  /** SIGTERM; resolves once it exited */
  stop(): Promise<void>
  /** what it wrote to stderr */
  errors(): string
}

async function startOld(oldTree: string, dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<OldNode> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--data-dir', dataDir], {
    cwd: oldTree,
    env: { ...process.env, ...env, BERTH_HTTP_ADDR: `127.0.0.1:${port}`, BERTH_LOG_LEVEL: 'warn', BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise((r) => child.once('exit', r))
  const node: OldNode = {
    base,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
    errors: () => err,
  }
  try {
    await waitHealthy(base, { timeoutMs: 120_000 })
  } catch (e) {
    child.kill('SIGKILL')
    throw new Error(`the old node did not start: ${(e as Error).message}\n${err}`)
  }
  return node
}

/**
 * The upgrade under load: three clients push and pull against the old node, the new version
 * starts on the same data (and migrates it) and joins, then the old node is drained and stopped.
 * No request may fail; everything pushed pulls from the new version, and nothing is left to migrate.
 */
async function upgradeUnderLoad(old: OldNode, startNew: () => Promise<TestServer>, dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  let newNode: TestServer | undefined
  try {
    // The fixture's images pull from the old node.
    for (let i = 0; i < 4; i++) await pull(old.base, 'team/app', `v${i}`)
    const targets = [old.base]
    const failures: string[] = []
    const pushed = new Map<string, Buffer>()
    let requests = 0
    let stop = false
    // Operations (a push is several requests) in flight per node: a load balancer drains a node
    // (no new operation, the running ones finish) before it is stopped.
    const inFlight = new Map<string, number>()
    const client = async (id: number) => {
      for (let n = 0; !stop; n++) {
        const base = targets[(id + n) % targets.length]!
        inFlight.set(base, (inFlight.get(base) ?? 0) + 1)
        try {
          if (n % 2 === 0) {
            const tag = `c${id}-${n}`
            pushed.set(tag, await pushImage(base, 'team/load', tag))
          } else await pull(base, 'team/app', `v${n % 4}`)
          requests++
        } catch (err) {
          failures.push(`${base}: ${(err as Error).message}`)
        } finally {
          inFlight.set(base, inFlight.get(base)! - 1)
        }
      }
    }
    const load = [0, 1, 2].map(client)
    await new Promise((r) => setTimeout(r, 1000))
    // The new version starts on the same data (and migrates it) while the old one serves.
    newNode = await startNew()
    targets.push(newNode.url)
    await new Promise((r) => setTimeout(r, 3000))
    // The old node leaves (SIGTERM: it finishes what it serves); the new one takes everything.
    targets.splice(0, 1)
    while ((inFlight.get(old.base) ?? 0) > 0) await new Promise((r) => setTimeout(r, 20))
    await old.stop()
    await new Promise((r) => setTimeout(r, 1000))
    stop = true
    await Promise.all(load)
    assert.deepEqual(failures, [], old.errors())
    assert.ok(requests > 20, `only ${requests} requests ran`)
    // Everything pushed before and during the upgrade pulls from the new version.
    for (const [tag, manifest] of pushed) assert.deepEqual(await pull(newNode.url, 'team/load', tag), manifest)
    for (let i = 0; i < 4; i++) await pull(newNode.url, 'team/app', `v${i}`)
    const check = await migrateCheck(dataDir, env)
    assert.equal(check.code, 0)
    assert.match(check.stdout, /up to date/)
  } finally {
    await old.stop()
    await newNode?.close()
  }
}

describe(`a rolling upgrade from ${OLD} (SQLite, the kept fixture) under load`, () => {
  let work: string
  let dataDir: string
  let oldTree: string
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-upgrade-'))
    dataDir = join(work, 'data')
    oldTree = join(work, 'old')
    execSync(`mkdir -p ${dataDir} && tar -xzf ${FIXTURE} -C ${dataDir}`)
    await checkoutOld(oldTree)
  })
  after(() => rm(work, { recursive: true, force: true }))

  it('berth migrate --check lists what the fixture lacks', async () => {
    const db = new SQLite(join(dataDir, 'berth.db'), { readonly: true })
    const applied = new Set((db.prepare('select name from schema_migrations').all() as { name: string }[]).map((r) => r.name))
    db.close()
    const expected = Object.keys(MIGRATIONS).filter((n) => !applied.has(n))
    const r = await migrateCheck(dataDir, {}, true)
    assert.equal(r.code, expected.length > 0 ? 10 : 0)
    assert.deepEqual((JSON.parse(r.stdout) as { pending: string[] }).pending, expected)
  })

  it('old and new nodes serve the same data while the new one migrates it: no request fails', async () => {
    const old = await startOld(oldTree, dataDir)
    // The data directory's SQLite database, also when the test run puts servers on PostgreSQL.
    await upgradeUnderLoad(old, () => startServer({ dataDir, database: { url: `sqlite:${join(dataDir, 'berth.db')}` }, auth: { enabled: true } }, { keepData: true }), dataDir)
  })
})

describe(`a rolling upgrade from ${OLD} on PostgreSQL (the schema made by that commit's migrations) under load`, { skip: postgresSkip() }, () => {
  let work: string
  let dataDir: string
  let oldTree: string
  let url: string
  let old: OldNode | undefined
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-upgrade-pg-'))
    dataDir = join(work, 'data')
    oldTree = join(work, 'old')
    execSync(`mkdir -p ${dataDir}`)
    await checkoutOld(oldTree)
    url = await createTestDatabase()
    // The old commit makes its schema (its own migrations) and the data of make-fixture.ts, through its own API.
    old = await startOld(oldTree, dataDir, { BERTH_DATABASE_URL: url })
    const created = await fetch(`${old.base}/api/v1/projects`, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'team' }) })
    assert.equal(created.status, 201, await created.text())
    for (let i = 0; i < 4; i++) await pushImage(old.base, 'team/app', `v${i}`)
  })
  after(async () => {
    await old?.stop()
    if (url) await dropTestDatabase(url)
    await rm(work, { recursive: true, force: true })
  })

  it("berth migrate --check lists what the old commit's schema lacks", async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    const applied = new Set((await client.query<{ name: string }>('select name from schema_migrations')).rows.map((r) => r.name))
    await client.end()
    // That commit's migrations: 0001 to 0017.
    assert.ok(applied.has('0001-init') && applied.has('0017-trust') && !applied.has('0018-limits'), [...applied].join(' '))
    const expected = Object.keys(MIGRATIONS).filter((n) => !applied.has(n))
    const r = await migrateCheck(dataDir, { BERTH_DATABASE_URL: url }, true)
    assert.equal(r.code, 10)
    assert.deepEqual((JSON.parse(r.stdout) as { pending: string[] }).pending, expected)
  })

  it('old and new nodes serve the same PostgreSQL database while the new one migrates it: no request fails', async () => {
    assert.ok(old, 'the old node runs')
    await upgradeUnderLoad(old, () => startServer({ dataDir, database: { url }, auth: { enabled: true } }, { keepData: true }), dataDir, { BERTH_DATABASE_URL: url })
  })
})
