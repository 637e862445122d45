// End-to-end: cosign signatures travel with their images. Images signed by the real cosign CLI
// (legacy `sha256-<hex>.sig` tags and OCI 1.1 referrers) are replicated to a second Berth and
// pulled through a third Berth's proxy cache, where `cosign verify` accepts them; retention keeps
// a signature exactly as long as its subject, and GC removes a signature only with its subject.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer } from '../helpers/auth.js'
import { cosignSign, cosignSigner, cosignTag, cosignVerify, type CosignCli } from '../helpers/e2e-cosign.js'
import { makeTempDir, needBinary, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import { listTags } from '../helpers/e2e-registry.js'
import { eventually } from '../helpers/eventually.js'
import { api, fetchManifest, pushImage, waitExecution, type PushedImage } from '../helpers/replication.js'
import type { TestServer } from '../helpers/server.js'
import { addEndpoint, addProxyProject } from '../helpers/upstream.js'

const skip = requireClients('signatures travel e2e', [needBinary('cosign')])

const COSIGN_SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json'
const auth = { authorization: ADMIN }

interface Referrer {
  digest: string
  artifactType?: string
}

async function referrers(server: TestServer, repo: string, digest: string, headers: Record<string, string> = auth): Promise<Referrer[]> {
  const res = await fetch(`${server.url}/v2/${repo}/referrers/${digest}`, { headers })
  assert.equal(res.status, 200, `referrers of ${repo}@${digest}: ${res.status}`)
  return ((await res.json()) as { manifests: Referrer[] }).manifests
}

/** The digest of the OCI 1.1 cosign signature of `digest` in `repo`. */
async function referrerSignature(server: TestServer, repo: string, digest: string): Promise<string> {
  const sigs = (await referrers(server, repo, digest)).filter((r) => r.artifactType === COSIGN_SIG)
  assert.equal(sigs.length, 1, `one cosign referrer of ${repo}@${digest}`)
  return sigs[0]!.digest
}

async function gcRun(server: TestServer): Promise<void> {
  const { id } = await apiOk<{ id: string }>(server, 'POST', '/gc', ADMIN, { dryRun: false }, 202)
  await eventually(async () => (await apiOk<{ status: string }>(server, 'GET', `/gc/${id}`, ADMIN)).status !== 'running', `gc run ${id}`, 30_000)
  assert.equal((await apiOk<{ status: string }>(server, 'GET', `/gc/${id}`, ADMIN)).status, 'succeeded')
}

describe('cosign signatures travel with their images', { skip }, () => {
  let origin: TestServer
  let work: string
  let cosign: CosignCli
  const ref = (s: TestServer, repo: string, tag: string) => `${s.host}/${repo}:${tag}`
  /**
   * An image pushed to origin's `repo:tag` and signed by cosign in the given ways. cosign verify
   * --experimental-oci11 falls back to the `.sig` tag, so an image meant to prove that a referrer
   * signature verifies is signed that way only.
   */
  const signedImage = async (repo: string, tag: string, modes: ('legacy' | 'oci-1-1')[] = ['legacy', 'oci-1-1']): Promise<PushedImage> => {
    const image = await pushImage(origin.url, repo, tag, { headers: auth })
    for (const mode of modes) await cosignSign(cosign, ref(origin, repo, tag), mode)
    return image
  }
  const verifiedDigest = async (s: TestServer, repo: string, tag: string, mode: 'legacy' | 'oci-1-1') => (await cosignVerify(cosign, ref(s, repo, tag), mode))[0]?.critical.image['docker-manifest-digest']

  before(async () => {
    work = await makeTempDir('berth-e2e-sigtravel-')
    origin = await startAuthServer({ gc: { gracePeriod: '0s' } })
    await apiOk(origin, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    cosign = await cosignSigner(work, [origin])
  })

  after(async () => {
    await origin?.close()
    await removeTempDir(work)
  })

  describe('replication', () => {
    let dest: TestServer
    const call = () => api(origin.url, { username: 'admin', password: ADMIN_PASSWORD })
    before(async () => {
      dest = await startAuthServer()
      await apiOk(dest, 'POST', '/projects', ADMIN, { name: 'mirror', public: false }, 201)
      await addEndpoint(origin, 'dest', { url: dest.url, username: 'admin', password: ADMIN_PASSWORD })
      await cosign('login', dest.host, '-u', 'admin', '-p', ADMIN_PASSWORD)
    })
    after(() => dest?.close())

    it('a manual execution of one tag carries its legacy .sig tag and its referrer signature; cosign verify accepts the copy', async () => {
      const image = await signedImage('team/app', '1')
      const onlyReferrer = await signedImage('team/app', 'r1', ['oci-1-1'])
      await pushImage(origin.url, 'team/app', 'other', { headers: auth })
      const created = await call()('POST', '/replication/policies', { name: 'one-tag', direction: 'push', registry: 'dest', source: { repositories: 'team/app', tags: '{1,r1}' }, destination: { namespace: 'mirror', flatten: 1 } })
      assert.equal(created.status, 201, JSON.stringify(created.body))
      const started = await call()('POST', '/replication/policies/one-tag/executions')
      assert.equal(started.status, 202, JSON.stringify(started.body))
      const done = await waitExecution(call(), started.body.id as string)
      assert.equal(done.status, 'succeeded', JSON.stringify(done))

      assert.equal((await fetchManifest(dest.url, 'mirror/app', '1', auth))?.digest, image.digest)
      assert.deepEqual((await listTags(dest.url, 'mirror/app', auth)).sort(), ['1', 'r1', cosignTag(image.digest, 'sig')].sort())
      assert.equal((await fetchManifest(dest.url, 'mirror/app', cosignTag(image.digest, 'sig'), auth))?.digest, (await fetchManifest(origin.url, 'team/app', cosignTag(image.digest, 'sig'), auth))?.digest)
      assert.equal(await referrerSignature(dest, 'mirror/app', image.digest), await referrerSignature(origin, 'team/app', image.digest))
      assert.equal(await referrerSignature(dest, 'mirror/app', onlyReferrer.digest), await referrerSignature(origin, 'team/app', onlyReferrer.digest))
      assert.equal(await verifiedDigest(dest, 'mirror/app', '1', 'legacy'), image.digest)
      assert.equal(await verifiedDigest(dest, 'mirror/app', 'r1', 'oci-1-1'), onlyReferrer.digest)
    })

    it('an event policy replicates a signature made after its image was replicated', async () => {
      const created = await call()('POST', '/replication/policies', { name: 'events', direction: 'push', registry: 'dest', source: { repositories: 'team/events', tags: 'v*' }, destination: { namespace: 'mirror', flatten: 1 }, trigger: { kind: 'event' } })
      assert.equal(created.status, 201, JSON.stringify(created.body))
      const image = await pushImage(origin.url, 'team/events', 'v1', { headers: auth })
      const other = await pushImage(origin.url, 'team/events', 'v2', { headers: auth })
      await eventually(async () => (await fetchManifest(dest.url, 'mirror/events', 'v2', auth))?.digest === other.digest, 'v1 and v2 replicated', 30_000)
      // Signed afterwards: the push of the .sig tag (which the tag filter v* does not match) and of
      // the referrer both travel to the copy of their subject.
      await cosignSign(cosign, ref(origin, 'team/events', 'v1'))
      await cosignSign(cosign, ref(origin, 'team/events', 'v2'), 'oci-1-1')
      await eventually(async () => (await listTags(dest.url, 'mirror/events', auth)).includes(cosignTag(image.digest, 'sig')), 'the .sig tag replicated', 30_000)
      await eventually(async () => (await referrers(dest, 'mirror/events', other.digest)).some((r) => r.artifactType === COSIGN_SIG), 'the referrer replicated', 30_000)
      assert.equal(await verifiedDigest(dest, 'mirror/events', 'v1', 'legacy'), image.digest)
      assert.equal(await verifiedDigest(dest, 'mirror/events', 'v2', 'oci-1-1'), other.digest)
    })
  })

  describe('proxy cache', () => {
    let cache: TestServer
    before(async () => {
      cache = await startAuthServer()
      await addEndpoint(cache, 'origin', { url: origin.url, username: 'admin', password: ADMIN_PASSWORD })
      await addProxyProject(cache, 'hub', { registry: 'origin' })
    })
    after(() => cache?.close())

    it('cosign verify through a proxy project accepts the upstream signatures (tag scheme and referrers)', async () => {
      const image = await signedImage('team/proxied', '1', ['legacy'])
      const onlyReferrer = await signedImage('team/proxied', 'r1', ['oci-1-1'])
      assert.equal(await verifiedDigest(cache, 'hub/team/proxied', '1', 'legacy'), image.digest)
      assert.equal(await verifiedDigest(cache, 'hub/team/proxied', 'r1', 'oci-1-1'), onlyReferrer.digest)
      // Both are now in the cache: the .sig tag, and the referrer, which the cache lists from its
      // own store once fetched.
      assert.equal((await fetchManifest(cache.url, 'hub/team/proxied', cosignTag(image.digest, 'sig')))?.digest, (await fetchManifest(origin.url, 'team/proxied', cosignTag(image.digest, 'sig'), auth))?.digest)
      const cached = await referrerSignature(cache, 'hub/team/proxied', onlyReferrer.digest)
      assert.equal(cached, await referrerSignature(origin, 'team/proxied', onlyReferrer.digest))
    })
  })

  describe('retention and garbage collection', () => {
    it('retention keeps each signature while its subject is kept, and removes it with its subject; GC then frees the referrer', async () => {
      await apiOk(origin, 'POST', '/projects', ADMIN, { name: 'ret', public: false }, 201)
      const old = await signedImage('ret/app', 'old')
      const kept = await signedImage('ret/app', 'new')
      const oldReferrer = await referrerSignature(origin, 'ret/app', old.digest)
      const keptReferrer = await referrerSignature(origin, 'ret/app', kept.digest)
      // The newest push is kept.sig (signed last); the signatures must not count as artifacts of their own.
      await apiOk(origin, 'PUT', '/projects/ret/retention', ADMIN, { rules: [{ kind: 'latestPushed', count: 1, repositories: '**', tags: '**' }], untagged: 'keep' })
      const { id } = await apiOk<{ id: string }>(origin, 'POST', '/projects/ret/retention/runs', ADMIN, { dryRun: false }, 202)
      type Run = { status: string; removed: { tag: string | null; digest: string }[] }
      const runNow = () => apiOk<Run>(origin, 'GET', `/projects/ret/retention/runs/${id}`, ADMIN)
      await eventually(async () => (await runNow()).status !== 'running', 'the retention run', 30_000)
      const run = await runNow()
      assert.equal(run.status, 'succeeded', JSON.stringify(run))
      assert.deepEqual(run.removed.map((r) => r.tag).sort(), ['old', cosignTag(old.digest, 'sig')].sort())

      assert.deepEqual((await listTags(origin.url, 'ret/app', auth)).sort(), ['new', cosignTag(kept.digest, 'sig')].sort())
      assert.equal(await verifiedDigest(origin, 'ret/app', 'new', 'legacy'), kept.digest)
      // The GC that followed removed the old image's referrer with it, and kept the other.
      await gcRun(origin)
      assert.equal(await fetchManifest(origin.url, 'ret/app', old.digest, auth), null)
      assert.equal(await fetchManifest(origin.url, 'ret/app', oldReferrer, auth), null)
      assert.equal((await fetchManifest(origin.url, 'ret/app', keptReferrer, auth))?.digest, keptReferrer)
    })

    it('GC keeps a referrer signature while its subject exists, untagged or not, and removes it only with the subject', async () => {
      await apiOk(origin, 'POST', '/projects', ADMIN, { name: 'gcp', public: false }, 201)
      const image = await signedImage('gcp/app', '1', ['oci-1-1'])
      const sig = await referrerSignature(origin, 'gcp/app', image.digest)
      await gcRun(origin)
      assert.equal((await fetchManifest(origin.url, 'gcp/app', sig, auth))?.digest, sig)
      assert.equal(await verifiedDigest(origin, 'gcp/app', '1', 'oci-1-1'), image.digest)

      const del = await fetch(`${origin.url}/v2/gcp/app/manifests/${image.digest}`, { method: 'DELETE', headers: auth })
      assert.equal(del.status, 202)
      await gcRun(origin)
      assert.equal(await fetchManifest(origin.url, 'gcp/app', sig, auth), null)
    })
  })
})
