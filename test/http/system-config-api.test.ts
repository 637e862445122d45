import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'

// GET /api/v1/system/config: the effective configuration for system administrators, every
// secret value masked (the passphrase of secrets.key, notification endpoint headers), refused
// to everyone else; listed in the OpenAPI document.

const PASSPHRASE = 'a-long-passphrase-that-must-never-leave-the-server'
const HOOK_TOKEN = 'Bearer notification-token-never-shown'

type Config = {
  auth: { enabled: boolean }
  secrets: { key: string }
  notifications: { endpoints: { name: string; url: string; headers: Record<string, string | string[]> }[] }
  scan: { concurrency: number }
}

describe('GET /api/v1/system/config', () => {
  let s: TestServer
  let user: string
  let projectAdmin: string

  before(async () => {
    s = await startAuthServer({
      secrets: { key: PASSPHRASE },
      scan: { concurrency: 3 },
      notifications: { endpoints: [{ name: 'audit', url: 'http://127.0.0.1:9/events', headers: { Authorization: HOOK_TOKEN, 'X-Tags': ['a', 'b'] } }] },
    })
    user = await addUser(s, 'someone')
    projectAdmin = await addUser(s, 'owner')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'owner', role: 'projectAdmin' }, 201)
  })
  after(() => s.close())

  it('answers a system administrator with the effective configuration, secrets masked', async () => {
    const res = await api(s, 'GET', '/system/config', ADMIN)
    const text = await res.text()
    assert.equal(res.status, 200, text)
    assert.ok(!text.includes(PASSPHRASE), 'the secrets.key passphrase is not shown')
    assert.ok(!text.includes('notification-token-never-shown'), 'notification headers are not shown')
    const config = JSON.parse(text) as Config
    assert.equal(config.auth.enabled, true)
    assert.equal(config.scan.concurrency, 3, 'the values in effect')
    assert.equal(config.secrets.key, '*****')
    const [endpoint] = config.notifications.endpoints
    assert.equal(endpoint?.url, 'http://127.0.0.1:9/events')
    assert.deepEqual(endpoint?.headers, { Authorization: '*****', 'X-Tags': ['*****', '*****'] })
  })

  it('refuses everyone else: 401 anonymous, 403 a user, 403 a project administrator', async () => {
    assert.equal((await api(s, 'GET', '/system/config')).status, 401)
    for (const who of [user, projectAdmin]) {
      const res = await api(s, 'GET', '/system/config', who)
      assert.equal(res.status, 403)
      assert.ok(!(await res.text()).includes('*****'))
    }
  })

  it('is in the OpenAPI document', async () => {
    const doc = await apiOk<{ paths: Record<string, Record<string, unknown>> }>(s, 'GET', '/openapi.json', undefined)
    assert.ok(doc.paths['/system/config']?.get)
  })
})

describe('GET /api/v1/system/config on an open registry', () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ secrets: { key: PASSPHRASE } })
  })
  after(() => s.close())

  it('is anyone’s, as administration is, with secrets masked all the same', async () => {
    const res = await api(s, 'GET', '/system/config')
    const text = await res.text()
    assert.equal(res.status, 200, text)
    assert.ok(!text.includes(PASSPHRASE))
    assert.equal((JSON.parse(text) as Config).secrets.key, '*****')
  })
})
