import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import { pushLayers } from '../helpers/layers.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// In a real browser: an image's relations (the base image it is built on, found by layer
// prefix, and the images built on it, each a link to its page), and the effective
// configuration of the administration with its secrets masked, which others cannot open.

const skip = browserSkip()
const PASSPHRASE = 'a-long-passphrase-that-must-never-reach-a-browser'

describe('relations and the effective configuration in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let base: { digest: string }
  let app: { digest: string }
  let other: { digest: string }

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer({ secrets: { key: PASSPHRASE } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    await addUser(s, 'dev')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    const os = { data: Buffer.from('the base operating system layer') }
    const runtime = { data: Buffer.from('a language runtime layer') }
    base = await pushLayers(s, 'team/base', '12', [os], ADMIN)
    app = await pushLayers(s, 'team/tools/app', '1.0', [os, runtime, { data: Buffer.from('the application layer') }], ADMIN)
    other = await pushLayers(s, 'team/unrelated', 'latest', [{ data: Buffer.from('another base layer') }], ADMIN)
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
  })

  test("an image's base image and the images built on it link to each other", async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/tools%2Fapp/artifacts/${app.digest}`, 'dev', 'dev-password-1')
    const region = page.getByRole('region', { name: 'Base image and images built on it' })
    const bases = region.getByRole('list', { name: 'Base images' })
    await bases.getByRole('link', { name: 'team/base:12' }).waitFor()
    assert.equal(await bases.getByRole('listitem').count(), 1)
    assert.match((await bases.getByRole('listitem').textContent()) ?? '', /1 layer$/)
    await region.getByText('No image in this registry is built on this one.').waitFor()
    await noSeriousViolations(page, 'artifact relations')
    await screenshot(page, 'artifact-relations')

    await bases.getByRole('link', { name: 'team/base:12' }).click()
    await page.waitForURL(`${s.url}/repositories/team/base/artifacts/${base.digest}`)
    const dependents = page.getByRole('list', { name: 'Images built on this one' })
    await dependents.getByRole('link', { name: 'team/tools/app:1.0' }).waitFor()
    assert.equal(await dependents.getByRole('listitem').count(), 1, 'team/unrelated shares no layer')
    await page.getByText('No image in this registry is a base of this one.').waitFor()

    await page.goto(`${s.url}/repositories/team/unrelated/artifacts/${other.digest}`)
    await page.getByText('No image in this registry is built on this one.').waitFor()
    await context.close()
  })

  test('an administrator reads the effective configuration with its secrets masked; others cannot', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/admin`, 'admin', ADMIN_PASSWORD)
    await page.getByRole('link', { name: 'Configuration' }).click()
    const region = page.getByRole('region', { name: 'Configuration' })
    await region.getByText('"*****"').first().waitFor()
    const shown = (await region.textContent()) ?? ''
    assert.ok(!shown.includes(PASSPHRASE), 'the passphrase is not in the page')
    assert.ok(!(await page.content()).includes(PASSPHRASE), 'nor anywhere in the document')
    assert.match(shown, /basePath/, 'the ui section is shown')
    await noSeriousViolations(page, 'configuration')
    await context.close()

    const dev = await signedInPage(browser, `${s.url}/admin/config`, 'dev', 'dev-password-1')
    await dev.page.getByRole('alert').filter({ hasText: 'Administration is for system administrators.' }).waitFor()
    assert.equal(await dev.page.getByRole('region', { name: 'Configuration' }).count(), 0)
    await dev.context.close()
  })
})
