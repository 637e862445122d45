import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addUser, ADMIN, api, apiOk } from '../helpers/auth.js'
import { asBody, buildImage, expectOciError, putManifest, sha256 } from '../helpers/oci.js'
import { startAuthServer } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { manifestDigest, pushImage } from '../gc/helpers.js'

interface Rule {
  id: number
  repositories: string
  tags: string
  createdAt: string
}

async function pushOver(srv: TestServer, repo: string, tag: string, seed: string): Promise<Response> {
  const img = await buildImage(srv.url, repo, seed)
  return putManifest(srv.url, repo, tag, img.manifest)
}

test('immutable tags: first push allowed, pushing over and deleting refused with DENIED naming the rule', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  const rule = await apiOk<Rule>(srv, 'POST', '/projects/library/immutability-rules', undefined, { repositories: 'tools/**', tags: 'v*' }, 201)
  assert.equal(typeof rule.id, 'number')
  assert.equal(rule.repositories, 'tools/**')
  assert.equal(rule.tags, 'v*')
  const list = await apiOk<Rule[]>(srv, 'GET', '/projects/library/immutability-rules', undefined)
  assert.deepEqual(list.map((r) => r.id), [rule.id])

  const repo = 'library/tools/ret'
  const first = await pushImage(srv.url, repo, 'v1', 'first')
  assert.equal(await manifestDigest(srv.url, repo, 'v1'), first.digest)

  // Pushing other content over the tag: 403 DENIED in the OCI envelope, naming the rule.
  const over = await pushOver(srv, repo, 'v1', 'second')
  assert.equal(over.status, 403)
  const body = (await over.json()) as { errors: { code: string; message: string }[] }
  assert.equal(body.errors[0]?.code, 'DENIED')
  assert.match(body.errors[0]!.message, new RegExp(`immutability rule ${rule.id}\\b`))
  assert.match(body.errors[0]!.message, /tools\/\*\*/)
  assert.equal(await manifestDigest(srv.url, repo, 'v1'), first.digest, 'the tag still names the first manifest')

  // The same bytes again change nothing and are accepted (an idempotent retry).
  const again = await buildImage(srv.url, repo, 'first')
  assert.equal((await putManifest(srv.url, repo, 'v1', again.manifest)).status, 201)

  // ?tag= names the immutable tag too.
  const viaQuery = await buildImage(srv.url, repo, 'third')
  const q = await fetch(`${srv.url}/v2/${repo}/manifests/${viaQuery.digest}?tag=v1`, { method: 'PUT', body: asBody(viaQuery.manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
  await expectOciError(q, 'DENIED', 403)

  // Deleting the tag, or the manifest it names, is refused.
  await expectOciError(await fetch(`${srv.url}/v2/${repo}/manifests/v1`, { method: 'DELETE' }), 'DENIED', 403)
  await expectOciError(await fetch(`${srv.url}/v2/${repo}/manifests/${first.digest}`, { method: 'DELETE' }), 'DENIED', 403)
  assert.equal(await manifestDigest(srv.url, repo, 'v1'), first.digest)

  // Tags and repositories outside the rule are mutable.
  await pushImage(srv.url, repo, 'latest', 'l1')
  const l2 = await pushImage(srv.url, repo, 'latest', 'l2')
  assert.equal(await manifestDigest(srv.url, repo, 'latest'), l2.digest)
  assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/latest`, { method: 'DELETE' })).status, 202)
  await pushImage(srv.url, 'library/apps/web', 'v1', 'w1')
  const w2 = await pushImage(srv.url, 'library/apps/web', 'v1', 'w2')
  assert.equal(await manifestDigest(srv.url, 'library/apps/web', 'v1'), w2.digest)

  // Once the rule is deleted the tag can move again.
  assert.equal((await api(srv, 'DELETE', `/projects/library/immutability-rules/${rule.id}`)).status, 204)
  assert.equal((await api(srv, 'DELETE', `/projects/library/immutability-rules/${rule.id}`)).status, 404)
  const moved = await pushImage(srv.url, repo, 'v1', 'fourth')
  assert.equal(await manifestDigest(srv.url, repo, 'v1'), moved.digest)
})

test('immutability patterns: the repository path inside the project, exclude patterns, one-part names', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  await apiOk(srv, 'POST', '/projects/library/immutability-rules', undefined, { repositories: '*', tags: 'release-{1,2}.*', tagsExclude: 'release-2.0' }, 201)
  // `*` does not cross a slash: library/app and the one-part name `solo` (project library) match,
  // library/deep/app does not.
  for (const repo of ['library/app', 'solo']) {
    await pushImage(srv.url, repo, 'release-1.0', `${repo}-a`)
    assert.equal((await pushOver(srv, repo, 'release-1.0', `${repo}-b`)).status, 403, repo)
    await pushImage(srv.url, repo, 'release-2.0', `${repo}-c`)
    assert.equal((await pushOver(srv, repo, 'release-2.0', `${repo}-d`)).status, 201, `${repo}: excluded tag`)
    await pushImage(srv.url, repo, 'release-3.0', `${repo}-e`)
    assert.equal((await pushOver(srv, repo, 'release-3.0', `${repo}-f`)).status, 201, `${repo}: tag outside the pattern`)
  }
  await pushImage(srv.url, 'library/deep/app', 'release-1.0', 'deep-a')
  assert.equal((await pushOver(srv, 'library/deep/app', 'release-1.0', 'deep-b')).status, 201)
})

test('immutability rules: invalid patterns are refused with 400, unknown projects 404', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  for (const [body, field] of [
    [{ repositories: '[abc', tags: '*' }, 'repositories'],
    [{ repositories: '**', tags: 'v{1,2' }, 'tags'],
    [{ repositories: '**' }, 'tags'],
    [{ repositories: '', tags: '*' }, 'repositories'],
    [{ repositories: '**', tags: '*', tagsExclude: '(x' }, 'tagsExclude'],
    [{ repositories: '**', tags: '*', color: 'red' }, 'color'],
  ] as const) {
    const res = await api(srv, 'POST', '/projects/library/immutability-rules', undefined, body)
    assert.equal(res.status, 400, JSON.stringify(body))
    assert.match(res.headers.get('content-type') ?? '', /problem\+json/)
    const p = (await res.json()) as { code: string; field?: string; detail: string }
    assert.equal(p.code, 'INVALID_FIELD')
    assert.equal(p.field, field, `${JSON.stringify(body)}: ${p.detail}`)
  }
  assert.deepEqual(await apiOk(srv, 'GET', '/projects/library/immutability-rules', undefined), [])
  assert.equal((await api(srv, 'GET', '/projects/nope/immutability-rules')).status, 404)
})

test('immutability and retention endpoints need a project admin or maintainer (managePolicies)', async (t) => {
  const srv = await startAuthServer()
  t.after(() => srv.close())
  await apiOk(srv, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
  const owner = await addUser(srv, 'owner')
  const keeper = await addUser(srv, 'keeper')
  const dev = await addUser(srv, 'dev')
  const stranger = await addUser(srv, 'stranger')
  await apiOk(srv, 'POST', '/projects/team/members', ADMIN, { username: 'owner', role: 'projectAdmin' }, 201)
  await apiOk(srv, 'POST', '/projects/team/members', ADMIN, { username: 'keeper', role: 'maintainer' }, 201)
  await apiOk(srv, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)

  const rule = { repositories: '**', tags: 'v*' }
  const policy = { rules: [{ kind: 'latestPushed', count: 3, repositories: '**', tags: '**' }], untagged: 'keep' }
  const calls: [string, string, unknown?][] = [
    ['GET', '/projects/team/immutability-rules'],
    ['POST', '/projects/team/immutability-rules', rule],
    ['DELETE', '/projects/team/immutability-rules/999999'],
    ['GET', '/projects/team/retention'],
    ['PUT', '/projects/team/retention', policy],
    ['POST', '/projects/team/retention/runs', { dryRun: true }],
    ['GET', '/projects/team/retention/runs'],
    ['GET', '/projects/team/retention/runs/00000000-0000-0000-0000-000000000000'],
  ]
  for (const [method, path, body] of calls) {
    assert.equal((await api(srv, method, path, undefined, body)).status, 401, `anonymous ${method} ${path}`)
    assert.equal((await api(srv, method, path, dev, body)).status, 403, `developer ${method} ${path}`)
    assert.equal((await api(srv, method, path, stranger, body)).status, 404, `non-member ${method} ${path}`)
  }
  for (const who of [owner, keeper, ADMIN]) {
    const created = await apiOk<Rule>(srv, 'POST', '/projects/team/immutability-rules', who, rule, 201)
    assert.equal((await api(srv, 'DELETE', `/projects/team/immutability-rules/${created.id}`, who)).status, 204)
    await apiOk(srv, 'PUT', '/projects/team/retention', who, policy)
    const { id } = await apiOk<{ id: string }>(srv, 'POST', '/projects/team/retention/runs', who, { dryRun: true }, 202)
    await srv.app.retention.get('team', id)
  }
  // Pushing over an immutable tag is refused for everyone, system administrators included.
  await apiOk(srv, 'POST', '/projects/team/immutability-rules', ADMIN, rule, 201)
  const h = { authorization: ADMIN }
  const push = async (seed: string) => {
    const config = Buffer.from(JSON.stringify({ seed }))
    const digest = sha256(config)
    assert.equal((await fetch(`${srv.url}/v2/team/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(config), headers: h })).status, 201)
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length }, layers: [] }))
    return fetch(`${srv.url}/v2/team/app/manifests/v1`, { method: 'PUT', body: asBody(manifest), headers: { ...h, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
  }
  assert.equal((await push('one')).status, 201)
  await expectOciError(await push('two'), 'DENIED', 403)
})
