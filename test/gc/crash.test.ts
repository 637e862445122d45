import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { test } from 'node:test'
import { promisify } from 'node:util'
import SQLite from 'better-sqlite3'
import { asBody, blobDigest, manifestDigest, putManifest, sha256 } from './helpers.js'
import { freePort } from '../helpers/e2e-process.js'

// SIGKILL of a real `berth serve` (and of `berth gc` runs beside it) at random moments during
// pushes and garbage collection, ROUNDS times; then scrub finds nothing wrong, every push that
// was acknowledged is intact, and a GC with a grace period of 0s leaves no orphan blob or temp file.
// Needs `npm run build` (it runs bin/berth.js). BERTH_CRASH_ROUNDS sets the rounds (default 20).

const ROUNDS = Number(process.env.BERTH_CRASH_ROUNDS ?? 20)
const BIN = join(import.meta.dirname, '../../bin/berth.js')
const run = promisify(execFile)
const KEEP_ALIVE: unknown[] = []

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, BERTH_AUTH_ENABLED: 'false', BERTH_LOG_LEVEL: 'warn', BERTH_GC_GRACE_PERIOD: '0s', BERTH_GC_UNTAGGED: 'delete', BERTH_GC_UNTAGGED_AFTER: '0s', ...extra }
}

async function startBerth(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', dataDir, '--addr', `127.0.0.1:${port}`], { env: env(), stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  // generous: the shared CI machine may be loaded
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`berth serve exited: ${stderr}`)
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200, () => false)
    if (ok) return child
    await delay(50)
  }
  throw new Error(`berth serve did not start: ${stderr}`)
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGKILL')
  await exited
}

interface Ack {
  repo: string
  tag: string
  digest: string
  blobs: string[]
}

/** Pushes images until the server dies; records those whose manifest PUT was acknowledged. */
async function pusher(base: string, id: number, acks: Ack[], shared: Buffer): Promise<void> {
  for (let n = 0; ; n++) {
    const repo = `crash/p${id % 3}`
    const tag = `t${id}-${randomBytes(4).toString('hex')}`
    try {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }))
      const unique = randomBytes(1024 + Math.floor(Math.random() * 65536))
      for (const b of [config, shared, unique]) {
        // half the blobs go through a chunked session (PATCH + PUT), half in one POST
        if (n % 2 === 0) {
          const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: asBody(b) })
          if (res.status !== 201) throw new Error(`blob ${res.status}`)
        } else {
          const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' })
          const loc = new URL(start.headers.get('location')!, base)
          const half = Math.floor(b.length / 2)
          const patch = await fetch(loc, { method: 'PATCH', body: asBody(b.subarray(0, half)), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${half - 1}` } })
          const loc2 = new URL(patch.headers.get('location')!, base)
          loc2.searchParams.set('digest', sha256(b))
          const put = await fetch(loc2, { method: 'PUT', body: asBody(b.subarray(half)), headers: { 'content-type': 'application/octet-stream' } })
          if (put.status !== 201) throw new Error(`blob put ${put.status}`)
        }
      }
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [shared, unique].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
        }),
      )
      // every third image is pushed untagged (by digest): garbage for GC with untagged: delete
      const ref = n % 3 === 2 ? sha256(manifest) : tag
      const res = await putManifest(base, repo, ref, manifest)
      if (process.env.BERTH_CRASH_DEBUG && res.status !== 201) console.error(`manifest ${res.status} ${await res.text()}`)
      if (res.status === 201 && ref === tag) acks.push({ repo, tag, digest: sha256(manifest), blobs: [config, shared, unique].map((b) => sha256(b)) })
    } catch (err) {
      if (process.env.BERTH_CRASH_DEBUG) console.error(`pusher ${id} stops: ${(err as Error).message}`)
      return // the server was killed
    }
  }
}

test(`crash safety: ${ROUNDS} rounds of SIGKILL during pushes and GC`, { timeout: 15 * 60_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-crash-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const acks: Ack[] = []
  const shared = randomBytes(8192)
  let gcRunsStarted = 0
  for (let round = 0; round < ROUNDS; round++) {
    const server = await startBerth(dataDir, port)
    const pushers = Array.from({ length: 4 }, (_, i) => pusher(base, i, acks, shared))
    // GC through the server's API and, every other round, `berth gc` as a second process
    const gcLoop = (async () => {
      while (server.exitCode === null && server.signalCode === null) {
        const res = await fetch(`${base}/api/v1/gc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"dryRun":false}' }).catch(() => undefined)
        if (res?.status === 202) gcRunsStarted++
        await delay(20)
      }
    })()
    let cli: ChildProcess | undefined
    if (round % 2 === 1) cli = spawn(process.execPath, [BIN, 'gc', '--data-dir', dataDir, '--json'], { env: env(), stdio: 'ignore' })
    await delay(300 + Math.random() * 2200)
    await kill(server)
    if (cli) await kill(cli)
    await Promise.all([...pushers, gcLoop])
  }
  t.diagnostic(`${acks.length} acknowledged pushes, ${gcRunsStarted} GC runs started over ${ROUNDS} rounds`)

  // Restart: scrub (beside the running server) finds no corruption, every acknowledged push is intact.
  const server = await startBerth(dataDir, port)
  try {
    const scrubbed = await run(process.execPath, [BIN, 'scrub', '--data-dir', dataDir, '--json'], { env: env() }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
    const report = JSON.parse(scrubbed.stdout) as { problems: unknown[]; blobsExamined: number }
    assert.deepEqual(report.problems, [], 'scrub found problems')
    for (const a of acks) {
      assert.equal(await manifestDigest(base, a.repo, a.tag), a.digest, `${a.repo}:${a.tag}`)
      for (const b of a.blobs) assert.equal(await blobDigest(base, a.repo, b), b, `${a.repo}:${a.tag} ${b}`)
    }
    // GC with grace 0s (and upload expiry 0s) beside the server, then a dry run finds nothing left
    // The lease of a run killed in the last round lapses after 30s; until then runs are refused.
    let out: string | undefined
    for (let i = 0; out === undefined; i++) {
      out = await run(process.execPath, [BIN, 'gc', '--data-dir', dataDir, '--json'], { env: env({ BERTH_UPLOADS_EXPIRY: '0s' }) }).then(
        (r) => r.stdout,
        (err: { stderr?: string }) => {
          if (i > 40 || !err.stderr?.includes('already in progress')) throw err
          return undefined
        },
      )
      if (out === undefined) await delay(1000)
    }
    const gc = JSON.parse(out) as { status: string }
    assert.equal(gc.status, 'succeeded')
    const dry = JSON.parse((await run(process.execPath, [BIN, 'gc', '--data-dir', dataDir, '--dry-run', '--json'], { env: env({ BERTH_UPLOADS_EXPIRY: '0s' }) })).stdout) as { deleted: string[]; dryRun: boolean }
    assert.equal(dry.dryRun, true)
    assert.deepEqual(dry.deleted, [])
    for (const a of acks) assert.equal(await manifestDigest(base, a.repo, a.tag), a.digest)
  } finally {
    await kill(server)
  }
  const db = new SQLite(join(dataDir, 'berth.db'), { readonly: true })
  // Kept referenced: better-sqlite3 12 aborts on Node 24 when V8 collects a Statement.
  const statements = [
    db.prepare('select digest from blobs'),
    db.prepare("select count(*) as n from blobs b where not exists (select 1 from manifest_references mr where mr.digest = b.digest and mr.kind = 'blob')"),
    db.prepare('select count(*) as n from uploads'),
  ] as const
  KEEP_ALIVE.push(...statements)
  const rows = new Set((statements[0].all() as { digest: string }[]).map((r) => r.digest))
  const unreferenced = statements[1].get() as { n: number }
  const uploads = statements[2].get() as { n: number }
  db.close()
  assert.equal(unreferenced.n, 0, 'no orphan blob rows')
  assert.equal(uploads.n, 0, 'no upload sessions')
  const files = new Set<string>()
  for (const xx of await readdir(join(dataDir, 'blobs', 'sha256'))) for (const f of await readdir(join(dataDir, 'blobs', 'sha256', xx))) files.add(`sha256:${f}`)
  assert.deepEqual(files, rows, 'blob files are exactly the blob rows')
  assert.deepEqual(await readdir(join(dataDir, 'uploads')).catch(() => []), [], 'no temp upload data')
})
