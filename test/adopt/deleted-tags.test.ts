// Tags deleted from Distribution between two adoption runs: the second run deletes them in Berth
// too, but only tags that an adoption created and that nobody moved in Berth since; a tag pushed
// to Berth, or one a Berth user moved, stays, and so does one an immutability rule protects.
// `--dry-run` lists the deletions without making them.

import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { AdoptReport } from '../../src/adopt/adopt.js'
import { startDistribution } from '../helpers/e2e-daemons.js'
import { apiOk } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'
import { DISTRIBUTIONS, headDigest, pushImage } from './helpers.js'

const dist = DISTRIBUTIONS[0] as (typeof DISTRIBUTIONS)[number]

function parse(r: { code: number; stdout: string; stderr: string }): AdoptReport {
  assert.equal(r.code, 0, `berth adopt failed (${r.code}): ${r.stderr}\n${r.stdout}`)
  return JSON.parse(r.stdout) as AdoptReport
}

describe('berth adopt distribution: tags deleted from Distribution since the last run', { skip: !dist.binary && `${dist.label} is not installed` }, () => {
  let work: string
  let root: string
  let berthDir: string
  let server: TestServer
  const pushed = new Map<string, string>()
  let movedInBerth: string
  let mine: string

  const tagDir = (tag: string) => join(root, 'docker', 'registry', 'v2', 'repositories', 'team', 'app', '_manifests', 'tags', tag)
  const status = async (tag: string) => (await fetch(`${server.url}/v2/team/app/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).status
  const adopt = (...extra: string[]) => berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, ...extra])

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-adopt-deleted-'))
    root = join(work, 'storage')
    berthDir = join(work, 'berth')
    const distribution = await startDistribution(join(work, 'distribution'), { binary: dist.binary as string, root })
    try {
      for (const tag of ['a', 'b', 'c', 'keep']) pushed.set(tag, (await pushImage(distribution.url, work, 'team/app', tag, `deleted-${tag}`)).descriptor.digest)
    } finally {
      await distribution.stop()
    }
    const first = parse(await adopt('--json'))
    assert.equal(first.tags.created, 4)
    server = await startServer({ dataDir: berthDir }, { keepData: true })
    // In Berth meanwhile: a user moves c, and pushes a tag Distribution never had.
    movedInBerth = (await pushImage(server.url, work, 'team/app', 'c', 'moved-in-berth')).descriptor.digest
    mine = (await pushImage(server.url, work, 'team/app', 'mine', 'pushed-to-berth')).descriptor.digest
    // In Distribution: a, b and c are deleted (its tag deletion removes the tag's folder).
    for (const tag of ['a', 'b', 'c']) await rm(tagDir(tag), { recursive: true })
  })
  after(async () => {
    await server?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('--dry-run lists the tags it would delete, and deletes nothing', async () => {
    const dry = parse(await adopt('--dry-run', '--json'))
    assert.deepEqual(dry.deletedTags, [
      { repository: 'team/app', tag: 'a', digest: pushed.get('a') },
      { repository: 'team/app', tag: 'b', digest: pushed.get('b') },
    ])
    assert.equal(dry.tags.deleted, 2)
    const text = await adopt('--dry-run')
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /2 deleted/)
    assert.match(text.stdout, new RegExp(`would delete team/app:a \\(${pushed.get('a')}\\)`))
    for (const tag of ['a', 'b']) assert.equal(await status(tag), 200, `${tag} is still there after a dry run`)
  })

  it('deletes the adopted tags deleted from Distribution, keeps those Berth users moved or pushed', async () => {
    const second = parse(await adopt('--json'))
    assert.deepEqual(
      second.deletedTags.map((t) => t.tag),
      ['a', 'b'],
    )
    assert.deepEqual(second.tags, { created: 0, moved: 0, unchanged: 1, deleted: 2 })
    assert.equal(await status('a'), 404)
    assert.equal(await status('b'), 404)
    assert.equal(await headDigest(server.url, 'team/app', 'c'), movedInBerth, 'moved in Berth: kept')
    assert.equal(await headDigest(server.url, 'team/app', 'mine'), mine, 'pushed to Berth: kept')
    assert.equal(await headDigest(server.url, 'team/app', 'keep'), pushed.get('keep'))
    // The manifests stay, untagged (GC's gc.untagged decides), as after a tag deletion in Distribution.
    assert.equal(await headDigest(server.url, 'team/app', pushed.get('a')!), pushed.get('a'))
    // Nothing is left to delete, and a tag pushed to Berth under a deleted name is not touched later.
    await pushImage(server.url, work, 'team/app', 'a', 'a-again-in-berth')
    const third = parse(await adopt('--json'))
    assert.deepEqual(third.deletedTags, [])
    assert.equal(await status('a'), 200)
  })

  it('keeps a tag an immutability rule protects when Distribution moves it or deletes it, and says why', async () => {
    const rule = await apiOk<{ id: number }>(server, 'POST', '/projects/team/immutability-rules', undefined, { repositories: 'app', tags: 'keep' }, 201)
    // Distribution moves keep onto a's manifest (still in its tree, untagged)…
    await writeFile(join(tagDir('keep'), 'current', 'link'), pushed.get('a')!)
    const moved = parse(await adopt('--json'))
    assert.deepEqual(moved.tags.moved, 0)
    assert.equal(moved.keptTags.length, 1)
    assert.deepEqual({ ...moved.keptTags[0], reason: undefined }, { repository: 'team/app', tag: 'keep', digest: pushed.get('keep'), reason: undefined })
    assert.match(moved.keptTags[0]!.reason, new RegExp(`immutability rule ${rule.id}\\b`))
    assert.equal(await headDigest(server.url, 'team/app', 'keep'), pushed.get('keep'), 'not moved')
    // …then deletes it.
    await rm(tagDir('keep'), { recursive: true })
    const text = await adopt()
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, new RegExp(`kept team/app:keep \\(${pushed.get('keep')}\\), moved or deleted in Distribution: tag keep of team/app is immutable`))
    assert.match(text.stdout, /0 deleted/)
    assert.equal(await headDigest(server.url, 'team/app', 'keep'), pushed.get('keep'), 'not deleted')
  })
})
