import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import pino from 'pino'
import { createMetadataRepositories } from '../../src/metadata/repositories/index.js'
import { ARTIFACT_PAGE, RetentionService } from '../../src/policy/retention-service.js'
import { startServer } from '../helpers/server.js'

// Retention over a repository larger than a page: the artifacts are read a page at a time (never
// the whole repository at once) and the decision is the one of the whole repository: the N latest
// kept, cosign attachments follow their subject even when the two sit on different pages.

const T0 = Date.parse('2030-01-01T00:00:00Z')
const COUNT = ARTIFACT_PAGE * 2 + 137
const KEEP = 10
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`
const tag = (i: number) => `v${String(i).padStart(5, '0')}`

test(`retention over ${COUNT} tags reads pages of at most ${ARTIFACT_PAGE} artifacts and keeps exactly the ${KEEP} latest, with their cosign signatures`, async (t) => {
  const srv = await startServer({ gc: { gracePeriod: '0s' } }, { now: () => T0 + 3_600_000 })
  t.after(() => srv.close())
  const db = srv.app.metadata.db
  const repo = await db.insertInto('repositories').values({ name: 'library/big', created_at: T0 }).returning('id').executeTakeFirstOrThrow()
  const repositoryId = Number(repo.id)
  const manifest = (body: string, createdAt: number) => {
    const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(body), size: 1 }, layers: [] }))
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`
    return { row: { repository_id: repositoryId, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', artifact_type: null, size: content.length, content, subject_digest: null, annotations: null, created_at: createdAt }, digest }
  }
  // Image i pushed at T0 + i; images 0, 5, 10, … and the newest one are signed (cosign's tag).
  const images = Array.from({ length: COUNT }, (_, i) => manifest(`image ${i}`, T0 + i))
  const signed = [...images.keys()].filter((i) => i % 5 === 0 || i === COUNT - 1)
  const signatures = signed.map((i) => ({ i, ...manifest(`signature ${i}`, T0 + i) }))
  for (let i = 0; i < images.length; i += 200) await db.insertInto('manifests').values(images.slice(i, i + 200).map((m) => m.row)).execute()
  await db.insertInto('manifests').values(signatures.map((s) => s.row)).execute()
  const tags = [
    ...images.map((m, i) => ({ repository_id: repositoryId, name: tag(i), manifest_digest: m.digest, updated_at: T0 + i })),
    ...signatures.map((s) => ({ repository_id: repositoryId, name: `${images[s.i]!.digest.replace(':', '-')}.sig`, manifest_digest: s.digest, updated_at: T0 + s.i })),
  ]
  for (let i = 0; i < tags.length; i += 200) await db.insertInto('tags').values(tags.slice(i, i + 200)).execute()

  // The service on the server's database, with the page reads counted.
  const meta = createMetadataRepositories(db, srv.app.metadata.changes)
  const pages: number[] = []
  const named: number[] = []
  const retention = {
    ...meta.retention,
    artifactsPage: async (...args: Parameters<typeof meta.retention.artifactsPage>) => {
      assert.ok(args[3] <= ARTIFACT_PAGE, `a page of ${args[3]} asked for`)
      const rows = await meta.retention.artifactsPage(...args)
      pages.push(rows.length)
      return rows
    },
    artifactsNamed: async (...args: Parameters<typeof meta.retention.artifactsNamed>) => {
      named.push(args[1].length)
      return meta.retention.artifactsNamed(...args)
    },
  }
  const service = new RetentionService({ meta: { ...meta, retention }, immutability: srv.app.immutability, log: pino({ level: 'silent' }), now: () => T0 + 3_600_000 })
  await service.setPolicy('library', { rules: [{ kind: 'latestPushed', count: KEEP, repositories: '**', tags: 'v*' }], untagged: 'keep' })

  const dry = await service.run('library', { dryRun: true, trigger: 'test' })
  assert.equal(dry.status, 'succeeded', dry.error ?? '')
  assert.ok(pages.length >= 3 * Math.ceil((images.length + signatures.length) / ARTIFACT_PAGE), `pages read: ${pages.join(', ')}`)
  assert.ok(Math.max(...pages, ...named) <= ARTIFACT_PAGE, `largest read: ${Math.max(...pages, ...named)}`)
  const kept = new Set(Array.from({ length: KEEP }, (_, k) => COUNT - 1 - k))
  const expected = [
    ...[...images.keys()].filter((i) => !kept.has(i)).map((i) => tag(i)),
    ...signatures.filter((s) => !kept.has(s.i)).map((s) => `${images[s.i]!.digest.replace(':', '-')}.sig`),
  ].sort()
  assert.deepEqual(dry.removed!.map((r) => r.tag!).sort(), expected)
  assert.equal(dry.removedCount, expected.length)

  // The real run removes the same tags, and leaves the newest images with their signatures.
  const real = await service.run('library', { dryRun: false, trigger: 'test' })
  assert.equal(real.status, 'succeeded', real.error ?? '')
  assert.deepEqual(real.removed!.map((r) => r.tag!).sort(), expected)
  const left = (await db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).orderBy('name').execute()).map((r) => r.name)
  const keptSignatures = signatures.filter((s) => kept.has(s.i)).map((s) => `${images[s.i]!.digest.replace(':', '-')}.sig`)
  assert.ok(keptSignatures.length >= 2)
  assert.deepEqual(left, [...[...kept].map((i) => tag(i)), ...keptSignatures].sort())
})
