// Proxy cache projects against a real upstream (Debian's docker-registry 2.8.2), with an HTTP
// front in between that counts what the proxy asks and can corrupt or decorate the answers.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { ADMIN, api, apiOk, basic, startAuthServer, addUser } from '../helpers/auth.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { findBinary } from '../helpers/e2e-process.js'
import { expectOciError } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { OCI_INDEX, OCI_MANIFEST, pushManifest, seedImage, seedIndex, sha256, startFront, type Front } from './proxy-fixtures.js'

const registryBinary = findBinary('docker-registry')
const skip = registryBinary ? false : 'docker-registry (Distribution 2.8) is not installed'

describe('proxy cache projects', { skip, timeout: 180_000 }, () => {
  let dir: string
  let upstream: Distribution
  let front: Front
  let berth: TestServer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-proxy-'))
    upstream = await startDistribution(join(dir, 'upstream'), { binary: registryBinary })
    front = await startFront(upstream.url)
    berth = await startAuthServer({ manifests: { maxSize: 64 * 1024 } })
    await apiOk(berth, 'POST', '/registries', ADMIN, { name: 'up', url: front.url }, 201)
    await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'hub', public: true, proxy: { registry: 'up', ttl: '1s' } }, 201)
  })

  after(async () => {
    await berth?.close()
    await front?.close()
    await upstream?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const v2 = (path: string, init: RequestInit = {}) => fetch(`${berth.url}/v2/${path}`, init)

  test('settings: shown, changed, checked field by field; the endpoint cannot be deleted while used', async () => {
    const hub = await apiOk<{ proxy: Record<string, unknown> }>(berth, 'GET', '/projects/hub', ADMIN)
    assert.deepEqual({ ...hub.proxy, rateLimit: undefined }, { registry: 'up', ttl: '1s', namespaces: [], default: false, prefetchPlatforms: false, rateLimit: undefined })

    const bad = async (proxy: unknown, field: string) => {
      const res = await api(berth, 'POST', '/projects', ADMIN, { name: 'bad', proxy })
      const text = await res.text()
      assert.equal(res.status, 400, text)
      assert.match(text, new RegExp(field.replace('.', '\\.')))
    }
    await bad({ registry: 'nowhere' }, 'proxy.registry')
    await bad({ registry: 'up', ttl: 'soon' }, 'proxy.ttl')
    await bad({ registry: 'up', namespaces: ['Docker.IO/x'] }, 'proxy.namespaces')
    await bad({ registry: 'up', colour: 'red' }, 'proxy.colour')
    await bad('up', 'proxy')
    assert.equal((await api(berth, 'GET', '/projects/bad', ADMIN)).status, 404, 'nothing was created')

    await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'mirror', proxy: { registry: 'up', default: true, namespaces: ['quay.io'] } }, 201)
    await bad({ registry: 'up', default: true }, 'proxy.default')
    await bad({ registry: 'up', namespaces: ['quay.io'] }, 'proxy.namespaces')
    const patched = await apiOk<{ proxy: Record<string, unknown> }>(berth, 'PATCH', '/projects/mirror', ADMIN, { proxy: { ttl: '2h', prefetchPlatforms: true } })
    assert.equal(patched.proxy.ttl, '2h')
    assert.equal(patched.proxy.default, true, 'a PATCH keeps the settings it does not name')
    assert.equal(patched.proxy.prefetchPlatforms, true)

    // Only administrators make proxy projects (Berth calls out with the endpoint's credentials).
    const alice = await addUser(berth, 'alice')
    assert.equal((await api(berth, 'POST', '/projects', alice, { name: 'alices', proxy: { registry: 'up' } })).status, 403)

    const del = await api(berth, 'DELETE', '/registries/up', ADMIN)
    assert.equal(del.status, 409, await del.text())
    await apiOk(berth, 'DELETE', '/projects/mirror', ADMIN, undefined, 204)
  })

  test('cold pull fetches once and stores byte for byte; warm pulls are local', async () => {
    const image = await seedImage(upstream.url, 'library/cold', 'v1', [300_000, 5000])
    const before = front.seen.length
    const cold = await v2('hub/library/cold/manifests/v1', { headers: { accept: OCI_MANIFEST } })
    assert.equal(cold.status, 200)
    assert.equal(cold.headers.get('berth-proxy-cache'), 'miss')
    assert.equal(cold.headers.get('docker-content-digest'), image.digest)
    assert.deepEqual(Buffer.from(await cold.arrayBuffer()), image.manifest)

    const warm = await v2('hub/library/cold/manifests/v1')
    assert.equal(warm.headers.get('berth-proxy-cache'), 'hit')
    assert.deepEqual(Buffer.from(await warm.arrayBuffer()), image.manifest)
    assert.equal((await v2(`hub/library/cold/manifests/${image.digest}`)).status, 200)

    for (const layer of image.layers) {
      const first = await v2(`hub/library/cold/blobs/${layer.digest}`)
      assert.equal(first.status, 200)
      assert.equal(first.headers.get('berth-proxy-cache'), 'miss')
      assert.deepEqual(Buffer.from(await first.arrayBuffer()), layer.data)
      const again = await v2(`hub/library/cold/blobs/${layer.digest}`)
      assert.equal(again.headers.get('berth-proxy-cache'), 'hit')
      assert.deepEqual(Buffer.from(await again.arrayBuffer()), layer.data)
    }
    // Ranged reads of a cold blob: the whole blob is fetched, the range served from the cache.
    const ranged = await v2(`hub/library/cold/blobs/${image.config.digest}`, { headers: { range: 'bytes=0-9' } })
    assert.equal(ranged.status, 206)
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), image.config.data.subarray(0, 10))

    const asked = front.seen.slice(before)
    assert.equal(asked.filter((s) => s === 'GET /v2/library/cold/manifests/v1').length, 1, asked.join('\n'))
    for (const layer of image.layers) assert.equal(asked.filter((s) => s === `GET /v2/library/cold/blobs/${layer.digest}`).length, 1)

    // Pulls through the proxy count for retention ("pulled within N days"), the cold one included.
    await berth.app.pulls.flush()
    const pulled = await berth.app.metadata.db.selectFrom('manifest_pulls').select('pull_count').where('digest', '=', image.digest).executeTakeFirst()
    assert.equal(Number(pulled?.pull_count), 3, 'cold GET, warm GET and the GET by digest')

    const tags = await v2('hub/library/cold/tags/list')
    assert.deepEqual(await tags.json(), { name: 'hub/library/cold', tags: ['v1'] })
  })

  test('the first client of a cold blob gets its bytes as they arrive, before the upstream has sent it all', async () => {
    const image = await seedImage(upstream.url, 'library/slow', 'v1', [1024 * 1024])
    const layer = image.layers[0] as { digest: string; data: Buffer }
    let release: () => void = () => undefined
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    front.hold = (req) => (req.url?.endsWith(layer.digest) ? held : undefined)
    try {
      const res = await v2(`hub/library/slow/blobs/${layer.digest}`)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-length'), String(layer.data.length))
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      const chunks: Buffer[] = []
      let received = 0
      // Half of the blob is all the upstream has sent so far: the client has bytes already.
      while (received < 64 * 1024) {
        const { value, done } = await reader.read()
        assert.equal(done, false)
        chunks.push(Buffer.from(value))
        received += value.length
      }
      assert.ok(received < layer.data.length)
      release()
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        chunks.push(Buffer.from(value))
      }
      assert.deepEqual(Buffer.concat(chunks), layer.data)
    } finally {
      front.hold = undefined
      release()
    }
  })

  test('pushes into a proxy project are refused with DENIED', async () => {
    const push = await fetch(`${berth.url}/v2/hub/library/cold/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    const detail = await expectOciError(push, 'DENIED', 403)
    assert.deepEqual(detail, { repository: 'hub/library/cold', project: 'hub', proxy: true })
    const manifest = await fetch(`${berth.url}/v2/hub/library/cold/manifests/v9`, { method: 'PUT', headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, body: '{}' })
    await expectOciError(manifest, 'DENIED', 403)
  })

  test('a tag moved upstream is picked up after the ttl; HEAD revalidation in between', async () => {
    const first = await seedImage(upstream.url, 'library/moving', 'latest')
    assert.equal((await v2('hub/library/moving/manifests/latest')).headers.get('docker-content-digest'), first.digest)
    const second = await seedImage(upstream.url, 'library/moving', 'latest')
    // Within the ttl (1 s) the cached tag is served without asking.
    const within = await v2('hub/library/moving/manifests/latest')
    assert.equal(within.headers.get('docker-content-digest'), first.digest)
    assert.equal(within.headers.get('berth-proxy-cache'), 'hit')
    await delay(1200)
    const later = await v2('hub/library/moving/manifests/latest')
    assert.equal(later.headers.get('docker-content-digest'), second.digest)
    assert.equal(later.headers.get('berth-proxy-cache'), 'miss')
    await delay(1200)
    const heads = front.count('HEAD', '/v2/library/moving/manifests/latest')
    const checked = await v2('hub/library/moving/manifests/latest')
    assert.equal(checked.headers.get('berth-proxy-cache'), 'hit')
    assert.equal(front.count('HEAD', '/v2/library/moving/manifests/latest'), heads + 1, 'an expired tag is checked with one HEAD')
  })

  test('a slow upstream: an expired cached tag is served after a short wait, the check goes on', async () => {
    const image = await seedImage(upstream.url, 'library/sluggish', 'v1')
    assert.equal((await v2('hub/library/sluggish/manifests/v1')).status, 200)
    await delay(1200)
    let release: () => void = () => undefined
    const stalled = new Promise<void>((resolve) => {
      release = resolve
    })
    front.stall = (req) => (req.method === 'HEAD' && req.url?.includes('/library/sluggish/') ? stalled : undefined)
    try {
      const started = Date.now()
      const res = await v2('hub/library/sluggish/manifests/v1')
      const waited = Date.now() - started
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('docker-content-digest'), image.digest)
      assert.equal(res.headers.get('berth-proxy-stale-reason'), 'slow')
      assert.ok(waited >= 4500 && waited < 15_000, `waited ${waited} ms`)
    } finally {
      front.stall = undefined
      release()
    }
  })

  test('immutability applies to proxy projects: a protected tag moved upstream keeps its cached manifest', async () => {
    await apiOk(berth, 'POST', '/projects/hub/immutability-rules', ADMIN, { repositories: 'library/pinned', tags: 'v*' }, 201)
    const first = await seedImage(upstream.url, 'library/pinned', 'v1')
    assert.equal((await v2('hub/library/pinned/manifests/v1')).headers.get('docker-content-digest'), first.digest)
    await seedImage(upstream.url, 'library/pinned', 'v1')
    await delay(1200)
    const kept = await v2('hub/library/pinned/manifests/v1')
    assert.equal(kept.status, 200)
    assert.equal(kept.headers.get('docker-content-digest'), first.digest)
    assert.equal(kept.headers.get('berth-proxy-stale-reason'), 'denied')
  })

  test('concurrent cold pulls make one upstream request per manifest and blob', async () => {
    const image = await seedImage(upstream.url, 'library/crowd', 'v1', [2 * 1024 * 1024])
    const layer = image.layers[0]?.digest as string
    const manifests = await Promise.all(Array.from({ length: 12 }, () => v2('hub/library/crowd/manifests/v1').then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) }))))
    for (const m of manifests) assert.deepEqual(m, { status: 200, body: image.manifest })
    const blobs = await Promise.all(Array.from({ length: 12 }, () => v2(`hub/library/crowd/blobs/${layer}`).then(async (r) => sha256(Buffer.from(await r.arrayBuffer())))))
    for (const d of blobs) assert.equal(d, layer)
    assert.equal(front.count('GET', '/v2/library/crowd/manifests/v1'), 1)
    assert.equal(front.count('GET', `/v2/library/crowd/blobs/${layer}`), 1)
  })

  test('an upstream serving a corrupted blob: nothing stored, the client gets an error', async () => {
    const image = await seedImage(upstream.url, 'library/corrupt', 'v1', [200_000])
    const layer = image.layers[0]?.digest as string
    front.alter = (req, res) => {
      if (req.method === 'GET' && req.url?.endsWith(layer)) res.body = Buffer.from(res.body.map((b) => b ^ 0xff))
    }
    try {
      const res = await v2(`hub/library/corrupt/blobs/${layer}`)
      // The download may start (the first client gets the bytes as they arrive) but never completes.
      await assert.rejects(async () => {
        if (res.status !== 200) throw new Error(`status ${res.status}`)
        await res.arrayBuffer()
      })
      await assert.rejects(berth.app.registry.blobs.stat('hub/library/corrupt', { algorithm: 'sha256', hex: layer.slice(7), value: layer }))
    } finally {
      front.alter = undefined
    }
    const fixed = await v2(`hub/library/corrupt/blobs/${layer}`)
    assert.equal(fixed.status, 200)
    assert.equal(sha256(Buffer.from(await fixed.arrayBuffer())), layer)
  })

  test('upstream manifests over manifests.maxSize are refused', async () => {
    const big = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], annotations: { pad: 'x'.repeat(70 * 1024) } }))
    await pushManifest(upstream.url, 'library/huge', 'v1', big, OCI_INDEX)
    const res = await v2('hub/library/huge/manifests/v1')
    assert.equal(res.status, 502)
    assert.match(await res.text(), /manifests\.maxSize/)
  })

  test('ns= and the default proxy: local repositories win, pulls of other names fall through, pushes never', async () => {
    await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'dflt', public: true, proxy: { registry: 'up', namespaces: ['docker.io'], default: true } }, 201)
    try {
      const image = await seedImage(upstream.url, 'library/alpine', '3.20')
      const viaNs = await v2('library/alpine/manifests/3.20?ns=docker.io')
      assert.equal(viaNs.status, 200)
      assert.equal(viaNs.headers.get('docker-content-digest'), image.digest)
      // dockerd's registry-mirrors: no ns, no project prefix.
      const viaDefault = await v2('library/alpine/manifests/3.20')
      assert.equal(viaDefault.status, 200)
      assert.equal(viaDefault.headers.get('docker-content-digest'), image.digest)
      const blob = await v2(`library/alpine/blobs/${image.layers[0]?.digest}`)
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), image.layers[0]?.digest)
      assert.equal((await v2(`dflt/library/alpine/manifests/${image.digest}`)).status, 200, 'served from the proxy project')

      // A local repository of the same name wins; pushes stay local.
      const local = await seedImage(berth.url, 'library/myapp', 'v1', [100], { headers: { authorization: ADMIN } })
      await seedImage(upstream.url, 'library/myapp', 'v1')
      const mine = await v2('library/myapp/manifests/v1')
      assert.equal(mine.headers.get('docker-content-digest'), local.digest)
      assert.equal(mine.headers.get('berth-proxy-cache'), null)

      // Anonymous docker token flow through the public default proxy.
      const anon = await fetch(`${berth.url}/token?service=berth&scope=repository:library/alpine:pull`)
      const { token } = (await anon.json()) as { token: string }
      const pulled = await v2('library/alpine/manifests/3.20', { headers: { authorization: `Bearer ${token}` } })
      assert.equal(pulled.status, 200)
      // …refused once the proxy project is private.
      await apiOk(berth, 'PATCH', '/projects/dflt', ADMIN, { public: false })
      const anon2 = await fetch(`${berth.url}/token?service=berth&scope=repository:library/alpine:pull`)
      const t2 = ((await anon2.json()) as { token: string }).token
      assert.equal((await v2('library/alpine/manifests/3.20', { headers: { authorization: `Bearer ${t2}` } })).status, 401)
      assert.equal((await v2('library/alpine/manifests/3.20')).status, 401)
      // A member of it may pull.
      const bob = await addUser(berth, 'bob')
      await apiOk(berth, 'POST', '/projects/dflt/members', ADMIN, { username: 'bob', role: 'guest' }, 201)
      const bt = await fetch(`${berth.url}/token?service=berth&scope=repository:library/alpine:pull`, { headers: { authorization: bob } })
      const bobToken = ((await bt.json()) as { token: string }).token
      assert.equal((await v2('library/alpine/manifests/3.20', { headers: { authorization: `Bearer ${bobToken}` } })).status, 200)
      assert.equal((await v2('library/alpine/manifests/3.20', { headers: { authorization: basic('bob', 'wrong') } })).status, 401)
    } finally {
      await apiOk(berth, 'PATCH', '/projects/dflt', ADMIN, { proxy: null, public: true })
    }
  })

  test('index: platforms fetched when asked; prefetchPlatforms fetches them all in the background', async () => {
    const lazy = await seedIndex(upstream.url, 'library/multi', 'v1')
    assert.equal((await v2('hub/library/multi/manifests/v1')).status, 200)
    const child = lazy.images[0]?.digest as string
    assert.equal(front.count('GET', `/v2/library/multi/manifests/${child}`), 0, 'not fetched before it is asked for')
    assert.equal((await v2(`hub/library/multi/manifests/${child}`)).status, 200)
    assert.equal(front.count('GET', `/v2/library/multi/manifests/${child}`), 1)

    await apiOk(berth, 'PATCH', '/projects/hub', ADMIN, { proxy: { prefetchPlatforms: true } })
    const eager = await seedIndex(upstream.url, 'library/eager', 'v1')
    assert.equal((await v2('hub/library/eager/manifests/v1')).status, 200)
    const deadline = Date.now() + 20_000
    const all = eager.images.flatMap((img) => [`GET /v2/library/eager/manifests/${img.digest}`, ...img.layers.map((l) => `GET /v2/library/eager/blobs/${l.digest}`)])
    while (Date.now() < deadline && !all.every((s) => front.seen.includes(s))) await delay(100)
    for (const s of all) assert.ok(front.seen.includes(s), `prefetched: ${s}`)
    await apiOk(berth, 'PATCH', '/projects/hub', ADMIN, { proxy: { prefetchPlatforms: false } })
  })

  test('upstream rate limit: the budget is shown and kept; cached tags are served meanwhile, uncached answer 429', async () => {
    // An endpoint of its own: the budget is kept per endpoint and credential.
    await apiOk(berth, 'POST', '/registries', ADMIN, { name: 'metered', url: front.url }, 201)
    await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'metered', public: true, proxy: { registry: 'metered', ttl: '1s' } }, 201)
    const image = await seedImage(upstream.url, 'library/limited', 'v1')
    await seedImage(upstream.url, 'library/other', 'v1')
    let remaining = 1
    front.alter = (req, res) => {
      if (req.url?.includes('/manifests/')) {
        if (req.method === 'GET') remaining = Math.max(0, remaining - 1)
        res.headers['ratelimit-limit'] = '100;w=21600'
        res.headers['ratelimit-remaining'] = `${remaining};w=21600`
      }
    }
    try {
      assert.equal((await v2('metered/library/limited/manifests/v1')).status, 200)
      const hub = await apiOk<{ proxy: { rateLimit: { limit: number; remaining: number; pausedUntil: string | null } } }>(berth, 'GET', '/projects/metered', ADMIN)
      assert.equal(hub.proxy.rateLimit.limit, 100)
      assert.equal(hub.proxy.rateLimit.remaining, 0)
      assert.ok(hub.proxy.rateLimit.pausedUntil)
      const before = front.count('GET', '/v2/library/other/manifests/v1')
      const refused = await v2('metered/library/other/manifests/v1')
      assert.equal(refused.status, 429)
      assert.ok(Number(refused.headers.get('retry-after')) > 0)
      await expectOciError(refused, 'TOOMANYREQUESTS', 429)
      assert.equal(front.count('GET', '/v2/library/other/manifests/v1'), before, 'not asked while the budget is spent')
      await delay(1100)
      const cached = await v2('metered/library/limited/manifests/v1')
      assert.equal(cached.status, 200)
      assert.equal(cached.headers.get('docker-content-digest'), image.digest)
    } finally {
      front.alter = undefined
    }
  })

  test('upstream down: cached tags are served with Berth-Proxy-Stale, uncached ones answer 503', async () => {
    const image = await seedImage(upstream.url, 'library/keep', 'v1')
    assert.equal((await v2('hub/library/keep/manifests/v1')).status, 200)
    assert.equal((await v2(`hub/library/keep/blobs/${image.layers[0]?.digest}`)).status, 200)
    await upstream.stop()
    await delay(1200)
    const stale = await v2('hub/library/keep/manifests/v1')
    assert.equal(stale.status, 200)
    assert.equal(stale.headers.get('berth-proxy-stale'), 'true')
    assert.equal(stale.headers.get('berth-proxy-cache'), 'stale')
    assert.deepEqual(Buffer.from(await stale.arrayBuffer()), image.manifest)
    assert.equal((await v2(`hub/library/keep/blobs/${image.layers[0]?.digest}`)).status, 200)
    const missing = await v2('hub/library/never/manifests/v1')
    const detail = await expectOciError(missing, 'UNAVAILABLE', 503)
    assert.equal((detail as { upstream: string }).upstream, 'up')
    // The upstream's address (in its own error) is for the operator's log, not for clients.
    const again = await (await v2('hub/library/never/manifests/v1')).text()
    assert.doesNotMatch(again, /127\.0\.0\.1|http:/, again)
    const metrics = await (await fetch(`${berth.url}/metrics`)).text()
    assert.match(metrics, /berth_proxy_requests_total\{project="hub",kind="manifest",result="hit"\} [1-9]/)
    // The front answers 502 for the stopped upstream: an "upstream" failure (unreachable without it).
    assert.match(metrics, /berth_proxy_upstream_errors_total\{project="hub",kind="(upstream|unreachable)"\} [1-9]/)
    assert.match(metrics, /berth_proxy_upstream_bytes_total\{project="hub"\} [1-9]/)
  })
})

