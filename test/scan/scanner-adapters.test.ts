import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import type { TestServer } from '../helpers/server.js'
import { vexDocument } from '../helpers/vex.js'
import { artifactPath, pushAppImage, scanned, type Report } from './scan-helpers.js'
import { REPORT_TYPE, SCAN_REQUEST_TYPE, startAdapter, type TestAdapter } from './scanner-adapter.js'

// Harbor's Pluggable Scanner API, Berth's side, against a test adapter that implements the
// adapter's side: registration (system admins), a project's choice of scanner, GET /metadata,
// POST /scan with the registry URL and a pull token for exactly that repository, the report
// polled through 302 + Refresh-After with the v1.1 report media type, findings stored and gated
// like Berth's own; an adapter error and an adapter that never answers fail the scan with the
// reason.

const API_KEY = 'adapter-key-123'
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const VULNERABILITIES = [
  { id: 'CVE-2024-0001', package: 'openssl', version: '3.0.11', fix_version: '3.0.13', severity: 'Critical', description: 'buffer overflow\nin a parser' },
  // named as the image's dpkg database names it (the binary package and its full version), as Trivy's adapter does
  { id: 'CVE-2024-0002', package: 'zlib1g', version: '1:1.2.13.dfsg-1+b1', severity: 'Negligible' },
  { id: 'CVE-2024-0003', package: 'lodash', version: '4.17.20', fix_version: '4.17.21', severity: 'Medium' },
]

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { access: unknown; exp: number; iat: number; sub: string }

describe('external scanners (Harbor pluggable scanner API)', () => {
  let s: TestServer
  let adapter: TestAdapter
  let maintainer: string

  before(async () => {
    adapter = await startAdapter({ apiKey: API_KEY, modes: { fake: 'ok', broken: 'error', slow: 'never' }, vulnerabilities: VULNERABILITIES, otherRepository: 'team/other' })
    s = await startAuthServer({ scan: { rematchInterval: '0s', adapterTimeout: '4s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    maintainer = await addUser(s, 'maint')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'maint', role: 'maintainer' }, 201)
  })
  after(async () => {
    await s?.close()
    await adapter?.close()
  })

  it('registers adapters (system admins only), never shows the credential, checks the fields', async () => {
    const body = { name: 'fake', url: adapter.url('fake'), auth: 'X-ScannerAdapter-API-Key', accessCredential: API_KEY }
    assert.equal((await api(s, 'POST', '/scanners', maintainer, body)).status, 403)
    const created = await apiOk<Record<string, unknown>>(s, 'POST', '/scanners', ADMIN, body, 201)
    assert.deepEqual({ ...created, createdAt: undefined, updatedAt: undefined }, { name: 'fake', url: adapter.url('fake'), auth: 'X-ScannerAdapter-API-Key', hasCredential: true, default: false, createdAt: undefined, updatedAt: undefined })
    assert.equal((await api(s, 'POST', '/scanners', ADMIN, body)).status, 409)
    for (const [bad, field] of [
      [{ ...body, name: 'berth' }, 'name'],
      [{ ...body, name: 'x1', url: 'ftp://host' }, 'url'],
      [{ ...body, name: 'x1', url: `${adapter.url('fake')}/api/v1` }, 'url'],
      [{ ...body, name: 'x1', auth: 'Digest' }, 'auth'],
      [{ name: 'x1', url: adapter.url('fake'), auth: 'Bearer' }, 'accessCredential'],
      [{ ...body, name: 'x1', extra: 1 }, 'extra'],
    ] as const) {
      const res = await api(s, 'POST', '/scanners', ADMIN, bad)
      assert.equal(res.status, 400, JSON.stringify(bad))
      assert.equal(((await res.json()) as { field: string }).field, field)
    }
    await apiOk(s, 'POST', '/scanners', ADMIN, { name: 'broken', url: adapter.url('broken'), auth: 'X-ScannerAdapter-API-Key', accessCredential: API_KEY }, 201)
    await apiOk(s, 'POST', '/scanners', ADMIN, { name: 'slow', url: adapter.url('slow'), auth: 'X-ScannerAdapter-API-Key', accessCredential: API_KEY }, 201)
    const list = await apiOk<{ name: string }[]>(s, 'GET', '/scanners', ADMIN)
    assert.deepEqual(list.map((x) => x.name), ['broken', 'fake', 'slow'])
    assert.ok(!JSON.stringify(list).includes(API_KEY), 'the credential never comes back')
    assert.equal((await api(s, 'GET', '/scanners', maintainer)).status, 403)
    const metadata = await apiOk<{ scanner: { name: string; version: string } }>(s, 'GET', '/scanners/fake/metadata', ADMIN)
    assert.deepEqual(metadata.scanner, { name: 'Fakescan', vendor: 'Berth tests', version: '1.2.3' })
    assert.ok(adapter.requests.some((r) => r.adapter === 'fake' && r.path === '/metadata' && r.apiKey === API_KEY))
  })

  it('a project chooses its scanner (maintainers); without a choice the built-in scanner serves', async () => {
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/scanner', maintainer), { name: 'berth', source: 'builtin' })
    assert.equal((await api(s, 'PUT', '/projects/team/scanner', maintainer, { name: 'nothere' })).status, 404)
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/team/scanner', maintainer, { name: 'fake' }), { name: 'fake', source: 'project' })
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/scanner', maintainer), { name: 'fake', source: 'project' })
    const res = await api(s, 'DELETE', '/scanners/fake', ADMIN)
    assert.equal(res.status, 409, 'a scanner a project uses stays')
    assert.match(((await res.json()) as { detail: string }).detail, /team/)
  })

  it('scans through the adapter: metadata, scan request with a pull token for exactly that repository, 302 then the v1.1 report; findings stored like Berth\'s own', async () => {
    const image = await pushAppImage(s, 'team/app', '1.0')
    const job = await apiOk<{ id: string }>(s, 'POST', `${artifactPath('team', 'app', image.digest)}/scan`, maintainer, undefined, 202)
    assert.ok(job.id)
    const report = await scanned(s, 'team', 'app', image.digest, maintainer)
    assert.equal(report.status, 'done', report.error)
    assert.equal((report as Report & { scanner?: string }).scanner, 'fake')
    assert.equal(report.database, 'Fakescan 1.2.3 (database 2026-12-01T00:00:00Z)')
    assert.deepEqual(report.summary, { critical: 1, high: 0, medium: 1, low: 1, unknown: 0 })
    const seen = adapter.scans().filter((x) => x.adapter === 'fake')
    assert.equal(seen.length, 1)
    const scan = seen[0]!
    const manifest = JSON.parse(image.manifest.toString('utf8')) as { layers: { digest: string }[] }
    assert.deepEqual(
      report.findings.map((f) => [f.id, f.package, f.version, f.fixedVersion, f.severity, f.layer]),
      [
        ['CVE-2024-0001', 'openssl', '3.0.11', '3.0.13', 'critical', manifest.layers[0]!.digest],
        ['CVE-2024-0003', 'lodash', '4.17.20', '4.17.21', 'medium', manifest.layers[0]!.digest],
        ['CVE-2024-0002', 'zlib1g', '1:1.2.13.dfsg-1+b1', null, 'low', manifest.layers[0]!.digest],
      ],
    )
    // The report gives no purls: a finding takes the purl and ecosystem of the image's package of
    // that name and version, as its SBOM names it; openssl 3.0.11 is no package of the image.
    const sbom = await apiOk<{ components: { name: string; purl: string }[] }>(s, 'GET', `${artifactPath('team', 'app', image.digest)}/sbom?format=cyclonedx`, maintainer)
    const purlOf = (name: string) => sbom.components.find((c) => c.name === name)?.purl
    assert.equal(purlOf('lodash'), 'pkg:npm/lodash@4.17.20')
    assert.match(purlOf('zlib1g') ?? '', /^pkg:deb\/debian\/zlib1g@.*distro=debian-12/)
    const withEcosystem = report.findings as (Report['findings'][number] & { ecosystem: string })[]
    assert.deepEqual(withEcosystem.map((f) => [f.package, f.purl, f.ecosystem]), [['openssl', '', ''], ['lodash', purlOf('lodash'), 'npm'], ['zlib1g', purlOf('zlib1g'), 'Debian:12']])
    // so they join package queries and VEX statements by purl
    const hits = await apiOk<{ artifacts: { digest: string }[] }>(s, 'GET', `/packages?purl=${encodeURIComponent('pkg:npm/lodash')}`, ADMIN)
    assert.deepEqual(hits.artifacts.map((a) => a.digest), [image.digest])
    const vex = await apiOk<{ digest: string }>(s, 'POST', '/projects/team/vex', maintainer, vexDocument([{ vulnerability: { name: 'CVE-2024-0003' }, products: [{ '@id': 'pkg:npm/lodash@4.17.20' }], status: 'not_affected', justification: 'vulnerable_code_not_in_execute_path' }], 'https://example.com/vex/2'), 201)
    const marked = await apiOk<Omit<Report, 'findings'> & { findings: { package: string; vex?: { status: string } }[] }>(s, 'GET', `${artifactPath('team', 'app', image.digest)}/vulnerabilities`, maintainer)
    assert.deepEqual(marked.findings.map((f) => [f.package, f.vex?.status]), [['openssl', undefined], ['lodash', 'not_affected'], ['zlib1g', undefined]])
    assert.deepEqual(marked.summary, { critical: 1, high: 0, medium: 0, low: 1, unknown: 0 })
    await apiOk(s, 'DELETE', `/projects/team/vex/${vex.digest}`, maintainer, undefined, 204)
    assert.equal((report.findings[0] as { summary?: string }).summary, 'buffer overflow')
    // The request, as the spec says it.
    assert.equal(scan.contentType, SCAN_REQUEST_TYPE)
    assert.equal(scan.request.registry.url, s.url)
    assert.deepEqual(scan.request.artifact, { repository: 'team/app', digest: image.digest, mime_type: MANIFEST })
    const token = scan.request.registry.authorization.replace(/^Bearer /, '')
    assert.notEqual(token, scan.request.registry.authorization, 'a Bearer token')
    const claims = claimsOf(token)
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }])
    assert.ok(claims.exp - claims.iat <= 4 + 60, `short-lived (${claims.exp - claims.iat} s)`)
    // The adapter pulled the manifest with it, and it opened nothing else.
    assert.deepEqual(scan.pull, { status: 200, digestMatches: true, firstLayer: manifest.layers[0]!.digest })
    assert.ok(scan.otherRepositoryStatus === 401 || scan.otherRepositoryStatus === 403, `another repository: ${scan.otherRepositoryStatus}`)
    const push = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: scan.request.registry.authorization } })
    assert.ok(push.status === 401 || push.status === 403, `no push with the pull token: ${push.status}`)
    // 302 with Refresh-After first, then the report; the v1.1 media type asked each time.
    assert.equal(scan.polls, 2)
    assert.deepEqual(scan.reportAccepts, [REPORT_TYPE, REPORT_TYPE])
    assert.ok(adapter.requests.filter((r) => r.adapter === 'fake').every((r) => r.apiKey === API_KEY))
    // Stored like Berth's own: the registry-wide query and the SARIF export see the findings.
    const byId = await apiOk<{ artifacts: { digest: string }[] }>(s, 'GET', '/vulnerabilities?id=CVE-2024-0001', ADMIN)
    assert.deepEqual(byId.artifacts.map((a) => a.digest), [image.digest])
    const sarif = await apiOk<{ runs: { results: unknown[] }[] }>(s, 'GET', `${artifactPath('team', 'app', image.digest)}/vulnerabilities?format=sarif`, maintainer)
    assert.equal(sarif.runs[0]!.results.length, 3)
  })

  it('the scan policy gates on the adapter\'s findings, and never gates the adapter\'s own pulls', async () => {
    await apiOk(s, 'PUT', '/projects/team/scan-policy', maintainer, { scanOnPush: true, blockSeverity: 'high', blockUnscanned: true })
    const first = await pushAppImage(s, 'team/app', '1.0')
    const refused = await fetch(`${s.url}/v2/team/app/manifests/${first.digest}`, { headers: { authorization: ADMIN, accept: MANIFEST } })
    assert.equal(refused.status, 403)
    assert.match(await refused.text(), /CVE-2024-0001 \(critical\) in openssl 3\.0\.11, fixed in 3\.0\.13/)
    // A new image, unscanned (blockUnscanned): scanned on push by the adapter, whose pull the gate lets through.
    const next = await pushAppImage(s, 'team/app', '2.0', { lodash: '4.17.21' })
    const report = await scanned(s, 'team', 'app', next.digest, maintainer)
    assert.equal(report.status, 'done', report.error)
    const scan = adapter.scans().find((x) => x.request.artifact.digest === next.digest)
    assert.equal(scan?.pull?.status, 200, 'the adapter pulled an unscanned image of a blockUnscanned project')
    await apiOk(s, 'PUT', '/projects/team/scan-policy', maintainer, { blockSeverity: 'none' })
  })

  it('an adapter error fails the scan with the adapter\'s message', async () => {
    await apiOk(s, 'PUT', '/projects/team/scanner', maintainer, { name: 'broken' })
    const image = await pushAppImage(s, 'team/broken', '1.0')
    await apiOk(s, 'POST', `${artifactPath('team', 'broken', image.digest)}/scan`, maintainer, undefined, 202)
    const report = await scanned(s, 'team', 'broken', image.digest, maintainer)
    assert.equal(report.status, 'failed')
    assert.match(report.error ?? '', /scanner broken: POST \/api\/v1\/scan answered 500: vulnerability database is locked/)
  })

  it('an adapter that never has the report fails the scan once scan.adapterTimeout is up', async () => {
    await apiOk(s, 'PUT', '/projects/team/scanner', maintainer, { name: 'slow' })
    const image = await pushAppImage(s, 'team/slow', '1.0')
    const started = Date.now()
    await apiOk(s, 'POST', `${artifactPath('team', 'slow', image.digest)}/scan`, maintainer, undefined, 202)
    const report = await scanned(s, 'team', 'slow', image.digest, maintainer)
    assert.equal(report.status, 'failed')
    assert.match(report.error ?? '', /scanner slow gave no report for scan request .* within 4 s \(scan\.adapterTimeout\)/)
    assert.ok(Date.now() - started >= 2_500, 'it polled until the time was up')
    const polls = adapter.scans().find((x) => x.adapter === 'slow' && x.request.artifact.digest === image.digest)?.polls ?? 0
    assert.ok(polls >= 3 && polls <= 6, `polled at the adapter's Refresh-After pace (${polls} polls)`)
  })

  it('clearing the choice falls back to the default scanner, then to the built-in one; an unused scanner is deleted', async () => {
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/team/scanner', maintainer, { name: null }), { name: 'berth', source: 'builtin' })
    await apiOk(s, 'POST', '/scanners', ADMIN, { name: 'other', url: adapter.url('fake'), auth: 'X-ScannerAdapter-API-Key', accessCredential: API_KEY, default: true }, 201)
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/scanner', maintainer), { name: 'other', source: 'default' })
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/team/scanner', maintainer, { name: 'berth' }), { name: 'berth', source: 'project' })
    await apiOk(s, 'DELETE', '/scanners/other', ADMIN, undefined, 204)
    assert.equal((await api(s, 'GET', '/scanners/other', ADMIN)).status, 404)
    await eventually(async () => (await api(s, 'GET', '/scanners', ADMIN)).ok, 'the list')
  })

  it('PATCH /scanners/{name}: system admins change the default, the credential, the URL and the authentication, checked as at registration', async () => {
    type View = { name: string; url: string; auth: string; hasCredential: boolean; default: boolean; createdAt: string; updatedAt: string }
    const shown = (v: View) => [v.name, v.url, v.auth, v.hasCredential, v.default]
    const defaults = async () => (await apiOk<View[]>(s, 'GET', '/scanners', ADMIN)).filter((x) => x.default).map((x) => x.name)
    const projectAdmin = await addUser(s, 'padmin')
    const guest = await addUser(s, 'guest')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'padmin', role: 'projectAdmin' }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'guest', role: 'guest' }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'plain', public: false }, 201)
    await apiOk(s, 'POST', '/scanners', ADMIN, { name: 'first', url: adapter.url('fake'), auth: 'X-ScannerAdapter-API-Key', accessCredential: API_KEY, default: true }, 201)
    const registered = await apiOk<View>(s, 'POST', '/scanners', ADMIN, { name: 'second', url: adapter.url('gone'), auth: 'None' }, 201)
    assert.deepEqual(await defaults(), ['first'])

    // Only system administrators: a project administrator, a maintainer and a guest are refused, an anonymous caller asked to sign in.
    for (const [who, caller, status] of [['project admin', projectAdmin, 403], ['maintainer', maintainer, 403], ['guest', guest, 403], ['anonymous', undefined, 401]] as const) {
      const res = await api(s, 'PATCH', '/scanners/second', caller, { default: true })
      assert.equal(res.status, status, `${who}: ${await res.text()}`)
    }
    assert.equal((await api(s, 'PATCH', '/scanners/nothere', maintainer, { default: true })).status, 403, 'refused before the scanner is looked up')
    assert.equal((await api(s, 'PATCH', '/scanners/nothere', ADMIN, { default: true })).status, 404)
    assert.deepEqual(await defaults(), ['first'], 'nothing changed')

    // default: true takes the default from the previous one; URL, authentication and credential change with it.
    const second = await apiOk<View>(s, 'PATCH', '/scanners/second', ADMIN, { default: true, url: adapter.url('fake'), auth: 'X-ScannerAdapter-API-Key', accessCredential: API_KEY })
    assert.deepEqual(shown(second), ['second', adapter.url('fake'), 'X-ScannerAdapter-API-Key', true, true])
    assert.equal(second.createdAt, registered.createdAt)
    assert.ok(Date.parse(second.updatedAt) >= Date.parse(registered.updatedAt))
    assert.ok(!JSON.stringify(second).includes(API_KEY), 'the credential never comes back')
    assert.deepEqual(shown(await apiOk<View>(s, 'GET', '/scanners/second', ADMIN)), shown(second))
    assert.deepEqual(await defaults(), ['second'], 'one default at a time')
    assert.deepEqual(await apiOk(s, 'GET', '/projects/plain/scanner', ADMIN), { name: 'second', source: 'default' })
    await apiOk(s, 'GET', '/scanners/second/metadata', ADMIN)

    // An omitted credential is kept; a new one is what the adapter gets from then on.
    await apiOk(s, 'PATCH', '/scanners/second', ADMIN, { url: `${adapter.url('fake')}/` })
    await apiOk(s, 'GET', '/scanners/second/metadata', ADMIN)
    await apiOk(s, 'PATCH', '/scanners/second', ADMIN, { accessCredential: 'another-key' })
    const refused = await api(s, 'GET', '/scanners/second/metadata', ADMIN)
    assert.equal(refused.status, 422)
    assert.match(((await refused.json()) as { detail: string }).detail, /scanner second: GET \/api\/v1\/metadata answered 401: invalid api key/)
    assert.equal(adapter.requests.at(-1)?.apiKey, 'another-key')

    // Bad fields are refused with the field named, and change nothing.
    const kept = await apiOk<View>(s, 'GET', '/scanners/second', ADMIN)
    for (const [bad, field] of [
      [{ url: 'ftp://host' }, 'url'],
      [{ url: `${adapter.url('fake')}/api/v1` }, 'url'],
      [{ url: 'http://user:pw@host' }, 'url'],
      [{ auth: 'Digest' }, 'auth'],
      [{ auth: 'Bearer', accessCredential: '' }, 'accessCredential'],
      [{ auth: 'None', accessCredential: 'k' }, 'accessCredential'],
      [{ accessCredential: 5 }, 'accessCredential'],
      [{ accessCredential: 'x'.repeat(16 * 1024 + 1) }, 'accessCredential'],
      [{ default: 'yes' }, 'default'],
      [{ name: 'renamed' }, 'name'],
      [{ extra: 1 }, 'extra'],
      [[], 'body'],
    ] as const) {
      const res = await api(s, 'PATCH', '/scanners/second', ADMIN, bad)
      assert.equal(res.status, 400, JSON.stringify(bad).slice(0, 100))
      assert.equal(((await res.json()) as { field: string }).field, field)
    }
    assert.deepEqual(await apiOk(s, 'GET', '/scanners/second', ADMIN), kept)

    // Authentication None drops the stored credential; another scheme then needs a new one.
    assert.deepEqual(shown(await apiOk<View>(s, 'PATCH', '/scanners/second', ADMIN, { auth: 'None', name: 'second' })), ['second', adapter.url('fake'), 'None', false, true])
    const missing = await api(s, 'PATCH', '/scanners/second', ADMIN, { auth: 'Bearer' })
    assert.equal(missing.status, 400)
    assert.equal(((await missing.json()) as { field: string }).field, 'accessCredential')

    // default: false leaves no default: projects without a choice scan with the built-in scanner.
    assert.equal((await apiOk<View>(s, 'PATCH', '/scanners/second', ADMIN, { default: false })).default, false)
    assert.deepEqual(await defaults(), [])
    assert.deepEqual(await apiOk(s, 'GET', '/projects/plain/scanner', ADMIN), { name: 'berth', source: 'builtin' })
    await apiOk(s, 'PATCH', '/scanners/first', ADMIN, { default: true })
    assert.deepEqual(await defaults(), ['first'])

    // The audit log has each change, never the credential.
    let rows: { action: string; resource: string; detail: { fields: string[] } }[] = []
    await eventually(async () => {
      rows = await apiOk(s, 'GET', '/audit?action=scanner.update', ADMIN)
      return rows.length >= 6
    }, 'the scanner.update rows')
    assert.deepEqual(rows.map((r) => [r.resource, r.detail.fields.join(',')]).reverse(), [
      ['second', 'default,url,auth,accessCredential'],
      ['second', 'url'],
      ['second', 'accessCredential'],
      ['second', 'auth'],
      ['second', 'default'],
      ['first', 'default'],
    ])
    assert.ok(!JSON.stringify(rows).includes(API_KEY) && !JSON.stringify(rows).includes('another-key'), 'no credential in the audit log')
  })
})
