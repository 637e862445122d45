// A real SIGKILL of `berth export` while a blob is half written, then a rerun of the same command.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer, request, type Server } from 'node:http'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { openLayout } from '../../src/transfer/layout-store.js'
import { waitFor } from '../helpers/e2e-process.js'
import { pushBlob, putManifest, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, digestOf } from './helpers.js'

const ROOT = join(import.meta.dirname, '..', '..')
const LAYER_SIZE = 4 * 1024 * 1024

/**
 * A pass-through proxy to a registry that, while `stall` is set, answers a GET of `blob` with
 * its headers and first half, then holds the connection open: the export is caught midway.
 */
class StallingProxy {
  stall = true
  /** set once a stalled response has sent its first half */
  stalled: Promise<void>
  private reached!: () => void
  private readonly server: Server

  constructor(
    private readonly upstream: URL,
    private readonly blob: string,
  ) {
    this.stalled = new Promise((resolve) => (this.reached = resolve))
    this.server = createServer((req, res) => {
      if (this.stall && req.method === 'GET' && req.url?.endsWith(`/blobs/${this.blob}`)) {
        void fetch(new URL(req.url, this.upstream)).then(async (up) => {
          const body = Buffer.from(await up.arrayBuffer())
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length), 'docker-content-digest': this.blob })
          res.write(body.subarray(0, body.length / 2), () => this.reached())
        })
        return
      }
      const out = request(new URL(req.url ?? '/', this.upstream), { method: req.method, headers: { ...req.headers, host: this.upstream.host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      })
      req.pipe(out)
    })
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

describe('berth export killed with SIGKILL and run again', () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let manifestDigest: string
  let layerDigest: string

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-export-kill-'))
    a = await startServer()
    b = await startServer()
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
    const layer = randomBytes(LAYER_SIZE)
    const configDigest = await pushBlob(a.url, 'team/big', config)
    layerDigest = await pushBlob(a.url, 'team/big', layer)
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
      }),
    )
    assert.equal((await putManifest(a.url, 'team/big', '1', manifest)).status, 201)
    manifestDigest = sha256(manifest)
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await rm(work, { recursive: true, force: true })
  })

  for (const kind of ['tar', 'directory'] as const) {
    it(`leaves no ${kind === 'tar' ? 'FILE.tar (only FILE.tar.partial)' : 'whole-looking blob'} behind, and the rerun finishes with a valid layout (${kind})`, async () => {
      const proxy = new StallingProxy(new URL(a.url), layerDigest)
      const url = await proxy.listen()
      const to = join(work, kind === 'tar' ? 'big.tar' : 'big-dir')
      const partial = kind === 'tar' ? `${to}.partial` : join(to, 'blobs', 'sha256', `${layerDigest.slice(7)}.partial`)
      try {
        const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'export', '--url', url, 'team/big:1', '--to', to], { cwd: ROOT, stdio: 'ignore' })
        const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
        await proxy.stalled
        // Half of the layer is on disk before the kill.
        await waitFor('half of the layer written', async () => ((await stat(partial).catch(() => null))?.size ?? 0) >= LAYER_SIZE / 2, { timeoutMs: 60_000 })
        child.kill('SIGKILL')
        assert.equal(await exited, 'SIGKILL')
      } finally {
        proxy.stall = false
      }
      if (kind === 'tar') await assert.rejects(stat(to), 'no FILE.tar after the kill')
      else assert.deepEqual((await readdir(join(to, 'blobs', 'sha256'))).filter((n) => n.startsWith(layerDigest.slice(7))), [`${layerDigest.slice(7)}.partial`])

      const rerun = await berth(['export', '--url', url, 'team/big:1', '--to', to, '--json'])
      await proxy.close()
      assert.equal(rerun.code, 0, rerun.stderr)
      await assert.rejects(stat(partial), 'the partial file is gone')
      // Every blob of the finished layout is whole: each one re-hashed.
      const layout = await openLayout(to)
      const root = layout.index().manifests[0]
      assert.equal(root?.digest, manifestDigest)
      assert.equal(root?.annotations?.['org.opencontainers.image.ref.name'], '1')
      assert.equal(await layout.verify({ digest: layerDigest, size: LAYER_SIZE }), 'ok')
      const imported = await berth(['import', to, '--into', `restored/${kind}`, '--url', b.url])
      assert.equal(imported.code, 0, imported.stderr)
      assert.equal(await digestOf(b.url, `restored/${kind}`, '1'), manifestDigest)
    })
  }
})
