import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk } from '../helpers/auth.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'
import { postgresSkip, startServer, testCluster, type TestCluster, type TestServer } from '../helpers/server.js'

/** An upload whose PATCH body keeps coming: its slot is held until `finish`. */
interface StalledUpload {
  finish(): Promise<number>
}

/** Starts an upload session and a PATCH that sends 64 KiB, then waits (holding an upload slot). */
async function stalledUpload(s: TestServer, repo: string, authorization?: string): Promise<StalledUpload> {
  const auth: Record<string, string> = authorization ? { authorization } : {}
  const started = await fetch(`${s.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth })
  assert.equal(started.status, 202, await started.text())
  const url = new URL(started.headers.get('location') as string, s.url)
  const patch = request({ host: url.hostname, port: url.port, method: 'PATCH', path: url.pathname + url.search, headers: { 'content-type': 'application/octet-stream', ...auth } })
  const answered = new Promise<number>((resolve, reject) => {
    patch.on('response', (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    patch.on('error', reject)
  })
  const chunk = Buffer.alloc(64 * 1024, 1)
  patch.write(chunk)
  // The PATCH has taken its slot once the server has read some of its body.
  await new Promise((r) => setTimeout(r, 700))
  return {
    finish: () => {
      patch.end(chunk)
      return answered
    },
  }
}

/** A monolithic blob upload (POST with the body): its status, 429 refusals checked by the caller. */
async function monolithic(s: TestServer, repo: string, authorization?: string): Promise<Response> {
  const data = randomBytes(1000)
  return fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: asBody(data), headers: authorization ? { authorization } : {} })
}

describe('concurrent uploads per principal: slots under leases in the database', () => {
  let s: TestServer
  before(async () => {
    // On SQLite whatever the test run's dialect: the test writes the table beside the server.
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-slots-'))
    s = await startServer({ dataDir, database: { url: `sqlite:${join(dataDir, 'berth.db')}` }, limits: { uploads: { perPrincipal: 2 } } })
  })
  after(async () => s?.close())

  it("a slot held under a live lease counts (another worker's upload); one whose lease lapsed (a crashed process's) does not", async () => {
    const db = new SQLite(join(s.dataDir, 'berth.db'))
    try {
      // Auth is off: every caller is counted by its address.
      const holder = 'address:127.0.0.1'
      const insert = db.prepare('insert into upload_slots (holder, slot, lease, expires_at) values (?, ?, ?, ?)')
      insert.run(holder, 0, 'other-worker', Date.now() + 30_000)
      insert.run(holder, 1, 'crashed-worker', Date.now() - 1)
      const first = await stalledUpload(s, 'lib/a')
      // Slot 1 was taken over from the crashed process; slot 0 is still the other worker's.
      assert.notEqual((db.prepare('select lease from upload_slots where holder = ? and slot = 1').get(holder) as { lease: string }).lease, 'crashed-worker')
      const refused = await monolithic(s, 'lib/b')
      assert.deepEqual(await expectOciError(refused, 'TOOMANYREQUESTS', 429), { limit: 2, scope: 'uploads' })
      assert.equal(refused.headers.get('retry-after'), '1')
      assert.equal(await first.finish(), 202)
      // Given back at the end of the request: the row is gone, the next upload passes.
      assert.equal((db.prepare('select count(*) as n from upload_slots where holder = ?').get(holder) as { n: number }).n, 1)
      assert.equal((await monolithic(s, 'lib/b')).status, 201)
      // The other worker's slot, once its lease lapses, is free again.
      db.prepare('update upload_slots set expires_at = ? where lease = ?').run(Date.now() - 1, 'other-worker')
      const both = [await stalledUpload(s, 'lib/c'), await stalledUpload(s, 'lib/d')]
      assert.equal((await monolithic(s, 'lib/b')).status, 429)
      for (const upload of both) assert.equal(await upload.finish(), 202)
      assert.equal((db.prepare('select count(*) as n from upload_slots').get() as { n: number }).n, 0)
    } finally {
      db.close()
    }
  })
})

describe('concurrent uploads per principal on a PostgreSQL cluster: one count for every node', { skip: postgresSkip() }, () => {
  let cluster: TestCluster
  let a: TestServer
  let b: TestServer
  let alice: string
  let bob: string
  before(async () => {
    cluster = testCluster({ auth: { enabled: true }, limits: { uploads: { perPrincipal: 2 } } })
    a = await cluster.start({ adminPassword: ADMIN_PASSWORD })
    b = await cluster.start()
    alice = await addUser(a, 'alice')
    bob = await addUser(a, 'bob')
    await apiOk(a, 'POST', '/projects', ADMIN, { name: 'apps', public: false }, 201)
    for (const user of ['alice', 'bob']) await apiOk(a, 'POST', '/projects/apps/members', ADMIN, { username: user, role: 'developer' }, 201)
  })
  after(async () => cluster?.close())

  it('a principal uploading on both nodes is limited in total; other principals and administrators are not', async () => {
    const onA = await stalledUpload(a, 'apps/one', alice)
    const onB = await stalledUpload(b, 'apps/two', alice)
    // Two in flight, one on each node: a third is refused on either node.
    for (const node of [a, b]) {
      const refused = await monolithic(node, 'apps/three', alice)
      assert.deepEqual(await expectOciError(refused, 'TOOMANYREQUESTS', 429), { limit: 2, scope: 'uploads' })
      assert.equal(refused.headers.get('retry-after'), '1')
    }
    assert.equal((await monolithic(b, 'apps/three', bob)).status, 201, "bob's uploads are his own")
    assert.equal((await monolithic(a, 'apps/three', ADMIN)).status, 201, 'administrators are exempt')
    // One finishes on node A: node B takes the freed slot.
    assert.equal(await onA.finish(), 202)
    assert.equal((await monolithic(b, 'apps/three', alice)).status, 201)
    assert.equal(await onB.finish(), 202)
  })

  it("a crashed node's slots stop counting once their lease lapses", async () => {
    const client = new pg.Client({ connectionString: cluster.databaseUrl() })
    await client.connect()
    try {
      // What a node that died while holding both of alice's slots leaves behind: one lease still
      // live (within the 30 s a node is given to renew it), one lapsed.
      await client.query('insert into upload_slots (holder, slot, lease, expires_at) values ($1, 0, $2, $3), ($1, 1, $4, $5)', ['user:alice', 'dead-node-1', Date.now() + 30_000, 'dead-node-2', Date.now() - 1])
      const held = await stalledUpload(b, 'apps/four', alice)
      assert.equal((await monolithic(a, 'apps/four', alice)).status, 429)
      await client.query('update upload_slots set expires_at = $1 where lease = $2', [Date.now() - 1, 'dead-node-1'])
      assert.equal((await monolithic(a, 'apps/four', alice)).status, 201)
      assert.equal(await held.finish(), 202)
    } finally {
      await client.end()
    }
  })
})
