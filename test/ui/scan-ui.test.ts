import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'
import { artifactPath, importOsv, OSV_V1, pushAppImage, type Report } from '../scan/scan-helpers.js'

// Vulnerability scanning in a real browser: a developer scans a real image (Debian packages and
// an npm lockfile, matched against an imported OSV database) with "Scan now" and reads the
// badge and the findings; a guest reads them without the button; a maintainer edits the
// project's scan policy with an allowlist entry that expires; an administrator reads the
// vulnerability database's status.

const skip = browserSkip()

describe('vulnerability scanning in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let image: { digest: string; layers: string[] }

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    for (const [user, role] of [
      ['dev', 'developer'],
      ['viewer', 'guest'],
      ['maint', 'maintainer'],
    ] as const) {
      await addUser(s, user)
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: user, role }, 201)
    }
    await importOsv(s, OSV_V1)
    image = await pushAppImage(s, 'team/app', '1.0')
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
  })

  test('a developer scans an image with "Scan now" and reads its badge and findings', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${image.digest}`, 'dev', 'dev-password-1')
    const section = page.getByRole('region', { name: 'Vulnerabilities' })
    await section.getByTestId('scan-badge').filter({ hasText: 'not scanned' }).waitFor()
    assert.equal((await api(s, 'GET', `${artifactPath('team', 'app', image.digest)}/vulnerabilities`, ADMIN)).status, 404, 'not scanned before the click')
    await section.getByRole('button', { name: 'Scan now' }).click()
    // the badge follows the scan to its end: one critical (openssl), one high (lodash)
    await section.getByTestId('scan-badge').filter({ hasText: '1 critical' }).waitFor()
    assert.equal((await section.getByTestId('scan-badge').textContent())?.replace(/\s+scanned.*$/, ''), '1 critical1 high')
    const report = await apiOk<Report>(s, 'GET', `${artifactPath('team', 'app', image.digest)}/vulnerabilities`, ADMIN)
    assert.equal(report.status, 'done')
    assert.deepEqual(report.summary, { critical: 1, high: 1, medium: 0, low: 0, unknown: 0 })

    // the findings table: one row per finding, in the report's order, every column as the API says
    const table = section.getByRole('table')
    const heads = await table.getByRole('columnheader').allTextContents()
    assert.deepEqual(heads, ['Vulnerability', 'Package', 'Version', 'Fixed in', 'Severity', 'Layer'])
    const rows = table.locator('tbody tr')
    assert.equal(await rows.count(), report.findings.length)
    const cells = await Promise.all(report.findings.map((_, i) => rows.nth(i).getByRole('cell').allTextContents()))
    assert.deepEqual(cells, [
      ['DSA-5621-1 (CVE-2024-0727)', 'libssl3', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1', 'critical', 'layer 1'],
      ['GHSA-35jh-r3h4-6jhm (CVE-2021-23337)', 'lodash', '4.17.20', '4.17.21', 'high', 'layer 2'],
    ])
    assert.deepEqual(
      report.findings.map((f) => [f.id, f.layer]),
      [
        ['DSA-5621-1', image.layers[0]],
        ['GHSA-35jh-r3h4-6jhm', image.layers[1]],
      ],
    )
    await section.getByRole('button', { name: 'Scan again' }).waitFor()
    await noSeriousViolations(page, 'artifact vulnerabilities')
    await screenshot(page, 'artifact-vulnerabilities')
    await context.close()
  })

  test('a guest reads the findings and has no scan button; the API refuses the scan', async () => {
    const viewer = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${image.digest}`, 'viewer', 'viewer-password-1')
    const section = viewer.page.getByRole('region', { name: 'Vulnerabilities' })
    await section.getByRole('cell', { name: 'DSA-5621-1 (CVE-2024-0727)' }).waitFor()
    assert.equal(await section.getByRole('button').count(), 0, 'no Scan button for a guest')
    await viewer.page.getByRole('link', { name: 'team', exact: true }).click()
    await viewer.page.getByRole('link', { name: 'Members' }).waitFor()
    assert.equal(await viewer.page.getByRole('link', { name: 'Scanning and signatures' }).count(), 0, 'no policy tab for a guest')
    await viewer.context.close()
    const refused = await api(s, 'POST', `${artifactPath('team', 'app', image.digest)}/scan`, 'Basic ' + Buffer.from('viewer:viewer-password-1').toString('base64'))
    assert.equal(refused.status, 403)
  })

  test("a maintainer edits the project's scan policy with an expiring allowlist entry", async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/projects/team/security`, 'maint', 'maint-password-1')
    const form = page.getByRole('form', { name: 'Scan policy' })
    await form.getByLabel('Scan images when they are pushed').check()
    await form.getByLabel('Refuse pulls of images with vulnerabilities of at least').selectOption('high')
    await form.getByLabel('Vulnerability id').fill('CVE-2024-0727')
    await form.getByLabel('Allowed until').fill('2099-01-31')
    await form.getByRole('button', { name: 'Add to allowlist' }).click()
    await form.getByLabel('Vulnerability id').fill('GHSA-35jh-r3h4-6jhm')
    await form.getByRole('button', { name: 'Add to allowlist' }).click()
    await form.getByRole('row').filter({ hasText: 'GHSA-35jh-r3h4-6jhm' }).getByRole('cell', { name: 'never' }).waitFor()
    await noSeriousViolations(page, 'scan policy form')
    await form.getByRole('button', { name: 'Save scan policy' }).click()
    await form.getByRole('status').filter({ hasText: 'Scan policy saved.' }).waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/scan-policy', ADMIN), {
      scanOnPush: true,
      blockSeverity: 'high',
      blockUnscanned: false,
      allowlist: [
        { id: 'CVE-2024-0727', expiresAt: '2099-01-31T00:00:00.000Z' },
        { id: 'GHSA-35jh-r3h4-6jhm', expiresAt: null },
      ],
    })
    // the policy is in force: both findings are allowlisted, so the image is pulled
    const pull = await fetch(`${s.url}/v2/team/app/manifests/1.0`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(pull.status, 200)

    // removing the lodash entry: the next pull is refused, naming it
    await form.getByRole('button', { name: 'Remove GHSA-35jh-r3h4-6jhm from the allowlist' }).click()
    await form.getByRole('button', { name: 'Save scan policy' }).click()
    await eventually(async () => (await apiOk<{ allowlist: unknown[] }>(s, 'GET', '/projects/team/scan-policy', ADMIN)).allowlist.length === 1, 'the policy saved')
    await page.reload()
    await page.getByRole('form', { name: 'Scan policy' }).getByRole('cell', { name: 'CVE-2024-0727', exact: true }).waitFor()
    assert.equal(await page.getByRole('form', { name: 'Scan policy' }).getByRole('cell', { name: 'GHSA-35jh-r3h4-6jhm', exact: true }).count(), 0)
    assert.equal(await page.getByLabel('Refuse pulls of images with vulnerabilities of at least').inputValue(), 'high')
    assert.ok(await page.getByLabel('Scan images when they are pushed').isChecked())
    const refused = await fetch(`${s.url}/v2/team/app/manifests/1.0`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(refused.status, 403)
    assert.match(await refused.text(), /GHSA-35jh-r3h4-6jhm/)
    await context.close()
  })

  test('an administrator reads the vulnerability database status', async () => {
    const status = await apiOk<{ version: string; advisories: number; sources: { ecosystem: string; advisories: number }[] }>(s, 'GET', '/vulndb', ADMIN)
    const { context, page } = await signedInPage(browser, `${s.url}/admin/vulnerability-database`, 'admin', ADMIN_PASSWORD)
    const region = page.getByRole('region', { name: 'Vulnerability database' })
    await region.getByText(status.version, { exact: true }).waitFor()
    assert.equal(await region.getByRole('definition').nth(2).textContent(), String(status.advisories))
    const rows = await region.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)))
    assert.deepEqual(
      rows,
      status.sources.map((x) => [x.ecosystem, String(x.advisories)]),
    )
    assert.ok(rows.length >= 2, 'Debian and npm advisories')
    await noSeriousViolations(page, 'vulnerability database')
    await context.close()
  })
})
