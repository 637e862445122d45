import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { sql } from 'kysely'
import { buildApp, type App } from '../../src/app.js'
import { openMetadata } from '../../src/metadata/db.js'
import { createMetadataRepositories } from '../../src/metadata/repositories/index.js'
import { buildImage, putManifest, pushBlob, sha256 } from '../helpers/oci.js'
import { createTestDatabase, dropTestDatabase, postgresSkip, startServer, testConfig, TEST_DATABASE_URL, type TestServer } from '../helpers/server.js'
import { eventually } from '../helpers/eventually.js'

const skip = postgresSkip()

describe('PostgreSQL metadata', { skip }, () => {
  it('runs the migrations once when three nodes start together on a fresh database', async () => {
    const url = await createTestDatabase()
    const apps: App[] = []
    try {
      const configs = await Promise.all([0, 1, 2].map(() => testConfig({ database: { url } })))
      const started = await Promise.allSettled(configs.map((c) => buildApp(c)))
      for (const s of started) if (s.status === 'fulfilled') apps.push(s.value)
      for (const s of started) if (s.status === 'rejected') throw s.reason
      const rows = await sql<{ name: string }>`select name from schema_migrations order by name`.execute(apps[0]!.metadata.db)
      const names = rows.rows.map((r) => r.name)
      assert.equal(new Set(names).size, names.length, 'each migration recorded once')
      assert.ok(names.includes('0001-init') && names.includes('0004-change-notify'), names.join(','))
      assert.equal(apps[0]!.metadata.caps.dialect, 'postgres')
      await Promise.all(configs.map((c) => rm(c.dataDir, { recursive: true, force: true })))
    } finally {
      await Promise.all(apps.map((a) => a.close()))
      await dropTestDatabase(url)
    }
  })

  it('reads int8 columns as numbers and bytea as Buffer', async () => {
    const url = await createTestDatabase()
    const meta = await openMetadata(url)
    try {
      const big = 2 ** 45 + 7
      await meta.db.insertInto('blobs').values({ digest: sha256('big'), size: big, created_at: Date.now() }).execute()
      const row = await meta.db.selectFrom('blobs').selectAll().executeTakeFirstOrThrow()
      assert.equal(typeof row.size, 'number')
      assert.equal(row.size, big)
      assert.equal(typeof row.created_at, 'number')
      const count = await meta.db.selectFrom('blobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      assert.equal(count.n, 1)
      const repo = await meta.db.insertInto('repositories').values({ name: 'r', created_at: 1 }).returning('id').executeTakeFirstOrThrow()
      assert.equal(typeof repo.id, 'number')
      const content = Buffer.from([0, 1, 2, 255])
      await meta.db
        .insertInto('manifests')
        .values({ repository_id: repo.id, digest: sha256(content), media_type: 'x', artifact_type: null, size: 4, content, subject_digest: null, annotations: null, created_at: 1 })
        .execute()
      const m = await meta.db.selectFrom('manifests').select('content').executeTakeFirstOrThrow()
      assert.ok(Buffer.isBuffer(m.content))
      assert.deepEqual(m.content, content)
    } finally {
      await meta.close()
      await dropTestDatabase(url)
    }
  })

  it('fails at start-up with one line naming database.url (wrong password, no server, no database)', async () => {
    const base = new URL(TEST_DATABASE_URL ?? 'postgres://localhost/postgres')
    const wrongPassword = new URL(base)
    wrongPassword.password = 'not-the-password'
    const noServer = new URL(base)
    noServer.hostname = '127.0.0.1'
    noServer.port = '1'
    const noDatabase = new URL(base)
    noDatabase.pathname = '/berth_test_does_not_exist'
    for (const [url, reason] of [
      [wrongPassword, /password authentication failed/],
      [noServer, /ECONNREFUSED/],
      [noDatabase, /does not exist/],
    ] as const) {
      const config = await testConfig({ database: { url: url.toString(), connectTimeout: '3s' } })
      try {
        await assert.rejects(buildApp(config), (err: Error) => {
          assert.match(err.message, /^database\.url: cannot connect to postgres:\/\//)
          assert.match(err.message, reason)
          assert.doesNotMatch(err.message, /\n/)
          assert.doesNotMatch(err.message, /not-the-password/)
          return true
        })
      } finally {
        await rm(config.dataDir, { recursive: true, force: true })
      }
    }
  })

  it('makes a manifest DELETE wait for a push of that manifest in flight, then remove its new tag too', async () => {
    const url = await createTestDatabase()
    const meta = await openMetadata(url)
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    try {
      const repos = createMetadataRepositories(meta.db)
      const content = Buffer.from('{"schemaVersion":2}')
      const m = { digest: sha256(content), mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: null, size: content.length, content, subjectDigest: null, annotations: null, references: [] }
      const repoId = await repos.repositories.ensure('lock/app', 1)
      await repos.manifests.insert(repoId, m, 1)
      let release!: () => void
      const held = new Promise<void>((r) => (release = r))
      let pushed!: () => void
      const inPush = new Promise<void>((r) => (pushed = r))
      // T1: a re-push of the existing manifest with a new tag, paused before commit.
      const push = meta.db.transaction().execute(async (trx) => {
        await repos.manifests.insert(repoId, m, 2, trx)
        await repos.tags.upsert(repoId, 'new', m.digest, 2, trx)
        pushed()
        await held
      })
      await inPush
      // T2: DELETE by digest, as the manifest service runs it.
      const del = meta.db.transaction().execute(async (trx) => {
        await repos.tags.deleteForManifest(repoId, m.digest, trx)
        return repos.manifests.delete(repoId, m.digest, Date.now(), trx)
      })
      const waiting = async () => Number((await admin.query(`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows[0].n) > 0
      await Promise.race([del, eventually(waiting, 'the DELETE to wait for the push')])
      release()
      await push
      assert.equal(await del, true)
      const tags = await meta.db.selectFrom('tags').select('name').execute()
      assert.deepEqual(tags, [], 'no tag left pointing at the deleted manifest')
    } finally {
      await admin.end()
      await meta.close()
      await dropTestDatabase(url)
    }
  })

  it('survives every connection being cut under load (as in a database restart) and recovers', async () => {
    const url = await createTestDatabase()
    const s = await startServer({ database: { url } })
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    try {
      const img = await buildImage(s.url, 'cut/app', 'c')
      assert.equal((await putManifest(s.url, 'cut/app', 'v1', img.manifest)).status, 201)
      const name = new URL(url).pathname.slice(1)
      let stop = false
      const statuses: number[] = []
      const load = Promise.all(
        Array.from({ length: 8 }, async () => {
          // 0: the connection failed (as a client sees a reset); rare, and clients retry it.
          while (!stop) statuses.push(await fetch(`${s.url}/v2/cut/app/tags/list`).then(async (r) => (await r.arrayBuffer(), r.status), () => 0))
        }),
      )
      await eventually(async () => statuses.length > 50, 'load to start')
      const cut = await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend'", [name])
      assert.ok((cut.rowCount ?? 0) >= 2, 'the pool and the listener were cut')
      const before = statuses.length
      await eventually(async () => statuses.length > before + 100, 'requests to go on')
      stop = true
      await load
      assert.ok(statuses.every((code) => code === 200 || code >= 500 || code === 0), `only 200s and 5xx: ${[...new Set(statuses)].join(',')}`)
      assert.ok(statuses.filter((code) => code === 0).length <= 8, `at most one failed connection per client: ${statuses.filter((code) => code === 0).length}`)
      assert.deepEqual(statuses.slice(-20), Array(20).fill(200), 'recovered')
      await eventually(async () => s.app.metadata.generation() !== undefined, 'the listener to reconnect')
      const moved = await buildImage(s.url, 'cut/app', 'd')
      assert.equal((await putManifest(s.url, 'cut/app', 'v1', moved.manifest)).status, 201)
      assert.equal((await fetch(`${s.url}/v2/cut/app/manifests/v1`)).headers.get('docker-content-digest'), moved.digest)
    } finally {
      await admin.end()
      await s.close()
      await dropTestDatabase(url)
    }
  })

  it('stops caching while the change listener is disconnected, and recovers', async () => {
    const url = await createTestDatabase()
    const s = await startServer({ database: { url } })
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    try {
      const img = await buildImage(s.url, 'listen/app', 'l')
      assert.equal((await putManifest(s.url, 'listen/app', 'v1', img.manifest)).status, 201)
      assert.notEqual(s.app.metadata.generation(), undefined)
      const { rows } = await sql<{ db: string }>`select current_database() as db`.execute(s.app.metadata.db)
      // Kill the listening backend the way a PostgreSQL restart would.
      const killed = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'berth-listener' and datname = $1`, [rows[0]?.db])
      assert.equal(killed.rowCount, 1)
      await eventually(async () => s.app.metadata.generation() === undefined, 'the listener to notice')
      await eventually(async () => s.app.metadata.generation() !== undefined, 'the listener to reconnect')
      const res = await fetch(`${s.url}/v2/listen/app/manifests/v1`)
      assert.equal(res.status, 200)
    } finally {
      await admin.end()
      await s.close()
      await dropTestDatabase(url)
    }
  })
})

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`two nodes sharing one ${dialect} database and one blob directory`, { skip: dialect === 'postgres' ? skip : false }, () => {
    let url: string
    let blobs: string
    let a: TestServer
    let b: TestServer
    before(async () => {
      blobs = await mkdtemp(join(tmpdir(), 'berth-shared-blobs-'))
      // SQLite: two processes on one file (the shared-filesystem topology); data_version
      // tells each one about the other's commits.
      url = dialect === 'postgres' ? await createTestDatabase() : `sqlite:${join(blobs, 'berth.db')}`
      const shared = { database: { url }, storage: { filesystem: { rootDirectory: blobs } } }
      a = await startServer(shared)
      b = await startServer(shared)
    })
    after(async () => {
      await a?.close()
      await b?.close()
      if (dialect === 'postgres') await dropTestDatabase(url)
      await rm(blobs, { recursive: true, force: true })
    })

    const getTag = async (s: TestServer, name: string, tag: string) => {
      const res = await fetch(`${s.url}/v2/${name}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
      await res.arrayBuffer()
      return res.status === 200 ? res.headers.get('docker-content-digest') : `HTTP ${res.status}`
    }

    it('sees a tag moved or a manifest deleted on the other node (read cache invalidated across nodes)', async () => {
      const one = await buildImage(a.url, 'shared/app', 'one')
      const two = await buildImage(a.url, 'shared/app', 'two')
      assert.equal((await putManifest(a.url, 'shared/app', 'latest', one.manifest)).status, 201)
      // b caches latest → one
      assert.equal(await getTag(b, 'shared/app', 'latest'), one.digest)
      assert.equal(await getTag(b, 'shared/app', 'latest'), one.digest)
      assert.equal((await putManifest(a.url, 'shared/app', 'latest', two.manifest)).status, 201)
      await eventually(async () => (await getTag(b, 'shared/app', 'latest')) === two.digest, 'b to see the moved tag')
      // a deletion on b reaches a's cache too
      assert.equal(await getTag(a, 'shared/app', two.digest), two.digest)
      assert.equal((await fetch(`${b.url}/v2/shared/app/manifests/${two.digest}`, { method: 'DELETE' })).status, 202)
      await eventually(async () => (await getTag(a, 'shared/app', two.digest)) === 'HTTP 404', 'a to forget the deleted manifest')
      await eventually(async () => (await getTag(a, 'shared/app', 'latest')) === 'HTTP 404', 'a to forget the deleted tag')
    })

    it('keeps one answer when both nodes push the same tag at once', async () => {
      const images = await Promise.all(['x', 'y', 'z', 'w'].map((seed) => buildImage(a.url, 'race/app', seed)))
      for (let round = 0; round < 10; round++) {
        const results = await Promise.all(images.map((img, i) => putManifest(i % 2 ? a.url : b.url, 'race/app', 'latest', img.manifest)))
        for (const r of results) assert.equal(r.status, 201)
        const db = a.app.metadata.db
        const row = await db
          .selectFrom('tags as t')
          .innerJoin('repositories as r', 'r.id', 't.repository_id')
          .select('t.manifest_digest')
          .where('r.name', '=', 'race/app')
          .where('t.name', '=', 'latest')
          .executeTakeFirstOrThrow()
        await eventually(async () => (await getTag(a, 'race/app', 'latest')) === row.manifest_digest, 'a to agree with the database')
        await eventually(async () => (await getTag(b, 'race/app', 'latest')) === row.manifest_digest, 'b to agree with the database')
      }
    })

    it('creates a new repository once when both nodes push into it at once', async () => {
      const data = 'same blob, new repository'
      const pushes = Array.from({ length: 12 }, (_, i) => pushBlob(i % 2 ? a.url : b.url, 'fresh/repo', data))
      const digests = await Promise.all(pushes)
      assert.ok(digests.every((d) => d === sha256(data)))
      const repos = await a.app.metadata.db.selectFrom('repositories').select('id').where('name', '=', 'fresh/repo').execute()
      assert.equal(repos.length, 1)
      for (const s of [a, b]) assert.equal((await fetch(`${s.url}/v2/fresh/repo/blobs/${sha256(data)}`, { method: 'HEAD' })).status, 200)
    })

    it('never commits a blob mixed from two chunks sent to one upload on both nodes at once', async () => {
      for (let round = 0; round < 10; round++) {
        const post = await fetch(`${a.url}/v2/chunk/race/blobs/uploads/`, { method: 'POST' })
        assert.equal(post.status, 202)
        const location = new URL(post.headers.get('location') ?? '', a.url).pathname + new URL(post.headers.get('location') ?? '', a.url).search
        const chunks = [Buffer.alloc(256 * 1024, `a${round}`), Buffer.alloc(256 * 1024, `b${round}`)]
        const patches = await Promise.all(
          [a, b].map((s, i) =>
            fetch(`${s.url}${location}`, {
              method: 'PATCH',
              headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${chunks[i]!.length - 1}` },
              body: chunks[i],
            }).then(async (r) => (await r.arrayBuffer(), r.status)),
          ),
        )
        assert.ok(patches.includes(202), `one PATCH wins: ${patches.join(',')}`)
        for (const status of patches) assert.ok(status === 202 || status === 400 || status === 416, `the other is refused cleanly: ${status}`)
        // Whichever chunk the client believes was taken, the blob is exactly it or nothing.
        const winner = chunks[patches.indexOf(202)]!
        const put = await fetch(`${b.url}${location}${location.includes('?') ? '&' : '?'}digest=${sha256(winner)}`, { method: 'PUT' })
        await put.arrayBuffer()
        assert.ok(put.status === 201 || put.status === 400, `PUT answered ${put.status}`)
        if (put.status === 201) {
          const got = Buffer.from(await (await fetch(`${a.url}/v2/chunk/race/blobs/${sha256(winner)}`)).arrayBuffer())
          assert.ok(got.equals(winner), 'the committed blob is the winning chunk')
        }
      }
    })

    it('commits at most one of two last chunks sent with PUT to one upload on both nodes at once', async () => {
      for (let round = 0; round < 10; round++) {
        const post = await fetch(`${a.url}/v2/chunk/last/blobs/uploads/`, { method: 'POST' })
        assert.equal(post.status, 202)
        const location = new URL(post.headers.get('location') ?? '', a.url)
        const chunks = [Buffer.alloc(256 * 1024, `c${round}`), Buffer.alloc(256 * 1024, `d${round}`)]
        const puts = await Promise.all(
          [a, b].map((s, i) => {
            location.searchParams.set('digest', sha256(chunks[i]!))
            return fetch(`${s.url}${location.pathname}${location.search}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: chunks[i] }).then(
              async (r) => (await r.arrayBuffer(), r.status),
            )
          }),
        )
        assert.ok(puts.filter((st) => st === 201).length <= 1, `at most one PUT commits: ${puts.join(',')}`)
        for (const status of puts) assert.ok([201, 400, 404].includes(status), `the other is refused cleanly: ${status}`)
        for (const [i, chunk] of chunks.entries()) {
          const got = await fetch(`${a.url}/v2/chunk/last/blobs/${sha256(chunk)}`)
          const bytes = Buffer.from(await got.arrayBuffer())
          if (puts[i] === 201) assert.ok(got.status === 200 && bytes.equals(chunk), 'the committed blob is exactly its chunk')
          else assert.equal(got.status, 404, 'a refused chunk is not a blob')
        }
      }
    })

    it('never leaves a tag pointing at a deleted manifest when a tag push races a delete', async () => {
      const img = await buildImage(a.url, 'del/app', 'del')
      for (let round = 0; round < 40; round++) {
        assert.equal((await putManifest(a.url, 'del/app', 'base', img.manifest)).status, 201)
        const [del, ...puts] = await Promise.all([
          fetch(`${a.url}/v2/del/app/manifests/${img.digest}`, { method: 'DELETE' }),
          ...Array.from({ length: 6 }, (_, i) => putManifest(i % 2 ? a.url : b.url, 'del/app', `t${round}-${i}`, img.manifest)),
        ])
        for (const put of puts) assert.equal(put.status, 201)
        assert.ok(del.status === 202 || del.status === 404, `delete answered ${del.status}`)
      }
      const dangling = await sql<{ n: number }>`
        select count(*) as n from tags t
        where not exists (select 1 from manifests m where m.repository_id = t.repository_id and m.digest = t.manifest_digest)`.execute(a.app.metadata.db)
      assert.equal(Number(dangling.rows[0]?.n), 0)
    })
  })
}
