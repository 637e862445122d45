import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { api, basic } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot } from '../helpers/browser.js'
import { freePort, startAuthServerOnPort, startOidcProvider, type TestProvider } from '../helpers/oidc.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// OIDC sign-in in a real browser, against a real OpenID provider (npm oidc-provider): the
// sign-in page's single sign-on button, the provider's own sign-in and consent pages, the way
// back to the page first asked for, signed in; then the account page's CLI secret, which works
// for docker login (Basic) and, regenerated, replaces the previous one.

const skip = browserSkip()
const ALICE = { password: 'alice-idp-password', email: 'alice@example.com', groups: ['platform'] }

describe('OIDC sign-in in the web UI', { skip }, () => {
  let idp: TestProvider
  let s: TestServer
  let browser: Browser

  before(async () => {
    ensureUiBuilt()
    const port = await freePort()
    const redirectUrl = `http://127.0.0.1:${port}/auth/oidc/callback`
    idp = await startOidcProvider({ redirectUri: redirectUrl, accounts: { alice: ALICE } })
    s = await startAuthServerOnPort(port, { auth: { oidc: { enabled: true, issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, redirectUrl } } })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
    await idp?.close()
  })

  test('signs in at the provider, lands back signed in, and gets a CLI secret that docker login takes', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    context.setDefaultTimeout(20_000)
    const page = await context.newPage()
    await page.goto(`${s.url}/account`)
    // signed out: the sign-in page, which offers single sign-on
    await page.waitForURL(`${s.url}/sign-in?next=${encodeURIComponent('/account')}`)
    const sso = page.getByRole('link', { name: 'Sign in with single sign-on (OIDC)' })
    await noSeriousViolations(page, 'sign-in with OIDC')
    await sso.click()

    // the provider's pages: sign in, then allow
    await page.waitForURL((u) => u.origin === idp.issuer)
    await page.getByLabel('Login').fill('alice')
    await page.getByLabel('Password').fill(ALICE.password)
    await page.getByRole('button', { name: 'Sign in at the provider' }).click()
    await page.getByRole('button', { name: 'Allow' }).click()

    // back at Berth, on the page first asked for, signed in as alice
    await page.waitForURL(`${s.url}/account`)
    await page.getByRole('heading', { name: 'Your account' }).waitFor()
    const facts = await page.locator('dl.facts').evaluate((dl) => [...dl.querySelectorAll('dt')].map((dt) => [dt.textContent, dt.nextElementSibling?.textContent]))
    assert.deepEqual(facts, [
      ['Username', 'alice'],
      ['Signs in with', 'oidc'],
      ['Groups', 'platform'],
      ['Administrator', 'no'],
    ])
    assert.equal(await page.getByRole('form', { name: 'Change password' }).count(), 0, 'an OIDC user has no password here')

    // a CLI secret, shown once, that registry clients take as the password
    await page.getByRole('button', { name: 'New CLI secret' }).click()
    const first = (await page.getByTestId('cli-secret').textContent()) ?? ''
    assert.ok(first.length >= 20, 'a secret is shown')
    await page.getByRole('figure').filter({ hasText: `docker login 127.0.0.1:${new URL(s.url).port} -u alice` }).waitFor()
    await noSeriousViolations(page, 'account with CLI secret')
    await screenshot(page, 'account-cli-secret')
    assert.equal((await api(s, 'GET', '/me', basic('alice', first))).status, 200, 'the secret signs alice in')
    const v2 = await fetch(`${s.url}/v2/`, { headers: { authorization: basic('alice', first) } })
    assert.equal(v2.status, 200, 'and a registry client too')

    // a new secret ends alice's sessions, this one too: she signs in again (the provider
    // remembers her) and comes back to the account page, where she regenerates the secret
    await page.reload()
    await page.waitForURL(`${s.url}/sign-in?next=${encodeURIComponent('/account')}`)
    await page.getByRole('link', { name: 'Sign in with single sign-on (OIDC)' }).click()
    await page.waitForURL(`${s.url}/account`)
    await page.getByRole('button', { name: 'New CLI secret' }).click()
    await page.getByTestId('cli-secret').filter({ hasNotText: first }).waitFor()
    const second = (await page.getByTestId('cli-secret').textContent()) ?? ''
    assert.notEqual(second, first)
    assert.equal((await api(s, 'GET', '/me', basic('alice', first))).status, 401, 'the previous secret is refused')
    assert.equal((await api(s, 'GET', '/me', basic('alice', second))).status, 200, 'the new one works')
    await context.close()
  })
})
