import assert from 'node:assert/strict'
import { execFile, execSync, spawn } from 'node:child_process'
import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import SQLite from 'better-sqlite3'
import { MIGRATIONS } from '../../src/metadata/migrations/index.js'
import { ADMIN, ADMIN_PASSWORD } from '../helpers/auth.js'
import { freePort, waitHealthy } from '../helpers/e2e-process.js'
import { sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

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

describe(`a rolling upgrade from ${OLD} (SQLite, the kept fixture) under load`, () => {
  let work: string
  let dataDir: string
  let oldTree: string
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-upgrade-'))
    dataDir = join(work, 'data')
    oldTree = join(work, 'old')
    execSync(`mkdir -p ${dataDir} ${oldTree} && tar -xzf ${FIXTURE} -C ${dataDir}`)
    // The old version's code, from git (the fixture's commit).
    execSync(`git -C ${ROOT} archive ${OLD} | tar -x -C ${oldTree}`)
    await symlink(join(ROOT, 'node_modules'), join(oldTree, 'node_modules'))
  })
  after(() => rm(work, { recursive: true, force: true }))

  it('berth migrate --check lists what the fixture lacks', async () => {
    const db = new SQLite(join(dataDir, 'berth.db'), { readonly: true })
    const applied = new Set((db.prepare('select name from schema_migrations').all() as { name: string }[]).map((r) => r.name))
    db.close()
    const expected = Object.keys(MIGRATIONS).filter((n) => !applied.has(n))
    const r = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'migrate', '--check', '--json', '--data-dir', dataDir], { cwd: ROOT }).then(
      (x) => ({ code: 0, stdout: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    )
    assert.equal(r.code, expected.length > 0 ? 10 : 0)
    assert.deepEqual((JSON.parse(r.stdout) as { pending: string[] }).pending, expected)
  })

  it('old and new nodes serve the same data while the new one migrates it: no request fails', async () => {
    const port = await freePort()
    const oldBase = `http://127.0.0.1:${port}`
    const oldNode = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--data-dir', dataDir], {
      cwd: oldTree,
      env: { ...process.env, BERTH_HTTP_ADDR: `127.0.0.1:${port}`, BERTH_LOG_LEVEL: 'warn', BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let oldErr = ''
    oldNode.stderr.on('data', (d: Buffer) => (oldErr += d.toString()))
    let newNode: TestServer | undefined
    try {
      await waitHealthy(oldBase, { timeoutMs: 120_000 })
      // The fixture's images pull from the old node.
      for (let i = 0; i < 4; i++) await pull(oldBase, 'team/app', `v${i}`)
      const targets = [oldBase]
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
      newNode = await startServer({ dataDir, auth: { enabled: true } }, { keepData: true })
      targets.push(newNode.url)
      await new Promise((r) => setTimeout(r, 3000))
      // The old node leaves (SIGTERM: it finishes what it serves); the new one takes everything.
      targets.splice(0, 1)
      while ((inFlight.get(oldBase) ?? 0) > 0) await new Promise((r) => setTimeout(r, 20))
      oldNode.kill('SIGTERM')
      await new Promise((r) => oldNode.once('exit', r))
      await new Promise((r) => setTimeout(r, 1000))
      stop = true
      await Promise.all(load)
      assert.deepEqual(failures, [], oldErr)
      assert.ok(requests > 20, `only ${requests} requests ran`)
      // Everything pushed before and during the upgrade pulls from the new version.
      for (const [tag, manifest] of pushed) assert.deepEqual(await pull(newNode.url, 'team/load', tag), manifest)
      for (let i = 0; i < 4; i++) await pull(newNode.url, 'team/app', `v${i}`)
      const check = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'migrate', '--check', '--data-dir', dataDir], { cwd: ROOT })
      assert.match(check.stdout, /up to date/)
    } finally {
      if (oldNode.exitCode === null) oldNode.kill('SIGKILL')
      await newNode?.close()
    }
  })
})
