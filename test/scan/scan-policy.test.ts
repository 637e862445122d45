import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { pushBlobAs } from '../helpers/layers.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { artifactPath, importOsv, OSV_V1, pushAppImage, scanned } from './scan-helpers.js'

// Scan policies and the pull gate over real HTTP: a manifest GET of an image with findings at
// or above blockSeverity is refused with DENIED naming the worst finding and how to allow it;
// project and system allowlists (with expiry) allow it; unscanned images follow
// blockUnscanned; HEAD is never gated; decisions are cached until a result or policy changes.

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

async function pull(s: TestServer, repo: string, ref: string, method = 'GET') {
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${ref}`, { method, headers: { authorization: ADMIN, accept: MANIFEST } })
  const text = await res.text()
  return { status: res.status, text }
}

describe('scan policies and the pull gate', () => {
  let s: TestServer
  let maintainer: string
  let dev: string
  let image: Awaited<ReturnType<typeof pushAppImage>>

  before(async () => {
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'free', public: false }, 201)
    maintainer = await addUser(s, 'maint')
    dev = await addUser(s, 'dev')
    await apiOk(s, 'POST', '/projects/prod/members', ADMIN, { username: 'maint', role: 'maintainer' }, 201)
    await apiOk(s, 'POST', '/projects/prod/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await importOsv(s, OSV_V1)
    image = await pushAppImage(s, 'prod/api', '1.0')
    await apiOk(s, 'POST', `${artifactPath('prod', 'api', image.digest)}/scan`, dev, undefined, 202)
    await scanned(s, 'prod', 'api', image.digest)
  })
  after(() => s.close())

  it('reads and writes the policy exactly as given; bad bodies name their field; developers may not change it', async () => {
    assert.deepEqual(await apiOk(s, 'GET', '/projects/prod/scan-policy', dev), { scanOnPush: false, blockSeverity: 'none', blockUnscanned: false, allowlist: [] })
    assert.equal((await api(s, 'PUT', '/projects/prod/scan-policy', dev, { blockSeverity: 'high' })).status, 403)
    const bad: [unknown, string][] = [
      [{ blockSeverity: 'severe' }, 'blockSeverity'],
      [{ scanOnPush: 'yes' }, 'scanOnPush'],
      [{ allowlist: [{ id: 'CVE-2024-0727', expiresAt: 'tomorrow' }] }, 'allowlist[0].expiresAt'],
      [{ allowlist: [{ id: '' }] }, 'allowlist[0].id'],
      [{ allow: [] }, 'allow'],
    ]
    for (const [body, field] of bad) {
      const res = await api(s, 'PUT', '/projects/prod/scan-policy', maintainer, body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(((await res.json()) as { field: string }).field, field)
    }
    const policy = { scanOnPush: true, blockSeverity: 'high', blockUnscanned: false, allowlist: [{ id: 'CVE-2099-0001', expiresAt: '2099-01-01T00:00:00.000Z' }] }
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/prod/scan-policy', maintainer, policy), policy)
    assert.deepEqual(await apiOk(s, 'GET', '/projects/prod/scan-policy', dev), policy)
    assert.equal((await api(s, 'PUT', '/projects/nosuch/scan-policy', ADMIN, policy)).status, 404)
    assert.equal((await api(s, 'PUT', '/scan-policy', maintainer, { allowlist: [] })).status, 403, 'system allowlist: system admins only')
  })

  it('a pull of an image with a finding at or above blockSeverity is refused, naming the worst and how to allow it; HEAD is not gated', async () => {
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high' })
    for (const ref of ['1.0', image.digest]) {
      const res = await pull(s, 'prod/api', ref)
      assert.equal(res.status, 403, ref)
      const body = JSON.parse(res.text) as { errors: { code: string; message: string }[] }
      assert.equal(body.errors[0]?.code, 'DENIED')
      const message = body.errors[0]?.message ?? ''
      assert.match(message, /DSA-5621-1 \(critical\) in libssl3 3\.0\.11-1~deb12u2, fixed in 3\.0\.13-1~deb12u1 and 1 more vulnerability at or above high/)
      assert.match(message, /allowlist \(PUT \/api\/v1\/projects\/prod\/scan-policy\)/)
      assert.match(message, /system allowlist \(PUT \/api\/v1\/scan-policy\)/)
    }
    assert.equal((await pull(s, 'prod/api', '1.0', 'HEAD')).status, 200)
  })

  it('allowlists allow it: by id or alias, project or system, until they expire', async () => {
    // the critical one by its CVE alias: the high lodash one still blocks
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high', allowlist: [{ id: 'CVE-2024-0727' }] })
    let res = await pull(s, 'prod/api', '1.0')
    assert.equal(res.status, 403)
    assert.match(res.text, /GHSA-35jh-r3h4-6jhm \(high\) in lodash 4\.17\.20, fixed in 4\.17\.21\./)
    // an expired entry counts for nothing
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high', allowlist: [{ id: 'CVE-2024-0727' }, { id: 'GHSA-35jh-r3h4-6jhm', expiresAt: '2020-01-01T00:00:00Z' }] })
    assert.equal((await pull(s, 'prod/api', '1.0')).status, 403)
    // the system allowlist covers the rest
    await apiOk(s, 'PUT', '/scan-policy', ADMIN, { allowlist: [{ id: 'CVE-2021-23337', expiresAt: '2099-12-31T00:00:00Z' }] })
    assert.deepEqual(await apiOk(s, 'GET', '/scan-policy', dev), { allowlist: [{ id: 'CVE-2021-23337', expiresAt: '2099-12-31T00:00:00.000Z' }] })
    res = await pull(s, 'prod/api', '1.0')
    assert.equal(res.status, 200, res.text)
    // an allowlist entry that expires while the decision is cached stops allowing at its expiry
    const soon = new Date(Date.now() + 400).toISOString()
    await apiOk(s, 'PUT', '/scan-policy', ADMIN, { allowlist: [{ id: 'CVE-2021-23337', expiresAt: soon }] })
    assert.equal((await pull(s, 'prod/api', '1.0')).status, 200)
    await new Promise((r) => setTimeout(r, Date.parse(soon) - Date.now() + 50))
    assert.equal((await pull(s, 'prod/api', '1.0')).status, 403)
    // raising blockSeverity above the worst allows it too
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'critical', allowlist: [{ id: 'DSA-5621-1' }] })
    assert.equal((await pull(s, 'prod/api', '1.0')).status, 200)
  })

  it('the decision is cached (answered synchronously) and dropped when a result or the policy changes', async () => {
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high' })
    const gate = s.app.scan.gate
    const first = await gate.check('prod/api', image.digest, MANIFEST)
    assert.equal(first?.code, 'DENIED')
    // a write landing while the first decision was made leaves it uncached: decide once more
    await gate.check('prod/api', image.digest, MANIFEST)
    const cached = gate.check('prod/api', image.digest, MANIFEST)
    assert.ok(!(cached instanceof Promise), 'the second answer comes from memory')
    assert.equal(cached?.code, 'DENIED')
    // a project without a blocking policy never waits
    assert.equal(gate.check('free/x', image.digest, MANIFEST), undefined)
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high', allowlist: [{ id: 'DSA-5621-1' }, { id: 'GHSA-35jh-r3h4-6jhm' }] })
    assert.equal(await gate.check('prod/api', image.digest, MANIFEST), undefined, 'the policy change was seen')
  })

  it('unscanned images follow blockUnscanned; artifacts with nothing to scan are never unscanned', async () => {
    const fresh = await pushAppImage(s, 'prod/fresh', '1', { lodash: '4.17.21', openssl: '3.0.13-1~deb12u1' })
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high', blockUnscanned: false })
    assert.equal((await pull(s, 'prod/fresh', '1')).status, 200, 'unscanned but not blocked')
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'none', blockUnscanned: true })
    const res = await pull(s, 'prod/fresh', '1')
    assert.equal(res.status, 403)
    assert.match(res.text, /it was never scanned, and unscanned artifacts are blocked \(blockUnscanned\)/)
    assert.match(res.text, /POST \/api\/v1\/projects\/prod\/repositories\/\{repository\}\/artifacts\/sha256:[0-9a-f]{64}\/scan/)
    // a signature-like artifact has nothing to scan
    const config = Buffer.from('{}')
    const configDigest = await pushBlobAs(s, 'prod/fresh', config, ADMIN)
    const artifact = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, artifactType: 'application/vnd.example.sig', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: configDigest, size: config.length }, layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: configDigest, size: config.length }] }))
    const put = await fetch(`${s.url}/v2/prod/fresh/manifests/sig`, { method: 'PUT', body: asBody(artifact), headers: { 'content-type': MANIFEST, authorization: ADMIN } })
    assert.equal(put.status, 201)
    assert.equal((await pull(s, 'prod/fresh', sha256(artifact))).status, 200)
    // once scanned (clean), allowed
    await apiOk(s, 'POST', `${artifactPath('prod', 'fresh', fresh.digest)}/scan`, dev, undefined, 202)
    const report = await scanned(s, 'prod', 'fresh', fresh.digest)
    assert.deepEqual(report.findings, [])
    assert.equal((await pull(s, 'prod/fresh', '1')).status, 200)
  })
})
