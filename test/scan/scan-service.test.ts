import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { parseDigest } from '../../src/oci/digest.js'
import { blobPath } from '../../src/storage/paths.js'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { pushBlobAs } from '../helpers/layers.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { artifactPath, cyclonedxValidator, importOsv, OSV_V1, OSV_V2, pushAppImage, pushIndex, scanned, type Report } from './scan-helpers.js'

// Scans through the API of a real server: images built here from generated dpkg and npm
// databases, an OSV database imported through the vulnerability database's import. Exact
// findings, SARIF and CycloneDX VEX, index platforms, bounded concurrency, and the re-match of
// stored inventories after a new database without reading a layer.

describe('vulnerability scans', () => {
  let s: TestServer
  let dev: string
  let guest: string
  let stranger: string
  let app: Awaited<ReturnType<typeof pushAppImage>>
  let v1: string

  before(async () => {
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'apps', public: false }, 201)
    dev = await addUser(s, 'dev')
    guest = await addUser(s, 'guest')
    stranger = await addUser(s, 'stranger')
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'guest', role: 'guest' }, 201)
    v1 = await importOsv(s, OSV_V1)
    app = await pushAppImage(s, 'apps/tools/web', '1.0')
  })
  after(() => s.close())

  it('a developer scans an image (a guest may not); the findings are exact', async () => {
    const path = artifactPath('apps', 'tools/web', app.digest)
    const never = await api(s, 'GET', `${path}/vulnerabilities`, dev)
    assert.equal(never.status, 404, 'never scanned')
    assert.match(((await never.json()) as { detail: string }).detail, /has not been scanned/)
    assert.equal((await api(s, 'POST', `${path}/scan`, guest)).status, 403)
    assert.equal((await api(s, 'POST', `${path}/scan`, stranger)).status, 404, 'a non-member does not learn the project exists')
    const { id } = await apiOk<{ id: string }>(s, 'POST', `${path}/scan`, dev, undefined, 202)
    assert.match(id, /^[0-9a-f-]{36}$/)
    const report = await scanned(s, 'apps', 'tools/web', app.digest, guest)
    assert.equal(report.status, 'done')
    assert.equal(report.database, v1)
    assert.ok(report.scannedAt && !Number.isNaN(Date.parse(report.scannedAt)))
    assert.deepEqual(report.summary, { critical: 1, high: 1, medium: 0, low: 0, unknown: 0 })
    const brief = report.findings.map((f) => ({ id: f.id, aliases: f.aliases, package: f.package, version: f.version, fixedVersion: f.fixedVersion, severity: f.severity, layer: f.layer }))
    assert.deepEqual(brief, [
      // express 4.18.2 is past the fix of its advisory; the withdrawn zlib advisory counts for nothing
      { id: 'DSA-5621-1', aliases: ['CVE-2024-0727'], package: 'libssl3', version: '3.0.11-1~deb12u2', fixedVersion: '3.0.13-1~deb12u1', severity: 'critical', layer: app.layers[0] },
      { id: 'GHSA-35jh-r3h4-6jhm', aliases: ['CVE-2021-23337'], package: 'lodash', version: '4.17.20', fixedVersion: '4.17.21', severity: 'high', layer: app.layers[1] },
    ])
    // by tag too
    const byTag = await apiOk<Report>(s, 'GET', `${artifactPath('apps', 'tools/web', '1.0')}/vulnerabilities`, dev)
    assert.deepEqual(byTag.findings, report.findings)
  })

  it('exports SARIF 2.1.0 and CycloneDX 1.6 VEX (valid against its schema)', async () => {
    const path = `${artifactPath('apps', 'tools/web', app.digest)}/vulnerabilities`
    const sarifRes = await api(s, 'GET', `${path}?format=sarif`, dev)
    assert.equal(sarifRes.status, 200)
    assert.match(sarifRes.headers.get('content-type') ?? '', /application\/sarif\+json/)
    const sarif = (await sarifRes.json()) as { version: string; runs: { tool: { driver: { name: string; rules: { id: string; helpUri: string }[] } }; results: { ruleId: string; level: string; ruleIndex: number; locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }[] }[] }
    assert.equal(sarif.version, '2.1.0')
    const [run] = sarif.runs
    assert.ok(run)
    assert.deepEqual(run.tool.driver.rules.map((r) => r.id), ['DSA-5621-1', 'GHSA-35jh-r3h4-6jhm'])
    assert.deepEqual(run.results.map((r) => [r.ruleId, r.level, r.ruleIndex]), [['DSA-5621-1', 'error', 0], ['GHSA-35jh-r3h4-6jhm', 'error', 1]])
    assert.equal(run.results[0]?.locations[0]?.physicalLocation.artifactLocation.uri, `apps/tools/web@${app.digest}`)

    const vexRes = await api(s, 'GET', `${path}?format=cyclonedx-vex`, dev)
    assert.equal(vexRes.status, 200)
    const vex = (await vexRes.json()) as { vulnerabilities: { id: string; affects: { ref: string }[]; ratings: { severity: string }[] }[] }
    const validate = cyclonedxValidator()
    assert.ok(validate(vex), JSON.stringify(validate.errors))
    assert.deepEqual(vex.vulnerabilities.map((v) => [v.id, v.ratings[0]?.severity, v.affects[0]?.ref]), [
      ['DSA-5621-1', 'critical', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12'],
      ['GHSA-35jh-r3h4-6jhm', 'high', 'pkg:npm/lodash@4.17.20'],
    ])
    assert.equal((await api(s, 'GET', `${path}?format=xml`, dev)).status, 400)
  })

  it('refuses to scan what is no image, and unknown artifacts', async () => {
    const config = Buffer.from('{}')
    const configDigest = await pushBlobAs(s, 'apps/tools/web', config, ADMIN)
    const layer = Buffer.from('a signature payload')
    const layerDigest = await pushBlobAs(s, 'apps/tools/web', layer, ADMIN)
    const artifact = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.sig', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: configDigest, size: config.length }, layers: [{ mediaType: 'application/vnd.example.sig', digest: layerDigest, size: layer.length }] }))
    const put = await fetch(`${s.url}/v2/apps/tools/web/manifests/sig`, { method: 'PUT', body: asBody(artifact), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', authorization: ADMIN } })
    assert.equal(put.status, 201)
    const res = await api(s, 'POST', `${artifactPath('apps', 'tools/web', sha256(artifact))}/scan`, dev)
    assert.equal(res.status, 422)
    assert.match(((await res.json()) as { detail: string }).detail, /nothing to scan/)
    const unknown = await api(s, 'POST', `${artifactPath('apps', 'tools/web', `sha256:${'0'.repeat(64)}`)}/scan`, dev)
    assert.equal(unknown.status, 404)
  })

  it('an index scans each platform; scans run at most scan.concurrency (1) at a time', async () => {
    const amd = await pushAppImage(s, 'apps/multi', 'amd64', { lodash: '4.17.21' })
    const arm = await pushAppImage(s, 'apps/multi', 'arm64', { openssl: '3.0.13-1~deb12u1' })
    const index = await pushIndex(s, 'apps/multi', '2.0', [{ ...amd, architecture: 'amd64' }, { ...arm, architecture: 'arm64' }])
    const other = await pushAppImage(s, 'apps/other', '1', { openssl: '3.0.9-1', lodash: '4.17.0' })
    let maxRunning = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const statuses = await Promise.all([index.digest, other.digest].map(async (d) => (await s.app.scan.service.report(d).catch(() => undefined))?.status))
        const running = (await s.app.jobs.list({ kind: 'scan', status: 'running' }, 100, 0)).length
        maxRunning = Math.max(maxRunning, running, statuses.filter((x) => x === 'running').length)
        await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await apiOk(s, 'POST', `${artifactPath('apps', 'multi', index.digest)}/scan`, dev, undefined, 202)
    await apiOk(s, 'POST', `${artifactPath('apps', 'other', other.digest)}/scan`, dev, undefined, 202)
    const report = await scanned(s, 'apps', 'multi', '2.0')
    await scanned(s, 'apps', 'other', other.digest)
    sampling = false
    await sampler
    assert.equal(maxRunning, 1, 'one scan at a time')
    assert.deepEqual(report.findings.map((f) => [f.platform, f.id, f.package]), [
      ['linux/amd64', 'DSA-5621-1', 'libssl3'],
      ['linux/arm64', 'GHSA-35jh-r3h4-6jhm', 'lodash'],
    ])
    assert.deepEqual(report.summary, { critical: 1, high: 1, medium: 0, low: 0, unknown: 0 })
    // each platform has its own result (a pull by the platform's digest is judged on it)
    const amdReport = await scanned(s, 'apps', 'multi', amd.digest)
    assert.deepEqual(amdReport.findings.map((f) => f.id), ['DSA-5621-1'])
  })

  it('a new database re-matches every stored inventory without reading a layer; nothing when neither changed', async () => {
    assert.equal(await s.app.scan.watch.check(), undefined, 'nothing outdated: nothing queued')
    // The layers are gone from storage: a re-match can only use the stored inventories.
    for (const digest of app.layers) {
      const d = parseDigest(digest)
      assert.ok(typeof d !== 'string')
      await s.app.storage.delete(blobPath(d.algorithm, d.hex))
    }
    const v2 = await importOsv(s, OSV_V2)
    assert.notEqual(v2, v1)
    const job = await s.app.scan.watch.check()
    assert.ok(job, 'a re-match was queued')
    let report: Report | undefined
    await eventually(async () => {
      report = await apiOk<Report>(s, 'GET', `${artifactPath('apps', 'tools/web', app.digest)}/vulnerabilities`, dev)
      return report.database === v2
    }, 'the re-match', 20_000)
    assert.equal(report?.status, 'done')
    assert.deepEqual(report?.findings.map((f) => [f.id, f.package, f.severity]), [
      ['DSA-5621-1', 'libssl3', 'critical'],
      ['GHSA-35jh-r3h4-6jhm', 'lodash', 'high'],
      ['DSA-5700-1', 'zlib1g', 'medium'],
    ])
    assert.deepEqual(report?.summary, { critical: 1, high: 1, medium: 1, low: 0, unknown: 0 })
    // the index was re-combined from its re-matched platforms
    await eventually(async () => (await apiOk<Report>(s, 'GET', `${artifactPath('apps', 'multi', '2.0')}/vulnerabilities`, dev)).database === v2, 'the index re-combined', 20_000)
    const index = await apiOk<Report>(s, 'GET', `${artifactPath('apps', 'multi', '2.0')}/vulnerabilities`, dev)
    assert.equal(index.summary.medium, 2, 'zlib in both platforms')
    await eventually(async () => (await s.app.jobs.get(job))?.status === 'succeeded' || (await s.app.scan.queue.get(job))?.status === 'succeeded', 'the re-match job')
    assert.equal(await s.app.scan.watch.check(), undefined, 'neither changed: nothing queued again')
  })

  it('scan on push follows the project policy', async () => {
    await apiOk(s, 'PUT', '/projects/apps/scan-policy', ADMIN, { scanOnPush: true })
    const pushed = await pushAppImage(s, 'apps/auto', 'v1', { lodash: '4.17.19' })
    const report = await scanned(s, 'apps', 'auto', pushed.digest)
    assert.equal(report.status, 'done')
    assert.ok(report.findings.some((f) => f.id === 'GHSA-35jh-r3h4-6jhm' && f.version === '4.17.19'))
    await apiOk(s, 'PUT', '/projects/apps/scan-policy', ADMIN, { scanOnPush: false })
    const quiet = await pushAppImage(s, 'apps/auto', 'v2', { lodash: '4.17.18' })
    // a later explicit scan proves the queue ran; this one was never queued
    const probe = await pushAppImage(s, 'apps/auto', 'v3', { lodash: '4.17.17' })
    await apiOk(s, 'POST', `${artifactPath('apps', 'auto', probe.digest)}/scan`, dev, undefined, 202)
    await scanned(s, 'apps', 'auto', probe.digest)
    assert.equal((await api(s, 'GET', `${artifactPath('apps', 'auto', quiet.digest)}/vulnerabilities`, dev)).status, 404)
  })
})
