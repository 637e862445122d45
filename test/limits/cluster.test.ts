import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, addUser, token } from '../helpers/auth.js'
import { postgresSkip, testCluster, type TestCluster, type TestServer } from '../helpers/server.js'

const LIMIT = 100

describe('rate limits on a PostgreSQL cluster: counters shared by every node', { skip: postgresSkip() }, () => {
  let cluster: TestCluster
  let nodes: TestServer[]
  before(async () => {
    cluster = testCluster({ auth: { enabled: true }, limits: { requests: { perPrincipal: `${LIMIT}/m` } } })
    nodes = [await cluster.start({ adminPassword: ADMIN_PASSWORD }), await cluster.start()]
  })
  after(async () => cluster?.close())

  it(`a limit of ${LIMIT}/m holds within 10 % under load from 3 clients spread over 2 nodes`, async () => {
    const alice = await addUser(nodes[0] as TestServer, 'alice')
    // Each client holds a token of its own (from either node: the signing key is shared).
    const tokens = await Promise.all([0, 1, 2].map(async (i) => (await token(nodes[i % 2] as TestServer, alice)).token as string))
    const accepted = [0, 0]
    const refused = [0, 0]
    const client = async (i: number) => {
      for (let n = 0; n < LIMIT; n++) {
        const node = (i + n) % 2
        const res = await fetch(`${(nodes[node] as TestServer).url}/v2/`, { headers: { authorization: `Bearer ${tokens[i]}` } })
        await res.arrayBuffer()
        if (res.status === 200) accepted[node] = (accepted[node] as number) + 1
        else if (res.status === 429) refused[node] = (refused[node] as number) + 1
        else assert.fail(`unexpected ${res.status}`)
      }
    }
    await Promise.all([client(0), client(1), client(2)])
    const total = (accepted[0] as number) + (accepted[1] as number)
    assert.ok(total >= LIMIT * 0.9 && total <= LIMIT * 1.1, `accepted ${total} of ${3 * LIMIT} (node A ${accepted[0]}, node B ${accepted[1]}); limit ${LIMIT}`)
    // Both nodes served part of the budget and refused the rest: one budget, not one per node.
    assert.ok((accepted[0] as number) > 0 && (accepted[1] as number) > 0)
    assert.ok((refused[0] as number) > 0 && (refused[1] as number) > 0)
    console.log(`# cluster: ${total} accepted of ${3 * LIMIT} (limit ${LIMIT}/m): node A ${accepted[0]}, node B ${accepted[1]}`)
  })

  it("a project's limit set on one node applies on the other within seconds", async () => {
    const [a, b] = nodes as [TestServer, TestServer]
    const admin = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`
    const bob = await addUser(a, 'bob')
    const created = await fetch(`${a.url}/api/v1/projects`, { method: 'POST', headers: { authorization: admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'apps', public: true }) })
    assert.equal(created.status, 201)
    const set = await fetch(`${a.url}/api/v1/projects/apps/limits`, { method: 'PUT', headers: { authorization: admin, 'content-type': 'application/json' }, body: JSON.stringify({ requests: '2/m' }) })
    assert.equal(set.status, 200)
    const deadline = Date.now() + 10_000
    let seen429 = false
    while (!seen429 && Date.now() < deadline) {
      const res = await fetch(`${b.url}/v2/apps/x/tags/list`, { headers: { authorization: bob } })
      await res.arrayBuffer()
      seen429 = res.status === 429
      if (!seen429) await new Promise((r) => setTimeout(r, 200))
    }
    assert.ok(seen429, "node B applies the project's limit")
  })
})
