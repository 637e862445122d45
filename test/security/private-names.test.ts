// Attacks on private names: walking the catalog one Link at a time, guessing cursors, searching,
// and telling a private project from a missing one by /v2's answers. Each must reveal nothing
// the caller may not see.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, addUser, api, apiOk, startAuthServer, token } from '../helpers/auth.js'
import { asBody, sha256 } from '../helpers/oci.js'

const PUBLIC = ['aaa/one', 'zzz/two']
const PRIVATE = ['mmm/hidden1', 'mmm/hidden2']

describe('private names never leak through lists', () => {
  let s: TestServer
  let member: string
  let outsider: string

  before(async () => {
    s = await startAuthServer()
    member = await addUser(s, 'member')
    outsider = await addUser(s, 'outsider')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'aaa', public: true }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'zzz', public: true }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'mmm', public: false }, 201)
    await apiOk(s, 'POST', '/projects/mmm/members', ADMIN, { username: 'member', role: 'guest' }, 201)
    for (const repo of [...PUBLIC, ...PRIVATE]) {
      const data = `layer of ${repo}`
      const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', headers: { authorization: ADMIN }, body: asBody(data) })
      assert.equal(res.status, 201)
    }
  })
  after(() => s?.close())

  /** Follows the catalog's Link headers from `?n=1`; returns every name and every Link seen. */
  async function walk(headers: Record<string, string>, start = '/v2/_catalog?n=1'): Promise<{ names: string[]; links: string[] }> {
    const names: string[] = []
    const links: string[] = []
    let next: string | undefined = start
    for (let i = 0; next !== undefined && i < 20; i++) {
      const res: Response = await fetch(`${s.url}${next}`, { headers })
      assert.equal(res.status, 200)
      names.push(...((await res.json()) as { repositories: string[] }).repositories)
      const link = res.headers.get('link')
      if (link) links.push(decodeURIComponent(link))
      next = link ? /^<([^>]+)>/.exec(link)?.[1] : undefined
    }
    return { names, links }
  }

  it('an anonymous catalog walk sees only public names, in its pages and in its Links', async () => {
    const { names, links } = await walk({})
    assert.deepEqual(names, PUBLIC)
    for (const link of links) assert.doesNotMatch(link, /mmm/, link)
    // Every page is full until the end: pages are cut over what the caller may see.
    const first = await fetch(`${s.url}/v2/_catalog?n=1&last=aaa/one`)
    assert.deepEqual(((await first.json()) as { repositories: string[] }).repositories, ['zzz/two'])
  })

  it('a token walk (catalog claim) of a non-member sees only public names; a member sees all', async () => {
    const anon = await token(s, undefined, 'registry:catalog:*')
    const outsiderToken = await token(s, outsider, 'registry:catalog:*')
    const memberToken = await token(s, member, 'registry:catalog:*')
    for (const t of [anon, outsiderToken]) {
      const { names, links } = await walk({ authorization: `Bearer ${t.token}` })
      assert.deepEqual(names, PUBLIC)
      for (const link of links) assert.doesNotMatch(link, /mmm/, link)
    }
    assert.deepEqual((await walk({ authorization: `Bearer ${memberToken.token}` })).names, [...PUBLIC.slice(0, 1), ...PRIVATE, ...PUBLIC.slice(1)])
    assert.deepEqual((await walk({ authorization: outsider })).names, PUBLIC)
  })

  it('a guessed cursor reveals nothing after it but visible names', async () => {
    const res = await fetch(`${s.url}/v2/_catalog?n=1&last=mmm/hidden1`)
    assert.deepEqual(((await res.json()) as { repositories: string[] }).repositories, ['zzz/two'])
    assert.doesNotMatch(decodeURIComponent(res.headers.get('link') ?? ''), /mmm/)
  })

  it('tag lists of a private repository are refused before any Link is built', async () => {
    const res = await fetch(`${s.url}/v2/mmm/hidden1/tags/list?n=1`, { headers: { authorization: outsider } })
    assert.equal(res.status, 403)
    assert.equal(res.headers.get('link'), null)
  })

  it('search over many private repositories still finds the public ones after them', async () => {
    // More private matches than a search page: a search that counted before filtering would stop short.
    for (let i = 0; i < 120; i++) {
      const data = `many ${i}`
      const repo = `mmm/many${String(i).padStart(3, '0')}`
      assert.equal((await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', headers: { authorization: ADMIN }, body: asBody(data) })).status, 201)
    }
    for (const who of [undefined, outsider]) {
      const found = (await apiOk<{ repositories: { name: string }[] }>(s, 'GET', '/search?q=', who)).repositories.map((r) => r.name)
      assert.deepEqual(found, PUBLIC)
    }
    const mine = (await apiOk<{ repositories: { name: string }[] }>(s, 'GET', '/search?q=mmm', member)).repositories
    assert.equal(mine.length, 100)
  })

  it('/api/v1 lists show a non-member nothing of a private project', async () => {
    const projects = (await apiOk<{ name: string }[]>(s, 'GET', '/projects', outsider)).map((p) => p.name)
    assert.ok(!projects.includes('mmm'))
    const audit = await apiOk<{ project: string }[]>(s, 'GET', '/audit?limit=1', outsider)
    assert.deepEqual(audit, [])
    const filtered = await apiOk<{ project: string }[]>(s, 'GET', '/audit?project=mmm&limit=5', outsider)
    assert.deepEqual(filtered, [])
    // A private project and a missing one get the same answer, signed in or not.
    for (const who of [outsider, undefined]) {
      for (const path of ['/projects/PROJECT', '/projects/PROJECT/members', '/robots?project=PROJECT', '/projects/PROJECT/retention', '/projects/PROJECT/immutability-rules']) {
        const hidden = await api(s, 'GET', path.replace('PROJECT', 'mmm'), who)
        const missing = await api(s, 'GET', path.replace('PROJECT', 'nope'), who)
        assert.equal(hidden.status, missing.status, `${path} as ${who ? 'outsider' : 'anonymous'}`)
        assert.ok(hidden.status >= 400, path)
        assert.equal((await hidden.text()).replaceAll('mmm', 'X'), (await missing.text()).replaceAll('nope', 'X'), path)
      }
    }
  })
})

describe('/v2 answers a private project and a missing one alike', () => {
  let s: TestServer
  let outsider: string
  let blob: string

  before(async () => {
    s = await startAuthServer()
    outsider = await addUser(s, 'outsider')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'hidden', public: false }, 201)
    blob = sha256('private layer')
    const res = await fetch(`${s.url}/v2/hidden/app/blobs/uploads/?digest=${blob}`, { method: 'POST', headers: { authorization: ADMIN }, body: asBody('private layer') })
    assert.equal(res.status, 201)
  })
  after(() => s?.close())

  const REQUESTS: [string, (name: string) => string][] = [
    ['GET', (n) => `/v2/${n}/manifests/latest`],
    ['HEAD', (n) => `/v2/${n}/manifests/latest`],
    ['GET', (n) => `/v2/${n}/blobs/${blob}`],
    ['HEAD', (n) => `/v2/${n}/blobs/${blob}`],
    ['DELETE', (n) => `/v2/${n}/manifests/${blob}`],
    ['POST', (n) => `/v2/${n}/blobs/uploads/`],
    ['GET', (n) => `/v2/${n}/tags/list`],
    ['GET', (n) => `/v2/referrers-of/${n}`],
  ]

  /** Status, challenge and body of a request, with the project name replaced by a placeholder. */
  async function answer(method: string, path: string, project: string, authorization: string | undefined): Promise<string> {
    const res = await fetch(`${s.url}${path}`, { method, headers: authorization ? { authorization } : {} })
    const body = await res.text()
    const shown = `${res.status} ${res.headers.get('www-authenticate') ?? ''} ${body}`
    return shown.replaceAll(project, 'PROJECT')
  }

  for (const who of ['anonymous', 'anonymous token', 'outsider', 'outsider token'] as const) {
    it(`gives ${who} the same answers for hidden/… and nowhere/…`, async () => {
      for (const [method, path] of REQUESTS) {
        for (const repo of ['app', 'other']) {
          const credentials = async (project: string) => {
            const scope = `repository:${project}/${repo}:pull,push,delete`
            if (who === 'anonymous') return undefined
            if (who === 'outsider') return outsider
            const t = await token(s, who === 'outsider token' ? outsider : undefined, scope)
            return `Bearer ${t.token}`
          }
          const url = (project: string) => (path(`${project}/${repo}`).startsWith('/v2/referrers-of/') ? `/v2/${project}/${repo}/referrers/${blob}` : path(`${project}/${repo}`))
          const hidden = await answer(method, url('hidden'), 'hidden', await credentials('hidden'))
          const missing = await answer(method, url('nowhere'), 'nowhere', await credentials('nowhere'))
          assert.equal(hidden, missing, `${method} ${url('PROJECT')} as ${who}`)
          assert.match(hidden, /^40[13] /, `${method} ${url('PROJECT')} as ${who} is refused`)
        }
      }
    })
  }
})
