import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { artifactPath, importOsv, OSV_V1, pushAppImage, pushIndex, scanned } from './scan-helpers.js'

// Registry-wide questions from the stored inventories and findings: which artifacts have a
// vulnerability (by id or alias), which contain a package (in a version range); only what the
// caller may pull; JSON and CSV.

interface Hit {
  project: string
  repository: string
  digest: string
  tags: string[]
  indexes: string[]
  findings?: { id: string; package: string; version: string; severity: string }[]
  packages?: { name: string; version: string; purl: string }[]
}

describe('registry-wide vulnerability and package queries', () => {
  let s: TestServer
  let teamUser: string
  let old: Awaited<ReturnType<typeof pushAppImage>>
  let fixed: Awaited<ReturnType<typeof pushAppImage>>
  let secret: Awaited<ReturnType<typeof pushAppImage>>
  let index: { digest: string }

  before(async () => {
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'hidden', public: false }, 201)
    teamUser = await addUser(s, 'member')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'member', role: 'guest' }, 201)
    await importOsv(s, OSV_V1)
    old = await pushAppImage(s, 'team/web', 'old', { lodash: '4.17.15' })
    fixed = await pushAppImage(s, 'team/web', 'new', { lodash: '4.17.21', openssl: '3.0.13-1~deb12u1' })
    index = await pushIndex(s, 'team/web', 'multi', [{ ...old, architecture: 'amd64' }])
    secret = await pushAppImage(s, 'hidden/app', '1', { lodash: '4.17.20' })
    for (const [project, repo, digest] of [['team', 'web', old.digest], ['team', 'web', fixed.digest], ['hidden', 'app', secret.digest]] as const) {
      await apiOk(s, 'POST', `${artifactPath(project, repo, digest)}/scan`, ADMIN, undefined, 202)
      await scanned(s, project, repo, digest)
    }
  })
  after(() => s.close())

  it('which artifacts have a vulnerability, by its id or an alias; only those the caller may pull', async () => {
    const all = await apiOk<{ id: string; artifacts: Hit[] }>(s, 'GET', '/vulnerabilities?id=CVE-2021-23337', ADMIN)
    assert.deepEqual(all.artifacts.map((a) => [a.repository, a.digest]).sort(), [['hidden/app', secret.digest], ['team/web', old.digest]].sort())
    const mine = await apiOk<{ artifacts: Hit[] }>(s, 'GET', '/vulnerabilities?id=GHSA-35jh-r3h4-6jhm', teamUser)
    assert.equal(mine.artifacts.length, 1)
    const [hit] = mine.artifacts
    assert.equal(hit?.project, 'team')
    assert.deepEqual(hit?.tags, ['multi', 'old'], 'its own tag and the tag of the index listing it')
    assert.deepEqual(hit?.indexes, [index.digest])
    assert.deepEqual(hit?.findings, [{ id: 'GHSA-35jh-r3h4-6jhm', package: 'lodash', version: '4.17.15', fixedVersion: '4.17.21', severity: 'high', purl: 'pkg:npm/lodash@4.17.15' }])
    assert.deepEqual((await apiOk<{ artifacts: Hit[] }>(s, 'GET', '/vulnerabilities?id=CVE-1999-0001', ADMIN)).artifacts, [])
    assert.equal((await api(s, 'GET', '/vulnerabilities', ADMIN)).status, 400)
    assert.deepEqual((await apiOk<{ artifacts: Hit[] }>(s, 'GET', '/vulnerabilities?id=CVE-2021-23337', undefined)).artifacts, [], 'anonymous callers see public projects only')
  })

  it('which artifacts contain a package, optionally in a version range', async () => {
    const q = (query: string, who = ADMIN) => apiOk<{ artifacts: Hit[] }>(s, 'GET', `/packages?${query}`, who)
    const any = await q(`purl=${encodeURIComponent('pkg:npm/lodash')}`)
    assert.deepEqual(any.artifacts.map((a) => a.packages?.map((p) => p.version)).flat().sort(), ['4.17.15', '4.17.20', '4.17.21'])
    const vulnerable = await q(`purl=${encodeURIComponent('pkg:npm/lodash')}&range=${encodeURIComponent('<4.17.21')}`, teamUser)
    assert.deepEqual(vulnerable.artifacts.map((a) => [a.digest, a.packages?.map((p) => p.version)]), [[old.digest, ['4.17.15']]])
    const between = await q(`purl=${encodeURIComponent('pkg:npm/lodash')}&range=${encodeURIComponent('>=4.17.16,<4.17.21')}`)
    assert.deepEqual(between.artifacts.map((a) => a.digest), [secret.digest])
    const exact = await q(`purl=${encodeURIComponent('pkg:npm/lodash@4.17.21')}`)
    assert.deepEqual(exact.artifacts.map((a) => a.digest), [fixed.digest])
    // dpkg versions compare as dpkg does (a tilde sorts before anything)
    const deb = await q(`purl=${encodeURIComponent('pkg:deb/debian/libssl3')}&range=${encodeURIComponent('<3.0.13-1~deb12u1')}`)
    assert.deepEqual(deb.artifacts.map((a) => a.digest).sort(), [old.digest, secret.digest].sort())
    assert.equal((await api(s, 'GET', '/packages?purl=lodash', ADMIN)).status, 400)
    assert.equal((await api(s, 'GET', `/packages?purl=${encodeURIComponent('pkg:npm/lodash')}&range=${encodeURIComponent('<')}`, ADMIN)).status, 400)
  })

  it('exports CSV with Accept: text/csv or ?format=csv', async () => {
    const res = await fetch(`${s.url}/api/v1/vulnerabilities?id=CVE-2021-23337`, { headers: { authorization: teamUser, accept: 'text/csv' } })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/csv/)
    assert.equal(await res.text(), `project,repository,digest,tags,id,package,version,fixedVersion,severity,purl\r\nteam,team/web,${old.digest},multi old,GHSA-35jh-r3h4-6jhm,lodash,4.17.15,4.17.21,high,pkg:npm/lodash@4.17.15\r\n`)
    const pk = await fetch(`${s.url}/api/v1/packages?purl=${encodeURIComponent('pkg:npm/lodash')}&range=${encodeURIComponent('<4.17.21')}&format=csv`, { headers: { authorization: teamUser } })
    const lines = (await pk.text()).trim().split('\r\n')
    assert.equal(lines[0], 'project,repository,digest,tags,name,version,ecosystem,purl,layer')
    assert.equal(lines.length, 2)
    assert.equal(lines[1], `team,team/web,${old.digest},multi old,lodash,4.17.15,npm,pkg:npm/lodash@4.17.15,${old.layers[1]}`)
  })
})
