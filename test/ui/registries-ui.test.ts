import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { axeViolations, browserSkip, launchBrowser, screenshot } from '../helpers/browser.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// The Registries tab of the administration and a proxy project's settings in a real browser.
// The endpoint points at the Berth under test itself: a real registry with real credentials.

const skip = browserSkip()

describe('registry endpoints and proxy settings in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let page: Page

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer()
    browser = await launchBrowser()
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    context.setDefaultTimeout(20_000)
    page = await context.newPage()
    page.on('dialog', (d) => void d.accept())
  })

  after(async () => {
    await browser?.close()
    await s?.close()
  })

  test('create an endpoint, test the connection, see a proxy project, delete the endpoint', async () => {
    await page.goto(`${s.url}/admin/registries`)
    await page.getByLabel('Username').fill('admin')
    await page.getByLabel('Password').fill(ADMIN_PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    const tab = page.getByRole('region', { name: 'Registry endpoints' })
    await tab.getByText('No registry endpoints yet.').waitFor()

    await tab.getByRole('button', { name: 'New endpoint' }).click()
    const form = page.getByRole('form', { name: 'New registry endpoint' })
    await form.getByLabel('Name', { exact: true }).fill('self')
    await form.getByLabel('URL', { exact: true }).fill(s.url)
    await form.getByLabel('Username', { exact: true }).fill('admin')
    await form.getByLabel('Password or token').fill(ADMIN_PASSWORD)
    await form.getByRole('button', { name: 'Create endpoint' }).click()
    const row = tab.getByRole('row').filter({ hasText: 'self' })
    await row.getByRole('cell', { name: 'stored' }).waitFor()
    const listed = await apiOk<{ name: string; url: string; username: string; hasPassword: boolean }[]>(s, 'GET', '/registries', ADMIN)
    assert.deepEqual(
      listed.map((r) => [r.name, r.url, r.username, r.hasPassword]),
      [['self', s.url, 'admin', true]],
    )

    // a second endpoint with the same name is refused in plain words
    await tab.getByRole('button', { name: 'New endpoint' }).click()
    await form.getByLabel('Name', { exact: true }).fill('self')
    await form.getByLabel('URL', { exact: true }).fill(s.url)
    await form.getByRole('button', { name: 'Create endpoint' }).click()
    await form.getByRole('alert').filter({ hasText: 'registry endpoint self exists' }).waitFor()
    await form.getByRole('button', { name: 'Cancel' }).click()

    await row.getByRole('button', { name: 'Test connection to self' }).click()
    await tab.getByRole('status').filter({ hasText: 'self: reachable, authenticated (registry reachable; signed in as admin)' }).waitFor()
    const found = await axeViolations(page)
    assert.deepEqual(found, [], JSON.stringify(found, null, 1))
    await screenshot(page, 'registries')

    // a proxy project made through the API shows its settings; an admin may change them
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'hub', proxy: { registry: 'self', ttl: '5m', namespaces: ['docker.io'] } }, 201)
    await page.goto(`${s.url}/projects/hub`)
    const proxy = page.getByRole('region', { name: 'Proxy cache' })
    const settings = proxy.getByRole('form', { name: 'Proxy cache settings' })
    assert.equal(await settings.getByLabel('Upstream endpoint').inputValue(), 'self')
    assert.equal(await settings.getByLabel('Tags rechecked after').inputValue(), '5m')
    assert.equal(await settings.getByLabel('Namespaces').inputValue(), 'docker.io')
    await proxy.getByText('Upstream pull budget: not reported yet.').waitFor()
    await settings.getByLabel('Tags rechecked after').fill('2h')
    await settings.getByRole('button', { name: 'Save proxy settings' }).click()
    await settings.getByRole('status').filter({ hasText: 'Saved.' }).waitFor()
    const hub = await apiOk<{ proxy: { ttl: string } }>(s, 'GET', '/projects/hub', ADMIN)
    assert.equal(hub.proxy.ttl, '2h')
    await settings.getByLabel('Tags rechecked after').fill('soon')
    await settings.getByRole('button', { name: 'Save proxy settings' }).click()
    await settings.getByRole('alert').filter({ hasText: /proxy\.ttl: a duration/i }).waitFor()
    assert.deepEqual(await axeViolations(page), [])

    // the endpoint cannot go while the proxy project uses it: the 409's message is shown
    await page.goto(`${s.url}/admin/registries`)
    await row.getByRole('button', { name: 'Delete endpoint self' }).click()
    await tab.getByRole('alert').filter({ hasText: 'registry endpoint self is in use: ' }).waitFor()
    await apiOk(s, 'DELETE', '/projects/hub', ADMIN, undefined, 204)
    await row.getByRole('button', { name: 'Delete endpoint self' }).click()
    await tab.getByText('No registry endpoints yet.').waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/registries', ADMIN), [])
  })

  test('a user who is no system administrator sees the proxy settings read-only', async () => {
    await apiOk(s, 'POST', '/registries', ADMIN, { name: 'up', url: s.url }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'mirror', public: true, proxy: { registry: 'up', ttl: '1h' } }, 201)
    await addUser(s, 'dev')
    const context = await browser.newContext()
    context.setDefaultTimeout(20_000)
    const devPage = await context.newPage()
    await devPage.goto(`${s.url}/projects/mirror`)
    await devPage.getByLabel('Username').fill('dev')
    await devPage.getByLabel('Password').fill('dev-password-1')
    await devPage.getByRole('button', { name: 'Sign in' }).click()
    const proxy = devPage.getByRole('region', { name: 'Proxy cache' })
    await proxy.getByRole('definition').filter({ hasText: '1h' }).waitFor()
    await proxy.getByText('up', { exact: true }).waitFor()
    assert.equal(await proxy.getByRole('form').count(), 0)
    assert.equal(await proxy.getByRole('textbox').count(), 0)
    await context.close()
  })
})
