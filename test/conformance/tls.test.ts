import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { request } from 'node:https'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { startServer } from '../helpers/server.js'

const run = promisify(execFile)

describe('TLS', () => {
  it('serves the API over HTTPS with the configured certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-tls-'))
    const certificate = join(dir, 'tls.crt')
    const key = join(dir, 'tls.key')
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', certificate])
    const s = await startServer({ http: { tls: { certificate, key } } })
    try {
      const ca = await readFile(certificate)
      const port = Number(s.host.split(':')[1])
      const { status, header } = await new Promise<{ status: number; header: string | undefined }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v2/', ca }, (res) => {
          res.resume()
          resolve({ status: res.statusCode ?? 0, header: res.headers['docker-distribution-api-version'] as string | undefined })
        })
        req.on('error', reject)
        req.end()
      })
      assert.equal(status, 200)
      assert.equal(header, 'registry/2.0')
    } finally {
      await s.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
