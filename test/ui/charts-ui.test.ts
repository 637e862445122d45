import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import { chartArchive } from '../helpers/charts.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// A project's Helm charts in a real browser: the charts and versions of its classic chart
// repository, the `helm repo add` command for it (which works), and deleting a version for a
// maintainer; a developer sees no delete button.

const skip = browserSkip()

describe('Helm charts in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  const uploaded = new Map<string, Buffer>()

  async function upload(name: string, version: string, more: { appVersion?: string; description?: string } = {}): Promise<void> {
    const tgz = await chartArchive(name, version, more)
    const res = await fetch(`${s.url}/chartrepo/team/charts`, { method: 'POST', body: new Uint8Array(tgz), headers: { authorization: ADMIN, 'content-type': 'application/gzip' } })
    assert.equal(res.status, 201, await res.text())
    uploaded.set(`${name}-${version}`, tgz)
  }

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    for (const [user, role] of [['maint', 'maintainer'], ['dev', 'developer']]) {
      await addUser(s, user ?? '')
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: user, role }, 201)
    }
    await upload('demo', '0.1.0', { description: 'A demo chart' })
    await upload('demo', '0.2.0', { appVersion: '1.2', description: 'A demo chart' })
    await upload('other', '1.0.0+build.1')
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
  })

  test('a maintainer lists the charts, copies a working helm repo add, and deletes a version', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/projects/team`, 'maint', 'maint-password-1')
    await page.getByRole('link', { name: 'Helm charts' }).click()
    await page.waitForURL(`${s.url}/projects/team/charts`)
    const tab = page.getByRole('region', { name: 'Helm charts' })
    const demo = tab.getByRole('region', { name: 'Chart demo' })
    await demo.getByRole('cell', { name: '0.2.0', exact: true }).waitFor()
    await demo.getByRole('cell', { name: '0.1.0', exact: true }).waitFor()
    await demo.getByRole('row').filter({ hasText: '0.2.0' }).getByRole('cell', { name: '1.2', exact: true }).waitFor()
    await tab.getByRole('region', { name: 'Chart other' }).getByRole('cell', { name: '1.0.0+build.1', exact: true }).waitFor()

    // the command shown names this server's chart repository, and that repository answers helm's requests
    const command = (await tab.getByRole('figure').filter({ hasText: 'Add the repository to helm' }).locator('pre').textContent()) ?? ''
    const repo = `${s.url}/chartrepo/team`
    assert.equal(command, `helm repo add team ${repo} --username maint --password <password or CLI secret>\nhelm search repo team/`)
    const index = await fetch(`${repo}/index.yaml`, { headers: { authorization: 'Basic ' + Buffer.from('maint:maint-password-1').toString('base64') } })
    assert.equal(index.status, 200)
    assert.match(await index.text(), /name: demo[\s\S]*version: 0\.2\.0/)
    // the download link is the chart archive, byte for byte (the page's session cookie reads it)
    const href = await demo.getByRole('link', { name: 'Download demo 0.1.0' }).getAttribute('href')
    assert.equal(href, `${repo}/charts/demo-0.1.0.tgz`)
    const bytes = await page.evaluate(async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())), href ?? '')
    assert.deepEqual(Buffer.from(bytes), uploaded.get('demo-0.1.0'))
    await noSeriousViolations(page, 'helm charts')
    await screenshot(page, 'charts')

    // delete a version: gone from the page, from index.yaml, and its OCI manifest too
    const before = await apiOk<{ digest: string }>(s, 'GET', '/projects/team/repositories/other/artifacts/1.0.0_build.1', ADMIN)
    await tab.getByRole('button', { name: 'Delete other 1.0.0+build.1' }).click()
    await tab.getByRole('region', { name: 'Chart other' }).waitFor({ state: 'detached' })
    const after = await (await fetch(`${repo}/index.yaml`, { headers: { authorization: ADMIN } })).text()
    assert.doesNotMatch(after, /other/)
    assert.match(after, /demo/)
    const gone = await fetch(`${s.url}/api/v1/projects/team/repositories/other/artifacts/${before.digest}`, { headers: { authorization: ADMIN } })
    assert.equal(gone.status, 404)
    await context.close()
  })

  test('a developer sees the charts and the upload command, and no delete button', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/projects/team/charts`, 'dev', 'dev-password-1')
    const tab = page.getByRole('region', { name: 'Helm charts' })
    await tab.getByRole('region', { name: 'Chart demo' }).getByRole('cell', { name: '0.2.0', exact: true }).waitFor()
    await tab.getByRole('figure').filter({ hasText: 'Upload a chart' }).waitFor()
    assert.equal(await tab.getByRole('button', { name: /^Delete/ }).count(), 0)
    await context.close()
  })
})
