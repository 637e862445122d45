import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { CompiledQuery, type KyselyPlugin, type RootOperationNode } from 'kysely'
import { openMetadata } from '../../src/metadata/db.js'
import { createRetentionRepository } from '../../src/metadata/repositories/retention.js'

// The queries of a retention page find their rows through indexes (SQLite's EXPLAIN QUERY PLAN):
// a page costs the same in a repository of 1,000 or 100,000 tags. A plan that walks the
// repository's manifests or tags for every page makes a run quadratic in the repository's size.

test('retention reads a page of artifacts through indexes: no scan of the repository per page', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-retention-plan-'))
  const metadata = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
  t.after(async () => {
    await metadata.close()
    await rm(dir, { recursive: true, force: true })
  })
  const nodes: RootOperationNode[] = []
  const recorder: KyselyPlugin = {
    transformQuery: ({ node }) => {
      nodes.push(node)
      return node
    },
    transformResult: async ({ result }) => result,
  }
  const db = metadata.db.withPlugin(recorder)
  const repo = createRetentionRepository(db, metadata.changes)
  const digest = `sha256:${'a'.repeat(64)}`
  await metadata.db.insertInto('repositories').values({ id: 1, name: 'library/app', created_at: 1 }).execute()
  await metadata.db.insertInto('manifests').values({ id: 1, repository_id: 1, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', artifact_type: null, size: 2, content: Buffer.from('{}'), subject_digest: null, annotations: null, created_at: 1 }).execute()
  await metadata.db.insertInto('tags').values({ repository_id: 1, name: 'v1', manifest_digest: digest, updated_at: 1 }).execute()
  nodes.length = 0
  const page = await repo.artifactsPage(1, 10, '', 500)
  assert.equal(page.length, 1)
  assert.deepEqual(page[0]!.tags.map((x) => x.name), ['v1'])
  assert.ok(nodes.length >= 2, `${nodes.length} queries recorded`)
  for (const node of nodes) {
    const compiled = metadata.db.getExecutor().compileQuery(node, { queryId: 'plan' })
    const plan = (await metadata.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]))).rows.map((r) => r.detail)
    const text = `${compiled.sql}\n  ${plan.join('\n  ')}`
    for (const line of plan) {
      assert.doesNotMatch(line, /^SCAN /, text)
      assert.doesNotMatch(line, /TEMP B-TREE/, text)
      // The parent of a reference is found by its id, never among the repository's manifests.
      assert.doesNotMatch(line, /SEARCH p USING (COVERING )?INDEX manifests_subject/, text)
    }
    if (/from "tags"/.test(compiled.sql)) assert.ok(plan.some((l) => /INDEX tags_manifest/.test(l)), text)
  }
})
