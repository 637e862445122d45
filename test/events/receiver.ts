import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import assert from 'node:assert/strict'
import { ADMIN } from '../helpers/auth.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'

export interface Received {
  headers: IncomingMessage['headers']
  body: string
}

/**
 * A webhook receiver on 127.0.0.1: records every request it answers; `down()` closes its port
 * (connections refused) and `up()` opens the same port again; `mode` makes it hang or fail.
 */
export class Receiver {
  readonly received: Received[] = []
  mode: 'ok' | 'hang' | 'fail' | 'huge' = 'ok'
  /** in mode ok: how long the answer waits after the request was recorded (a slow receiver) */
  delayMs = 0
  /** TCP connections accepted so far (keep-alive reuses one) */
  connections = 0
  private server: Server | undefined
  private port = 0
  private readonly open = new Set<ServerResponse>()

  /** `host`: a loopback address other than 127.0.0.1 tells receivers apart for the network guard */
  constructor(private readonly host = '127.0.0.1') {}

  async up(): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (this.mode === 'hang') {
          this.open.add(res)
          return
        }
        if (this.mode === 'fail') return res.writeHead(503).end('try later')
        if (this.mode === 'huge') {
          // announces 10 MB, sends the first 64 KiB and stalls: only a client reading it all waits
          this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
          this.open.add(res)
          res.writeHead(200, { 'content-length': 10 * 1024 * 1024 })
          res.write(Buffer.alloc(64 * 1024, 120))
          return
        }
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
        if (this.delayMs === 0) return res.writeHead(200).end()
        this.open.add(res)
        setTimeout(() => {
          this.open.delete(res)
          if (!res.destroyed) res.writeHead(200).end()
        }, this.delayMs)
      })
    })
    server.on('connection', () => this.connections++)
    // idle connections stay open long enough for a slow machine's next delivery
    server.keepAliveTimeout = 30_000
    await new Promise<void>((resolve) => server.listen(this.port, this.host, resolve))
    this.port = (server.address() as AddressInfo).port
    this.server = server
    return this
  }

  async down(): Promise<void> {
    for (const res of this.open) res.destroy()
    this.open.clear()
    const s = this.server
    this.server = undefined
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  get url(): string {
    return `http://${this.host}:${this.port}/hook`
  }
}

/** Pushes a small image with Basic credentials; returns its digest. */
export async function pushAsAdmin(s: TestServer, repo: string, tag: string, seed: string): Promise<string> {
  const h = { authorization: ADMIN }
  const config = Buffer.from(JSON.stringify({ seed }))
  const layer = Buffer.from(`layer ${seed}`)
  for (const blob of [config, layer]) {
    const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: h, body: asBody(blob) })
    assert.equal(res.status, 201)
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  }))
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { ...h, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: asBody(manifest) })
  assert.equal(res.status, 201)
  return sha256(manifest)
}
