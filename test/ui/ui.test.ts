import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk, basic } from '../helpers/auth.js'
import { startAuthServer } from '../helpers/auth.js'
import { axeViolations, browserSkip, launchBrowser, noSeriousViolations, screenshot, signIn } from '../helpers/browser.js'
import { multiArchLayout, OciLayout } from '../helpers/e2e-layout.js'
import { pushFromLayout } from '../helpers/e2e-registry.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// The web UI in a real browser (Debian's chromium, headless, through playwright-core) against
// a real Berth with authentication on and the built UI: what a person does, step by step. The
// steps share one server and one signed-in page, in order.

const skip = browserSkip()
const TIMEOUT = 20_000

describe('web UI in chromium', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let layoutDir: string
  let multi: Awaited<ReturnType<typeof multiArchLayout>>
  const url = (path: string) => `${s.url}${path}`

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer()
    browser = await launchBrowser()
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    context.setDefaultTimeout(TIMEOUT)
    page = await context.newPage()
    layoutDir = await mkdtemp(join(tmpdir(), 'berth-ui-layout-'))
    multi = await multiArchLayout(layoutDir, 'multi')
  })
  after(async () => {
    await browser?.close()
    await s?.close()
    if (layoutDir) await rm(layoutDir, { recursive: true, force: true })
  })

  test('axe-core, as these tests run it, finds serious violations where there are some', async () => {
    const scratch = await context.newPage()
    try {
      await scratch.setContent('<html><body><img src="x.png"><button></button></body></html>')
      const found = (await axeViolations(scratch)).map((v) => v.id)
      assert.ok(found.includes('image-alt') && found.includes('button-name'), `found: ${found.join(', ')}`)
    } finally {
      await scratch.close()
    }
  })

  test('a page asked for while signed out leads to sign-in, then back to that page', async () => {
    await page.goto(url('/projects'))
    await page.waitForURL(/\/sign-in\?next=%2Fprojects$/)
    await noSeriousViolations(page, 'sign-in')
    await screenshot(page, 'sign-in')
    await signIn(page, 'admin', 'wrong-password-123')
    await page.getByRole('alert').waitFor()
    assert.match((await page.getByRole('alert').textContent()) ?? '', /./)
    await signIn(page, 'admin', ADMIN_PASSWORD)
    await page.waitForURL(url('/projects'))
    await page.getByRole('heading', { name: 'Projects' }).waitFor()
  })

  test('an empty registry: the home page shows docker login, tag and push for this address', async () => {
    await page.goto(url('/'))
    await page.getByRole('heading', { name: 'Push your first image' }).waitFor()
    const text = (await page.locator('pre').first().textContent()) ?? ''
    assert.match(text, new RegExp(`docker login ${s.host.replace(/\./g, '\\.')}`))
    assert.match(text, /docker tag myimage:latest /)
    assert.match(text, new RegExp(`docker push ${s.host.replace(/\./g, '\\.')}/library/myimage:latest`))
    await noSeriousViolations(page, 'home')
    await screenshot(page, 'home-empty')
  })

  test('create a project from the projects page', async () => {
    await page.goto(url('/projects'))
    await page.getByRole('button', { name: 'New project' }).click()
    await page.getByRole('dialog').getByLabel('Name').fill('webteam')
    await page.getByRole('dialog').getByRole('button', { name: 'Create project' }).click()
    await page.waitForURL(url('/projects/webteam'))
    const created = await apiOk<{ name: string; public: boolean }>(s, 'GET', '/projects/webteam', ADMIN)
    assert.equal(created.public, false)
  })

  test('add a member with a role', async () => {
    await addUser(s, 'viewer')
    await page.getByRole('link', { name: 'Members' }).click()
    await page.waitForURL(url('/projects/webteam/members'))
    const form = page.getByRole('form', { name: 'Add a member' })
    await form.getByLabel('Username').fill('viewer')
    await form.getByLabel('Role').selectOption('guest')
    await form.getByRole('button', { name: 'Add member' }).click()
    await page.getByRole('cell', { name: 'viewer', exact: true }).waitFor()
    const members = await apiOk<{ username?: string; role: string }[]>(s, 'GET', '/projects/webteam/members', ADMIN)
    assert.deepEqual(members.map((m) => [m.username, m.role]), [['viewer', 'guest']])
  })

  test('create a robot account: its secret is shown once and works for docker login', async () => {
    // Tab to tab: each link leads to its own section, not under the current one.
    await page.getByRole('link', { name: 'Robot accounts' }).click()
    await page.waitForURL(url('/projects/webteam/robots'))
    const form = page.getByRole('form', { name: 'New robot account' })
    await form.getByLabel('Robot name').fill('ci')
    await form.getByLabel('push').check()
    await form.getByRole('button', { name: 'Create robot account' }).click()
    const secret = (await page.getByTestId('robot-secret').textContent()) ?? ''
    assert.ok(secret.length >= 16, `a secret is shown: ${secret}`)
    await page.getByRole('dialog').getByRole('button', { name: 'Copy secret' }).waitFor()
    const v2 = await fetch(`${s.url}/v2/`, { headers: { authorization: basic('robot$webteam+ci', secret) } })
    assert.equal(v2.status, 200, 'the robot signs in to /v2 with the secret shown')
    await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click()
    await page.getByRole('cell', { name: 'robot$webteam+ci', exact: true }).waitFor()
    assert.equal(await page.getByTestId('robot-secret').count(), 0, 'the secret is gone once the dialog is closed')
  })

  test('a pushed multi-arch image: repository page with its tags, sortable', async () => {
    const auth = { authorization: ADMIN }
    await pushFromLayout(s.url, 'webteam/app', layoutDir, multi.amd64.descriptor, 'multi-amd64', auth)
    await pushFromLayout(s.url, 'webteam/app', layoutDir, multi.arm64.descriptor, 'multi-arm64', auth)
    await pushFromLayout(s.url, 'webteam/app', layoutDir, multi.index.descriptor, 'multi', auth)
    await page.goto(url('/projects/webteam'))
    await page.getByRole('link', { name: 'webteam/app' }).click()
    await page.waitForURL(url('/repositories/webteam/app'))
    for (const tag of ['multi', 'multi-amd64', 'multi-arm64']) await page.getByRole('link', { name: tag, exact: true }).waitFor()
    await page.getByLabel('Sort by').selectOption('name')
    await page.waitForFunction(() => {
      const names = [...document.querySelectorAll('tbody td:nth-child(2) a')].map((a) => a.textContent)
      return names.join(',') === 'multi,multi-amd64,multi-arm64'
    })
    await page.getByRole('button', { name: /docker pull: .*webteam\/app:multi$/ }).waitFor()
    await noSeriousViolations(page, 'repository')
    await screenshot(page, 'repository')
  })

  test('the index: a platform picker down to an image, its layers and history', async () => {
    await page.getByRole('link', { name: 'multi', exact: true }).click()
    await page.getByText('index (multi-platform)').waitFor()
    const arm64 = await page.locator('option', { hasText: 'linux/arm64/v8' }).getAttribute('value')
    assert.equal(arm64, multi.arm64.descriptor.digest)
    await page.getByLabel('Platform').selectOption(arm64 ?? '')
    await page.waitForURL(new RegExp(`/artifacts/${multi.arm64.descriptor.digest}$`))
    await page.getByRole('heading', { name: 'Layers' }).waitFor()
    await page.getByText('berth e2e layer 1').waitFor()
    await noSeriousViolations(page, 'artifact')
    await screenshot(page, 'artifact')
    await page.getByRole('tab', { name: 'Raw manifest and config' }).click()
    await page.getByRole('heading', { name: 'Config' }).waitFor()
  })

  test('the file browser: a multi-arch image down to a text file inside a layer, read in the page', async () => {
    const layout = await new OciLayout(join(layoutDir, 'web')).init()
    const base = [
      { path: 'etc', type: 'dir' as const },
      { path: 'etc/motd', data: 'hello from berth\n' },
      { path: 'etc/hostname', data: 'web\n' },
    ]
    const amd64 = await layout.addImage({ platform: { architecture: 'amd64', os: 'linux' }, layers: [base, [{ path: 'app', type: 'dir' }, { path: 'app/run.sh', data: '#!/bin/sh\necho v1\n', mode: 0o755 }]] })
    const arm64 = await layout.addImage({ platform: { architecture: 'arm64', os: 'linux' }, layers: [base] })
    const v1 = await layout.addIndex([amd64, arm64])
    const v2 = await layout.addImage({
      platform: { architecture: 'amd64', os: 'linux' },
      layers: [base, [{ path: 'app', type: 'dir' }, { path: 'app/run.sh', data: '#!/bin/sh\necho version two\n', mode: 0o755 }, { path: 'app/VERSION', data: '2\n' }]],
    })
    const auth = { authorization: ADMIN }
    await pushFromLayout(s.url, 'webteam/web', layout.dir, v1.descriptor, 'v1', auth)
    await pushFromLayout(s.url, 'webteam/web', layout.dir, amd64.descriptor, 'v1-amd64', auth)
    await pushFromLayout(s.url, 'webteam/web', layout.dir, v2.descriptor, 'v2', auth)

    await page.goto(url('/repositories/webteam/web'))
    await page.getByRole('link', { name: 'v1', exact: true }).click()
    const child = await page.locator('option', { hasText: 'linux/amd64' }).getAttribute('value')
    await page.getByLabel('Platform').selectOption(child ?? '')
    await page.waitForURL(new RegExp(`/artifacts/${amd64.descriptor.digest}$`))
    await page.getByRole('tab', { name: 'Files' }).click()
    await page.getByRole('button', { name: 'etc/', exact: true }).click()
    await page.getByRole('button', { name: 'motd', exact: true }).click()
    await page.getByTestId('file-content').getByText('hello from berth').waitFor()
    await noSeriousViolations(page, 'file browser')
    await screenshot(page, 'files')
    // One layer alone: layer 2 holds app/ only.
    await page.getByLabel('Show').selectOption('1')
    await page.getByRole('button', { name: 'app/', exact: true }).waitFor()
    assert.equal(await page.getByRole('button', { name: 'etc/', exact: true }).count(), 0, 'layer 2 has no etc/')
  })

  test('the diff of two tags: files added and changed', async () => {
    await page.goto(url('/repositories/webteam/web'))
    await page.getByLabel('From tag').fill('v1-amd64')
    await page.getByLabel('To tag').fill('v2')
    await page.getByRole('button', { name: 'Compare' }).click()
    const diff = page.getByTestId('diff')
    await diff.getByText('+ /app/VERSION').waitFor()
    await diff.getByText(/~ \/app\/run\.sh/).waitFor()
    await screenshot(page, 'diff')
  })

  test('retention: a dry run previews what a rule would delete, and deletes nothing', async () => {
    await page.goto(url('/projects/webteam/audit'))
    await page.getByRole('link', { name: 'Retention and immutability' }).click()
    await page.waitForURL(url('/projects/webteam/policies'))
    await page.getByRole('button', { name: 'Add rule' }).click()
    await page.getByLabel('How many').fill('1')
    await page.getByRole('button', { name: 'Preview (dry run)' }).click()
    await page.getByText(/would be deleted/).waitFor()
    const preview = (await page.locator('.dry-run').textContent()) ?? ''
    // Latest one kept per repository: two of webteam/app's three tags, two of webteam/web's three.
    assert.match(preview, /4 tags and manifests would be deleted/)
    assert.match(preview, /webteam\/app:multi-amd64/)
    const tags = await apiOk<{ total: number }>(s, 'GET', '/projects/webteam/repositories/app/tags', ADMIN)
    assert.equal(tags.total, 3, 'a dry run deletes nothing')
  })

  test('delete a tag: select it, confirm, and it is gone', async () => {
    await page.goto(url('/repositories/webteam/app'))
    await page.getByRole('checkbox', { name: 'Select multi-amd64' }).check()
    await page.getByRole('button', { name: 'Delete 1 selected' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click()
    await page.getByRole('link', { name: 'multi-amd64', exact: true }).waitFor({ state: 'detached' })
    const tags = await apiOk<{ items: { name: string }[] }>(s, 'GET', '/projects/webteam/repositories/app/tags?sort=name', ADMIN)
    assert.deepEqual(tags.items.map((t) => t.name), ['multi', 'multi-arm64'])
  })

  test('search as you type finds the repository and its tags', async () => {
    await page.goto(url('/search'))
    await page.getByRole('searchbox', { name: /Search repositories, tags, digests and annotations/ }).fill('arm64')
    await page.getByRole('link', { name: 'webteam/app:multi-arm64' }).waitFor()
  })

  test('administration: users, and a garbage collection dry run in the history', async () => {
    await page.goto(url('/admin'))
    await page.getByRole('cell', { name: 'viewer', exact: true }).waitFor()
    await noSeriousViolations(page, 'admin users')
    await page.getByRole('link', { name: 'Garbage collection' }).click()
    await page.getByRole('button', { name: 'Dry run' }).click()
    await page.getByRole('cell', { name: /dry run \(/ }).waitFor()
    await page.getByRole('link', { name: 'System robots' }).click()
    await page.waitForURL(url('/admin/robots'))
    const form = page.getByRole('form', { name: 'New robot account' })
    await form.getByLabel('Robot name').fill('deployer')
    await form.getByRole('button', { name: 'Create robot account' }).click()
    const secret = (await page.getByTestId('robot-secret').textContent()) ?? ''
    const v2 = await fetch(`${s.url}/v2/`, { headers: { authorization: basic('robot$deployer', secret) } })
    assert.equal(v2.status, 200, 'the system robot signs in with the secret shown')
    await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click()
    await page.getByRole('cell', { name: 'robot$deployer', exact: true }).waitFor()
    await page.getByRole('link', { name: 'Storage' }).click()
    await page.waitForURL(url('/admin/storage'))
    await page.getByText('Deduplication ratio').waitFor()
    await page.getByRole('link', { name: 'webteam/app' }).waitFor()
    await noSeriousViolations(page, 'admin storage')
    await screenshot(page, 'admin-storage')
  })

  test('what deleting frees: the repository and each selected tag', async () => {
    await page.goto(url('/repositories/webteam/app'))
    await page.getByText(/deleting it would free \d/).waitFor()
    await page.getByRole('checkbox', { name: 'Select multi-arm64' }).check()
    await page.getByRole('button', { name: 'Delete 1 selected' }).click()
    await page.getByRole('dialog').getByText(/multi-arm64 — would free \d/).waitFor()
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click()
    await page.getByRole('checkbox', { name: 'Select multi-arm64' }).uncheck()
  })

  test('your account: a local user changes the password (the current one required)', async () => {
    await page.goto(url('/account'))
    await page.getByRole('heading', { name: 'Your account' }).waitFor()
    assert.equal(await page.getByRole('button', { name: 'New CLI secret' }).count(), 0, 'CLI secrets are for OIDC users')
    await page.getByLabel('Current password').fill('not-the-password')
    await page.getByLabel('New password').fill('another-admin-password-1')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByRole('alert').waitFor()
    assert.match((await page.getByRole('alert').textContent()) ?? '', /current password is wrong/i)
  })

  test('dark theme and a phone-sized viewport: still usable, no sideways scrolling of the page', async () => {
    await page.getByRole('button', { name: /Switch to dark theme/ }).click()
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark')
    await page.setViewportSize({ width: 375, height: 740 })
    await page.goto(url('/projects'))
    await page.getByRole('link', { name: 'webteam' }).waitFor()
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px`)
    await noSeriousViolations(page, 'projects, dark, phone')
    await screenshot(page, 'projects-dark-phone')
    await page.setViewportSize({ width: 1280, height: 900 })
    await page.goto(url('/repositories/webteam/app'))
    await page.getByRole('link', { name: 'multi', exact: true }).waitFor()
    await noSeriousViolations(page, 'repository, dark')
    await screenshot(page, 'repository-dark')
    await page.getByRole('button', { name: /Switch to light theme/ }).click()
    await page.goto(url('/projects'))
    await screenshot(page, 'projects')
  })

  test('an expired session: the next request leads to sign-in, and back to where one was', async () => {
    await page.goto(url('/projects/webteam'))
    await page.getByRole('link', { name: 'webteam/app' }).waitFor()
    await context.clearCookies()
    await page.getByRole('link', { name: 'webteam/app' }).click()
    await page.waitForURL(/\/sign-in\?next=%2Frepositories%2Fwebteam%2Fapp$/)
    await signIn(page, 'admin', ADMIN_PASSWORD)
    await page.waitForURL(url('/repositories/webteam/app'))
    await page.getByRole('link', { name: 'multi', exact: true }).waitFor()
  })

  test('a guest sees no button for what a guest may not do (and the API refuses it anyway)', async () => {
    const guestContext = await browser.newContext()
    guestContext.setDefaultTimeout(TIMEOUT)
    try {
      const guest = await guestContext.newPage()
      await guest.goto(url('/repositories/webteam/app'))
      // With the keyboard alone: Tab to each field, Enter to sign in.
      await guest.getByRole('button', { name: 'Sign in' }).waitFor()
      await guest.keyboard.press('Tab')
      assert.equal(await guest.evaluate(() => document.activeElement?.getAttribute('name')), 'username')
      await guest.keyboard.type('viewer')
      await guest.keyboard.press('Tab')
      await guest.keyboard.type('viewer-password-1')
      await guest.keyboard.press('Enter')
      await guest.waitForURL(url('/repositories/webteam/app'))
      await guest.getByRole('link', { name: 'multi', exact: true }).waitFor()
      assert.equal(await guest.getByRole('button', { name: /delete/i }).count(), 0, 'no delete button')
      assert.equal(await guest.getByRole('checkbox').count(), 0, 'no selection for deleting')
      await guest.goto(url('/projects/webteam'))
      await guest.getByRole('link', { name: 'Members' }).waitFor()
      for (const tab of ['Robot accounts', 'Retention and immutability', 'Settings']) assert.equal(await guest.getByRole('link', { name: tab }).count(), 0, `no ${tab} tab`)
      assert.equal(await guest.getByRole('link', { name: 'Administration' }).count(), 0)
      await guest.goto(url('/projects'))
      await guest.getByRole('link', { name: 'webteam' }).waitFor()
      const refused = await fetch(`${s.url}/api/v1/projects/webteam/repositories/app/tags/multi`, { method: 'DELETE', headers: { authorization: basic('viewer', 'viewer-password-1') } })
      assert.equal(refused.status, 403)
    } finally {
      await guestContext.close()
    }
  })
})
