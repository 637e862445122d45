import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'
import { pushReferrer, vexDocument } from '../helpers/vex.js'
import { artifactPath, importOsv, OSV_V1, pushAppImage, scanned } from '../scan/scan-helpers.js'
import { startAdapter, type TestAdapter } from '../scan/scanner-adapter.js'
import type { ScannerView } from '../../src/scan/adapters/scanners.js'

// External scanners, VEX and the system allowlist in a real browser, against a real adapter of
// Harbor's Pluggable Scanner API (test/scan/scanner-adapter.ts, a server that pulls the image
// from Berth with the token it is given): an administrator registers adapters under
// Administration → Scanners, checks their health, moves the default to another adapter with
// "Make default" and back through the edit form, and removes one; a developer scans with the
// default adapter and reads its findings; another project chooses the built-in scanner in its
// settings; an OpenVEX document attached to an image as a referrer
// shows in the findings' VEX column; the system allowlist saved in Administration lets a pull
// through that the project's policy refused.

const skip = browserSkip()
const API_KEY = 'adapter-key-ui-1'
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const VULNERABILITIES = [
  { id: 'CVE-2024-0001', package: 'openssl', version: '3.0.11', fix_version: '3.0.13', severity: 'Critical' },
  { id: 'CVE-2024-0003', package: 'lodash', version: '4.17.20', fix_version: '4.17.21', severity: 'Medium' },
]

describe('scanners, VEX and the system allowlist in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let adapter: TestAdapter
  let app: Awaited<ReturnType<typeof pushAppImage>>
  let service: Awaited<ReturnType<typeof pushAppImage>>
  const pull = async (repo: string, digest: string) => (await fetch(`${s.url}/v2/${repo}/manifests/${digest}`, { headers: { authorization: ADMIN, accept: MANIFEST } })).status

  before(async () => {
    ensureUiBuilt()
    adapter = await startAdapter({ apiKey: API_KEY, modes: { fake: 'ok' }, vulnerabilities: VULNERABILITIES, otherRepository: 'team/other' })
    s = await startAuthServer({ scan: { rematchInterval: '0s', adapterTimeout: '4s' } })
    for (const project of ['team', 'prod']) await apiOk(s, 'POST', '/projects', ADMIN, { name: project }, 201)
    await addUser(s, 'dev')
    for (const project of ['team', 'prod']) await apiOk(s, 'POST', `/projects/${project}/members`, ADMIN, { username: 'dev', role: 'developer' }, 201)
    await importOsv(s, OSV_V1)
    app = await pushAppImage(s, 'team/app', '1.0')
    service = await pushAppImage(s, 'prod/api', '1.0')
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
    await adapter?.close()
  })

  test('an administrator registers scanner adapters, checks their health, moves the default, edits one and removes one', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/admin/scanners`, 'admin', ADMIN_PASSWORD)
    const region = page.getByRole('region', { name: 'Scanners' })
    await region.getByText('No scanner adapter').waitFor()
    const form = region.getByRole('form', { name: 'Add a scanner' })
    await form.getByLabel('Scanner name').fill('fake')
    await form.getByLabel('Adapter URL').fill(adapter.url('fake'))
    await form.getByLabel('Authentication').selectOption('X-ScannerAdapter-API-Key')
    await form.getByLabel('Access credential').fill(API_KEY)
    await form.getByRole('checkbox', { name: 'Default (scans every project that chose no scanner)' }).check()
    await form.getByRole('button', { name: 'Add scanner' }).click()
    const fake = region.getByRole('row').filter({ hasText: adapter.url('fake') })
    await fake.waitFor()
    assert.match((await fake.getByRole('cell').first().textContent()) ?? '', /^fake\s+default$/)
    assert.equal(await form.getByLabel('Scanner name').inputValue(), '', 'the form is emptied')

    // A second adapter at an address that answers 404: registered, then found failing.
    await form.getByLabel('Scanner name').fill('gone')
    await form.getByLabel('Adapter URL').fill(adapter.url('gone'))
    await form.getByLabel('Authentication').selectOption('None')
    assert.equal(await form.getByLabel('Access credential').count(), 0, 'no credential without authentication')
    await form.getByRole('button', { name: 'Add scanner' }).click()
    const gone = region.getByRole('row').filter({ hasText: adapter.url('gone') })
    await gone.waitFor()
    const listed = await apiOk<ScannerView[]>(s, 'GET', '/scanners', ADMIN)
    assert.deepEqual(
      listed.map((x) => [x.name, x.url, x.auth, x.hasCredential, x.default]),
      [
        ['fake', adapter.url('fake'), 'X-ScannerAdapter-API-Key', true, true],
        ['gone', adapter.url('gone'), 'None', false, false],
      ],
    )
    assert.ok(!(await region.textContent())?.includes(API_KEY), 'the credential is never shown')

    // Health: the adapter's own metadata, asked through Berth with the credential.
    await fake.getByRole('button', { name: 'Check fake' }).click()
    await fake.getByRole('cell', { name: 'healthy: Fakescan 1.2.3 (Berth tests), 2 report types' }).waitFor()
    assert.ok(adapter.requests.some((r) => r.adapter === 'fake' && r.path === '/metadata' && r.apiKey === API_KEY))
    await gone.getByRole('button', { name: 'Check gone' }).click()
    await gone.getByRole('cell').filter({ hasText: /^failing: / }).waitFor()

    // "Make default" moves the default to the second adapter: one default at a time.
    assert.equal(await fake.getByRole('button', { name: 'Make default: fake' }).count(), 0, 'the default has no "Make default"')
    await gone.getByRole('button', { name: 'Make default: gone' }).click()
    await gone.getByText('default', { exact: true }).waitFor()
    await fake.getByRole('button', { name: 'Make default: fake' }).waitFor()
    assert.equal(await fake.getByText('default', { exact: true }).count(), 0)
    const defaults = async () => (await apiOk<ScannerView[]>(s, 'GET', '/scanners', ADMIN)).map((x) => [x.name, x.default])
    assert.deepEqual(await defaults(), [['fake', false], ['gone', true]])
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/scanner', ADMIN), { name: 'gone', source: 'default' })

    // Edit: fake's form starts from its registration, an empty credential keeps the stored one, and it takes the default back.
    await fake.getByRole('button', { name: 'Edit scanner fake' }).click()
    const dialog = page.getByRole('dialog', { name: 'Edit scanner fake' })
    const edit = dialog.getByRole('form', { name: 'Edit scanner fake' })
    assert.equal(await edit.getByLabel('Adapter URL').inputValue(), adapter.url('fake'))
    assert.equal(await edit.getByLabel('Authentication').inputValue(), 'X-ScannerAdapter-API-Key')
    assert.equal(await edit.getByLabel('Access credential').inputValue(), '')
    await edit.getByText('Empty: keep the stored one.').waitFor()
    await noSeriousViolations(page, 'edit scanner dialog')
    await edit.getByRole('checkbox', { name: 'Default (scans every project that chose no scanner)' }).check()
    await edit.getByRole('button', { name: 'Save scanner' }).click()
    await dialog.waitFor({ state: 'hidden' })
    await fake.getByText('default', { exact: true }).waitFor()
    assert.deepEqual(await defaults(), [['fake', true], ['gone', false]])
    const kept = await apiOk<ScannerView>(s, 'GET', '/scanners/fake', ADMIN)
    assert.deepEqual([kept.auth, kept.hasCredential], ['X-ScannerAdapter-API-Key', true])
    await apiOk(s, 'GET', '/scanners/fake/metadata', ADMIN)
    assert.equal(adapter.requests.at(-1)?.apiKey, API_KEY, 'the stored credential was kept')
    await noSeriousViolations(page, 'administration scanners')
    await screenshot(page, 'admin-scanners')

    await gone.getByRole('button', { name: 'Delete scanner gone' }).click()
    await gone.waitFor({ state: 'detached' })
    assert.deepEqual((await apiOk<ScannerView[]>(s, 'GET', '/scanners', ADMIN)).map((x) => x.name), ['fake'])
    await context.close()
  })

  test('a developer scans with the default adapter and reads its findings', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${app.digest}`, 'dev', 'dev-password-1')
    const section = page.getByRole('region', { name: 'Vulnerabilities' })
    await section.getByRole('button', { name: 'Scan now' }).click()
    await section.getByTestId('scan-badge').filter({ hasText: '1 critical' }).waitFor()
    assert.match((await section.getByTestId('scan-badge').textContent()) ?? '', /with database Fakescan 1\.2\.3/)
    const rows = await section.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)))
    assert.deepEqual(rows, [
      ['CVE-2024-0001', 'openssl', '3.0.11', '3.0.13', 'critical', 'layer 1'],
      ['CVE-2024-0003', 'lodash', '4.17.20', '4.17.21', 'medium', 'layer 1'],
    ])
    assert.equal(adapter.scans().filter((x) => x.adapter === 'fake' && x.request.artifact.digest === app.digest).length, 1, 'the adapter scanned it')
    await context.close()
  })

  test("an OpenVEX referrer shows in the findings' VEX column, and the system allowlist lets a refused pull through", async () => {
    // prod chooses Berth's built-in scanner (its OSV database) in its settings, and refuses high findings.
    const settings = await signedInPage(browser, `${s.url}/projects/prod/security`, 'admin', ADMIN_PASSWORD)
    const choice = settings.page.getByRole('form', { name: 'Project scanner' })
    await choice.getByTestId('project-scanner').filter({ hasText: 'Scans with fake (the system default).' }).waitFor()
    await choice.getByLabel('Scanner name').fill('nothere')
    await choice.getByRole('button', { name: 'Save scanner' }).click()
    await choice.getByRole('alert').filter({ hasText: /nothere/ }).waitFor()
    await choice.getByLabel('Scanner name').fill('berth')
    await choice.getByRole('button', { name: 'Save scanner' }).click()
    await choice.getByTestId('project-scanner').filter({ hasText: "Scans with berth (the project's choice)." }).waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/projects/prod/scanner', ADMIN), { name: 'berth', source: 'project' })
    await noSeriousViolations(settings.page, 'project scanner choice')
    await settings.context.close()
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high' })
    await apiOk(s, 'POST', `${artifactPath('prod', 'api', service.digest)}/scan`, ADMIN, undefined, 202)
    assert.equal((await scanned(s, 'prod', 'api', service.digest)).status, 'done')

    const { context, page } = await signedInPage(browser, `${s.url}/repositories/prod/api/artifacts/${service.digest}`, 'dev', 'dev-password-1')
    const section = page.getByRole('region', { name: 'Vulnerabilities' })
    await section.getByRole('cell', { name: 'DSA-5621-1 (CVE-2024-0727)' }).waitFor()
    assert.equal(await section.getByRole('columnheader', { name: 'VEX' }).count(), 0, 'no VEX column without a VEX statement')

    const statement = {
      vulnerability: { name: 'CVE-2024-0727' },
      products: [{ '@id': `pkg:oci/api@${encodeURIComponent(service.digest)}`, subcomponents: [{ '@id': 'pkg:deb/debian/libssl3' }] }],
      status: 'not_affected',
      justification: 'vulnerable_code_not_in_execute_path',
      impact_statement: 'the PKCS12 parser is never called',
    }
    await pushReferrer(s, 'prod/api', service, vexDocument([statement], 'https://example.com/vex/ui'))
    await page.reload()
    await section.getByRole('columnheader', { name: 'VEX' }).waitFor()
    const heads = await section.getByRole('columnheader').allTextContents()
    assert.equal(heads.at(-1), 'VEX')
    const vex = await section.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.querySelector('td')?.textContent, tr.querySelector('td:last-child')?.textContent]))
    assert.deepEqual(vex, [
      ['DSA-5621-1 (CVE-2024-0727)', 'not_affected (vulnerable_code_not_in_execute_path)'],
      ['GHSA-35jh-r3h4-6jhm (CVE-2021-23337)', ''],
    ])
    // the badge counts what VEX leaves: lodash's high
    assert.match((await section.getByTestId('scan-badge').textContent()) ?? '', /^1 high/)
    await noSeriousViolations(page, 'findings with VEX')
    await context.close()

    // lodash still blocks the pull; the system allowlist, saved in Administration, lets it through.
    assert.equal(await pull('prod/api', service.digest), 403)
    const adminPage = await signedInPage(browser, `${s.url}/admin/vulnerability-database`, 'admin', ADMIN_PASSWORD)
    const form = adminPage.page.getByRole('form', { name: 'System allowlist' })
    await form.getByText('No vulnerability is allowed.').waitFor()
    await form.getByLabel('Vulnerability id').fill('CVE-2021-23337')
    await form.getByRole('button', { name: 'Add to allowlist' }).click()
    await form.getByRole('button', { name: 'Save system allowlist' }).click()
    await form.getByRole('status').filter({ hasText: 'System allowlist saved.' }).waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/scan-policy', ADMIN), { allowlist: [{ id: 'CVE-2021-23337', expiresAt: null }] })
    assert.equal(await pull('prod/api', service.digest), 200)
    await noSeriousViolations(adminPage.page, 'system allowlist')
    // and it is there after a reload
    await adminPage.page.reload()
    await adminPage.page.getByRole('form', { name: 'System allowlist' }).getByRole('cell', { name: 'CVE-2021-23337', exact: true }).waitFor()
    await adminPage.context.close()
  })
})
