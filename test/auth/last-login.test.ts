// lastLoginAt of local users: recorded by every way of logging in with a password, and written at
// most once a minute per user (a client sending Basic on every /v2 request costs no write each).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN, addUser, apiOk, basic, startAuthServer, token } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'

describe('lastLoginAt of local users', () => {
  it('is recorded by /token, Basic on /v2 and /api/v1 and the UI login; at most once a minute', async (t) => {
    let clock = Date.now()
    const s = await startAuthServer({}, { now: () => clock })
    t.after(() => s.close())
    const lastLogin = async (username: string) => (await apiOk<{ lastLoginAt: string | null }>(s, 'GET', `/users/${username}`, ADMIN)).lastLoginAt
    const at = (ms: number) => new Date(ms).toISOString()

    const viaToken = await addUser(s, 'via-token')
    const viaV2 = await addUser(s, 'via-v2')
    const viaApi = await addUser(s, 'via-api')
    await addUser(s, 'via-ui')
    for (const u of ['via-token', 'via-v2', 'via-api', 'via-ui']) assert.equal(await lastLogin(u), null, `${u} never logged in`)

    clock += 1000
    assert.equal((await token(s, viaToken, 'repository:x/y:pull')).status, 200)
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: viaV2 } })).status, 200)
    await apiOk(s, 'GET', '/projects', viaApi)
    const ui = await fetch(`${s.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'via-ui', password: 'via-ui-password-1' }) })
    assert.equal(ui.status, 200)
    const first = clock
    for (const u of ['via-token', 'via-v2', 'via-api', 'via-ui']) await eventually(async () => (await lastLogin(u)) === at(first), `${u}'s lastLoginAt`)

    // A failed login records nothing.
    clock += 1000
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: basic('via-v2', 'wrong-password') } })).status, 401)

    // Requests within the minute: no write.
    clock += 30_000
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: viaV2 } })).status, 200)
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(await lastLogin('via-v2'), at(first), 'not rewritten within a minute')

    // The first request after the minute writes it again.
    clock += 31_000
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: viaV2 } })).status, 200)
    const later = clock
    await eventually(async () => (await lastLogin('via-v2')) === at(later), 'lastLoginAt after a minute')
  })
})
