// Attacks on credentials (issue 20): refresh tokens and sessions that outlive a password change,
// a logout or their account; replayed refresh tokens; registry tokens used as a management
// login; user enumeration by timing; audit floods and lock-outs from password guessing.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, basic, startAuthServer, token } from '../helpers/auth.js'
import { postgresSkip, testCluster, type TestServer } from '../helpers/server.js'

/** The OAuth2 form of /token (what docker sends with a refresh token). */
async function tokenForm(s: TestServer, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ service: 'berth', client_id: 'test', ...fields }).toString(),
  })
}

/** A rotating refresh token from the password grant. */
async function passwordGrant(s: TestServer, username: string, password: string): Promise<string> {
  const res = await tokenForm(s, { grant_type: 'password', username, password, access_type: 'offline' })
  assert.equal(res.status, 200, await res.clone().text())
  const body = (await res.json()) as { refresh_token?: string }
  assert.ok(body.refresh_token)
  return body.refresh_token
}

/** What `docker login` stores: GET /token with Basic credentials and offline_token=true. */
async function dockerIdentityToken(s: TestServer, authorization: string): Promise<string> {
  const res = await fetch(`${s.url}/token?service=berth&offline_token=true`, { headers: { authorization } })
  assert.equal(res.status, 200)
  const body = (await res.json()) as { refresh_token?: string }
  assert.ok(body.refresh_token)
  return body.refresh_token
}

async function refresh(s: TestServer, refreshToken: string, scope = ''): Promise<{ status: number; refreshToken?: string; accessToken?: string }> {
  const res = await tokenForm(s, { grant_type: 'refresh_token', refresh_token: refreshToken, scope })
  if (res.status !== 200) return { status: res.status }
  const body = (await res.json()) as { refresh_token: string; access_token: string }
  return { status: 200, refreshToken: body.refresh_token, accessToken: body.access_token }
}

/** A UI session: the cookie and its CSRF token. */
async function uiLogin(s: TestServer, username: string, password: string): Promise<{ cookie: string; csrf: string }> {
  const res = await api(s, 'POST', '/login', undefined, { username, password })
  assert.equal(res.status, 200)
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
  const { csrfToken } = (await res.json()) as { csrfToken: string }
  return { cookie, csrf: csrfToken }
}

async function me(s: TestServer, cookie: string): Promise<number> {
  return (await fetch(`${s.url}/api/v1/me`, { headers: { cookie } })).status
}

describe('credentials that end', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer()
  })
  after(async () => {
    await s?.close()
  })

  it('a password change ends refresh tokens (docker login tokens too) and sessions made before it', async () => {
    await addUser(s, 'pat')
    const rotating = await passwordGrant(s, 'pat', 'pat-password-1')
    const identity = await dockerIdentityToken(s, basic('pat', 'pat-password-1'))
    const session = await uiLogin(s, 'pat', 'pat-password-1')
    assert.equal(await me(s, session.cookie), 200)
    assert.equal((await refresh(s, identity)).status, 200, 'the docker login token works before')

    await apiOk(s, 'PATCH', '/users/pat', ADMIN, { password: 'pat-password-2' })
    assert.equal((await refresh(s, rotating)).status, 401, 'refresh token replayed after the password change')
    assert.equal((await refresh(s, identity)).status, 401, 'docker login token replayed after the password change')
    assert.equal(await me(s, session.cookie), 401, 'session cookie after the password change')
    // The new password gives new credentials.
    assert.equal((await refresh(s, await passwordGrant(s, 'pat', 'pat-password-2'))).status, 200)
  })

  it('refresh tokens rotate: a replayed one revokes its whole family', async () => {
    await addUser(s, 'rita')
    const first = await passwordGrant(s, 'rita', 'rita-password-1')
    const second = await refresh(s, first)
    assert.equal(second.status, 200)
    assert.ok(second.refreshToken && second.refreshToken !== first)
    const third = await refresh(s, second.refreshToken)
    assert.equal(third.status, 200)
    assert.ok(third.refreshToken)
    // An attacker replays the stolen first token: refused, and the legitimate holder's newest
    // token dies with it.
    assert.equal((await refresh(s, first)).status, 401)
    assert.equal((await refresh(s, third.refreshToken)).status, 401, 'the family is revoked')
    // Another login's family is untouched.
    assert.equal((await refresh(s, await passwordGrant(s, 'rita', 'rita-password-1'))).status, 200)
  })

  it("docker's identity token may be presented again, its successors may not", async () => {
    await addUser(s, 'dina')
    const identity = await dockerIdentityToken(s, basic('dina', 'dina-password-1'))
    const a = await refresh(s, identity, 'repository:library/x:pull')
    const b = await refresh(s, identity, 'repository:library/x:pull')
    assert.equal(a.status, 200)
    assert.equal(b.status, 200, 'docker presents the token it stored at login for every command')
    assert.ok(a.refreshToken)
    assert.equal((await refresh(s, a.refreshToken)).status, 200)
    assert.equal((await refresh(s, a.refreshToken)).status, 401, 'a successor is single-use')
    assert.equal((await refresh(s, identity)).status, 401, 'and its replay revoked the family, the identity token included')
  })

  it('logout ends the session on the server, not only in the browser', async () => {
    await addUser(s, 'lou')
    const session = await uiLogin(s, 'lou', 'lou-password-1')
    const other = await uiLogin(s, 'lou', 'lou-password-1')
    assert.equal(await me(s, session.cookie), 200)
    const out = await fetch(`${s.url}/api/v1/logout`, { method: 'POST', headers: { cookie: session.cookie, 'x-csrf-token': session.csrf } })
    assert.equal(out.status, 204)
    assert.equal(await me(s, session.cookie), 401, 'the cookie kept by an attacker no longer works')
    assert.equal(await me(s, other.cookie), 200, 'other sessions of the user go on')
  })

  it('a deleted user leaves nothing to a new user of the same name', async () => {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'vault', public: false }, 201)
    const sam = await addUser(s, 'sam')
    await apiOk(s, 'POST', '/projects/vault/members', ADMIN, { username: 'sam', role: 'developer' }, 201)
    assert.deepEqual((await token(s, sam, 'repository:vault/app:pull')).access, [{ type: 'repository', name: 'vault/app', actions: ['pull'] }])
    const refreshToken = await passwordGrant(s, 'sam', 'sam-password-1')
    const identity = await dockerIdentityToken(s, sam)
    const session = await uiLogin(s, 'sam', 'sam-password-1')
    const access = await token(s, sam, 'repository:vault/app:pull')

    assert.equal((await api(s, 'DELETE', '/users/sam', ADMIN)).status, 204)
    const members = await apiOk<unknown[]>(s, 'GET', '/projects/vault/members', ADMIN)
    assert.deepEqual(members, [], 'memberships go with the user')

    const newSam = await addUser(s, 'sam')
    assert.deepEqual((await token(s, newSam, 'repository:vault/app:pull')).access, [], 'no inherited membership')
    assert.equal((await refresh(s, refreshToken)).status, 401)
    assert.equal((await refresh(s, identity)).status, 401)
    assert.equal(await me(s, session.cookie), 401)
    const tags = await fetch(`${s.url}/v2/vault/app/tags/list`, { headers: { authorization: `Bearer ${access.token}` } })
    assert.equal(tags.status, 401, "the old sam's access token is not the new sam's")
  })

  it('a deleted robot leaves nothing to a new robot of the same name; rotation ends the old secret', async () => {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'builds', public: false }, 201)
    const make = () => apiOk<{ name: string; secret: string }>(s, 'POST', '/robots', ADMIN, { name: 'ci', project: 'builds', permissions: ['pull', 'push'] }, 201)
    const first = await make()
    const identity = await dockerIdentityToken(s, basic(first.name, first.secret))
    assert.equal((await refresh(s, identity)).status, 200)
    assert.equal((await api(s, 'DELETE', `/robots/${encodeURIComponent(first.name)}`, ADMIN)).status, 204)
    const second = await make()
    assert.equal(second.name, first.name)
    assert.equal((await refresh(s, identity)).status, 401, "the deleted robot's refresh token")

    const secondIdentity = await dockerIdentityToken(s, basic(second.name, second.secret))
    const outsider = await addUser(s, 'outsider')
    assert.ok([403, 404].includes((await api(s, 'POST', `/robots/${encodeURIComponent(second.name)}/secret`, outsider)).status), 'only its managers rotate a robot')
    assert.equal((await token(s, basic(second.name, second.secret))).status, 200, 'the refused rotation changed nothing')
    const rotated = await apiOk<{ name: string; secret: string }>(s, 'POST', `/robots/${encodeURIComponent(second.name)}/secret`, ADMIN, undefined, 201)
    assert.ok(rotated.secret && rotated.secret !== second.secret)
    assert.equal((await token(s, basic(second.name, second.secret))).status, 401, 'the old secret')
    assert.equal((await token(s, basic(second.name, rotated.secret))).status, 200, 'the new secret')
    assert.equal((await refresh(s, secondIdentity)).status, 401, 'refresh tokens from the old secret')
    const robot = await apiOk<{ name: string; secret?: string }>(s, 'GET', `/robots/${encodeURIComponent(second.name)}`, ADMIN)
    assert.equal(robot.secret, undefined, 'the secret is shown once')
    assert.equal((await api(s, 'POST', '/robots/robot%24builds%2Bnobody/secret', ADMIN)).status, 404)
  })

  it('registry tokens do not authorize the management API', async () => {
    const vic = await addUser(s, 'vic')
    const pull = await token(s, vic, 'repository:library/public:pull')
    assert.equal(pull.status, 200)
    const bearer = `Bearer ${pull.token}`
    assert.equal((await api(s, 'GET', '/me', bearer)).status, 401)
    assert.equal((await api(s, 'PATCH', '/users/vic', bearer, { password: 'taken-over-1' })).status, 401)
    const admin = await token(s, ADMIN, 'repository:library/public:pull')
    assert.equal((await api(s, 'POST', '/robots', `Bearer ${admin.token}`, { name: 'evil', permissions: ['pull', 'push', 'delete'] })).status, 401)
    assert.equal((await api(s, 'GET', '/robots/robot%24evil', ADMIN)).status, 404, 'no robot was made')
    assert.equal((await api(s, 'GET', '/me', vic)).status, 200, 'Basic credentials still work')
  })

  it('changing your own password asks for the current one', async () => {
    await addUser(s, 'cam')
    const session = await uiLogin(s, 'cam', 'cam-password-1')
    const patch = (body: unknown) =>
      fetch(`${s.url}/api/v1/users/cam`, { method: 'PATCH', headers: { cookie: session.cookie, 'x-csrf-token': session.csrf, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const missing = await patch({ password: 'stolen-session-1' })
    assert.equal(missing.status, 400)
    assert.equal(((await missing.json()) as { field: string }).field, 'currentPassword')
    assert.equal((await patch({ password: 'stolen-session-1', currentPassword: 'a-guess-123' })).status, 403)
    assert.equal((await token(s, basic('cam', 'cam-password-1'))).status, 200, 'the password did not change')
    assert.equal((await patch({ password: 'cam-password-2', currentPassword: 'cam-password-1' })).status, 200)
    assert.equal((await token(s, basic('cam', 'cam-password-2'))).status, 200)
    // An admin resetting someone else's password needs no current password.
    await apiOk(s, 'PATCH', '/users/cam', ADMIN, { password: 'cam-password-3' })
  })
})

describe('password guessing', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer({ http: { trustProxy: '*' } }, { keepData: true })
  })
  after(async () => {
    await s?.close()
  })

  const from = (address: string, authorization: string) => ({ authorization, 'x-forwarded-for': address })
  const tokenFrom = (address: string, authorization: string) => fetch(`${s.url}/token?service=berth`, { headers: from(address, authorization) })

  it('a wrong password takes as long for an unknown user as for an existing one', async () => {
    await addUser(s, 'tim')
    const timeOf = async (username: string, i: number) => {
      const started = process.hrtime.bigint()
      const res = await tokenFrom(`192.0.2.${i}`, basic(username, `wrong-password-${i}`))
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      assert.equal(res.status, 401)
      return ms
    }
    // Warm up both paths (the first argon2 call, the dummy hash).
    await timeOf('tim', 200)
    await timeOf('nobody-here', 201)
    const known: number[] = []
    const unknown: number[] = []
    for (let i = 0; i < 8; i++) {
      known.push(await timeOf('tim', i))
      unknown.push(await timeOf(`nobody-${i}`, 100 + i))
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    // Before the dummy hash: 13.6 ms against 2.2 ms. Half is generous on a busy machine.
    assert.ok(mean(unknown) > mean(known) * 0.5, `unknown ${mean(unknown).toFixed(1)} ms vs existing ${mean(known).toFixed(1)} ms`)
  })

  it('guessing slows the guesser down without locking the owner out', async () => {
    const owner = await addUser(s, 'olga')
    const attacker = '203.0.113.66'
    for (let i = 0; i < 10; i++) assert.equal((await tokenFrom(attacker, basic('olga', `guess-${i}`))).status, 401)
    const refused = await tokenFrom(attacker, owner)
    assert.equal(refused.status, 429, 'even the right password waits at the guessing address')
    assert.ok(Number(refused.headers.get('retry-after')) >= 1)
    assert.equal((await tokenFrom('198.51.100.7', owner)).status, 200, 'the owner, elsewhere, signs in')
    const ui = await fetch(`${s.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.7' }, body: JSON.stringify({ username: 'olga', password: 'olga-password-1' }) })
    assert.equal(ui.status, 200)
  })

  it('failed logins are one audit row per (user, address) and window, throttled ones included', async () => {
    const attempts = 3000
    const address = '203.0.113.99'
    const started = Date.now()
    for (let i = 0; i < attempts; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => tokenFrom(address, basic('admin', `guess-${i + j}`)).then((r) => r.arrayBuffer())))
    }
    const seconds = (Date.now() - started) / 1000
    await s.app.auth.audit.flush()
    const rows = await s.app.metadata.db.selectFrom('audit_log').select(['detail']).where('action', '=', 'login').where('result', '=', 'failure').where('address', '=', address).execute()
    const counted = rows.reduce((sum, r) => sum + ((r.detail ? (JSON.parse(r.detail) as { count?: number }).count : undefined) ?? 1), 0)
    assert.equal(counted, attempts, 'every attempt is counted')
    // A row per second or so for the failures and one for the throttled attempts, not 3,000.
    assert.ok(rows.length <= 2 * (Math.ceil(seconds) + 2), `${rows.length} rows for ${attempts} attempts in ${seconds.toFixed(1)} s`)
    // The admin, from elsewhere, is not locked out.
    assert.equal((await tokenFrom('198.51.100.8', ADMIN)).status, 200)
  })

  it('the delay is kept in the database: a restart does not reset it', async () => {
    const attacker = '203.0.113.7'
    await addUser(s, 'rex')
    for (let i = 0; i < 10; i++) assert.equal((await tokenFrom(attacker, basic('rex', `guess-${i}`))).status, 401)
    assert.equal((await tokenFrom(attacker, basic('rex', 'guess-x'))).status, 429)
    const dataDir = s.dataDir
    await s.close()
    // The same data directory (and database); this one removes them on close.
    s = await startAuthServer({ dataDir, http: { trustProxy: '*' } })
    // The 1 s delay may be over by now; the count is not: the next failure doubles it.
    const deadline = Date.now() + 5_000
    let res = await tokenFrom(attacker, basic('rex', 'guess-11'))
    while (res.status === 429 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      res = await tokenFrom(attacker, basic('rex', 'guess-11'))
    }
    assert.equal(res.status, 401)
    const next = await tokenFrom(attacker, basic('rex', 'rex-password-1'))
    assert.equal(next.status, 429)
    assert.equal(next.headers.get('retry-after'), '2', 'the 11th failure: 2 s, as before the restart')
  })
})

// Two nodes on one PostgreSQL database: what one node revokes, the other refuses at once (the
// record is read on every use, no cache to wait for), and guesses count on both.
describe('credentials end on every node (PostgreSQL)', { skip: postgresSkip() }, () => {
  const cluster = testCluster({ auth: { enabled: true }, http: { trustProxy: '*' } })
  let a: TestServer
  let b: TestServer
  before(async () => {
    a = await cluster.start({ adminPassword: ADMIN_PASSWORD })
    b = await cluster.start({ adminPassword: ADMIN_PASSWORD })
  })
  after(() => cluster.close())

  it('a password change or a logout on one node ends the credentials on the other', async () => {
    await addUser(a, 'nina')
    const identity = await dockerIdentityToken(b, basic('nina', 'nina-password-1'))
    const session = await uiLogin(b, 'nina', 'nina-password-1')
    const other = await uiLogin(a, 'nina', 'nina-password-1')
    assert.equal((await refresh(b, identity)).status, 200)
    assert.equal(await me(b, session.cookie), 200)
    assert.equal(await me(b, other.cookie), 200)

    const out = await fetch(`${a.url}/api/v1/logout`, { method: 'POST', headers: { cookie: other.cookie, 'x-csrf-token': other.csrf } })
    assert.equal(out.status, 204)
    assert.equal(await me(b, other.cookie), 401, 'logged out on a, refused on b')

    await apiOk(a, 'PATCH', '/users/nina', ADMIN, { password: 'nina-password-2' })
    assert.equal((await refresh(b, identity)).status, 401, 'password changed on a, refresh refused on b')
    assert.equal(await me(b, session.cookie), 401, 'password changed on a, session refused on b')
  })

  it('guesses on one node slow the guesser down on the other', async () => {
    await addUser(a, 'gus')
    const guess = (s: TestServer, password: string) => fetch(`${s.url}/token?service=berth`, { headers: { authorization: basic('gus', password), 'x-forwarded-for': '203.0.113.5' } })
    for (let i = 0; i < 10; i++) assert.equal((await guess(i % 2 === 0 ? a : b, `guess-${i}`)).status, 401)
    assert.equal((await guess(b, 'gus-password-1')).status, 429)
    assert.equal((await guess(a, 'gus-password-1')).status, 429)
  })
})
