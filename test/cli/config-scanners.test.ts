// Scanner registrations as code: `berth config export` lists them (never their access
// credential), `berth apply` registers, changes and (with --prune) deletes them, before and after
// the projects that choose one. The adapters are the scanner adapter the scan tests use.

import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { parse, stringify } from 'yaml'
import { applySettings, exportSettings, parseSettingsDocument, stable, type SettingsDocument } from '../../src/settings/settings.js'
import { remoteSettingsServices } from '../../src/settings/remote.js'
import { ADMIN, ADMIN_PASSWORD, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { startAdapter, type TestAdapter } from '../scan/scanner-adapter.js'
import { berth } from '../transfer/helpers.js'
import type { ScannerView } from '../../src/scan/adapters/scanners.js'

const API_KEY = 'adapter-key-7f3c9e1d'
const AUTH = 'X-ScannerAdapter-API-Key'

describe('scanner registrations in berth config export / berth apply', () => {
  let adapter: TestAdapter
  let source: TestServer
  let target: TestServer
  let work: string
  let logs = ''
  const remote = (s: TestServer) => ['--url', s.url, '--user', 'admin', '--password', ADMIN_PASSWORD]
  const services = (s: TestServer) => remoteSettingsServices({ url: s.url, user: 'admin', password: ADMIN_PASSWORD }).services

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-settings-scanners-'))
    adapter = await startAdapter({ apiKey: API_KEY, modes: { trivy: 'ok', clair: 'ok', moved: 'ok' }, vulnerabilities: [], otherRepository: 'team/other' })
    source = await startAuthServer()
    target = await startAuthServer({ log: { level: 'debug' } }, { logStream: new Writable({ write: (chunk: Buffer, _enc, done) => done(void (logs += chunk.toString())) }) })
  })

  after(async () => {
    await source?.close()
    await target?.close()
    await adapter?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('export lists the registrations without credential; apply on a fresh Berth registers them before the project that chooses one, then plans nothing', async () => {
    await apiOk(source, 'POST', '/scanners', ADMIN, { name: 'trivy', url: adapter.url('trivy'), auth: AUTH, accessCredential: API_KEY, default: true }, 201)
    await apiOk(source, 'POST', '/scanners', ADMIN, { name: 'clair', url: adapter.url('clair'), auth: AUTH, accessCredential: API_KEY }, 201)
    await apiOk(source, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    await apiOk(source, 'PUT', '/projects/team/scanner', ADMIN, { name: 'clair' })

    const exported = await berth(['config', 'export', ...remote(source)])
    assert.equal(exported.code, 0, exported.stderr)
    assert.ok(!exported.stdout.includes(API_KEY), 'no access credential in the export')
    const doc = parse(exported.stdout) as SettingsDocument
    assert.deepEqual(doc.scanners, [
      { name: 'clair', url: adapter.url('clair'), auth: AUTH },
      { name: 'trivy', url: adapter.url('trivy'), auth: AUTH, default: true },
    ])
    assert.equal(doc.projects.find((p) => p.name === 'team')?.scan?.scanner, 'clair')

    // without its credential a registration cannot be made: the plan names the field
    const withoutCredential = join(work, 'no-credential.yml')
    await writeFile(withoutCredential, exported.stdout)
    const refused = await berth(['apply', withoutCredential, ...remote(target)])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /scanners\[0\]\.accessCredential: required with auth X-ScannerAdapter-API-Key to register clair/)
    assert.deepEqual(await apiOk(target, 'GET', '/scanners', ADMIN), [])

    // the credential is supplied through the document
    for (const r of (doc.scanners ?? []) as Record<string, unknown>[]) r.accessCredential = API_KEY
    const file = join(work, 'settings.yml')
    await writeFile(file, stringify(doc))
    const dry = await berth(['apply', file, ...remote(target), '--dry-run'])
    assert.equal(dry.code, 0, dry.stderr)
    const lines = dry.stdout.split('\n')
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix))
    for (const line of ['+ scanner clair', '+ scanner trivy', '+ project team', '~ scanner of team: scanner: null → "clair"']) assert.ok(at(line) >= 0, `${line} in\n${dry.stdout}`)
    assert.ok(at('+ scanner clair') < at('+ project team') && at('+ project team') < at('~ scanner of team'), dry.stdout)
    assert.deepEqual(await apiOk(target, 'GET', '/scanners', ADMIN), [], 'a dry run writes nothing')

    const applied = await berth(['apply', file, ...remote(target)])
    assert.equal(applied.code, 0, applied.stderr)
    const views = await apiOk<ScannerView[]>(target, 'GET', '/scanners', ADMIN)
    assert.deepEqual(
      views.map(({ name, url, auth, hasCredential, default: d }) => ({ name, url, auth, hasCredential, default: d })),
      [
        { name: 'clair', url: adapter.url('clair'), auth: AUTH, hasCredential: true, default: false },
        { name: 'trivy', url: adapter.url('trivy'), auth: AUTH, hasCredential: true, default: true },
      ],
    )
    // the registrations work: the adapter took the credential the document gave
    for (const name of ['clair', 'trivy']) assert.equal((await api(target, 'GET', `/scanners/${name}/metadata`, ADMIN)).status, 200, name)
    assert.deepEqual(await apiOk(target, 'GET', '/projects/team/scanner', ADMIN), { name: 'clair', source: 'project' })

    // the credential, given on every apply, is written again and shown as (set) only
    const again = await berth(['apply', file, ...remote(target)])
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(again.stdout.split('\n').filter((l) => l.startsWith('~')), ['~ scanner clair: accessCredential: (set)', '~ scanner trivy: accessCredential: (set)'])
    // the exported document itself (no credential) plans nothing
    const idle = await berth(['apply', withoutCredential, ...remote(target)])
    assert.equal(idle.code, 0, idle.stderr)
    assert.equal(idle.stdout, 'no changes: the registry matches the document\n')

    const { config: _a, ...want } = doc
    const reexported = await exportSettings(services(target))
    assert.deepEqual(reexported.scanners, parse(exported.stdout).scanners)
    assert.deepEqual(reexported.projects, want.projects)

    for (const out of [dry.stdout, dry.stderr, applied.stdout, applied.stderr, again.stdout, again.stderr, stringify(reexported)]) assert.ok(!out.includes(API_KEY), out)
    const audit = await (await api(target, 'GET', '/audit?limit=1000', ADMIN)).text()
    assert.match(audit, /scanner\.create/)
    assert.ok(!audit.includes(API_KEY), 'no access credential in the audit log')
    assert.match(logs, /scanners/, 'the debug log has the requests')
    assert.ok(!logs.includes(API_KEY), 'no access credential in the debug log')
  })

  it('updates url and default in place, deletes only with prune and after the projects moved off, and refuses what would strand a project', async () => {
    const s = services(target)
    const current = parseSettingsDocument(JSON.parse(JSON.stringify(await exportSettings(s))))
    const doc = parseSettingsDocument(JSON.parse(JSON.stringify(current)))
    doc.scanners = [
      { name: 'clair', url: adapter.url('moved'), auth: AUTH, default: true },
      { name: 'trivy', url: adapter.url('trivy'), auth: AUTH },
    ]
    const updated = await applySettings(s, doc, { prune: false, dryRun: false })
    assert.deepEqual(
      updated.changes.map((c) => `${c.op} ${c.target}: ${c.details.join('; ')}`),
      [`update scanner clair: url: ${JSON.stringify(adapter.url('clair'))} → ${JSON.stringify(adapter.url('moved'))}; default: false → true`, 'update scanner trivy: default: true → false'],
    )
    let views = await apiOk<ScannerView[]>(target, 'GET', '/scanners', ADMIN)
    assert.deepEqual(views.map((v) => [v.name, v.url, v.default, v.hasCredential]), [['clair', adapter.url('moved'), true, true], ['trivy', adapter.url('trivy'), false, true]])
    assert.equal((await api(target, 'GET', '/scanners/clair/metadata', ADMIN)).status, 200, 'the credential kept through the change of url')
    assert.equal((await applySettings(s, doc, { prune: false, dryRun: false })).changes.length, 0)

    // trivy left out: kept without prune, deleted with it
    doc.scanners = doc.scanners.filter((r) => r.name !== 'trivy')
    assert.equal((await applySettings(s, doc, { prune: false, dryRun: false })).changes.length, 0)
    assert.deepEqual((await applySettings(s, doc, { prune: true, dryRun: false })).changes.map((c) => `${c.op} ${c.target}`), ['delete scanner trivy'])
    views = await apiOk<ScannerView[]>(target, 'GET', '/scanners', ADMIN)
    assert.deepEqual(views.map((v) => v.name), ['clair'])

    // clair left out while the project still chooses it: refused before anything is written
    const index = doc.projects.findIndex((p) => p.name === 'team')
    const team = doc.projects[index]
    assert.ok(team?.scan)
    doc.scanners = []
    await assert.rejects(applySettings(s, doc, { prune: true, dryRun: false }), new RegExp(`projects\\[${index}\\]\\.scan\\.scanner: clair is not in the document's scanners: --prune would delete it while the project uses it`))
    assert.deepEqual((await apiOk<ScannerView[]>(target, 'GET', '/scanners', ADMIN)).map((v) => v.name), ['clair'])

    // the project moves to the built-in scanner in the same apply: first the move, then the deletion
    team.scan.scanner = 'berth'
    const moved = await applySettings(s, doc, { prune: true, dryRun: false })
    assert.deepEqual(moved.changes.map((c) => `${c.op} ${c.target}`), ['update scanner of team', 'delete scanner clair'])
    assert.deepEqual(await apiOk(target, 'GET', '/scanners', ADMIN), [])
    assert.deepEqual(await apiOk(target, 'GET', '/projects/team/scanner', ADMIN), { name: 'berth', source: 'project' })
    assert.equal((await applySettings(s, doc, { prune: true, dryRun: false })).changes.length, 0)

    // a scanner neither registered nor in the document
    team.scan.scanner = 'nope'
    await assert.rejects(applySettings(s, doc, { prune: false, dryRun: true }), new RegExp(`projects\\[${index}\\]\\.scan\\.scanner: nope is neither registered nor in the document's scanners`))
  })

  it('validation names the field', () => {
    const scanner = (fields: Record<string, unknown>) => ({ name: 'a', url: 'http://127.0.0.1:9', auth: AUTH, ...fields })
    const cases: [unknown, RegExp][] = [
      [{ scanners: [scanner({ default: true }), scanner({ name: 'b' }), scanner({ name: 'c', default: true })] }, /scanners\[2\]\.default: at most one scanner is the default: scanners\[0\] \(a\), scanners\[2\] \(c\) say default: true/],
      [{ scanners: [scanner({}), scanner({ url: 'ftp://x' })] }, /scanners\[1\]\.name: a is listed twice/],
      [{ scanners: [scanner({}), scanner({ name: 'b', url: 'ftp://x' })] }, /scanners\[1\]\.url: /],
      [{ scanners: [scanner({ url: 'http://127.0.0.1:9/api/v1' })] }, /scanners\[0\]\.url: the base URL, without \/api\/v1/],
      [{ scanners: [scanner({ colour: 'red' })] }, /scanners\[0\]\.colour: not a field here \(known: name, url, auth, accessCredential, default\)/],
      [{ scanners: [scanner({ auth: 'Digest' })] }, /scanners\[0\]\.auth: one of None, Basic, Bearer, X-ScannerAdapter-API-Key/],
      [{ scanners: [scanner({ auth: 'None', accessCredential: 'k' })] }, /scanners\[0\]\.accessCredential: given with auth None/],
      [{ scanners: [scanner({ default: 'yes' })] }, /scanners\[0\]\.default: true or false/],
      [{ scanners: [scanner({ name: 'berth' })] }, /scanners\[0\]\.name: berth is the built-in scanner's name/],
      [{ scanners: [scanner({ name: 'Trivy' })] }, /scanners\[0\]\.name: lowercase letters/],
      [{ scanners: { a: 1 } }, /scanners: a list/],
      [{ projects: [{ name: 'p', scan: { scanner: 5 } }] }, /projects\[0\]\.scan\.scanner: a registered scanner or berth/],
    ]
    for (const [input, error] of cases) assert.throws(() => parseSettingsDocument(input), error, stable(input))
    assert.equal(parseSettingsDocument({ scanners: [scanner({ default: true }), scanner({ name: 'b', default: false })] }).scanners?.length, 2)
  })
})
