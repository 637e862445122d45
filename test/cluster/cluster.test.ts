// Scale-out proof: three Berth nodes sharing one PostgreSQL database and one S3 bucket (s3rver)
// behind a round-robin balancer that sends every request to the next node, so the PATCHes of
// one chunked upload land on different nodes. Then one node is killed with SIGKILL mid-push.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, request, type Server } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'
import { S3_ACCESS_KEY, S3_SECRET_KEY, startS3, type TestS3 } from '../helpers/s3.js'
import { findBinary, freePort, makeTempDir, removeTempDir, run, waitFor } from '../helpers/e2e-process.js'
import { layoutRef, multiArchLayout } from '../helpers/e2e-layout.js'
import { containersEnv } from '../helpers/e2e-registry.js'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.js')
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`

interface Node {
  port: number
  child: ChildProcess
  dir: string
}

/** Round-robin over upstreams, one upstream connection per request; a refused node is skipped from then on. */
function startBalancer(ports: number[]): Promise<{ server: Server; url: string; hits: Map<number, number> }> {
  let next = 0
  const dead = new Set<number>()
  const hits = new Map<number, number>()
  const server = createServer((req, res) => {
    const alive = ports.filter((p) => !dead.has(p))
    const port = alive[next++ % alive.length] as number
    hits.set(port, (hits.get(port) ?? 0) + 1)
    const up = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent: false }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      upRes.pipe(res)
    })
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') dead.add(port)
      if (!res.headersSent) res.writeHead(502).end('bad gateway')
      else res.destroy()
    })
    req.pipe(up)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits })))
}

/** A client push as docker does it, retried from scratch on 5xx or a dropped connection. */
async function pushImage(base: string, name: string, tag: string, layer: Buffer, attempts = 6): Promise<string> {
  let last: unknown
  for (let i = 0; i < attempts; i++) {
    try {
      return await pushOnce(base, name, tag, layer)
    } catch (err) {
      last = err
      await new Promise((r) => setTimeout(r, 50 * (i + 1)))
    }
  }
  throw last
}

async function pushOnce(base: string, name: string, tag: string, layer: Buffer): Promise<string> {
  const expect = async (res: Response, status: number) => {
    if (res.status !== status) throw new Error(`${res.status} ${await res.text()}`)
    return res
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }))
  await expect(await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config as unknown as BodyInit }), 201)
  // The layer in 3 chunks: each request goes to another node.
  const start = await expect(await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' }), 202)
  const loc = start.headers.get('location') ?? ''
  const third = Math.ceil(layer.length / 3)
  for (let off = 0; off < layer.length; off += third) {
    const chunk = layer.subarray(off, off + third)
    await expect(
      await fetch(`${base}${loc}`, { method: 'PATCH', body: chunk as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${off + chunk.length - 1}` } }),
      202,
    )
  }
  await expect(await fetch(`${base}${loc}?digest=${sha256(layer)}`, { method: 'PUT' }), 201)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  )
  await expect(await fetch(`${base}/v2/${name}/manifests/${tag}`, { method: 'PUT', body: manifest as unknown as BodyInit, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } }), 201)
  return sha256(manifest)
}

/** Pulls a tag and checks every byte against its digest. */
async function verifyPull(base: string, name: string, tag: string, digest: string): Promise<void> {
  const res = await fetch(`${base}/v2/${name}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
  assert.equal(res.status, 200, `${name}:${tag}`)
  const body = Buffer.from(await res.arrayBuffer())
  assert.equal(sha256(body), digest)
  const m = JSON.parse(body.toString()) as { config: { digest: string }; layers: { digest: string }[] }
  for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
    const blob = await fetch(`${base}/v2/${name}/blobs/${d}`)
    assert.equal(blob.status, 200)
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), d)
  }
}

const skip = postgresSkip()

describe('three nodes on PostgreSQL + S3 behind a balancer', { skip }, () => {
  let s3: TestS3
  let dbUrl: string
  let bucket: string
  const nodes: Node[] = []
  let lb: Awaited<ReturnType<typeof startBalancer>>

  const startNode = async (): Promise<Node> => {
    const port = await freePort()
    const dir = await mkdtemp(join(tmpdir(), 'berth-node-'))
    const child = spawn(process.execPath, [BIN, 'serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dir], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        BERTH_DATABASE_URL: dbUrl,
        BERTH_STORAGE_DRIVER: 's3',
        BERTH_STORAGE_S3_BUCKET: bucket,
        BERTH_STORAGE_S3_ENDPOINT: s3.endpoint,
        BERTH_STORAGE_S3_FORCE_PATH_STYLE: 'true',
        BERTH_STORAGE_S3_ACCESS_KEY_ID: S3_ACCESS_KEY,
        BERTH_STORAGE_S3_SECRET_ACCESS_KEY: S3_SECRET_KEY,
        BERTH_AUTH_ENABLED: 'false',
        BERTH_LOG_LEVEL: 'warn',
      },
    })
    await waitFor(`node on ${port}`, async () => (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false)) || undefined, { timeoutMs: 30_000 })
    return { port, child, dir }
  }

  before(async () => {
    s3 = await startS3()
    bucket = await s3.createBucket()
    dbUrl = await createTestDatabase()
    // Started together: migrations must run once.
    nodes.push(...(await Promise.all([startNode(), startNode(), startNode()])))
    lb = await startBalancer(nodes.map((n) => n.port))
  })

  after(async () => {
    lb?.server.close()
    for (const n of nodes) n.child.kill('SIGKILL')
    await Promise.all(nodes.map((n) => rm(n.dir, { recursive: true, force: true })))
    if (dbUrl) await dropTestDatabase(dbUrl)
    await s3?.close()
  })

  it('pushes chunked across nodes, pulls, lists referrers and deletes through the balancer', async () => {
    const layer = randomBytes(300_000)
    const digest = await pushImage(lb.url, 'lb/app', 'v1', layer, 1)
    for (const n of nodes) await verifyPull(`http://127.0.0.1:${n.port}`, 'lb/app', 'v1', digest)
    assert.equal(lb.hits.size, 3)
    assert.ok([...lb.hits.values()].every((h) => h >= 2), 'every node served part of the push')
    // A referrer pushed through one node is listed by every node.
    const empty = Buffer.from('{}')
    await fetch(`${lb.url}/v2/lb/app/blobs/uploads/?digest=${sha256(empty)}`, { method: 'POST', body: empty as unknown as BodyInit })
    const sig = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/example.sig',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 100 },
    }))
    assert.equal((await fetch(`${lb.url}/v2/lb/app/manifests/${sha256(sig)}`, { method: 'PUT', body: sig as unknown as BodyInit, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201)
    for (const n of nodes) {
      const idx = (await (await fetch(`http://127.0.0.1:${n.port}/v2/lb/app/referrers/${digest}`)).json()) as { manifests: { digest: string }[] }
      assert.deepEqual(idx.manifests.map((m) => m.digest), [sha256(sig)])
    }
    // A tag moved or deleted through one node is seen by the others at once (no stale cache).
    assert.equal((await fetch(`${lb.url}/v2/lb/app/manifests/v1`, { method: 'DELETE' })).status, 202)
    for (const n of nodes) assert.equal((await fetch(`http://127.0.0.1:${n.port}/v2/lb/app/manifests/v1`)).status, 404)
  })

  it('skopeo copies an index in through node 1 and out through node 3 with identical digests', async () => {
    const skopeo = findBinary('skopeo')
    if (!skopeo) {
      if (process.env.CI) throw new Error('skopeo is missing (CI installs it)')
      return
    }
    const work = await makeTempDir('berth-cluster-skopeo-')
    try {
      const env = await containersEnv(join(work, 'containers'))
      const { layout, index } = await multiArchLayout(join(work, 'src'))
      await layout.tag('multi', index.descriptor)
      const [first, , third] = nodes as [Node, Node, Node]
      await run(skopeo, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(work, 'src')}:multi`, `docker://127.0.0.1:${first.port}/lb/skopeo:1`], { env })
      await run(skopeo, ['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://127.0.0.1:${third.port}/lb/skopeo:1`, `oci:${join(work, 'out')}:multi`], { env })
      assert.equal((await layoutRef(join(work, 'out'), 'multi')).digest, index.descriptor.digest)
    } finally {
      await removeTempDir(work)
    }
  })

  it('takes 32 concurrent pushes of shared and distinct blobs and tags', async () => {
    const shared = randomBytes(100_000)
    const jobs = Array.from({ length: 32 }, (_, i) => {
      const layer = i % 2 === 0 ? shared : randomBytes(50_000 + i)
      const tag = i % 4 === 0 ? 'same' : `t${i}`
      return pushImage(lb.url, `lb/many${i % 3}`, tag, layer).then((digest) => ({ name: `lb/many${i % 3}`, tag, digest }))
    })
    const pushed = await Promise.all(jobs)
    for (const p of pushed.filter((x) => x.tag !== 'same')) await verifyPull(lb.url, p.name, p.tag, p.digest)
    for (const name of ['lb/many0', 'lb/many1', 'lb/many2']) {
      const head = await fetch(`${lb.url}/v2/${name}/manifests/same`, { method: 'HEAD' })
      if (head.status === 404) continue
      const winner = head.headers.get('docker-content-digest')
      assert.ok(pushed.some((p) => p.name === name && p.tag === 'same' && p.digest === winner), 'the shared tag names one of the pushed manifests')
    }
  })

  it('keeps every acknowledged push intact when a node is killed mid-push, and retries succeed on the others', async () => {
    const victim = nodes[1] as Node
    const acknowledged: { name: string; tag: string; digest: string }[] = []
    const jobs = Array.from({ length: 16 }, async (_, i) => {
      const digest = await pushImage(lb.url, 'lb/kill', `k${i}`, randomBytes(400_000))
      acknowledged.push({ name: 'lb/kill', tag: `k${i}`, digest })
    })
    await new Promise((r) => setTimeout(r, 150))
    victim.child.kill('SIGKILL')
    const results = await Promise.allSettled(jobs)
    const failed = results.filter((r) => r.status === 'rejected')
    assert.equal(failed.length, 0, `pushes failed after retries: ${failed.map((f) => String((f as PromiseRejectedResult).reason)).join('; ')}`)
    assert.equal(acknowledged.length, 16)
    for (const a of acknowledged) await verifyPull(lb.url, a.name, a.tag, a.digest)
  })
})
