import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { escapeFilterValue, fillFilter, rdnValue } from '../../src/auth/ldap.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { ADMIN, api, apiOk, basic, startAuthServer, token } from '../helpers/auth.js'
import { ldapSkip, startSlapd, type TestSlapd } from '../helpers/ldap.js'
import { expectOciError } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'

const PASSWORDS = {
  alice: 'alice-ldap-password',
  bob: 'bob-ldap-password',
  carol: 'carol-ldap-password',
  dave: 'dave-ldap-password',
  erin: 'erin-ldap-password',
  admin: 'impostor-ldap-password',
}

describe('LDAP filters and DNs', () => {
  const filters: [string, Record<string, string>, string][] = [
    ['(uid={username})', { username: 'alice' }, '(uid=alice)'],
    ['(uid={username})', { username: '*)(uid=*' }, '(uid=\\2a\\29\\28uid=\\2a)'],
    ['(&(objectClass=person)(uid={username}))', { username: 'a\\b\0c' }, '(&(objectClass=person)(uid=a\\5cb\\00c))'],
    ['(member={dn})', { dn: 'uid=carol,ou=people (eu),dc=example,dc=org' }, '(member=uid=carol,ou=people \\28eu\\29,dc=example,dc=org)'],
    ['(|(member={dn})(memberUid={username}))', { dn: 'uid=x,dc=y', username: 'x' }, '(|(member=uid=x,dc=y)(memberUid=x))'],
    ['(uid={unknown})', {}, '(uid={unknown})'],
  ]
  for (const [template, vars, expected] of filters) {
    it(`${template} with ${JSON.stringify(vars)} → ${expected}`, () => assert.equal(fillFilter(template, vars), expected))
  }
  it('escapes every RFC 4515 special character', () => assert.equal(escapeFilterValue('*()\\\0ü'), '\\2a\\28\\29\\5c\\00ü'))

  const dns: [string, string, string | undefined][] = [
    ['cn=devs,ou=groups,dc=example,dc=org', 'cn', 'devs'],
    ['CN=Devs,OU=Groups,DC=corp,DC=example', 'cn', 'Devs'],
    ['cn=ops\\, eu,ou=groups,dc=example,dc=org', 'cn', 'ops, eu'],
    ['cn=caf\\C3\\A9,ou=groups', 'cn', 'café'],
    ['ou=x+cn=multi,dc=example', 'cn', 'multi'],
    ['ou=devs,dc=example,dc=org', 'cn', undefined],
    ['cn=#04024869,dc=example', 'cn', undefined],
  ]
  for (const [dn, attribute, expected] of dns) {
    it(`the ${attribute} of ${dn} is ${String(expected)}`, () => assert.equal(rdnValue(dn, attribute), expected))
  }
})

describe('LDAP login against slapd', { skip: ldapSkip() }, () => {
  let ldap: TestSlapd
  let s: TestServer
  let logs = ''
  const ldapConfig = (overrides: NonNullable<NonNullable<ConfigInput['auth']>['ldap']> = {}) => ({
    enabled: true,
    url: ldap.url,
    baseDN: ldap.baseDN,
    bindDN: ldap.readerDN,
    bindPassword: ldap.readerPassword,
    groupBaseDN: `ou=groups,${ldap.baseDN}`,
    timeout: '5s',
    ...overrides,
  })

  before(async () => {
    ldap = await startSlapd(
      {
        alice: { password: PASSWORDS.alice, mail: 'alice@example.org' },
        bob: { password: PASSWORDS.bob, hashed: false },
        carol: { password: PASSWORDS.carol, ou: 'ou=people (eu),ou=people' },
        dave: { password: PASSWORDS.dave },
        erin: { password: PASSWORDS.erin },
        admin: { password: PASSWORDS.admin },
      },
      { devs: { members: ['alice', 'dave'] }, 'ops, eu': { members: ['carol'] }, empty: { members: [] } },
    )
    s = await startAuthServer(
      { log: { level: 'debug' }, auth: { throttle: { maxFailures: 5 }, ldap: ldapConfig() } },
      { logStream: new Writable({ write: (chunk: Buffer, _enc, done) => done(void (logs += chunk.toString())) }) },
    )
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { group: 'devs', role: 'developer' }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'ops', public: false }, 201)
    await apiOk(s, 'POST', '/projects/ops/members', ADMIN, { group: 'ops, eu', role: 'developer' }, 201)
  })
  after(async () => {
    await s?.close()
    await ldap?.close()
  })

  const startUpload = (server: TestServer, authorization: string, repository = 'team/app') =>
    fetch(`${server.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: { authorization } })

  it('logs an LDAP user in with docker-style GET /token and provisions it (source ldap, email, groups)', async () => {
    const t = await token(s, basic('alice', PASSWORDS.alice), 'repository:team/app:pull,push')
    assert.equal(t.status, 200)
    assert.deepEqual(t.access, [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }])
    const user = await apiOk<{ username: string; source: string; email: string | null; groups: string[]; admin: boolean }>(s, 'GET', '/users/alice', ADMIN)
    assert.equal(user.source, 'ldap')
    assert.equal(user.email, 'alice@example.org')
    assert.deepEqual(user.groups, ['devs'])
    assert.equal(user.admin, false)
    // The OAuth2 form docker login uses works too.
    const form = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: PASSWORDS.alice, service: 'berth', scope: 'repository:team/app:pull' }),
    })
    assert.equal(form.status, 200)
  })

  it('gives members of an LDAP group that is a project member push there; others are DENIED', async () => {
    assert.equal((await startUpload(s, basic('alice', PASSWORDS.alice))).status, 202)
    await expectOciError(await startUpload(s, basic('bob', PASSWORDS.bob)), 'DENIED', 403)
    const bob = await token(s, basic('bob', PASSWORDS.bob), 'repository:team/app:pull,push')
    assert.equal(bob.status, 200, 'a cleartext userPassword works as well as {SSHA}')
    assert.deepEqual(bob.access, [])
    // alice's group is not a member of ops.
    await expectOciError(await startUpload(s, basic('alice', PASSWORDS.alice), 'ops/app'), 'DENIED', 403)
  })

  it('finds groups of a user whose DN needs escaping in the group filter, named by cn', async () => {
    assert.equal((await startUpload(s, basic('carol', PASSWORDS.carol), 'ops/app')).status, 202)
    const user = await apiOk<{ groups: string[] }>(s, 'GET', '/users/carol', ADMIN)
    assert.deepEqual(user.groups, ['ops, eu'])
  })

  it('takes a removal from the group in LDAP into account at the next login', async () => {
    assert.equal((await startUpload(s, basic('dave', PASSWORDS.dave))).status, 202)
    assert.deepEqual((await token(s, basic('dave', PASSWORDS.dave), 'repository:team/app:push')).access, [{ type: 'repository', name: 'team/app', actions: ['push'] }])
    await ldap.removeMember('devs', 'dave')
    // A login (/token) always binds again, and refreshes what Basic requests to /v2 remember.
    assert.deepEqual((await token(s, basic('dave', PASSWORDS.dave), 'repository:team/app:push')).access, [])
    await expectOciError(await startUpload(s, basic('dave', PASSWORDS.dave)), 'DENIED', 403)
    assert.deepEqual((await apiOk<{ groups: string[] }>(s, 'GET', '/users/dave', ADMIN)).groups, [])
    await ldap.addMember('devs', 'dave')
    assert.equal((await token(s, basic('dave', PASSWORDS.dave), 'repository:team/app:push')).status, 200)
    assert.equal((await startUpload(s, basic('dave', PASSWORDS.dave))).status, 202)
  })

  it('remembers a bind for Basic requests to /v2 for auth.ldap.cacheTtl, not for logins', async () => {
    const v2 = async (password: string) => (await fetch(`${s.url}/v2/`, { headers: { authorization: basic('erin', password) } })).status
    assert.equal(await v2(PASSWORDS.erin), 200)
    await ldap.setPassword('erin', 'a-new-password')
    try {
      // Within the minute the old password still opens /v2 without asking LDAP (a push sends
      // Basic on every request)…
      assert.equal(await v2(PASSWORDS.erin), 200)
      // …but a login binds: the old password is refused, the new one accepted.
      assert.equal((await token(s, basic('erin', PASSWORDS.erin), 'repository:team/app:pull')).status, 401)
      assert.equal((await token(s, basic('erin', 'a-new-password'), 'repository:team/app:pull')).status, 200)
      // A failed bind forgets what was remembered for those credentials.
      assert.equal(await v2(PASSWORDS.erin), 401)
    } finally {
      await ldap.setPassword('erin', PASSWORDS.erin)
    }
    // A success clears the failures above from the login throttle.
    assert.equal(await v2(PASSWORDS.erin), 200)
  })

  it('refuses an empty password (an unauthenticated bind) with 401', async () => {
    assert.equal((await token(s, basic('alice', ''))).status, 401)
    assert.equal((await api(s, 'POST', '/login', undefined, { username: 'alice', password: '' })).status !== 200, true)
  })

  it('does not let a user filter injection or another spelling of the name log anyone in', async () => {
    for (const name of ['*)(uid=*', '*', 'alice)(uid=*', 'ALICE']) {
      assert.equal((await token(s, basic(name, PASSWORDS.alice))).status, 401, name)
    }
    const users = await apiOk<{ items?: { username: string }[] } | { username: string }[]>(s, 'GET', '/users', ADMIN)
    const names = (Array.isArray(users) ? users : (users.items ?? [])).map((u) => u.username)
    assert.ok(!names.some((n) => n.includes('*') || n === 'ALICE'), names.join(','))
  })

  it('keeps local users local: an LDAP entry named admin cannot sign in as Berth\'s admin', async () => {
    assert.equal((await token(s, basic('admin', PASSWORDS.admin))).status, 401)
    assert.equal((await token(s, ADMIN)).status, 200)
  })

  it('refuses a wrong password with 401 and throttles repeated failures like local users', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await token(s, basic('erin', `wrong-${i}`))).status, 401)
    assert.equal((await token(s, basic('erin', PASSWORDS.erin))).status, 429)
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: basic('erin', PASSWORDS.erin) } })).status, 429)
  })

  it('logs whether LDAP is enabled, and no password ever', () => {
    assert.match(logs, /"msg":"LDAP login enabled"/)
    for (const secret of [...Object.values(PASSWORDS), ldap.readerPassword]) assert.ok(!logs.includes(secret), 'a password reached the log')
  })

  it('reads groups from memberOf with an anonymous search over StartTLS (CA file)', async () => {
    const tls = await startAuthServer({ auth: { ldap: ldapConfig({ bindDN: undefined, bindPassword: undefined, groupBaseDN: undefined, memberOfAttribute: 'memberOf', startTLS: true, caFile: ldap.caFile }) } })
    try {
      await apiOk(tls, 'POST', '/projects', ADMIN, { name: 'ops', public: false }, 201)
      await apiOk(tls, 'POST', '/projects/ops/members', ADMIN, { group: 'ops, eu', role: 'developer' }, 201)
      assert.equal((await startUpload(tls, basic('carol', PASSWORDS.carol), 'ops/app')).status, 202)
      assert.equal((await api(tls, 'GET', '/users/alice', ADMIN)).status, 404, 'provisioned at the first login')
      assert.equal((await token(tls, basic('alice', PASSWORDS.alice))).status, 200)
      assert.deepEqual((await apiOk<{ groups: string[] }>(tls, 'GET', '/users/alice', ADMIN)).groups, ['devs'])
      assert.equal((await token(tls, basic('alice', 'wrong'))).status, 401)
    } finally {
      await tls.close()
    }
  })

  it('logs in over ldaps:// with a CA file, and answers 503 when the certificate does not verify', async () => {
    const good = await startAuthServer({ auth: { ldap: ldapConfig({ url: ldap.ldapsUrl, caFile: ldap.caFile }) } })
    const bad = await startAuthServer({ auth: { ldap: ldapConfig({ url: ldap.ldapsUrl, caFile: ldap.otherCaFile }) } })
    try {
      assert.equal((await token(good, basic('alice', PASSWORDS.alice))).status, 200)
      const res = await fetch(`${bad.url}/token?service=berth`, { headers: { authorization: basic('alice', PASSWORDS.alice) } })
      await expectOciError(res, 'UNAVAILABLE', 503)
      // A directory outage is not a failed login: nobody gets locked out by it.
      for (let i = 0; i < 12; i++) assert.equal((await token(bad, basic('alice', PASSWORDS.alice))).status, 503)
    } finally {
      await good.close()
      await bad.close()
    }
  })

  it('gives up on a directory that does not answer after auth.ldap.timeout (503)', async () => {
    const sockets = new Set<Socket>()
    const silent: Server = createServer((socket) => void sockets.add(socket))
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const url = `ldap://127.0.0.1:${(silent.address() as AddressInfo).port}`
    const hung = await startAuthServer({ auth: { ldap: ldapConfig({ url, timeout: '1s' }) } })
    try {
      const started = Date.now()
      const res = await fetch(`${hung.url}/token?service=berth`, { headers: { authorization: basic('alice', PASSWORDS.alice) } })
      await expectOciError(res, 'UNAVAILABLE', 503)
      assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`)
    } finally {
      await hung.close()
      for (const socket of sockets) socket.destroy()
      silent.close()
    }
  })

  it('refuses incomplete LDAP configuration at start-up', async () => {
    await assert.rejects(startAuthServer({ auth: { ldap: { enabled: true } } }), /auth\.ldap\.url|url/)
    await assert.rejects(startAuthServer({ auth: { ldap: ldapConfig({ bindPassword: undefined }) } }), /bindPassword/)
    await assert.rejects(startAuthServer({ auth: { ldap: ldapConfig({ url: ldap.ldapsUrl, startTLS: true }) } }), /startTLS/)
    await assert.rejects(startAuthServer({ auth: { ldap: ldapConfig({ userFilter: '(uid=alice)' }) } }), /\{username\}/)
  })
})
