import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, apiOk, addUser, basic } from '../helpers/auth.js'
import { postgresSkip, testCluster, type TestServer } from '../helpers/server.js'
import { eventually } from '../helpers/eventually.js'

const skip = postgresSkip()

// Access decisions are cached per node; a change made through one node must reach the others'
// caches (PostgreSQL notifications), or a disabled user keeps pushing through the rest.
describe('access changes reach every node (PostgreSQL)', { skip }, () => {
  const cluster = testCluster({ auth: { enabled: true } })
  let a: TestServer
  let b: TestServer
  before(async () => {
    a = await cluster.start({ adminPassword: ADMIN_PASSWORD })
    b = await cluster.start({ adminPassword: ADMIN_PASSWORD })
    await apiOk(a, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
  })
  after(() => cluster.close())

  // A read that writes nothing on the node asked (a write there would empty its own caches and
  // hide a missing notification): a member may list the tags of an unknown repository (404).
  const readTags = async (s: TestServer, authorization: string) => {
    const res = await fetch(`${s.url}/v2/team/app/tags/list`, { headers: { authorization } })
    await res.arrayBuffer()
    return res.status
  }

  it('stops a user disabled on one node at the other, and lets them back in when re-enabled', async () => {
    const alice = await addUser(a, 'alice')
    await apiOk(a, 'POST', '/projects/team/members', ADMIN, { username: 'alice', role: 'developer' }, 201)
    // b caches alice and her membership
    assert.equal(await readTags(b, alice), 404)
    assert.equal(await readTags(b, alice), 404)
    await apiOk(a, 'PATCH', '/users/alice', ADMIN, { disabled: true })
    await eventually(async () => (await readTags(b, alice)) === 401, 'b to refuse the disabled user')
    await apiOk(a, 'PATCH', '/users/alice', ADMIN, { disabled: false })
    await eventually(async () => (await readTags(b, alice)) === 404, 'b to let the user back in')
  })

  it('takes a removed project member and a deleted robot away from the other node', async () => {
    const bob = await addUser(a, 'bob')
    await apiOk(a, 'POST', '/projects/team/members', ADMIN, { username: 'bob', role: 'developer' }, 201)
    assert.equal(await readTags(b, bob), 404)
    await apiOk(a, 'DELETE', '/projects/team/members/bob', ADMIN, undefined, 204)
    await eventually(async () => (await readTags(b, bob)) === 403, 'b to refuse the removed member')

    const robot = await apiOk<{ name: string; secret: string }>(a, 'POST', '/robots', ADMIN, { name: 'ci', project: 'team', permissions: ['pull', 'push'] }, 201)
    const creds = basic(robot.name, robot.secret)
    assert.equal(await readTags(b, creds), 404)
    assert.equal(await readTags(b, creds), 404, 'a robot using its secret (which records its last use) keeps working')
    await apiOk(a, 'DELETE', `/robots/${encodeURIComponent(robot.name)}`, ADMIN, undefined, 204)
    await eventually(async () => (await readTags(b, creds)) === 401, 'b to refuse the deleted robot')
  })
})
