import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { pushReferrer, vexDocument } from '../helpers/vex.js'
import { artifactPath, cyclonedxValidator, importOsv, OSV_V1, pushAppImage, scanned, type Report } from './scan-helpers.js'

// VEX over real HTTP: an OpenVEX document pushed as a referrer of an image (through the
// registry API) and a CycloneDX VEX document set on the project mark findings not_affected /
// fixed; the findings show it, the summary leaves them out, and the pull gate ignores them.

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
type VexFinding = Report['findings'][number] & { vex?: { status: string; justification?: string; impactStatement?: string; source: string } }
type VexReport = Omit<Report, 'findings'> & { findings: VexFinding[] }

async function pull(s: TestServer, repo: string, ref: string) {
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${ref}`, { headers: { authorization: ADMIN, accept: MANIFEST } })
  return { status: res.status, text: await res.text() }
}

describe('VEX: referrers and project documents mark findings, the pull gate honours them', () => {
  let s: TestServer
  let maintainer: string
  let dev: string
  let image: Awaited<ReturnType<typeof pushAppImage>>
  const path = () => `${artifactPath('prod', 'api', image.digest)}/vulnerabilities`

  before(async () => {
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    maintainer = await addUser(s, 'maint')
    dev = await addUser(s, 'dev')
    await apiOk(s, 'POST', '/projects/prod/members', ADMIN, { username: 'maint', role: 'maintainer' }, 201)
    await apiOk(s, 'POST', '/projects/prod/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await importOsv(s, OSV_V1)
    image = await pushAppImage(s, 'prod/api', '1.0')
    await apiOk(s, 'POST', `${artifactPath('prod', 'api', image.digest)}/scan`, dev, undefined, 202)
    const report = await scanned(s, 'prod', 'api', image.digest)
    assert.deepEqual(report.findings.map((f) => f.id), ['DSA-5621-1', 'GHSA-35jh-r3h4-6jhm'])
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', maintainer, { blockSeverity: 'high' })
  })
  after(() => s.close())

  it('an OpenVEX referrer marks the critical finding not_affected: shown, out of the summary, out of the gate', async () => {
    const before = await pull(s, 'prod/api', image.digest)
    assert.equal(before.status, 403)
    assert.match(before.text, /DSA-5621-1 \(critical\)/)
    // A statement about another image of the same name applies to nothing here.
    const other = `sha256:${'1'.repeat(64)}`
    await pushReferrer(s, 'prod/api', image, vexDocument([{ vulnerability: { name: 'GHSA-35jh-r3h4-6jhm' }, products: [{ '@id': `pkg:oci/api@${encodeURIComponent(other)}` }], status: 'not_affected', justification: 'component_not_present' }]), 'application/openvex+json')
    const referrer = await pushReferrer(
      s,
      'prod/api',
      image,
      vexDocument([
        {
          vulnerability: { name: 'CVE-2024-0727' },
          products: [{ '@id': `pkg:oci/api@${encodeURIComponent(image.digest)}`, subcomponents: [{ '@id': 'pkg:deb/debian/libssl3' }] }],
          status: 'not_affected',
          justification: 'vulnerable_code_not_in_execute_path',
          impact_statement: 'the PKCS12 parser is never called',
        },
      ]),
      'application/openvex+json',
    )
    const report = await apiOk<VexReport>(s, 'GET', path(), dev)
    const openssl = report.findings.find((f) => f.id === 'DSA-5621-1')
    assert.deepEqual(openssl?.vex, { status: 'not_affected', justification: 'vulnerable_code_not_in_execute_path', impactStatement: 'the PKCS12 parser is never called', source: `referrer ${referrer}` })
    assert.equal(report.findings.find((f) => f.id === 'GHSA-35jh-r3h4-6jhm')?.vex, undefined, 'a statement about another image does not apply')
    assert.deepEqual(report.summary, { critical: 0, high: 1, medium: 0, low: 0, unknown: 0 })
    const after = await pull(s, 'prod/api', image.digest)
    assert.equal(after.status, 403, 'lodash (high) still blocks')
    assert.match(after.text, /GHSA-35jh-r3h4-6jhm \(high\) in lodash 4\.17\.20/)
    assert.doesNotMatch(after.text, /DSA-5621-1/)
  })

  it('a CycloneDX VEX document set on the project marks lodash fixed: the pull goes through; removing it blocks again', async () => {
    const doc = {
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      version: 1,
      components: [{ type: 'library', 'bom-ref': 'lodash-1', name: 'lodash', version: '4.17.20', purl: 'pkg:npm/lodash@4.17.20' }],
      vulnerabilities: [{ id: 'CVE-2021-23337', analysis: { state: 'resolved', detail: 'patched in our build' }, affects: [{ ref: 'lodash-1' }] }],
    }
    assert.equal((await api(s, 'POST', '/projects/prod/vex', dev, doc)).status, 403, 'developers may not')
    const added = await apiOk<{ digest: string; format: string; statements: number }>(s, 'POST', '/projects/prod/vex', maintainer, doc, 201)
    assert.equal(added.format, 'cyclonedx')
    assert.equal(added.statements, 1)
    assert.deepEqual((await apiOk<{ digest: string }[]>(s, 'GET', '/projects/prod/vex', dev)).map((d) => d.digest), [added.digest])
    const report = await apiOk<VexReport>(s, 'GET', path(), dev)
    assert.deepEqual(report.findings.find((f) => f.package === 'lodash')?.vex, { status: 'fixed', impactStatement: 'patched in our build', source: `project ${added.digest}` })
    assert.deepEqual(report.summary, { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 })
    assert.equal((await pull(s, 'prod/api', image.digest)).status, 200)
    await apiOk(s, 'DELETE', `/projects/prod/vex/${added.digest}`, maintainer, undefined, 204)
    const blocked = await pull(s, 'prod/api', image.digest)
    assert.equal(blocked.status, 403)
    assert.match(blocked.text, /GHSA-35jh-r3h4-6jhm/)
    assert.equal((await api(s, 'DELETE', `/projects/prod/vex/${added.digest}`, maintainer)).status, 404)
  })

  it('a later statement supersedes an earlier one; bad documents are refused naming the problem', async () => {
    const later = await apiOk<{ digest: string }>(
      s,
      'POST',
      '/projects/prod/vex',
      maintainer,
      vexDocument([
        { vulnerability: { name: 'CVE-2021-23337' }, products: [{ '@id': 'pkg:npm/lodash' }], status: 'not_affected', justification: 'vulnerable_code_not_present', timestamp: '2026-11-01T00:00:00Z' },
        { vulnerability: { name: 'CVE-2021-23337' }, products: [{ '@id': 'pkg:npm/lodash@4.17.20' }], status: 'affected', timestamp: '2026-11-02T00:00:00Z' },
      ]),
      201,
    )
    const report = await apiOk<VexReport>(s, 'GET', path(), dev)
    assert.equal(report.findings.find((f) => f.package === 'lodash')?.vex?.status, 'affected')
    assert.equal((await pull(s, 'prod/api', image.digest)).status, 403)
    await apiOk(s, 'DELETE', `/projects/prod/vex/${later.digest}`, maintainer, undefined, 204)
    for (const [bad, why] of [
      [vexDocument([{ vulnerability: { name: 'CVE-1' }, status: 'not_affected' }]), /without a justification/],
      [vexDocument([{ vulnerability: { name: 'CVE-1' }, status: 'gone' }]), /status must be one of/],
      [{ hello: 'world' }, /neither OpenVEX .* nor CycloneDX/],
      [{ bomFormat: 'CycloneDX', vulnerabilities: [{ id: 'CVE-1', analysis: { state: 'maybe' } }] }, /analysis\.state must be one of/],
    ] as const) {
      const res = await api(s, 'POST', '/projects/prod/vex', maintainer, bad)
      assert.equal(res.status, 400)
      assert.match(((await res.json()) as { detail: string }).detail, why)
    }
  })

  it('the CycloneDX VEX export carries the statement of each finding: state, justification, detail, source; without one, in_triage', async () => {
    type CdxVuln = { 'bom-ref': string; id: string; analysis: { state: string; justification?: string; detail?: string }; affects: { ref: string; versions: { version: string; status: string }[] }[]; properties?: { name: string; value: string }[] }
    const exported = async () => {
      const res = await api(s, 'GET', `${path()}?format=cyclonedx-vex`, dev)
      assert.equal(res.status, 200)
      const bom = (await res.json()) as { vulnerabilities: CdxVuln[] }
      const validate = cyclonedxValidator()
      assert.ok(validate(bom), JSON.stringify(validate.errors))
      return bom.vulnerabilities
    }
    const doc = {
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      version: 1,
      components: [{ type: 'library', 'bom-ref': 'lodash-1', name: 'lodash', purl: 'pkg:npm/lodash@4.17.20' }],
      vulnerabilities: [{ id: 'GHSA-35jh-r3h4-6jhm', analysis: { state: 'not_affected', justification: 'protected_at_runtime', detail: 'templates come from the image only' }, affects: [{ ref: 'lodash-1' }] }],
    }
    const added = await apiOk<{ digest: string }>(s, 'POST', '/projects/prod/vex', maintainer, doc, 201)
    const report = await apiOk<VexReport>(s, 'GET', path(), dev)
    const referrer = report.findings.find((f) => f.id === 'DSA-5621-1')?.vex?.source
    assert.match(referrer ?? '', /^referrer sha256:/)
    const libssl = 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12'
    assert.deepEqual(
      (await exported()).map((v) => [v['bom-ref'], v.analysis, v.affects, v.properties]),
      [
        // the OpenVEX referrer's vulnerable_code_not_in_execute_path is CycloneDX's code_not_reachable
        ['DSA-5621-1', { state: 'not_affected', justification: 'code_not_reachable', detail: 'the PKCS12 parser is never called' }, [{ ref: libssl, versions: [{ version: '3.0.11-1~deb12u2', status: 'unaffected' }] }], [{ name: 'berth:vex:source', value: referrer }]],
        ['GHSA-35jh-r3h4-6jhm', { state: 'not_affected', justification: 'protected_at_runtime', detail: 'templates come from the image only' }, [{ ref: 'pkg:npm/lodash@4.17.20', versions: [{ version: '4.17.20', status: 'unaffected' }] }], [{ name: 'berth:vex:source', value: `project ${added.digest}` }]],
      ],
    )
    await apiOk(s, 'DELETE', `/projects/prod/vex/${added.digest}`, maintainer, undefined, 204)
    const affected = await apiOk<{ digest: string }>(s, 'POST', '/projects/prod/vex', maintainer, vexDocument([{ vulnerability: { name: 'GHSA-35jh-r3h4-6jhm' }, products: [{ '@id': 'pkg:npm/lodash' }], status: 'affected', action_statement: 'upgrade' }]), 201)
    assert.deepEqual((await exported()).find((v) => v.id === 'GHSA-35jh-r3h4-6jhm')?.analysis, { state: 'exploitable' })
    await apiOk(s, 'DELETE', `/projects/prod/vex/${affected.digest}`, maintainer, undefined, 204)
    const lodash = (await exported()).find((v) => v.id === 'GHSA-35jh-r3h4-6jhm')
    assert.deepEqual([lodash?.analysis, lodash?.affects[0]?.versions, lodash?.properties], [{ state: 'in_triage' }, [{ version: '4.17.20', status: 'affected' }], undefined])
  })
})
