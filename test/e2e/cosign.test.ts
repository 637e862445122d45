// End-to-end: the real cosign CLI (Debian's cosign 2.5) against Berth with token auth: key-pair
// signatures by the legacy tag scheme (`sha256-<hex>.sig`) and by OCI 1.1 referrers, verified by
// cosign; SPDX and CycloneDX attestations; an attached SBOM; `cosign tree`; `cosign copy` between
// two repositories. Each checks what Berth then serves: tags, digests and the referrers list.

import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { COSIGN_HTTP, cosignSign, cosignSigner, cosignTag, cosignVerify, type CosignCli } from '../helpers/e2e-cosign.js'
import { makeTempDir, needBinary, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import { listTags } from '../helpers/e2e-registry.js'
import { fetchManifest, pushImage, type PushedImage } from '../helpers/replication.js'
import type { TestServer } from '../helpers/server.js'

const skip = requireClients('cosign e2e', [needBinary('cosign')])

const COSIGN_SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json'
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json'
const DSSE = 'application/vnd.dsse.envelope.v1+json'

interface ManifestDoc {
  mediaType?: string
  artifactType?: string
  config: { mediaType: string; digest: string }
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[]
  subject?: { digest: string }
}

const SPDX = {
  spdxVersion: 'SPDX-2.3',
  SPDXID: 'SPDXRef-DOCUMENT',
  name: 'app',
  dataLicense: 'CC0-1.0',
  documentNamespace: 'https://berth.example/spdx/app',
  creationInfo: { created: '2026-01-01T00:00:00Z', creators: ['Tool: berth-e2e'] },
  packages: [{ SPDXID: 'SPDXRef-Package-busybox', name: 'busybox', versionInfo: '1.36.1', downloadLocation: 'NOASSERTION' }],
}
const CYCLONEDX = { bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [{ type: 'library', name: 'busybox', version: '1.36.1', purl: 'pkg:generic/busybox@1.36.1' }] }

describe('cosign against Berth with token auth', { skip }, () => {
  let server: TestServer
  let work: string
  let cosign: CosignCli
  let dev: string
  let image: PushedImage
  let other: PushedImage
  const ref = (repo: string, tagOrDigest: string) => `${server.host}/${repo}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`
  const manifest = async (repo: string, reference: string) => {
    const got = await fetchManifest(server.url, repo, reference, { authorization: dev })
    assert.ok(got, `${repo}:${reference} is served`)
    return { ...got, doc: JSON.parse(got.bytes.toString()) as ManifestDoc }
  }
  const referrers = async (repo: string, digest: string, artifactType?: string) => {
    const q = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ''
    const res = await fetch(`${server.url}/v2/${repo}/referrers/${digest}${q}`, { headers: { authorization: dev } })
    assert.equal(res.status, 200, await res.clone().text())
    return ((await res.json()) as { manifests: { digest: string; artifactType?: string; mediaType: string }[] }).manifests
  }

  before(async () => {
    work = await makeTempDir('berth-e2e-cosign-')
    server = await startAuthServer()
    dev = await addUser(server, 'dev')
    await apiOk(server, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(server, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    image = await pushImage(server.url, 'team/app', '1', { headers: { authorization: dev } })
    other = await pushImage(server.url, 'team/app', '2', { headers: { authorization: dev } })
    cosign = await cosignSigner(work, [server], 'dev', 'dev-password-1')
    await writeFile(join(work, 'sbom.spdx.json'), JSON.stringify(SPDX))
    await writeFile(join(work, 'bom.cdx.json'), JSON.stringify(CYCLONEDX))
  })

  after(async () => {
    await server?.close()
    await removeTempDir(work)
  })

  it('cosign sign (legacy tag scheme) stores sha256-<hex>.sig, and cosign verify accepts it', async () => {
    await cosignSign(cosign, ref('team/app', '1'))
    assert.ok((await listTags(server.url, 'team/app', { authorization: dev })).includes(cosignTag(image.digest, 'sig')))
    const sig = await manifest('team/app', cosignTag(image.digest, 'sig'))
    assert.equal(sig.doc.layers.length, 1)
    assert.equal(sig.doc.layers[0]?.mediaType, SIMPLE_SIGNING)
    assert.ok(sig.doc.layers[0]?.annotations?.['dev.cosignproject.cosign/signature'], 'the signature is in the layer annotation')

    const verified = await cosignVerify(cosign, ref('team/app', '1'))
    assert.equal(verified.length, 1)
    assert.equal(verified[0]?.critical.image['docker-manifest-digest'], image.digest)
    // The other image has no signature: cosign refuses it.
    await assert.rejects(cosignVerify(cosign, ref('team/app', '2')), /no signatures found|no matching signatures/i)
  })

  it('cosign sign --registry-referrers-mode=oci-1-1 stores a referrer Berth lists, and cosign verify --experimental-oci11 accepts it', async () => {
    await cosignSign(cosign, ref('team/app', '2'), 'oci-1-1')
    const listed = await referrers('team/app', other.digest)
    assert.deepEqual(listed.map((m) => m.artifactType), [COSIGN_SIG])
    const sig = await manifest('team/app', listed[0]!.digest)
    assert.equal(sig.digest, listed[0]!.digest)
    assert.equal(sig.doc.subject?.digest, other.digest)
    assert.equal(sig.doc.layers[0]?.mediaType, SIMPLE_SIGNING)
    // The filter of the referrers API finds it by its artifactType, and only it.
    assert.deepEqual((await referrers('team/app', other.digest, COSIGN_SIG)).map((m) => m.digest), [listed[0]!.digest])
    assert.deepEqual(await referrers('team/app', other.digest, 'application/vnd.example.none'), [])
    // No legacy tag was written for it.
    assert.ok(!(await listTags(server.url, 'team/app', { authorization: dev })).includes(cosignTag(other.digest, 'sig')))

    const verified = await cosignVerify(cosign, ref('team/app', '2'), 'oci-1-1')
    assert.equal(verified[0]?.critical.image['docker-manifest-digest'], other.digest)
  })

  it('cosign attest --type spdxjson and --type cyclonedx store DSSE attestations that cosign verify-attestation accepts', async () => {
    const attest = (type: string, predicate: string) => cosign('attest', '--yes', '--key', 'cosign.key', '--tlog-upload=false', ...COSIGN_HTTP, '--type', type, '--predicate', predicate, ref('team/app', '1'))
    await attest('spdxjson', 'sbom.spdx.json')
    await attest('cyclonedx', 'bom.cdx.json')
    const att = await manifest('team/app', cosignTag(image.digest, 'att'))
    assert.deepEqual(att.doc.layers.map((l) => l.mediaType), [DSSE, DSSE])
    const predicateTypes = att.doc.layers.map((l) => l.annotations?.predicateType).sort()
    assert.deepEqual(predicateTypes, ['https://cyclonedx.org/bom', 'https://spdx.dev/Document'])

    for (const type of ['spdxjson', 'cyclonedx']) {
      const { stdout } = await cosign('verify-attestation', '--key', 'cosign.pub', '--insecure-ignore-tlog=true', ...COSIGN_HTTP, '--type', type, ref('team/app', '1'))
      const envelopes = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { payload: string })
      assert.ok(envelopes.length >= 1, `verify-attestation --type ${type}: ${stdout}`)
      const statements = envelopes.map((e) => JSON.parse(Buffer.from(e.payload, 'base64').toString()) as { predicateType: string; subject: { digest: { sha256: string } }[]; predicate: unknown })
      const statement = statements.find((s) => s.predicateType === (type === 'spdxjson' ? 'https://spdx.dev/Document' : 'https://cyclonedx.org/bom'))
      assert.ok(statement, `a ${type} statement among ${statements.map((s) => s.predicateType).join(', ')}`)
      assert.equal(`sha256:${statement.subject[0]?.digest.sha256}`, image.digest)
      assert.deepEqual(statement.predicate, type === 'spdxjson' ? SPDX : CYCLONEDX)
    }
  })

  it('cosign attach sbom (deprecated in cosign 2.5, still there) stores sha256-<hex>.sbom with the SBOM bytes', async () => {
    await cosign('attach', 'sbom', ...COSIGN_HTTP, '--sbom', 'sbom.spdx.json', '--type', 'spdx', ref('team/app', '1'))
    const sbom = await manifest('team/app', cosignTag(image.digest, 'sbom'))
    assert.equal(sbom.doc.layers[0]?.mediaType, 'text/spdx+json')
    const blob = await fetch(`${server.url}/v2/team/app/blobs/${sbom.doc.layers[0]?.digest}`, { headers: { authorization: dev } })
    assert.equal(blob.status, 200)
    assert.deepEqual(JSON.parse(await blob.text()), SPDX)
  })

  it('cosign tree lists the signature, the attestations and the SBOM by their digests', async () => {
    const { stdout } = await cosign('tree', ...COSIGN_HTTP, ref('team/app', '1'))
    for (const suffix of ['sig', 'att', 'sbom'] as const) {
      const attached = await manifest('team/app', cosignTag(image.digest, suffix))
      assert.ok(stdout.includes(`${server.host}/team/app:${cosignTag(image.digest, suffix)}`), `tree names the .${suffix} tag:\n${stdout}`)
      for (const layer of attached.doc.layers) assert.ok(stdout.includes(layer.digest), `tree lists ${layer.digest} of .${suffix}:\n${stdout}`)
    }
  })

  it('cosign copy carries the image with its signature, attestations and SBOM to another repository, where cosign verify accepts it', async () => {
    await cosign('copy', ...COSIGN_HTTP, ref('team/app', '1'), ref('team/copy', '1'))
    const tags = await listTags(server.url, 'team/copy', { authorization: dev })
    for (const suffix of ['sig', 'att', 'sbom'] as const) {
      assert.ok(tags.includes(cosignTag(image.digest, suffix)), `team/copy has .${suffix}: ${tags.join(', ')}`)
      const [from, to] = [await manifest('team/app', cosignTag(image.digest, suffix)), await manifest('team/copy', cosignTag(image.digest, suffix))]
      assert.equal(to.digest, from.digest, `.${suffix} copied byte for byte`)
    }
    assert.equal((await manifest('team/copy', '1')).digest, image.digest)
    const verified = await cosignVerify(cosign, ref('team/copy', '1'))
    assert.equal(verified[0]?.critical.image['docker-manifest-digest'], image.digest)
  })
})
