import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer } from '../helpers/auth.js'
import { axeViolations, browserSkip, launchBrowser, screenshot } from '../helpers/browser.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { makeTempDir, needBinary, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import { fetchManifest, pushImage } from '../helpers/replication.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// The replication tab of the web UI in a real browser: create a policy, run it, read its execution.

const skip = browserSkip() || requireClients('replication UI', [needBinary('docker-registry')])

describe('replication in the web UI', { skip }, () => {
  let s: TestServer
  let target: Distribution
  let dir: string
  let browser: Browser
  let page: Page

  before(async () => {
    ensureUiBuilt()
    dir = await makeTempDir('berth-replication-ui-')
    target = await startDistribution(dir)
    s = await startAuthServer()
    await apiOk(s, 'POST', '/registries', ADMIN, { name: 'dist', url: target.url }, 201)
    browser = await launchBrowser()
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    context.setDefaultTimeout(20_000)
    page = await context.newPage()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
    await target?.stop()
    await removeTempDir(dir)
  })

  test('create a push policy, run it, see its execution and tasks', async () => {
    const image = await pushImage(s.url, 'library/app', 'v1', { headers: { authorization: ADMIN } })
    await page.goto(`${s.url}/admin/replication`)
    await page.getByLabel('Username').fill('admin')
    await page.getByLabel('Password').fill(ADMIN_PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('button', { name: 'New policy' }).click()
    const form = page.getByRole('form', { name: 'New replication policy' })
    await form.getByLabel('Name', { exact: true }).fill('ui-push')
    await form.getByLabel('Repositories').fill('library/**')
    await form.getByLabel('Destination namespace').fill('copies')
    await form.getByRole('button', { name: 'Create policy' }).click()
    await page.getByRole('button', { name: 'Run ui-push now' }).click()
    const executions = page.getByRole('region', { name: 'Executions of ui-push' })
    await executions.getByText(/^succeeded/).waitFor()
    assert.equal((await fetchManifest(target.url, 'copies/library/app', 'v1'))?.digest, image.digest)
    await executions.getByRole('cell', { name: /1 copied/ }).waitFor()
    await executions.getByRole('button').first().click()
    const dialog = page.getByRole('dialog', { name: 'Execution' })
    await dialog.getByText('library/app:v1', { exact: true }).waitFor()
    await dialog.getByText('copies/library/app:v1', { exact: true }).waitFor()
    const found = await axeViolations(page)
    assert.deepEqual(found, [], JSON.stringify(found, null, 1))
    await screenshot(page, 'replication-execution')
    await dialog.getByRole('button', { name: 'Close' }).click()

    // a bad glob is refused with the field named
    await page.getByRole('button', { name: 'New policy' }).click()
    await form.getByLabel('Name', { exact: true }).fill('bad')
    await form.getByLabel('Repositories').fill('[oops')
    await form.getByRole('button', { name: 'Create policy' }).click()
    await form.getByRole('alert').filter({ hasText: /source\.repositories/ }).waitFor()
  })
})
