import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { buildApp } from '../../src/app.js'
import { safeReturnTo } from '../../src/auth/oidc.js'
import { ADMIN, api, apiOk, basic, token } from '../helpers/auth.js'
import { Browser, freePort, startAuthServerOnPort, startOidcProvider, type TestProvider } from '../helpers/oidc.js'
import { testConfig, type TestServer } from '../helpers/server.js'

const ALICE = { password: 'alice-idp-password', email: 'alice@example.com', groups: ['platform'] }

describe('OIDC login', () => {
  let idp: TestProvider
  let s: TestServer
  let callbackPath: string
  let logs = ''
  /** every secret the flow handled: none may reach the log */
  const secrets: string[] = []

  before(async () => {
    const port = await freePort()
    const redirectUrl = `http://127.0.0.1:${port}/auth/oidc/callback`
    callbackPath = new URL(redirectUrl).pathname
    idp = await startOidcProvider({
      redirectUri: redirectUrl,
      accounts: {
        alice: ALICE,
        bob: { password: 'bob-idp-password', email: 'bob@example.com', groups: ['registry-admins'] },
        admin: { password: 'impostor-password', email: 'evil@example.com', groups: [] },
        'not a name': { password: 'x-password', email: 'x@example.com', groups: [] },
      },
    })
    s = await startAuthServerOnPort(port, {
      log: { level: 'debug' },
      auth: { oidc: { enabled: true, issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, redirectUrl, adminGroup: 'registry-admins' } },
    }, { logStream: new Writable({ write: (chunk: Buffer, _enc, done) => done(void (logs += chunk.toString())) }) })
  })
  after(async () => {
    await s?.close()
    await idp?.close()
  })

  const isCallback = (u: URL) => u.pathname === callbackPath

  /** Goes through the provider (signing in and consenting when asked); returns the callback URL. */
  async function throughProvider(browser: Browser, start: string, who: string, password: string): Promise<URL> {
    let step = await browser.follow(start, isCallback)
    for (let i = 0; i < 4 && step.res; i++) {
      const text = await step.res.text()
      assert.equal(step.res.status, 200, `${step.url.href}: ${step.res.status} ${text}`)
      const { uid, prompt } = JSON.parse(text) as { uid: string; prompt: string }
      const target = new URL(`/interaction/${uid}/${prompt === 'login' ? 'login' : 'confirm'}`, step.url)
      step = await browser.follow(target, isCallback, { method: 'POST', form: prompt === 'login' ? { login: who, password } : {} })
    }
    assert.ok(!step.res, 'the provider sent the browser back to Berth')
    return step.url
  }

  async function signIn(browser: Browser, who: string, password: string, returnTo?: string): Promise<Response> {
    const callback = await throughProvider(browser, `${s.url}/auth/oidc/login${returnTo ? `?return_to=${encodeURIComponent(returnTo)}` : ''}`, who, password)
    return browser.request(callback)
  }

  const csrfOf = (browser: Browser) => decodeURIComponent(browser.cookie('127.0.0.1', 'berth_csrf')?.value ?? '')
  const me = async (browser: Browser) => {
    const res = await browser.request(`${s.url}/api/v1/me`)
    assert.equal(res.status, 200)
    return (await res.json()) as { kind: string; username: string; admin: boolean; groups: string[]; csrfToken?: string }
  }

  it('sends the browser to the provider with PKCE (S256), state and nonce in a sealed cookie', async () => {
    const browser = new Browser()
    const res = await browser.request(`${s.url}/auth/oidc/login?return_to=/projects/apps`)
    assert.equal(res.status, 302)
    const location = new URL(res.headers.get('location') ?? '')
    assert.equal(location.origin, idp.issuer)
    const q = location.searchParams
    assert.equal(q.get('response_type'), 'code')
    assert.equal(q.get('client_id'), idp.clientId)
    assert.equal(q.get('redirect_uri'), `${s.url}${callbackPath}`)
    assert.equal(q.get('code_challenge_method'), 'S256')
    assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/)
    assert.ok(q.get('state') && q.get('nonce'))
    assert.deepEqual(q.get('scope')?.split(' '), ['openid', 'profile', 'email', 'groups'])
    const stateCookie = browser.setCookies.find((c) => c.startsWith('berth_oidc='))
    assert.match(stateCookie ?? '', /; Path=\/auth\/oidc; HttpOnly; SameSite=Lax; Max-Age=600/)
    // The cookie is sealed: neither state, nonce nor the PKCE verifier can be read from it.
    const sealed = browser.cookie('127.0.0.1', 'berth_oidc')?.value ?? ''
    assert.equal(sealed.split('.').length, 5, 'a JWE')
    assert.ok(!sealed.includes(q.get('state') ?? '-'))
    assert.equal(res.headers.get('cache-control'), 'no-store')
  })

  let alice: Browser
  let replayable: URL

  it('signs a person in: provider login and consent, callback, session cookie, provisioned user with groups', async () => {
    alice = new Browser()
    const wrong = await wrongPassword(alice)
    assert.equal(wrong, 401, 'the provider checks the password')
    replayable = await throughProvider(alice, `${s.url}/auth/oidc/login?return_to=/projects/apps`, 'alice', ALICE.password)
    assert.ok(replayable.searchParams.get('code'))
    const res = await alice.request(replayable)
    assert.equal(res.status, 302, await res.clone().text())
    assert.equal(res.headers.get('location'), '/projects/apps')
    const session = alice.setCookies.find((c) => c.startsWith('berth_session=')) ?? ''
    assert.match(session, /; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/, 'the same cookie as POST /api/v1/login')
    assert.ok(alice.setCookies.some((c) => /^berth_oidc=; Path=\/auth\/oidc; .*Max-Age=0/.test(c)), 'the state cookie is cleared')
    assert.ok(csrfOf(alice), 'the page can read the CSRF token')

    const aliceMe = await me(alice)
    assert.match(String(aliceMe.csrfToken), /^[\w-]{20,}$/, 'a cookie session learns its CSRF token')
    assert.deepEqual({ ...aliceMe, csrfToken: undefined }, { kind: 'user', username: 'alice', admin: false, groups: ['platform'], csrfToken: undefined })
    const row = await apiOk<{ source: string; email: string; groups: string[]; lastLoginAt: string | null }>(s, 'GET', '/users/alice', ADMIN)
    assert.equal(row.source, 'oidc')
    assert.equal(row.email, 'alice@example.com')
    assert.deepEqual(row.groups, ['platform'])
    assert.ok(row.lastLoginAt)
    // No password: Basic with anything but a CLI secret is refused.
    assert.equal((await token(s, basic('alice', ALICE.password), 'repository:library/x:pull')).status, 401)

    async function wrongPassword(b: Browser): Promise<number> {
      let step = await b.follow(`${s.url}/auth/oidc/login`, isCallback)
      const { uid } = (await step.res?.json()) as { uid: string }
      step = await b.follow(new URL(`/interaction/${uid}/login`, step.url), isCallback, { method: 'POST', form: { login: 'alice', password: 'wrong-password' } })
      return step.res?.status ?? 0
    }
  })

  it('refuses a replayed callback', async () => {
    // Same browser: the state cookie is gone.
    const again = await alice.request(replayable, { headers: { accept: 'application/json' } })
    assert.equal(again.status, 401)
    assert.match(again.headers.get('content-type') ?? '', /^application\/problem\+json/)
    assert.match(((await again.json()) as { detail: string }).detail, /no login in progress/)
    // An attacker holding the old state cookie too: the provider refuses the used code.
    const thief = new Browser()
    const stateCookie = alice.setCookies.filter((c) => c.startsWith('berth_oidc=') && !c.includes('Max-Age=0')).at(-1) ?? ''
    thief.setCookie('127.0.0.1', 'berth_oidc', stateCookie.slice('berth_oidc='.length, stateCookie.indexOf(';')), '/auth/oidc')
    const stolen = await thief.request(replayable)
    assert.equal(stolen.status, 401)
    assert.match(((await stolen.json()) as { detail: string }).detail, /invalid_grant/)
    assert.equal(thief.cookie('127.0.0.1', 'berth_session'), undefined)
  })

  it('refuses a tampered state, a tampered cookie and a callback nobody started, with problem JSON or a small HTML page', async () => {
    const b = new Browser()
    const callback = await throughProvider(b, `${s.url}/auth/oidc/login`, 'alice', ALICE.password)
    const sealed = b.cookie('127.0.0.1', 'berth_oidc')?.value ?? ''

    const tampered = new URL(callback)
    tampered.searchParams.set('state', `${callback.searchParams.get('state')}x`)
    const r1 = await b.request(tampered)
    assert.equal(r1.status, 401)
    assert.match(((await r1.json()) as { detail: string }).detail, /state does not match/)

    const forged = new Browser()
    const flipped = sealed.slice(0, -3) + (sealed.endsWith('AAA') ? 'BBB' : 'AAA')
    forged.setCookie('127.0.0.1', 'berth_oidc', flipped, '/auth/oidc')
    const r2 = await forged.request(callback)
    assert.equal(r2.status, 401)
    assert.match(((await r2.json()) as { detail: string }).detail, /invalid or expired/)

    const r3 = await new Browser().request(callback, { headers: { accept: 'text/html,application/xhtml+xml' } })
    assert.equal(r3.status, 401)
    assert.match(r3.headers.get('content-type') ?? '', /^text\/html/)
    assert.match(await r3.text(), /Sign-in failed.*no login in progress/s)

    // The provider's own refusal (the user cancelled) is a 401 too, never a 500.
    const r4 = await forged.request(`${s.url}${callbackPath}?error=access_denied&state=x`)
    assert.equal(r4.status, 401)
    for (const b2 of [b, forged]) assert.equal(b2.cookie('127.0.0.1', 'berth_session'), undefined)
  })

  it('gives the OIDC user a CLI secret for docker login; a project whose member is the group lets them push', async () => {
    const cookieOnly = await alice.request(`${s.url}/api/v1/users/alice/cli-secret`, { method: 'POST' })
    assert.equal(cookieOnly.status, 403, 'a write with the session cookie needs X-CSRF-Token')
    const res = await alice.request(`${s.url}/api/v1/users/alice/cli-secret`, { method: 'POST', headers: { 'x-csrf-token': csrfOf(alice) } })
    assert.equal(res.status, 201)
    const { secret } = (await res.json()) as { secret: string }
    const cli = basic('alice', secret)
    secrets.push(secret, csrfOf(alice), alice.cookie('127.0.0.1', 'berth_session')?.value ?? '', replayable.searchParams.get('code') ?? '', idp.clientSecret)

    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'apps', public: false }, 201)
    assert.deepEqual((await token(s, cli, 'repository:apps/web:pull,push')).access, [])
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { group: 'platform', role: 'developer' }, 201)
    const granted = await token(s, cli, 'repository:apps/web:pull,push,delete')
    assert.equal(granted.status, 200)
    assert.deepEqual(granted.access, [{ type: 'repository', name: 'apps/web', actions: ['pull', 'push'] }])

    // docker push with that token: a blob and a manifest.
    const bearer = { authorization: `Bearer ${granted.token}` }
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}')
    const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`
    const blob = await fetch(`${s.url}/v2/apps/web/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: bearer, body: config })
    assert.equal(blob.status, 201)
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length }, layers: [] })
    const put = await fetch(`${s.url}/v2/apps/web/manifests/v1`, { method: 'PUT', headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest })
    assert.equal(put.status, 201, await put.text())
    // Basic with the CLI secret straight on /v2 (podman, CI scripts): pull yes, delete is beyond a developer.
    assert.equal((await fetch(`${s.url}/v2/apps/web/manifests/v1`, { headers: { authorization: cli } })).status, 200)
    assert.equal((await fetch(`${s.url}/v2/apps/web/manifests/v1`, { method: 'DELETE', headers: { authorization: cli } })).status, 403)
  })

  it('updates the groups at every login', async () => {
    ALICE.groups = ['qa']
    // The provider remembers the session and the consent: straight back to Berth.
    const callback = await throughProvider(alice, `${s.url}/auth/oidc/login`, 'alice', ALICE.password)
    const res = await alice.request(callback)
    assert.equal(res.status, 302)
    assert.equal(res.headers.get('location'), '/')
    assert.deepEqual((await me(alice)).groups, ['qa'])
    assert.deepEqual((await apiOk<{ groups: string[] }>(s, 'GET', '/users/alice', ADMIN)).groups, ['qa'])
    const secret = ((await (await alice.request(`${s.url}/api/v1/users/alice/cli-secret`, { method: 'POST', headers: { 'x-csrf-token': csrfOf(alice) } })).json()) as { secret: string }).secret
    assert.deepEqual((await token(s, basic('alice', secret), 'repository:apps/web:pull,push')).access, [], 'no longer in platform')
  })

  it('makes members of auth.oidc.adminGroup system administrators', async () => {
    const b = new Browser()
    assert.equal((await signIn(b, 'bob', 'bob-idp-password')).status, 302)
    assert.deepEqual({ ...(await me(b)), csrfToken: undefined }, { kind: 'user', username: 'bob', admin: true, groups: ['registry-admins'], csrfToken: undefined })
    idp.accounts.set('bob', { password: 'bob-idp-password', email: 'bob@example.com', groups: [] })
    assert.equal((await signIn(new Browser(), 'bob', 'bob-idp-password')).status, 302)
    assert.equal((await apiOk<{ admin: boolean }>(s, 'GET', '/users/bob', ADMIN)).admin, false, 'leaving the group revokes it')
  })

  it('never takes over a local account, and refuses unusable user names', async () => {
    const b = new Browser()
    const res = await signIn(b, 'admin', 'impostor-password')
    assert.equal(res.status, 403)
    assert.match(((await res.json()) as { detail: string }).detail, /exists as a local account/)
    assert.equal(b.cookie('127.0.0.1', 'berth_session'), undefined)
    const bad = await signIn(new Browser(), 'not a name', 'x-password')
    assert.equal(bad.status, 403)
    assert.match(((await bad.json()) as { detail: string }).detail, /no usable user name/)
    // Both refusals and the successful logins are in the audit log.
    const rows = await apiOk<{ user: string; result: string; detail: { via?: string; reason?: string } | null }[]>(s, 'GET', '/audit?action=login&limit=1000', ADMIN)
    const oidcRows = rows.filter((r) => r.detail?.via === 'oidc')
    assert.ok(oidcRows.some((r) => r.user === 'admin' && r.result === 'failure' && /local account/.test(r.detail?.reason ?? '')))
    assert.ok(oidcRows.some((r) => r.user === 'alice' && r.result === 'success'))
  })

  it('keeps return_to to same-origin relative paths', async () => {
    const b = new Browser()
    assert.equal((await signIn(b, 'alice', ALICE.password, '//evil.example/x')).headers.get('location'), '/')
    for (const [input, out] of [
      ['/projects/apps?tab=members#top', '/projects/apps?tab=members#top'],
      ['https://evil.example/', '/'],
      ['//evil.example', '/'],
      ['/\\evil.example', '/'],
      ['javascript:alert(1)', '/'],
      ['/ok\r\nSet-Cookie: x=1', '/'],
      [undefined, '/'],
    ] as const) {
      assert.equal(safeReturnTo(input), out, String(input))
    }
  })

  it('a blocked or disabled account cannot sign in', async () => {
    await apiOk(s, 'PATCH', '/users/alice', ADMIN, { disabled: true })
    const res = await signIn(new Browser(), 'alice', ALICE.password)
    assert.equal(res.status, 403)
    assert.equal((await api(s, 'GET', '/me', undefined)).status, 401)
    await apiOk(s, 'PATCH', '/users/alice', ADMIN, { disabled: false })
  })

  it('writes no authorization code, session, CSRF token, CLI secret or client secret to the log', async () => {
    await new Promise((r) => setImmediate(r))
    assert.match(logs, /"url":"\/auth\/oidc\/callback\?\(redacted\)"/)
    assert.match(logs, /OIDC login enabled/)
    assert.equal(secrets.length, 5)
    for (const secret of secrets) {
      assert.ok(secret.length > 8)
      assert.ok(!logs.includes(secret) && !logs.includes(encodeURIComponent(secret)), `a secret (${secret.slice(0, 4)}…) is in the log`)
    }
  })

  // Last: stops the provider.
  it('answers 503 when the provider cannot be reached, and /readyz does not depend on it', async () => {
    const b = new Browser()
    const start = await b.request(`${s.url}/auth/oidc/login`)
    const state = new URL(start.headers.get('location') ?? '').searchParams.get('state') ?? ''
    await idp.close()
    const res = await b.request(`${s.url}${callbackPath}?code=some-code&state=${state}&iss=${encodeURIComponent(idp.issuer)}`)
    assert.equal(res.status, 503)
    assert.match(((await res.json()) as { detail: string }).detail, /could not be reached/)
    assert.equal((await fetch(`${s.url}/readyz`)).status, 200)
  })
})

describe('OIDC start-up', () => {
  it('fails with one line naming auth.oidc.issuer when discovery fails', async () => {
    const port = await freePort()
    const config = await testConfig({
      auth: { enabled: true, oidc: { enabled: true, issuer: `http://127.0.0.1:${port}`, clientId: 'berth', redirectUrl: 'http://127.0.0.1/auth/oidc/callback' } },
    })
    await assert.rejects(buildApp(config, { logger: pino({ level: 'silent' }) }), (err: Error) => {
      assert.match(err.message, new RegExp(`^auth\\.oidc\\.issuer http://127\\.0\\.0\\.1:${port}: OpenID Connect discovery failed: `))
      assert.ok(!err.message.includes('\n'), err.message)
      return true
    })
  })
})
