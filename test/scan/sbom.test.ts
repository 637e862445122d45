import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { toCycloneDx, toSpdx } from '../../src/scan/sbom/index.js'
import type { Inventory } from '../../src/scan/types.js'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { orasIn } from '../helpers/e2e-cosign.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import type { TestServer } from '../helpers/server.js'

// SBOMs of a pushed image over /api/v1: SPDX 2.3 and CycloneDX 1.6 JSON, each checked against its
// format's JSON schema (SPDX's from spdx/spdx-spec support/2.3, CycloneDX's shipped with
// @cyclonedx/cyclonedx-library); attached as referrers that the referrers API and the real
// oras CLI find; permissions.

const CDX_SCHEMAS = join(import.meta.dirname, '../../node_modules/@cyclonedx/cyclonedx-library/res/schema')
const loadJson = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>

async function validators() {
  const spdx = addFormats.default(new Ajv({ strict: false, allErrors: true }))
  const spdxValidate = spdx.compile(await loadJson(join(import.meta.dirname, '../fixtures/sbom/spdx-2.3.schema.json')))
  const cdx = addFormats.default(new Ajv({ strict: false, allErrors: true }))
  // the BOM schema refers to its neighbours by file name, relative to its $id
  for (const [file, as] of [['spdx.SNAPSHOT.schema.json', 'spdx.SNAPSHOT.schema.json'], ['jsf-0.82.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']] as const) {
    const { $id: _id, ...schema } = await loadJson(join(CDX_SCHEMAS, file))
    cdx.addSchema(schema, `http://cyclonedx.org/schema/${as}`)
  }
  const cdxValidate = cdx.compile(await loadJson(join(CDX_SCHEMAS, 'bom-1.6.SNAPSHOT.schema.json')))
  return { spdxValidate, cdxValidate }
}

const para = (fields: Record<string, string>) => Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n'

describe('SBOMs (SPDX 2.3, CycloneDX 1.6) of an image', () => {
  let s: TestServer
  let guest: string
  let stranger: string
  let img: { digest: string; layers: string[] }
  let v: Awaited<ReturnType<typeof validators>>
  const base = '/projects/team/repositories/tools%2Fapp'
  before(async () => {
    v = await validators()
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    guest = await addUser(s, 'gus')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'gus', role: 'guest' }, 201)
    stranger = await addUser(s, 'stranger')
    const layer = await tarOf([
      { name: 'etc/os-release', body: 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' },
      { name: 'var/lib/dpkg/status', body: para({ Package: 'libssl3', Status: 'install ok installed', Architecture: 'amd64', Source: 'openssl', Version: '3.0.11-1~deb12u2' }) },
      { name: 'app/node_modules/a/package.json', body: JSON.stringify({ name: 'a', version: '1.0.0', license: 'MIT OR Apache-2.0' }) },
      { name: 'app/node_modules/@scope/b/package.json', body: JSON.stringify({ name: '@scope/b', version: '2.0.0', license: 'SEE LICENSE IN LICENSE.txt' }) },
      { name: 'app/node_modules/c/package.json', body: JSON.stringify({ name: 'c', version: '3.0.0', licenses: [{ type: 'MIT' }, { type: 'BSD-3-Clause' }] }) },
      { name: 'usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA', body: 'Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n' },
    ])
    img = await pushLayers(s, 'team/tools/app', 'v1', [{ data: gzipSync(layer) }], ADMIN)
  })
  after(() => s.close())

  it('answers SPDX 2.3 JSON that its schema accepts, every package with purl, licence and layer', async () => {
    const res = await api(s, 'GET', `${base}/artifacts/${img.digest}/sbom?format=spdx`, guest)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/spdx+json')
    const doc = (await res.json()) as { spdxVersion: string; name: string; packages: { SPDXID: string; name: string; versionInfo: string; licenseDeclared?: string; externalRefs: { referenceLocator: string }[]; sourceInfo?: string }[]; relationships: unknown[]; hasExtractedLicensingInfos?: { licenseId: string; extractedText: string }[] }
    assert.ok(v.spdxValidate(doc), JSON.stringify(v.spdxValidate.errors))
    assert.equal(doc.spdxVersion, 'SPDX-2.3')
    assert.equal(doc.name, `team/tools/app@${img.digest}`)
    assert.deepEqual(doc.packages.map((p) => [p.name, p.versionInfo, p.licenseDeclared, p.externalRefs[0]?.referenceLocator]), [
      ['team/tools/app', img.digest, undefined, `pkg:oci/app@${encodeURIComponent(img.digest)}?repository_url=team%2Ftools%2Fapp`],
      ['@scope/b', '2.0.0', 'LicenseRef-1-SEE-LICENSE-IN-LICENSE.txt', 'pkg:npm/%40scope/b@2.0.0'],
      ['a', '1.0.0', 'MIT OR Apache-2.0', 'pkg:npm/a@1.0.0'],
      ['c', '3.0.0', 'MIT AND BSD-3-Clause', 'pkg:npm/c@3.0.0'],
      ['six', '1.16.0', 'MIT', 'pkg:pypi/six@1.16.0'],
      ['libssl3', '3.0.11-1~deb12u2', 'NOASSERTION', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12'],
    ])
    assert.deepEqual(doc.hasExtractedLicensingInfos?.map((l) => [l.licenseId, l.extractedText]), [['LicenseRef-1-SEE-LICENSE-IN-LICENSE.txt', 'SEE LICENSE IN LICENSE.txt']])
    assert.equal(doc.packages[5]?.sourceInfo, `Debian:12 package found in layer ${img.layers[0]} at /var/lib/dpkg/status`)
    assert.equal(doc.relationships.length, 6)
  })

  it('answers CycloneDX 1.6 JSON that its schema accepts', async () => {
    const res = await api(s, 'GET', `${base}/artifacts/${img.digest}/sbom?format=cyclonedx`, guest)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/vnd.cyclonedx+json')
    const bom = (await res.json()) as { specVersion: string; metadata: { component: { name: string; version: string } }; components: { name: string; version: string; purl: string; licenses?: unknown[]; properties: { name: string; value: string }[] }[] }
    assert.ok(v.cdxValidate(bom), JSON.stringify(v.cdxValidate.errors))
    assert.equal(bom.specVersion, '1.6')
    assert.deepEqual([bom.metadata.component.name, bom.metadata.component.version], ['team/tools/app', img.digest])
    assert.deepEqual(bom.components.map((c) => [c.name, c.version, c.purl, c.licenses]), [
      ['@scope/b', '2.0.0', 'pkg:npm/%40scope/b@2.0.0', [{ license: { name: 'SEE LICENSE IN LICENSE.txt' } }]],
      ['a', '1.0.0', 'pkg:npm/a@1.0.0', [{ expression: 'MIT OR Apache-2.0' }]],
      ['c', '3.0.0', 'pkg:npm/c@3.0.0', [{ license: { id: 'MIT' } }, { license: { id: 'BSD-3-Clause' } }]],
      ['six', '1.16.0', 'pkg:pypi/six@1.16.0', [{ license: { id: 'MIT' } }]],
      ['libssl3', '3.0.11-1~deb12u2', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12', undefined],
    ])
    assert.deepEqual(bom.components[4]?.properties, [
      { name: 'berth:ecosystem', value: 'Debian:12' },
      { name: 'berth:layer', value: img.layers[0] },
      { name: 'berth:path', value: '/var/lib/dpkg/status' },
      { name: 'berth:source', value: 'openssl@3.0.11-1~deb12u2' },
    ])
  })

  it('keeps both formats valid for an empty inventory and duplicate purls', () => {
    const inv: Inventory = { packages: [], notes: ['layer x of media type y is not a file system layer (not read)'] }
    const subject = { name: 'a/b', digest: `sha256:${'1'.repeat(64)}` }
    assert.ok(v.spdxValidate(toSpdx(inv, subject)), JSON.stringify(v.spdxValidate.errors))
    assert.ok(v.cdxValidate(toCycloneDx(inv, subject)), JSON.stringify(v.cdxValidate.errors))
    const p = { name: 'x', version: '1', ecosystem: 'npm', purl: 'pkg:npm/x@1', licenses: ['GPL-2.0-only WITH Classpath-exception-2.0'], layer: subject.digest, path: '/a' }
    const twice: Inventory = { packages: [p, { ...p, path: '/b' }], notes: [] }
    assert.ok(v.spdxValidate(toSpdx(twice, subject)), JSON.stringify(v.spdxValidate.errors))
    const bom = toCycloneDx(twice, subject) as { components: { 'bom-ref': string; licenses: unknown[] }[] }
    assert.ok(v.cdxValidate(bom), JSON.stringify(v.cdxValidate.errors))
    assert.deepEqual(bom.components.map((c) => c['bom-ref']), ['pkg:npm/x@1', 'pkg:npm/x@1#1'])
    assert.deepEqual(bom.components[0]?.licenses, [{ expression: 'GPL-2.0-only WITH Classpath-exception-2.0' }])
  })

  it('refuses a wrong format (400), an unknown digest (404), callers without pull (404, 401)', async () => {
    const path = `${base}/artifacts/${img.digest}/sbom`
    const bad = await api(s, 'GET', `${path}?format=xml`, guest)
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as { field: string }).field, 'format')
    assert.equal((await api(s, 'GET', `${base}/artifacts/sha256:${'0'.repeat(64)}/sbom`, guest)).status, 404)
    assert.equal((await api(s, 'GET', path, stranger)).status, 404)
    assert.equal((await api(s, 'GET', path, undefined)).status, 401)
    assert.equal((await api(s, 'POST', `${path}?format=spdx`, guest)).status, 403)
  })

  it('attaches both SBOMs as referrers (push needed), found by the referrers API and by oras discover', async () => {
    const path = `${base}/artifacts/${img.digest}/sbom`
    const spdx = await apiOk<{ digest: string; artifactType: string; subject: string }>(s, 'POST', `${path}?format=spdx&attach=true`, ADMIN, undefined, 201)
    assert.equal(spdx.artifactType, 'application/spdx+json')
    assert.equal(spdx.subject, img.digest)
    const cdx = await apiOk<{ digest: string; artifactType: string }>(s, 'POST', `${path}?format=cyclonedx`, ADMIN, undefined, 201)
    assert.equal(cdx.artifactType, 'application/vnd.cyclonedx+json')
    const res = await fetch(`${s.url}/v2/team/tools/app/referrers/${img.digest}`, { headers: { authorization: ADMIN } })
    const listed = ((await res.json()) as { manifests: { digest: string; artifactType: string }[] }).manifests
    assert.deepEqual(listed.map((m) => [m.digest, m.artifactType]).sort(), [[spdx.digest, 'application/spdx+json'], [cdx.digest, 'application/vnd.cyclonedx+json']].sort())
    // the stored SBOM is the document: its one layer validates
    const manifest = (await (await fetch(`${s.url}/v2/team/tools/app/manifests/${spdx.digest}`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as { layers: { digest: string }[] }
    const blob = await (await fetch(`${s.url}/v2/team/tools/app/blobs/${manifest.layers[0]?.digest}`, { headers: { authorization: ADMIN } })).json()
    assert.ok(v.spdxValidate(blob), JSON.stringify(v.spdxValidate.errors))

    const dir = await mkdtemp(join(tmpdir(), 'berth-sbom-oras-'))
    try {
      const oras = await orasIn(dir)
      await oras('login', '--plain-http', '-u', 'admin', '-p', ADMIN_PASSWORD, s.host)
      const { stdout } = await oras('discover', '--plain-http', '--format', 'json', `${s.host}/team/tools/app@${img.digest}`)
      const found = (JSON.parse(stdout) as { manifests?: { digest: string; artifactType: string }[]; referrers?: { digest: string; artifactType: string }[] })
      const refs = found.manifests ?? found.referrers ?? []
      assert.deepEqual(refs.map((m) => [m.digest, m.artifactType]).sort(), [[spdx.digest, 'application/spdx+json'], [cdx.digest, 'application/vnd.cyclonedx+json']].sort())
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
