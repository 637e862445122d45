import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RegistryError } from '../../src/errors/registry-error.js'
import type { GuardedRequest } from '../../src/http/guards.js'
import { buildImage, putManifest } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

/** The pull requests the fast path answers (manifest GET/HEAD by tag and digest, blob HEAD). */
function pulls(digest: string, layer: string): [string, string][] {
  return [
    ['GET', '/v2/hooks/app/manifests/v1'],
    ['HEAD', '/v2/hooks/app/manifests/v1'],
    ['GET', `/v2/hooks/app/manifests/${digest}`],
    ['HEAD', `/v2/hooks/app/blobs/${layer}`],
  ]
}

async function seed(s: TestServer): Promise<{ digest: string; layer: string }> {
  const img = await buildImage(s.url, 'hooks/app', 'hooks')
  assert.equal((await putManifest(s.url, 'hooks/app', 'v1', img.manifest)).status, 201)
  // Twice: the second answer comes from the manifest cache, the fast path's quickest case.
  for (const [method, path] of pulls(img.digest, img.layers[0] ?? '')) {
    for (let i = 0; i < 2; i++) assert.equal((await fetch(`${s.url}${path}`, { method })).status, 200)
  }
  return { digest: img.digest, layer: img.layers[0] ?? '' }
}

describe('guards run on every request, the pull fast path included', () => {
  let s: TestServer
  let image: { digest: string; layer: string }
  const seen: GuardedRequest[] = []
  before(async () => {
    s = await startServer()
    image = await seed(s)
    s.app.http.guards.add((req) => {
      seen.push(req)
      if (req.headers['x-refuse'] === 'now') throw new RegistryError('DENIED', 'refused by a guard')
      // A guard that waits (a database lookup, a shared counter) must hold the answer back.
      if (req.headers['x-refuse'] === 'later') return new Promise((_ok, fail) => setTimeout(() => fail(new RegistryError('TOOMANYREQUESTS', 'slow down')), 20))
    })
  })
  after(() => s.close())

  it('sees manifest GET/HEAD and blob HEAD and lets them through', async () => {
    for (const [method, path] of pulls(image.digest, image.layer)) {
      seen.length = 0
      const res = await fetch(`${s.url}${path}`, { method })
      assert.equal(res.status, 200, `${method} ${path}`)
      assert.deepEqual(
        seen.map((r) => `${r.method} ${r.url} ${r.ip}`),
        [`${method} ${path} 127.0.0.1`],
        `${method} ${path}`,
      )
    }
  })

  it('refuses them with the spec envelope, at once or after waiting', async () => {
    for (const [method, path] of pulls(image.digest, image.layer)) {
      const now = await fetch(`${s.url}${path}`, { method, headers: { 'x-refuse': 'now' } })
      assert.equal(now.status, 403, `${method} ${path}`)
      const later = await fetch(`${s.url}${path}`, { method, headers: { 'x-refuse': 'later' } })
      assert.equal(later.status, 429, `${method} ${path}`)
      if (method === 'GET') assert.equal(((await later.json()) as { errors: { code: string }[] }).errors[0]?.code, 'TOOMANYREQUESTS')
    }
  })

  it('runs on the other surfaces too, before /api/v1 reads a body', async () => {
    for (const [method, path] of [
      ['GET', '/healthz'],
      ['GET', '/v2/hooks/app/tags/list'],
      ['POST', '/api/v1/projects'],
    ] as const) {
      const res = await fetch(`${s.url}${path}`, { method, headers: { 'x-refuse': 'now', 'content-type': 'application/json' }, body: method === 'POST' ? '{' : undefined })
      assert.equal(res.status, 403, `${method} ${path}`)
    }
  })
})

describe('a request hook added to the server applies to fast-path requests', () => {
  let s: TestServer
  let image: { digest: string; layer: string }
  const hooked: string[] = []
  before(async () => {
    // As a feature would add its own (a rate limit, read-only mode, a pull policy).
    s = await startServer({}, {
      beforeListen: (app) =>
        app.http.addHook('onRequest', (req, reply, done) => {
          hooked.push(`${req.method} ${req.url}`)
          if (req.headers['x-read-only'] === '1') return void reply.code(503).send({ errors: [{ code: 'UNAVAILABLE', message: 'read-only' }] })
          done()
        }),
    })
    image = await seed(s)
  })
  after(() => s.close())

  it('runs the hook on manifest GET/HEAD and blob HEAD', async () => {
    for (const [method, path] of pulls(image.digest, image.layer)) {
      hooked.length = 0
      assert.equal((await fetch(`${s.url}${path}`, { method })).status, 200)
      assert.deepEqual(hooked, [`${method} ${path}`])
      assert.equal((await fetch(`${s.url}${path}`, { method, headers: { 'x-read-only': '1' } })).status, 503)
    }
  })
})
