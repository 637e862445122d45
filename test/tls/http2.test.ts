import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { makeCa, makeCert, type Pem } from './certs.js'

const run = promisify(execFile)

interface H2Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** One request on an HTTP/2 session. */
function h2(session: ClientHttp2Session, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': method, ':path': path, ...headers })
    let got: IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    stream.on('response', (h) => (got = h))
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve({ status: Number(got[':status']), headers: got, body: Buffer.concat(chunks) }))
    stream.on('error', reject)
    stream.end(body)
  })
}

describe('HTTP/2 over TLS (http.http2)', () => {
  let dir: string
  let ca: Pem
  let s: TestServer
  let base: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-h2-'))
    ca = await makeCa(dir, 'ca')
    const server = await makeCert(dir, ca, 'server', 'berth', 'server')
    s = await startServer({ http: { http2: true, tls: { certificate: server.certPath, key: server.keyPath } } })
    base = `https://${s.host}`
  })
  after(async () => {
    await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('pushes and pulls blobs and manifests over h2 (monolithic and chunked uploads, the fast pull path)', async () => {
    const session = connect(base, { ca: ca.cert })
    try {
      assert.equal(session.alpnProtocol, undefined) // not yet connected
      await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject))
      assert.equal(session.alpnProtocol, 'h2')
      // Monolithic upload: the config.
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
      const configDigest = sha256(config)
      const mono = await h2(session, 'POST', `/v2/h2/app/blobs/uploads/?digest=${configDigest}`, config, { 'content-type': 'application/octet-stream' })
      assert.equal(mono.status, 201, mono.body.toString())
      // Chunked upload of a 3 MiB layer: POST, two PATCHes, PUT.
      const layer = randomBytes(3 * 1024 * 1024)
      const layerDigest = sha256(layer)
      const started = await h2(session, 'POST', '/v2/h2/app/blobs/uploads/')
      assert.equal(started.status, 202)
      let location = String(started.headers.location)
      const half = layer.length / 2
      for (const [from, to] of [
        [0, half],
        [half, layer.length],
      ] as const) {
        const patched = await h2(session, 'PATCH', new URL(location, base).pathname + new URL(location, base).search, layer.subarray(from, to), { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` })
        assert.equal(patched.status, 202, patched.body.toString())
        location = String(patched.headers.location)
      }
      const url = new URL(location, base)
      url.searchParams.set('digest', layerDigest)
      const finished = await h2(session, 'PUT', url.pathname + url.search)
      assert.equal(finished.status, 201, finished.body.toString())
      // The manifest.
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
        }),
      )
      const put = await h2(session, 'PUT', '/v2/h2/app/manifests/v1', manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })
      assert.equal(put.status, 201, put.body.toString())
      // Pulls: manifest GET and HEAD, blob HEAD (the fast path's requests) and the layer GET.
      for (let i = 0; i < 3; i++) {
        const got = await h2(session, 'GET', '/v2/h2/app/manifests/v1', undefined, { accept: 'application/vnd.oci.image.manifest.v1+json' })
        assert.equal(got.status, 200)
        assert.deepEqual(got.body, manifest)
        assert.equal(got.headers['docker-content-digest'], sha256(manifest))
      }
      const head = await h2(session, 'HEAD', `/v2/h2/app/manifests/${sha256(manifest)}`)
      assert.equal(head.status, 200)
      assert.equal(head.headers['content-length'], String(manifest.length))
      assert.equal((await h2(session, 'HEAD', `/v2/h2/app/blobs/${layerDigest}`)).headers['content-length'], String(layer.length))
      const blob = await h2(session, 'GET', `/v2/h2/app/blobs/${layerDigest}`)
      assert.equal(blob.status, 200)
      assert.equal(sha256(blob.body), layerDigest)
      // Errors are the spec's, over h2 too.
      const missing = await h2(session, 'GET', '/v2/h2/app/manifests/nope')
      assert.equal(missing.status, 404)
      assert.equal((JSON.parse(missing.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN')
    } finally {
      session.close()
    }
  })

  it('curl negotiates h2 with ALPN, and HTTP/1.1 still works for clients that do not offer it', async () => {
    const caFile = join(dir, 'ca-bundle.crt')
    await writeFile(caFile, ca.cert)
    const version = async (flag: string) => (await run('curl', ['-sS', flag, '--cacert', caFile, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${base}/v2/`])).stdout
    assert.equal(await version('--http2'), '2 200')
    assert.equal(await version('--http1.1'), '1.1 200')
  })
})
