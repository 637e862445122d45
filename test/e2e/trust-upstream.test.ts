// End-to-end: signatures required across registries, with a real Docker Distribution and the real
// cosign CLI. A proxy cache project whose trust policy requires cosign fetches the upstream's
// signatures (the `sha256-<hex>.sig` tag, and OCI 1.1 referrers through the referrers tag schema
// Distribution needs) with each image, and refuses what they do not verify. A push replication
// policy with `requireSignatures` sends only the images whose signatures verify with the source
// project's keys, with their signatures, and reports the others as skipped.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { cosignSign, cosignSigner, cosignTag, cosignVerify, type CosignCli } from '../helpers/e2e-cosign.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv, listTags } from '../helpers/e2e-registry.js'
import { api as replicationApi, fetchManifest, pushImage, waitExecution } from '../helpers/replication.js'
import type { TestServer } from '../helpers/server.js'
import { addEndpoint } from '../helpers/upstream.js'
import { signatureStatus, trustCosignKey } from '../trust/helpers.js'

/** Distribution v3.1.1 (OCI 1.1 manifests with a subject, no referrers API), else Debian's 2.8. */
const DISTRIBUTION = findBinary('registry-v3.1.1', [join(import.meta.dirname, '..', '..', '..', 'shared', 'bin', 'registry-v3.1.1'), '/work/shared/bin/registry-v3.1.1']) ?? findBinary('docker-registry')
const skip = requireClients('signatures across registries e2e', [needBinary('cosign'), needBinary('skopeo'), DISTRIBUTION ? undefined : 'neither registry-v3.1.1 nor docker-registry is installed'])

const auth = { authorization: ADMIN }

interface Pulled {
  status: number
  digest?: string
  code?: string
  message?: string
}

/** A manifest GET as a client makes it: the digest served, or the first error. */
async function pull(base: string, repository: string, reference: string, headers: Record<string, string> = {}): Promise<Pulled> {
  const res = await fetch(`${base}/v2/${repository}/manifests/${reference}`, { headers: { ...headers, accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } })
  if (res.status === 200) return { status: 200, digest: res.headers.get('docker-content-digest') ?? undefined }
  const body = (await res.json()) as { errors?: { code: string; message: string }[] }
  return { status: res.status, code: body.errors?.[0]?.code, message: body.errors?.[0]?.message }
}

describe('signatures required across registries', { skip }, () => {
  let work: string
  let distribution: Distribution
  let berth: TestServer
  /** the key the projects trust, and a key nobody trusts */
  let release: CosignCli & { publicKey: string }
  let stranger: CosignCli

  before(async () => {
    work = await makeTempDir('berth-e2e-trust-upstream-')
    distribution = await startDistribution(join(work, 'distribution'), { binary: DISTRIBUTION })
    berth = await startAuthServer()
    release = await cosignSigner(join(work, 'release'), [berth])
    stranger = await cosignSigner(join(work, 'stranger'), [berth])
    await addEndpoint(berth, 'distribution', { url: distribution.url })
  })

  after(async () => {
    await berth?.close()
    await distribution?.stop()
    await removeTempDir(work)
  })

  describe('a proxy cache project that requires cosign signatures', () => {
    const digests = { legacy: '', referrer: '', unsigned: '', stranger: '', exempt: '', late: '' }

    before(async () => {
      const upstream = (repo: string, tag: string) => `${distribution.host}/${repo}:${tag}`
      for (const [name, repo] of [['legacy', 'team/app'], ['referrer', 'team/app'], ['unsigned', 'team/app'], ['stranger', 'team/app'], ['exempt', 'dev/tool'], ['late', 'team/app']] as const) {
        digests[name] = (await pushImage(distribution.url, repo, name)).digest
      }
      await cosignSign(release, upstream('team/app', 'legacy'))
      await cosignSign(release, upstream('team/app', 'referrer'), 'oci-1-1')
      await cosignSign(stranger, upstream('team/app', 'stranger'))
      // The proxy looks for new upstream signatures once a second (its ttl).
      await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'hub', public: true, proxy: { registry: 'distribution', ttl: '1s' } }, 201)
      await trustCosignKey(berth, ADMIN, 'hub', release.publicKey, { require: 'cosign', exemptRepositories: 'dev/**' })
    })

    it('serves an image whose upstream signature verifies, by the .sig tag and by referrer, having fetched and verified the signature', async () => {
      for (const [name, source] of [['legacy', 'tag'], ['referrer', 'referrer']] as const) {
        assert.deepEqual(await pull(berth.url, 'hub/team/app', name), { status: 200, digest: digests[name] }, name)
        const status = await signatureStatus(berth, 'hub', 'team/app', digests[name], ADMIN)
        assert.deepEqual(status.verified, ['cosign'], name)
        assert.ok(status.signatures.some((s) => s.source === source && s.verified && s.key === 'release'), `${name}: ${JSON.stringify(status.signatures)}`)
      }
      // Pulled by digest too, and by a real client.
      assert.deepEqual(await pull(berth.url, 'hub/team/app', digests.legacy), { status: 200, digest: digests.legacy })
      const env = await containersEnv(join(work, 'containers'))
      await run(findBinary('skopeo') ?? 'skopeo', ['copy', '--src-tls-verify=false', `docker://${berth.host}/hub/team/app:referrer`, `oci:${join(work, 'skopeo-out')}:img`], { env, cwd: work })
      const { stdout } = await run(findBinary('skopeo') ?? 'skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${berth.host}/hub/team/app:referrer`], { env, cwd: work })
      assert.equal(stdout.trim(), digests.referrer)
    })

    it('refuses with DENIED an image the upstream has not signed, or signed with a key the project does not trust', async () => {
      const unsigned = await pull(berth.url, 'hub/team/app', 'unsigned')
      assert.equal(unsigned.status, 403)
      assert.equal(unsigned.code, 'DENIED')
      assert.match(unsigned.message ?? '', new RegExp(`project hub's trust policy requires a cosign signature: hub/team/app@${digests.unsigned} has none; a signature verified by release \\(cosign, project hub\\) is accepted`))
      const wrongKey = await pull(berth.url, 'hub/team/app', 'stranger')
      assert.equal(wrongKey.status, 403)
      assert.match(wrongKey.message ?? '', /has 1 that did not verify \(no configured cosign key verifies this signature \(tried release\)\)/)
      // skopeo shows the refusal.
      const env = await containersEnv(join(work, 'containers'))
      await assert.rejects(run(findBinary('skopeo') ?? 'skopeo', ['copy', '--src-tls-verify=false', `docker://${berth.host}/hub/team/app:unsigned`, `oci:${join(work, 'refused')}:img`], { env, cwd: work }), /requires a cosign signature/)
    })

    it('lets an image through once it is signed upstream (looked up again after the ttl)', async () => {
      assert.equal((await pull(berth.url, 'hub/team/app', 'late')).status, 403)
      await cosignSign(release, `${distribution.host}/team/app:late`)
      await new Promise((r) => setTimeout(r, 1_100))
      assert.deepEqual(await pull(berth.url, 'hub/team/app', 'late'), { status: 200, digest: digests.late })
    })

    it('asks the upstream for no signature of an exempt repository', async () => {
      assert.deepEqual(await pull(berth.url, 'hub/dev/tool', 'exempt'), { status: 200, digest: digests.exempt })
      const asked = (await distribution.requests()).filter((r) => r.path.startsWith('/v2/dev/tool/'))
      assert.ok(asked.length > 0)
      assert.deepEqual(asked.filter((r) => r.path.includes(cosignTag(digests.exempt, 'sig')) || r.path.includes('/referrers/')), [])
    })
  })

  describe('a push replication policy with requireSignatures', () => {
    const digests = { legacy: '', referrer: '', unsigned: '', stranger: '' }
    const call = () => replicationApi(berth.url, { username: 'admin', password: ADMIN_PASSWORD })
    const ref = (tag: string) => `${berth.host}/team/app:${tag}`

    before(async () => {
      await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
      await trustCosignKey(berth, ADMIN, 'team', release.publicKey)
      for (const name of ['legacy', 'referrer', 'unsigned', 'stranger'] as const) digests[name] = (await pushImage(berth.url, 'team/app', name, { headers: auth })).digest
      await cosignSign(release, ref('legacy'))
      await cosignSign(release, ref('referrer'), 'oci-1-1')
      await cosignSign(stranger, ref('stranger'))
    })

    it('is refused where it cannot hold: on a pull policy, without referrers, with an unknown requirement', async () => {
      const base = { direction: 'push', registry: 'distribution', source: { repositories: 'team/app' }, requireSignatures: 'cosign' }
      const refused: [Record<string, unknown>, RegExp][] = [
        [{ ...base, name: 'p1', direction: 'pull' }, /only push policies/],
        [{ ...base, name: 'p2', referrers: false }, /needs referrers: true/],
        [{ ...base, name: 'p3', requireSignatures: 'gpg' }, /none, cosign, notation, any/],
      ]
      for (const [body, message] of refused) {
        const res = await api(berth, 'POST', '/replication/policies', ADMIN, body)
        const problem = await res.text()
        assert.equal(res.status, 400, problem)
        assert.match(problem, /"field":"requireSignatures"/)
        assert.match(problem, message)
      }
    })

    it('replicates the images whose signatures verify, with their signatures, and skips the others saying why', async () => {
      const created = await call()('POST', '/replication/policies', { name: 'signed-only', direction: 'push', registry: 'distribution', source: { repositories: 'team/app' }, destination: { namespace: 'mirror', flatten: 1 }, requireSignatures: 'cosign' })
      assert.equal(created.status, 201, JSON.stringify(created.body))
      assert.equal(created.body.requireSignatures, 'cosign')
      const started = await call()('POST', '/replication/policies/signed-only/executions')
      assert.equal(started.status, 202, JSON.stringify(started.body))
      const done = await waitExecution(call(), started.body.id as string)
      assert.equal(done.status, 'succeeded', JSON.stringify(done))

      // One task per image tag: the .sig tags travel with their subjects, not as tasks of their own.
      const tasks = new Map(done.tasks.map((t) => [t.source, t]))
      assert.deepEqual([...tasks.keys()].sort(), ['team/app:legacy', 'team/app:referrer', 'team/app:stranger', 'team/app:unsigned'])
      for (const name of ['legacy', 'referrer'] as const) assert.equal(tasks.get(`team/app:${name}`)?.status, 'succeeded', JSON.stringify(tasks.get(`team/app:${name}`)))
      assert.equal(tasks.get('team/app:unsigned')?.status, 'skipped')
      assert.match(tasks.get('team/app:unsigned')?.error ?? '', new RegExp(`not replicated: requireSignatures asks for a cosign signature: team/app@${digests.unsigned} has none`))
      assert.equal(tasks.get('team/app:stranger')?.status, 'skipped')
      assert.match(tasks.get('team/app:stranger')?.error ?? '', /has 1 that did not verify \(no configured cosign key verifies this signature/)

      // On the peer: the verified images and their signatures, nothing of the others.
      assert.equal((await fetchManifest(distribution.url, 'mirror/app', 'legacy'))?.digest, digests.legacy)
      assert.equal((await fetchManifest(distribution.url, 'mirror/app', 'referrer'))?.digest, digests.referrer)
      for (const name of ['unsigned', 'stranger'] as const) {
        assert.equal(await fetchManifest(distribution.url, 'mirror/app', name), null, name)
        assert.equal(await fetchManifest(distribution.url, 'mirror/app', digests[name]), null, name)
      }
      const tags = await listTags(distribution.url, 'mirror/app')
      assert.ok(tags.includes(cosignTag(digests.legacy, 'sig')), tags.join(' '))
      assert.ok(!tags.includes(cosignTag(digests.stranger, 'sig')), tags.join(' '))
      // cosign verifies the copies against the release key.
      assert.equal((await cosignVerify(release, `${distribution.host}/mirror/app:legacy`))[0]?.critical.image['docker-manifest-digest'], digests.legacy)
      assert.equal((await cosignVerify(release, `${distribution.host}/mirror/app:referrer`, 'oci-1-1'))[0]?.critical.image['docker-manifest-digest'], digests.referrer)
    })
  })
})
