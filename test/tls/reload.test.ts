import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { Agent, request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { connect, type TLSSocket } from 'node:tls'
import { sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { makeCa, makeCert, opensslFingerprint, settles, type Pem } from './certs.js'

/** The fingerprint of the certificate a new TLS connection is served. */
async function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      const fp = socket.getPeerCertificate().fingerprint256
      socket.end()
      resolve(fp)
    })
    socket.on('error', reject)
  })
}

/** Replaces a file the way certbot and cert-manager do: write beside it, rename over it. */
async function replace(path: string, content: string): Promise<void> {
  const temp = `${path}.new-${randomBytes(4).toString('hex')}`
  await writeFile(temp, content)
  await rename(temp, path)
}

function get(agent: Agent, port: number, ca: string, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, ca }, resolve)
    req.on('error', reject)
    req.end()
  })
}

async function body(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

describe('TLS certificates reloaded from their files', () => {
  let dir: string
  let ca: Pem
  let first: Pem
  let second: Pem
  let s: TestServer
  let port: number
  let logs = ''
  const certPath = () => join(dir, 'tls.crt')
  const keyPath = () => join(dir, 'tls.key')

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-tls-'))
    ca = await makeCa(dir, 'ca')
    first = await makeCert(dir, ca, 'first', 'berth-first', 'server')
    second = await makeCert(dir, ca, 'second', 'berth-second', 'server')
    await writeFile(certPath(), first.cert)
    await writeFile(keyPath(), first.key)
    // File-system events only (no periodic check): a reload seen here came from them.
    s = await startServer(
      { http: { tls: { certificate: certPath(), key: keyPath(), reloadInterval: '0s' } }, log: { level: 'info' } },
      { logStream: new Writable({ write: (chunk: Buffer, _enc, done) => done(void (logs += chunk.toString())) }) },
    )
    port = Number(s.host.split(':')[1])
  })
  after(async () => {
    await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a new certificate is served to new connections; an open download and a keep-alive connection go on', async () => {
    const base = `https://127.0.0.1:${port}`
    assert.equal(await servedFingerprint(port, ca.cert), await opensslFingerprint(first.certPath))
    // A 16 MiB blob, pushed over TLS.
    const blob = randomBytes(16 * 1024 * 1024)
    const digest = sha256(blob)
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const pushed = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(`${base}/v2/tls/blob/blobs/uploads/?digest=${digest}`, { method: 'POST', agent, ca: ca.cert, headers: { 'content-length': blob.length } }, resolve)
        req.on('error', reject)
        req.end(blob)
      })
      await body(pushed)
      assert.equal(pushed.statusCode, 201)
      // The download starts, reads a little, and waits while the certificate changes.
      const download = await get(agent, port, ca.cert, `/v2/tls/blob/blobs/${digest}`)
      assert.equal(download.statusCode, 200)
      const socket = download.socket as TLSSocket
      const before = socket.getPeerCertificate().fingerprint256
      download.pause()
      await replace(keyPath(), second.key)
      await replace(certPath(), second.cert)
      const expected = await opensslFingerprint(second.certPath)
      await settles(async () => assert.equal(await servedFingerprint(port, ca.cert), expected))
      assert.match(logs, /TLS certificate reloaded/)
      download.resume()
      const got = await body(download)
      assert.equal(got.length, blob.length)
      assert.equal(createHash('sha256').update(got).digest('hex'), digest.slice('sha256:'.length))
      // The same keep-alive connection serves the next request, with the certificate it began with.
      const again = await get(agent, port, ca.cert, `/v2/tls/blob/blobs/${digest}`)
      assert.equal(again.socket, socket, 'the keep-alive connection was reused')
      assert.equal((again.socket as TLSSocket).getPeerCertificate().fingerprint256, before)
      assert.equal((await body(again)).length, blob.length)
    } finally {
      agent.destroy()
    }
  })

  it('an unreadable or invalid certificate keeps the current one serving and logs why', async () => {
    const serving = await servedFingerprint(port, ca.cert)
    assert.equal(serving, await opensslFingerprint(second.certPath))
    const warnings = () => logs.split('\n').filter((l) => l.includes('TLS certificate not reloaded'))
    // Not PEM at all.
    const seen = warnings().length
    await replace(certPath(), 'this is not a certificate\n')
    await settles(() => assert.equal(warnings().length, seen + 1))
    assert.equal(await servedFingerprint(port, ca.cert), serving)
    // A valid certificate with somebody else's key.
    await replace(certPath(), first.cert)
    await settles(() => assert.ok(warnings().length >= seen + 2))
    assert.match(warnings().at(-1)!, /key values mismatch/)
    assert.equal(await servedFingerprint(port, ca.cert), serving)
    // The key file gone.
    await replace(certPath(), second.cert)
    await unlink(keyPath())
    await settles(() => assert.match(warnings().at(-1)!, /ENOENT/))
    assert.equal(await servedFingerprint(port, ca.cert), serving)
    // Why, with the paths, and never a byte of a key.
    const line = JSON.parse(warnings().at(-1)!) as { level: number; certificate: string; key: string; reason: string }
    assert.equal(line.level, 40)
    assert.equal(line.key, keyPath())
    assert.doesNotMatch(logs, /PRIVATE KEY|BEGIN/)
    // Put right: the next change is loaded.
    await replace(keyPath(), second.key)
    await replace(certPath(), second.cert)
    await settles(() => assert.match(logs.trim().split('\n').at(-1)!, /TLS certificate reloaded/))
    assert.equal(await servedFingerprint(port, ca.cert), serving)
  })
})
