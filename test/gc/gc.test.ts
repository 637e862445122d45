import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { sql } from 'kysely'
import { startServer, type TestServer } from '../helpers/server.js'
import { blobDigest, manifestDigest, manifestSize, MANIFEST, orphanBlob, pushImage, pushIndex, sha256 } from './helpers.js'

/** A repository with everything GC must keep and everything it must remove. */
async function scenario(base: string, repo: string) {
  const tagged = await pushImage(base, repo, 'v1', `tagged-${repo}`)
  const untagged = await pushImage(base, repo, 'unused', `untagged-${repo}`)
  // untagged by digest: push under a throwaway tag, then drop the tag
  assert.equal((await fetch(`${base}/v2/${repo}/manifests/unused`, { method: 'DELETE' })).status, 202)
  const child1 = await pushImage(base, repo, 'tmp-c1', `child1-${repo}`)
  const child2 = await pushImage(base, repo, 'tmp-c2', `child2-${repo}`)
  for (const t of ['tmp-c1', 'tmp-c2']) assert.equal((await fetch(`${base}/v2/${repo}/manifests/${t}`, { method: 'DELETE' })).status, 202)
  const index = await pushIndex(base, repo, 'multi', [
    { digest: child1.digest, size: await manifestSize(base, repo, child1.digest) },
    { digest: child2.digest, size: await manifestSize(base, repo, child2.digest) },
  ])
  const subject = { mediaType: MANIFEST, digest: tagged.digest, size: await manifestSize(base, repo, tagged.digest) }
  const referrer = await pushImage(base, repo, 'tmp-ref', `referrer-${repo}`, { subject, artifactType: 'application/example.sig' })
  const refOfRef = await pushImage(base, repo, 'tmp-rr', `refref-${repo}`, { subject: { mediaType: MANIFEST, digest: referrer.digest, size: await manifestSize(base, repo, referrer.digest) } })
  for (const t of ['tmp-ref', 'tmp-rr']) assert.equal((await fetch(`${base}/v2/${repo}/manifests/${t}`, { method: 'DELETE' })).status, 202)

  // garbage: a referrer whose subject never existed, a deleted index's child, an unreferenced blob
  const ghost = sha256(randomBytes(8))
  const dangling = await pushImage(base, repo, 'tmp-dangling', `dangling-${repo}`, { subject: { mediaType: MANIFEST, digest: ghost, size: 10 } })
  assert.equal((await fetch(`${base}/v2/${repo}/manifests/tmp-dangling`, { method: 'DELETE' })).status, 202)
  const orphanChild = await pushImage(base, repo, 'tmp-oc', `orphan-child-${repo}`)
  assert.equal((await fetch(`${base}/v2/${repo}/manifests/tmp-oc`, { method: 'DELETE' })).status, 202)
  const doomed = await pushIndex(base, repo, 'doomed', [{ digest: orphanChild.digest, size: await manifestSize(base, repo, orphanChild.digest) }])
  assert.equal((await fetch(`${base}/v2/${repo}/manifests/${doomed.digest}`, { method: 'DELETE' })).status, 202)
  const loose = await orphanBlob(base, repo)
  return {
    kept: [tagged, child1, child2, referrer, refOfRef],
    untagged,
    keptManifests: [tagged.digest, child1.digest, child2.digest, referrer.digest, refOfRef.digest, index.digest],
    garbageManifests: [dangling.digest, orphanChild.digest],
    garbageBlobs: [...dangling.blobs, ...orphanChild.blobs, loose],
  }
}

/**
 * A server on a clock the test moves (`age()` puts it a second later): with a 0 s grace period,
 * what was written in the very millisecond of a GC run is not old enough for that run.
 */
async function startAging(config: Parameters<typeof startServer>[0]) {
  let clock = Date.now()
  const srv = await startServer(config, { now: () => clock })
  return { srv, age: () => void (clock += 1000) }
}

test('GC keeps everything reachable from tags, indexes and referrers and removes the rest', async (t) => {
  const { srv, age } = await startAging({ gc: { gracePeriod: '0s' } })
  t.after(() => srv.close())
  const s = await scenario(srv.url, 'app/one')
  age()
  const run = await srv.app.gc.run({ trigger: 'test' })
  assert.equal(run.status, 'succeeded')
  assert.deepEqual(new Set(run.deleted), new Set([...s.garbageManifests, ...s.garbageBlobs]))
  assert.equal(run.manifestsDeleted, 2)
  assert.equal(run.blobsDeleted, s.garbageBlobs.length)
  for (const d of s.keptManifests) assert.equal(await manifestDigest(srv.url, 'app/one', d), d)
  assert.equal(await manifestDigest(srv.url, 'app/one', s.untagged.digest), s.untagged.digest, 'untagged kept with gc.untagged keep')
  for (const p of [...s.kept, s.untagged]) for (const b of p.blobs) assert.equal(await blobDigest(srv.url, 'app/one', b), b)
  for (const d of s.garbageManifests) assert.equal(await manifestDigest(srv.url, 'app/one', d), 404)
  for (const b of s.garbageBlobs) assert.equal(await blobDigest(srv.url, 'app/one', b), 404)
  // referrers of the kept subject are still listed
  const refs = (await (await fetch(`${srv.url}/v2/app/one/referrers/${s.kept[0]!.digest}`)).json()) as { manifests: { digest: string }[] }
  assert.deepEqual(refs.manifests.map((m) => m.digest), [s.kept[3]!.digest])
  // a second run finds nothing more
  const again = await srv.app.gc.run({ trigger: 'test' })
  assert.deepEqual(again.deleted, [])
})

test('gc.untagged delete removes untagged manifests (and their blobs) but not index children or referrers of kept subjects', async (t) => {
  const { srv, age } = await startAging({ gc: { gracePeriod: '0s', untagged: 'delete', untaggedAfter: '0s' } })
  t.after(() => srv.close())
  const s = await scenario(srv.url, 'app/two')
  age()
  const run = await srv.app.gc.run({ trigger: 'test' })
  assert.deepEqual(new Set(run.deleted), new Set([...s.garbageManifests, ...s.garbageBlobs, s.untagged.digest, ...s.untagged.blobs]))
  for (const d of s.keptManifests) assert.equal(await manifestDigest(srv.url, 'app/two', d), d)
})

test('a dry run lists exactly what the real run then deletes, and deletes nothing', async (t) => {
  const { srv, age } = await startAging({ gc: { gracePeriod: '0s', untagged: 'delete', untaggedAfter: '0s' } })
  t.after(() => srv.close())
  const s = await scenario(srv.url, 'app/three')
  age()
  const dry = await srv.app.gc.run({ trigger: 'test', dryRun: true })
  assert.equal(dry.dryRun, true)
  assert.ok(dry.deleted!.length > 0)
  for (const d of s.garbageManifests) assert.equal(await manifestDigest(srv.url, 'app/three', d), d, 'dry run deleted nothing')
  const real = await srv.app.gc.run({ trigger: 'test' })
  assert.deepEqual([...real.deleted!].sort(), [...dry.deleted!].sort())
  assert.equal(real.bytesFreed, dry.bytesFreed)
})

/**
 * Moves a server's time forward. On PostgreSQL the rows GC compares are stamped by the
 * database's clock, which a test cannot move: the rows are aged by as much instead.
 */
async function advance(srv: TestServer, clock: { now: number }, ms: number): Promise<void> {
  clock.now += ms
  const { db, caps } = srv.app.metadata
  if (caps.dialect !== 'postgres') return
  await sql`update blobs set created_at = created_at - ${ms}`.execute(db)
  await sql`update repository_blobs set created_at = created_at - ${ms}`.execute(db)
  await sql`update manifests set created_at = created_at - ${ms}`.execute(db)
  await sql`update gc_orphaned_manifests set at = at - ${ms}`.execute(db)
}

test('the grace period keeps young blobs and manifests; runs are recorded', async (t) => {
  const clock = { now: Date.now() }
  const srv = await startServer({ gc: { gracePeriod: '1h', untagged: 'delete', untaggedAfter: '0s' } }, { now: () => clock.now })
  t.after(() => srv.close())
  const loose = await orphanBlob(srv.url, 'app/grace')
  const img = await pushImage(srv.url, 'app/grace', 'x', 'grace')
  assert.equal((await fetch(`${srv.url}/v2/app/grace/manifests/x`, { method: 'DELETE' })).status, 202)
  const young = await srv.app.gc.run({ trigger: 'test' })
  assert.deepEqual(young.deleted, [])
  await advance(srv, clock, 30 * 60_000)
  assert.deepEqual((await srv.app.gc.run({ trigger: 'test' })).deleted, [])
  // a re-push refreshes the link's age
  await orphanBlob(srv.url, 'app/grace')
  await advance(srv, clock, 61 * 60_000)
  const old = await srv.app.gc.run({ trigger: 'test' })
  assert.ok(old.deleted!.includes(loose) && old.deleted!.includes(img.digest), JSON.stringify(old.deleted))
  const history = await srv.app.gc.history(10, 0)
  assert.equal(history.length, 3)
  assert.ok(history.every((h) => h.status === 'succeeded'))
})

test('HTTP API: POST /api/v1/gc answers 202 with an id; GET the record and the history; errors are problem JSON', async (t) => {
  const srv = await startServer({ gc: { gracePeriod: '0s' } })
  t.after(() => srv.close())
  const loose = await orphanBlob(srv.url, 'app/api')
  const bad = await fetch(`${srv.url}/api/v1/gc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dryRun: 'yes' }) })
  assert.equal(bad.status, 400)
  assert.match(bad.headers.get('content-type') ?? '', /problem\+json/)
  const problem = (await bad.json()) as Record<string, unknown>
  assert.equal(problem.status, 400)
  assert.equal(typeof problem.title, 'string')
  assert.equal(typeof problem.detail, 'string')
  const res = await fetch(`${srv.url}/api/v1/gc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dryRun: false }) })
  assert.equal(res.status, 202)
  const { id } = (await res.json()) as { id: string }
  let record: { status: string; deleted: string[]; dryRun: boolean; blobsDeleted: number; manifestsDeleted: number; bytesFreed: number }
  for (;;) {
    record = (await (await fetch(`${srv.url}/api/v1/gc/${id}`)).json()) as typeof record
    if (record.status !== 'running') break
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.equal(record.status, 'succeeded')
  assert.equal(record.dryRun, false)
  assert.deepEqual(record.deleted, [loose])
  assert.equal(record.blobsDeleted, 1)
  const history = (await (await fetch(`${srv.url}/api/v1/gc/history`)).json()) as { runs: { id: string }[] }
  assert.equal(history.runs[0]?.id, id)
  assert.equal((await fetch(`${srv.url}/api/v1/gc/00000000-0000-0000-0000-000000000000`)).status, 404)
})

test('HTTP API refuses non-admins when auth is enabled', async (t) => {
  const srv = await startServer({ auth: { enabled: true } }, { adminPassword: 'admin-password-1' })
  t.after(() => srv.close())
  assert.equal((await fetch(`${srv.url}/api/v1/gc`, { method: 'POST' })).status, 401)
  const auth = `Basic ${Buffer.from('admin:admin-password-1').toString('base64')}`
  const res = await fetch(`${srv.url}/api/v1/gc`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify({ dryRun: true }) })
  assert.equal(res.status, 202)
})

test('gc.schedule must be a valid cron expression', async () => {
  const { parseConfig } = await import('../../src/config/load.js')
  assert.throws(() => parseConfig({ gc: { schedule: 'every day' } }), /gc\.schedule: invalid cron expression/)
  assert.equal(parseConfig({ gc: { schedule: '*/5 * * * *' }, scrub: { schedule: '0 4 * * 0' } }).gc.schedule, '*/5 * * * *')
})
