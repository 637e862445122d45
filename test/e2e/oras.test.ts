// End-to-end: the real oras CLI (Debian's oras 1.2) against Berth with token auth, unmodified:
// push of an artifact with an artifactType, attach to an image (and to the attachment), discover
// as a tree, pull byte for byte, copy -r with the referrers, manifest fetch and repo tags.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { orasIn } from '../helpers/e2e-cosign.js'
import { makeTempDir, needBinary, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import { listTags } from '../helpers/e2e-registry.js'
import { sha256 } from '../helpers/oci.js'
import { fetchManifest, pushImage, type PushedImage } from '../helpers/replication.js'
import type { TestServer } from '../helpers/server.js'

const skip = requireClients('oras e2e', [needBinary('oras')])

const THING = 'application/vnd.example.thing'
const NOTE = 'application/vnd.example.note'
const REVIEW = 'application/vnd.example.review'

interface ArtifactDoc {
  artifactType?: string
  config: { mediaType: string }
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[]
  subject?: { digest: string }
}

describe('oras against Berth with token auth', { skip }, () => {
  let server: TestServer
  let work: string
  let oras: Awaited<ReturnType<typeof orasIn>>
  let dev: string
  let image: PushedImage
  let artifactDigest: string
  let noteDigest: string
  let reviewDigest: string
  const payload = randomBytes(4096)
  const manifest = async (repo: string, reference: string) => {
    const got = await fetchManifest(server.url, repo, reference, { authorization: dev })
    assert.ok(got, `${repo}:${reference} is served`)
    return { ...got, doc: JSON.parse(got.bytes.toString()) as ArtifactDoc }
  }
  const referrers = async (repo: string, digest: string) => {
    const res = await fetch(`${server.url}/v2/${repo}/referrers/${digest}`, { headers: { authorization: dev } })
    assert.equal(res.status, 200)
    return ((await res.json()) as { manifests: { digest: string; artifactType?: string }[] }).manifests
  }
  /** The `Digest: sha256:…` line oras prints after push and attach. */
  const printedDigest = (stdout: string) => {
    const m = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(stdout)
    assert.ok(m, `oras printed a digest:\n${stdout}`)
    return m[1]!
  }

  before(async () => {
    work = await makeTempDir('berth-e2e-oras-')
    server = await startAuthServer()
    dev = await addUser(server, 'dev')
    await apiOk(server, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(server, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    image = await pushImage(server.url, 'team/app', '1', { headers: { authorization: dev } })
    oras = await orasIn(work)
    await writeFile(join(work, 'data.bin'), payload)
    await writeFile(join(work, 'note.txt'), 'reviewed by the platform team\n')
    await writeFile(join(work, 'review.json'), JSON.stringify({ approved: true }))
    // Without credentials oras is refused (token auth is on, the project private).
    await assert.rejects(oras('repo', 'tags', '--plain-http', `${server.host}/team/app`), /unauthorized|401|denied/i)
    await oras('login', '--plain-http', '-u', 'dev', '-p', 'dev-password-1', server.host)
  })

  after(async () => {
    await server?.close()
    await removeTempDir(work)
  })

  it('oras push stores an artifact with its artifactType, and oras pull gets its bytes back', async () => {
    const { stdout } = await oras('push', '--plain-http', '--artifact-type', THING, `${server.host}/team/art:v1`, 'data.bin:application/vnd.example.data')
    artifactDigest = printedDigest(stdout)
    const art = await manifest('team/art', 'v1')
    assert.equal(art.digest, artifactDigest)
    assert.equal(art.doc.artifactType, THING)
    assert.deepEqual(art.doc.layers.map((l) => [l.mediaType, l.digest, l.size, l.annotations?.['org.opencontainers.image.title']]), [['application/vnd.example.data', sha256(payload), payload.length, 'data.bin']])

    await mkdir(join(work, 'pulled'))
    await oras('pull', '--plain-http', '-o', join(work, 'pulled'), `${server.host}/team/art:v1`)
    assert.deepEqual(await readFile(join(work, 'pulled', 'data.bin')), payload)
  })

  it('oras attach adds a referrer to an image (and to the referrer), listed by the referrers API', async () => {
    noteDigest = printedDigest((await oras('attach', '--plain-http', '--artifact-type', NOTE, `${server.host}/team/app:1`, 'note.txt')).stdout)
    reviewDigest = printedDigest((await oras('attach', '--plain-http', '--artifact-type', REVIEW, `${server.host}/team/app@${noteDigest}`, 'review.json')).stdout)
    const note = await manifest('team/app', noteDigest)
    assert.equal(note.doc.subject?.digest, image.digest)
    assert.equal(note.doc.artifactType, NOTE)
    assert.deepEqual((await referrers('team/app', image.digest)).map((m) => [m.digest, m.artifactType]), [[noteDigest, NOTE]])
    assert.deepEqual((await referrers('team/app', noteDigest)).map((m) => [m.digest, m.artifactType]), [[reviewDigest, REVIEW]])
    // Attaching writes no tag.
    assert.deepEqual(await listTags(server.url, 'team/app', { authorization: dev }), ['1'])
  })

  it('oras discover --format tree (and the deprecated -o tree) shows the referrers, nested', async () => {
    for (const flags of [['--format', 'tree'], ['-o', 'tree']]) {
      const { stdout } = await oras('discover', '--plain-http', ...flags, `${server.host}/team/app:1`)
      const lines = stdout.trimEnd().split('\n')
      assert.equal(lines[0], `${server.host}/team/app@${image.digest}`, stdout)
      const at = (text: string) => lines.findIndex((l) => l.includes(text))
      // NOTE, then its digest, then REVIEW below it, then the review's digest: each one level deeper.
      const order = [NOTE, noteDigest, REVIEW, reviewDigest].map(at)
      assert.ok(order.every((i, n) => i > 0 && (n === 0 || i > order[n - 1]!)), `tree order:\n${stdout}`)
      const depth = (i: number) => lines[i]!.search(/[a-z]/)
      assert.ok(depth(order[2]!) > depth(order[0]!), `the review is nested under the note:\n${stdout}`)
    }
    const { stdout: json } = await oras('discover', '--plain-http', '--format', 'json', `${server.host}/team/app:1`)
    assert.deepEqual((JSON.parse(json) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest), [noteDigest])
  })

  it('oras copy -r carries the image with its referrers (recursively) to another repository', async () => {
    await oras('copy', '-r', '--from-plain-http', '--to-plain-http', `${server.host}/team/app:1`, `${server.host}/team/mirror:1`)
    assert.equal((await manifest('team/mirror', '1')).digest, image.digest)
    assert.deepEqual((await referrers('team/mirror', image.digest)).map((m) => m.digest), [noteDigest])
    assert.deepEqual((await referrers('team/mirror', noteDigest)).map((m) => m.digest), [reviewDigest])
    assert.equal((await manifest('team/mirror', reviewDigest)).digest, reviewDigest)
  })

  it('oras manifest fetch returns the stored bytes; --descriptor the descriptor', async () => {
    const { stdout } = await oras('manifest', 'fetch', '--plain-http', `${server.host}/team/art:v1`)
    assert.equal(sha256(stdout), artifactDigest)
    const { stdout: desc } = await oras('manifest', 'fetch', '--plain-http', '--descriptor', `${server.host}/team/app@${noteDigest}`)
    const d = JSON.parse(desc) as { digest: string; mediaType: string; artifactType?: string }
    assert.equal(d.digest, noteDigest)
    assert.equal(d.mediaType, 'application/vnd.oci.image.manifest.v1+json')
  })

  it('oras repo tags lists the tags', async () => {
    await oras('tag', '--plain-http', `${server.host}/team/art:v1`, 'v1.0', 'latest')
    const { stdout } = await oras('repo', 'tags', '--plain-http', `${server.host}/team/art`)
    assert.deepEqual(stdout.trim().split('\n').sort(), ['latest', 'v1', 'v1.0'])
    assert.deepEqual((await listTags(server.url, 'team/art', { authorization: dev })).sort(), ['latest', 'v1', 'v1.0'])
  })
})
