import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { buildImage, putManifest, pushBlob, sha256 } from '../helpers/oci.js'
import { createTestDatabase, dropTestDatabase, postgresSkip, startServer } from '../helpers/server.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')

describe('berth migrate-metadata', { skip: postgresSkip() }, () => {
  it('copies a SQLite deployment into PostgreSQL; a PostgreSQL server on the same blobs serves everything', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-migrate-'))
    const sqliteUrl = `sqlite:${join(dataDir, 'berth.db')}`
    // Explicit SQLite even when the other servers of this run live in PostgreSQL.
    const source = await startServer({ dataDir, database: { url: sqliteUrl } }, { keepData: true })
    const pushed: { repo: string; tag: string; manifest: Buffer; digest: string; blobs: string[] }[] = []
    for (const repo of ['team/api', 'team/web', 'tools/cli']) {
      for (const tag of ['v1', 'v2']) {
        const img = await buildImage(source.url, repo, `${repo}:${tag}`)
        assert.equal((await putManifest(source.url, repo, tag, img.manifest)).status, 201)
        pushed.push({ repo, tag, manifest: img.manifest, digest: img.digest, blobs: [img.config, ...img.layers] })
      }
    }
    // A referrer, so manifests with a subject come across too.
    const subject = pushed[0]!
    const sig = await buildImage(source.url, subject.repo, 'signature', {
      artifactType: 'application/vnd.example.sig',
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.manifest.length },
    })
    assert.equal((await putManifest(source.url, subject.repo, sig.digest, sig.manifest)).status, 201)
    await source.close()

    const target = await createTestDatabase()
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'migrate-metadata', '--data-dir', dataDir, '--to', target, '--json'], { cwd: ROOT })
      const result = JSON.parse(stdout) as { tables: { table: string; rows: number }[]; rows: number; to: string }
      const rows = Object.fromEntries(result.tables.map((t) => [t.table, t.rows]))
      assert.equal(rows.repositories, 3)
      assert.equal(rows.manifests, 7)
      assert.equal(rows.tags, 6)
      assert.doesNotMatch(result.to, /:[^/@]*@/, 'the password is not printed')

      // A second run refuses: the target is no longer empty.
      const again = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'migrate-metadata', '--from', sqliteUrl, '--to', target], { cwd: ROOT }).catch((e: { code: number; stderr: string }) => e)
      assert.equal((again as { code: number }).code, 1)
      assert.match((again as { stderr: string }).stderr, /target is not empty/)

      const pgServer = await startServer({ dataDir, database: { url: target } }, { keepData: true })
      try {
        assert.equal(pgServer.app.metadata.caps.dialect, 'postgres')
        for (const p of pushed) {
          const res = await fetch(`${pgServer.url}/v2/${p.repo}/manifests/${p.tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
          assert.equal(res.status, 200)
          assert.deepEqual(Buffer.from(await res.arrayBuffer()), p.manifest)
          for (const blob of p.blobs) {
            const b = await fetch(`${pgServer.url}/v2/${p.repo}/blobs/${blob}`)
            assert.equal(b.status, 200)
            assert.equal(sha256(Buffer.from(await b.arrayBuffer())), blob)
          }
        }
        const tags = (await (await fetch(`${pgServer.url}/v2/team/web/tags/list`)).json()) as { tags: string[] }
        assert.deepEqual(tags.tags, ['v1', 'v2'])
        const catalog = (await (await fetch(`${pgServer.url}/v2/_catalog`)).json()) as { repositories: string[] }
        assert.deepEqual(catalog.repositories, ['team/api', 'team/web', 'tools/cli'])
        const referrers = (await (await fetch(`${pgServer.url}/v2/${subject.repo}/referrers/${subject.digest}`)).json()) as { manifests: { digest: string }[] }
        assert.deepEqual(referrers.manifests.map((m) => m.digest), [sig.digest])
        // Sequences were moved past the copied ids: new rows get fresh ones.
        await pushBlob(pgServer.url, 'new/repo', 'after the migration')
        const ids = await pgServer.app.metadata.db.selectFrom('repositories').select(['id', 'name']).orderBy('id').execute()
        assert.equal(ids.length, 4)
        assert.equal(new Set(ids.map((r) => r.id)).size, 4)
        assert.equal(ids.at(-1)?.name, 'new/repo')
      } finally {
        await pgServer.close()
      }
    } finally {
      await dropTestDatabase(target)
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
