import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { gunzipSync } from 'node:zlib'
import Fastify from 'fastify'
import { serveUi } from '../../src/http/ui.js'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// Berth serves the built web UI at ui.basePath: index.html for client routes (never cached),
// hashed assets cached for a year (gzip when asked), and every route of its own keeps precedence.

const RUNTIME = { authEnabled: true, oidc: false, projectCreation: 'everyone' as const }

describe('the web UI at /', () => {
  let s: TestServer
  let entry: string
  before(async () => {
    const dir = ensureUiBuilt()
    entry = (await readdir(join(dir, 'assets'))).find((f) => f.startsWith('index-') && f.endsWith('.js')) ?? ''
    assert.ok(entry, 'the build has an index-*.js entry')
    s = await startAuthServer()
  })
  after(() => s.close())

  test('/ and client routes answer index.html with the runtime options, not cached', async () => {
    for (const path of ['/', '/projects/library', '/repositories/library/tools%2Fapi/artifacts/sha256:00']) {
      const res = await fetch(`${s.url}${path}`)
      assert.equal(res.status, 200, path)
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
      assert.equal(res.headers.get('cache-control'), 'no-cache')
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/)
      const html = await res.text()
      assert.match(html, /<base href="\/">/)
      const meta = /name="berth-runtime" content="([^"]+)"/.exec(html)?.[1] ?? ''
      assert.deepEqual(JSON.parse(meta.replace(/&quot;/g, '"').replace(/&amp;/g, '&')), { authEnabled: true, oidc: false, projectCreation: 'everyone', basePath: '/' })
      assert.ok(html.includes(`assets/${entry}`), 'index.html loads the entry chunk')
    }
  })

  test('hashed assets: cached for a year, gzipped for clients that take it', async () => {
    const plain = await fetch(`${s.url}/assets/${entry}`, { headers: { 'accept-encoding': 'identity' } })
    assert.equal(plain.status, 200)
    assert.match(plain.headers.get('content-type') ?? '', /^text\/javascript/)
    assert.equal(plain.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    const body = Buffer.from(await plain.arrayBuffer())
    // fetch() would decompress itself: ask with a raw request for the encoded bytes.
    const { request } = await import('node:http')
    const gz = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = request(`${s.url}/assets/${entry}`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }))
      })
      req.on('error', reject)
      req.end()
    })
    assert.equal(gz.headers['content-encoding'], 'gzip')
    assert.ok(gz.body.length < body.length / 2, 'the gzipped entry is much smaller')
    assert.deepEqual(gunzipSync(gz.body), body)
  })

  test('a missing asset, a path with .. and a write are 404s, not the page', async () => {
    assert.equal((await fetch(`${s.url}/assets/index-nothere.js`)).status, 404)
    assert.equal((await fetch(`${s.url}/assets/..%2F..%2Fpackage.json`)).status, 404)
    assert.equal((await fetch(`${s.url}/`, { method: 'POST' })).status, 404)
  })

  test("Berth's own routes keep precedence: /v2, /api/v1 (its JSON 404), /token, /healthz", async () => {
    const v2 = await fetch(`${s.url}/v2/`)
    assert.equal(v2.status, 401)
    assert.ok(v2.headers.get('www-authenticate'))
    const api = await fetch(`${s.url}/api/v1/no-such-endpoint`, { headers: { authorization: ADMIN } })
    assert.equal(api.status, 404)
    assert.match(api.headers.get('content-type') ?? '', /^application\/problem\+json/)
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200)
    const auth = await fetch(`${s.url}/auth/oidc/login`)
    assert.equal(auth.status, 404, 'no OIDC configured: /auth stays a 404, not the page')
    assert.match(auth.headers.get('content-type') ?? '', /json/)
  })

  test("GET /api/v1/projects/{p} tells the caller's actions: all for an admin, pull and reads for a guest", async () => {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'uiperm' }, 201)
    const guest = await addUser(s, 'uiguest')
    await apiOk(s, 'POST', '/projects/uiperm/members', ADMIN, { username: 'uiguest', role: 'guest' }, 201)
    const asAdmin = await apiOk<{ actions: string[] }>(s, 'GET', '/projects/uiperm', ADMIN)
    assert.deepEqual([...asAdmin.actions].sort(), ['delete', 'manageMembers', 'managePolicies', 'pull', 'push', 'readLogs', 'readMembers'])
    const asGuest = await apiOk<{ actions: string[] }>(s, 'GET', '/projects/uiperm', guest)
    assert.deepEqual([...asGuest.actions].sort(), ['pull', 'readLogs', 'readMembers'])
  })
})

describe('ui.basePath and ui.enabled', () => {
  test('under /registry-ui/: / redirects there, pages carry <base href>, assets are served there', async () => {
    ensureUiBuilt()
    const s = await startServer({ ui: { basePath: '/registry-ui/' } })
    try {
      const root = await fetch(`${s.url}/`, { redirect: 'manual' })
      assert.equal(root.status, 302)
      assert.equal(root.headers.get('location'), '/registry-ui/')
      const page = await fetch(`${s.url}/registry-ui/projects`)
      assert.equal(page.status, 200)
      const html = await page.text()
      assert.match(html, /<base href="\/registry-ui\/">/)
      const asset = /src="\.\/assets\/([\w.-]+\.js)"/.exec(html)?.[1]
      assert.ok(asset)
      assert.equal((await fetch(`${s.url}/registry-ui/assets/${asset}`)).status, 200)
      assert.equal((await fetch(`${s.url}/assets/${asset}`)).status, 404)
      assert.equal((await fetch(`${s.url}/elsewhere`)).status, 404)
    } finally {
      await s.close()
    }
  })

  test('ui.enabled false: / is a 404', async () => {
    const s = await startServer({ ui: { enabled: false } })
    try {
      assert.equal((await fetch(`${s.url}/`)).status, 404)
    } finally {
      await s.close()
    }
  })

  test('a base path under a route of Berth is refused at start-up', async () => {
    await assert.rejects(startServer({ ui: { basePath: '/v2/ui/' } }), /ui\.basePath|basePath/)
  })

  test('not built: / says how to build it (200, not a 404 or 500)', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'berth-ui-'))
    const app = Fastify()
    serveUi(app, { basePath: '/', runtime: RUNTIME, dir: empty })
    try {
      const res = await app.inject({ method: 'GET', url: '/projects' })
      assert.equal(res.statusCode, 200)
      assert.match(res.body, /web UI is not built/)
      assert.match(res.body, /npm install/)
    } finally {
      await app.close()
      await rm(empty, { recursive: true, force: true })
    }
  })
})
