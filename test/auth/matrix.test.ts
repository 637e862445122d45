import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { asBody, sha256 } from '../helpers/oci.js'

// The permission matrix of docs/auth.md, written out by hand: every role × every action.
type Cell = 'pull' | 'push' | 'delete' | 'manageMembers' | 'readLogs' | 'readMembers'
const MATRIX: Record<string, Cell[]> = {
  admin: ['pull', 'push', 'delete', 'manageMembers', 'readLogs', 'readMembers'],
  projectAdmin: ['pull', 'push', 'delete', 'manageMembers', 'readLogs', 'readMembers'],
  maintainer: ['pull', 'push', 'delete', 'readLogs', 'readMembers'],
  developer: ['pull', 'push', 'readLogs', 'readMembers'],
  guest: ['pull', 'readLogs', 'readMembers'],
  limitedGuest: ['pull'],
  nonMember: [],
  anonymous: [],
}

describe('permission matrix: every role against every route', () => {
  let s: TestServer
  const auth: Record<string, string | undefined> = { admin: ADMIN, anonymous: undefined }
  let blob: string

  before(async () => {
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    for (const role of ['projectAdmin', 'maintainer', 'developer', 'guest', 'limitedGuest']) {
      auth[role] = await addUser(s, role.toLowerCase())
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: role.toLowerCase(), role }, 201)
    }
    auth.nonMember = await addUser(s, 'stranger')
    await addUser(s, 'extra')
    const data = Buffer.from('matrix blob')
    blob = sha256(data)
    const res = await fetch(`${s.url}/v2/team/app/blobs/uploads/?digest=${blob}`, { method: 'POST', body: asBody(data), headers: { authorization: ADMIN } })
    assert.equal(res.status, 201)
  })
  after(() => s.close())

  const v2 = (role: string, method: string, path: string) =>
    fetch(`${s.url}/v2/team/app/${path}`, { method, headers: auth[role] ? { authorization: auth[role] as string } : {} })

  /** refused the way the spec says: 401 with a challenge when anonymous, else 403 DENIED */
  const refused = (role: string, status: number) => (role === 'anonymous' ? status === 401 : status === 403)

  for (const [role, cells] of Object.entries(MATRIX)) {
    describe(role, () => {
      it(`pull: ${cells.includes('pull') ? 'allowed' : 'refused'}`, async () => {
        const res = await v2(role, 'GET', `blobs/${blob}`)
        if (cells.includes('pull')) assert.equal(res.status, 200)
        else assert.ok(refused(role, res.status), `status ${res.status}`)
      })

      it(`push: ${cells.includes('push') ? 'allowed' : 'refused'}`, async () => {
        const res = await v2(role, 'POST', 'blobs/uploads/')
        if (cells.includes('push')) assert.equal(res.status, 202)
        else assert.ok(refused(role, res.status), `status ${res.status}`)
      })

      it(`delete: ${cells.includes('delete') ? 'allowed' : 'refused'}`, async () => {
        // Deleting a manifest that does not exist: 404 once authorized, so nothing is lost.
        const res = await v2(role, 'DELETE', `manifests/${sha256(`nothing for ${role}`)}`)
        if (cells.includes('delete')) assert.equal(res.status, 404)
        else assert.ok(refused(role, res.status), `status ${res.status}`)
      })

      it(`manage members: ${cells.includes('manageMembers') ? 'allowed' : 'refused'}`, async () => {
        const add = await api(s, 'POST', '/projects/team/members', auth[role], { username: 'extra', role: 'guest' })
        if (cells.includes('manageMembers')) {
          assert.equal(add.status, 201)
          assert.equal((await api(s, 'PATCH', '/projects/team/members/extra', auth[role], { role: 'developer' })).status, 200)
          assert.equal((await api(s, 'DELETE', '/projects/team/members/extra', auth[role])).status, 204)
          assert.equal((await api(s, 'PATCH', '/projects/team', auth[role], { public: false })).status, 200)
          const robot = await api(s, 'POST', '/robots', auth[role], { name: `r-${role.toLowerCase()}`, project: 'team', permissions: ['pull'] })
          assert.equal(robot.status, 201)
        } else {
          assert.ok([401, 403, 404].includes(add.status), `status ${add.status}`)
          assert.ok([401, 403, 404].includes((await api(s, 'PATCH', '/projects/team', auth[role], { public: true })).status))
          assert.ok([401, 403, 404].includes((await api(s, 'POST', '/robots', auth[role], { name: 'sneaky', project: 'team', permissions: ['push'] })).status))
          assert.ok([401, 403, 404].includes((await api(s, 'DELETE', '/projects/team/members/guest', auth[role])).status))
        }
      })

      it(`read members: ${cells.includes('readMembers') ? 'allowed' : 'refused'}`, async () => {
        const res = await api(s, 'GET', '/projects/team/members', auth[role])
        if (cells.includes('readMembers')) assert.equal(res.status, 200)
        else assert.ok([401, 403, 404].includes(res.status), `status ${res.status}`)
      })

      it(`read logs: ${cells.includes('readLogs') ? 'allowed' : 'refused'}`, async () => {
        const res = await api(s, 'GET', '/audit?project=team', auth[role])
        if (role === 'anonymous') return assert.equal(res.status, 401)
        assert.equal(res.status, 200)
        const rows = (await res.json()) as unknown[]
        if (cells.includes('readLogs')) assert.ok(rows.length > 0, 'sees the project log')
        else assert.equal(rows.length, 0, 'sees nothing of the project log')
      })

      it('system administration only for admins', async () => {
        const res = await api(s, 'GET', '/users', auth[role])
        assert.equal(res.status, role === 'admin' ? 200 : role === 'anonymous' ? 401 : 403)
        const robot = await api(s, 'POST', '/robots', auth[role], { name: `sys-${role.toLowerCase()}`, permissions: ['pull'] })
        assert.equal(robot.status, role === 'admin' ? 201 : role === 'anonymous' ? 401 : 403)
        // refused before the scanner is looked up: only an administrator learns there is none
        const scanner = await api(s, 'PATCH', '/scanners/nothere', auth[role], { default: true })
        assert.equal(scanner.status, role === 'admin' ? 404 : role === 'anonymous' ? 401 : 403)
      })

      it('sees the project in listings only with pull', async () => {
        const res = await api(s, 'GET', '/projects', auth[role])
        assert.equal(res.status, 200)
        const names = ((await res.json()) as { name: string }[]).map((p) => p.name)
        assert.equal(names.includes('team'), cells.includes('pull'))
        assert.ok(names.includes('library'), 'the public library project is visible to all')
        if (role !== 'anonymous') {
          const cat = await fetch(`${s.url}/v2/_catalog`, { headers: { authorization: auth[role] as string } })
          const repos = ((await cat.json()) as { repositories: string[] }).repositories
          assert.equal(repos.includes('team/app'), cells.includes('pull'))
        }
      })
    })
  }

  it('walks every management route as anonymous: each refuses or answers publicly', async () => {
    const routes: [string, string, number[]][] = [
      ['POST', '/users', [401]],
      ['GET', '/users', [401]],
      ['GET', '/users/admin', [401]],
      ['PATCH', '/users/admin', [401]],
      ['DELETE', '/users/admin', [401]],
      ['POST', '/users/admin/cli-secret', [401]],
      ['POST', '/projects', [401]],
      ['GET', '/projects', [200]],
      ['GET', '/projects/team', [401]],
      ['GET', '/projects/library', [200]],
      ['PATCH', '/projects/team', [401]],
      ['DELETE', '/projects/team', [401]],
      ['GET', '/projects/team/members', [401]],
      ['POST', '/projects/team/members', [401]],
      ['PATCH', '/projects/team/members/guest', [401]],
      ['DELETE', '/projects/team/members/guest', [401]],
      ['POST', '/robots', [401]],
      ['GET', '/robots', [401]],
      ['GET', '/robots/robot$team+r-projectadmin', [401]],
      ['PATCH', '/robots/robot$team+r-projectadmin', [401]],
      ['DELETE', '/robots/robot$team+r-projectadmin', [401]],
      ['POST', '/robots/robot$team+r-projectadmin/secret', [401]],
      ['GET', '/audit', [401]],
      ['POST', '/registries', [401]],
      ['GET', '/registries', [401]],
      ['GET', '/registries/upstream', [401]],
      ['PATCH', '/registries/upstream', [401]],
      ['DELETE', '/registries/upstream', [401]],
      ['POST', '/registries/upstream/ping', [401]],
      ['POST', '/scanners', [401]],
      ['GET', '/scanners', [401]],
      ['GET', '/scanners/s', [401]],
      ['PATCH', '/scanners/s', [401]],
      ['DELETE', '/scanners/s', [401]],
      ['GET', '/scanners/s/metadata', [401]],
      ['POST', '/webhooks', [401]],
      ['GET', '/webhooks', [401]],
      ['PATCH', '/webhooks/w', [401]],
      ['DELETE', '/webhooks/w', [401]],
      ['POST', '/webhooks/w/test', [401]],
      ['GET', '/webhooks/w/deliveries', [401]],
      ['POST', '/webhooks/w/deliveries/1/replay', [401]],
      ['POST', '/projects/team/webhooks', [401]],
      ['GET', '/projects/team/webhooks', [401]],
      ['GET', '/projects/team/webhooks/w/deliveries', [401]],
      ['DELETE', `/projects/team/repositories/app/artifacts/sha256:${'0'.repeat(64)}`, [401]],
      ['POST', '/projects/team/repositories/app/artifacts/latest/tags', [401]],
      ['GET', '/me', [401]],
      ['GET', '/search?q=team', [200]],
      ['POST', `/projects/team/repositories/app/artifacts/sha256:${'a'.repeat(64)}/scan`, [401]],
      ['GET', `/projects/team/repositories/app/artifacts/sha256:${'a'.repeat(64)}/vulnerabilities`, [401]],
      ['GET', '/projects/team/scan-policy', [401]],
      ['PUT', '/projects/team/scan-policy', [401]],
      ['GET', '/scan-policy', [401]],
      ['PUT', '/scan-policy', [401]],
      ['GET', '/vulnerabilities?id=CVE-2021-44228', [200]],
      ['GET', `/packages?purl=${encodeURIComponent('pkg:npm/lodash')}`, [200]],
      ['GET', '/openapi.json', [200]],
      ['GET', '/docs', [200]],
    ]
    for (const [method, path, statuses] of routes) {
      const res = await api(s, method, path, undefined, method === 'GET' || method === 'DELETE' ? undefined : {})
      assert.ok(statuses.includes(res.status), `${method} ${path} → ${res.status}`)
    }
    const search = (await (await api(s, 'GET', '/search?q=team')).json()) as { repositories: unknown[] }
    assert.deepEqual(search.repositories, [], 'anonymous search shows nothing private')
  })
})
