import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, startAuthServer } from '../helpers/auth.js'
import { sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { makeCa, makeCert, type Pem } from './certs.js'

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One HTTPS request, with a client certificate when `client` is given. */
function call(s: TestServer, ca: string, method: string, path: string, opts: { client?: Pem; authorization?: string; body?: Buffer | string; type?: string } = {}): Promise<Answer> {
  const [host, port] = s.host.split(':')
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {}
    if (opts.authorization) headers.authorization = opts.authorization
    if (opts.body !== undefined) {
      headers['content-length'] = Buffer.byteLength(opts.body)
      headers['content-type'] = opts.type ?? 'application/json'
    }
    const req = request({ host, port, method, path, ca, agent: false, headers, ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}) }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

async function ok(answer: Promise<Answer>, status: number): Promise<Answer> {
  const a = await answer
  assert.equal(a.status, status, a.body)
  return a
}

/** Pushes a config blob and a manifest naming it; returns the manifest PUT's status. */
async function push(s: TestServer, ca: string, client: Pem | undefined, repo: string, authorization?: string): Promise<Answer> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', repo }))
  const digest = sha256(config)
  const blob = await call(s, ca, 'POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, { client, authorization, body: config, type: 'application/octet-stream' })
  if (blob.status !== 201) return blob
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length }, layers: [] })
  return call(s, ca, 'PUT', `/v2/${repo}/manifests/v1`, { client, authorization, body: manifest, type: 'application/vnd.oci.image.manifest.v1+json' })
}

describe('client certificates (mTLS) sign in users and robots', () => {
  let dir: string
  let serverCa: Pem
  let clientCa: Pem
  let otherCa: Pem
  let alice: Pem
  let robot: Pem
  let stranger: Pem
  let nobody: Pem
  let s: TestServer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mtls-'))
    serverCa = await makeCa(dir, 'server-ca')
    clientCa = await makeCa(dir, 'client-ca')
    otherCa = await makeCa(dir, 'other-ca')
    const server = await makeCert(dir, serverCa, 'server', 'berth', 'server')
    alice = await makeCert(dir, clientCa, 'alice', 'alice', 'client')
    robot = await makeCert(dir, clientCa, 'robot', 'robot$alpha+ci', 'client')
    nobody = await makeCert(dir, clientCa, 'nobody', 'nobody-here', 'client')
    // A certificate for alice from a CA Berth does not trust.
    stranger = await makeCert(dir, otherCa, 'stranger', 'alice', 'client')
    s = await startAuthServer({ http: { tls: { certificate: server.certPath, key: server.keyPath, clientCA: clientCa.certPath, clientAuth: 'optional' } } })
    const ca = serverCa.cert
    await ok(call(s, ca, 'POST', '/api/v1/users', { authorization: ADMIN, body: JSON.stringify({ username: 'alice', password: 'alice-password-1' }) }), 201)
    for (const name of ['alpha', 'beta']) await ok(call(s, ca, 'POST', '/api/v1/projects', { authorization: ADMIN, body: JSON.stringify({ name }) }), 201)
    await ok(call(s, ca, 'POST', '/api/v1/projects/alpha/members', { authorization: ADMIN, body: JSON.stringify({ username: 'alice', role: 'developer' }) }), 201)
    await ok(call(s, ca, 'POST', '/api/v1/robots', { authorization: ADMIN, body: JSON.stringify({ name: 'ci', project: 'alpha', permissions: ['pull'] }) }), 201)
  })
  after(async () => {
    await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a certificate for user alice pushes and pulls where alice may, and is refused where she may not', async () => {
    const ca = serverCa.cert
    await ok(call(s, ca, 'GET', '/v2/', { client: alice }), 200)
    assert.equal((await push(s, ca, alice, 'alpha/app')).status, 201)
    await ok(call(s, ca, 'GET', '/v2/alpha/app/manifests/v1', { client: alice }), 200)
    const denied = await push(s, ca, alice, 'beta/app')
    assert.equal(denied.status, 403, denied.body)
    assert.match(denied.body, /DENIED/)
    assert.match(denied.body, /user alice/)
    // The management API knows who she is, and gives her no more than her rights.
    const me = JSON.parse((await ok(call(s, ca, 'GET', '/api/v1/me', { client: alice }), 200)).body) as { username: string; admin: boolean }
    assert.equal(me.username, 'alice')
    assert.equal(me.admin, false)
    assert.equal((await call(s, ca, 'POST', '/api/v1/users', { client: alice, body: JSON.stringify({ username: 'mallory', password: 'mallory-password-1', admin: true }) })).status, 403)
  })

  it('a robot certificate (CN robot$…) has the robot\'s rights: pull, not push', async () => {
    const ca = serverCa.cert
    await ok(call(s, ca, 'GET', '/v2/alpha/app/manifests/v1', { client: robot }), 200)
    assert.equal((await push(s, ca, robot, 'alpha/robot-push')).status, 403)
  })

  it('without a certificate the caller is anonymous; Basic credentials still work beside certificates', async () => {
    const ca = serverCa.cert
    assert.equal((await call(s, ca, 'GET', '/v2/')).status, 401)
    assert.equal((await call(s, ca, 'GET', '/v2/alpha/app/manifests/v1')).status, 401)
    await ok(call(s, ca, 'GET', '/v2/alpha/app/manifests/v1', { authorization: ADMIN }), 200)
  })

  it('a certificate from another CA, or naming nobody, or of a disabled user is refused', async () => {
    const ca = serverCa.cert
    const foreign = await call(s, ca, 'GET', '/v2/alpha/app/manifests/v1', { client: stranger })
    assert.equal(foreign.status, 401)
    assert.match(foreign.body, /client certificate refused/)
    const unknown = await call(s, ca, 'GET', '/v2/', { client: nobody })
    assert.equal(unknown.status, 401)
    assert.match(unknown.body, /names no active user or robot/)
    await ok(call(s, ca, 'PATCH', '/api/v1/users/alice', { authorization: ADMIN, body: JSON.stringify({ disabled: true }) }), 200)
    assert.equal((await call(s, ca, 'GET', '/v2/alpha/app/manifests/v1', { client: alice })).status, 401)
    await ok(call(s, ca, 'PATCH', '/api/v1/users/alice', { authorization: ADMIN, body: JSON.stringify({ disabled: false }) }), 200)
  })
})

describe('http.tls.clientAuth: require', () => {
  let dir: string
  let serverCa: Pem
  let alice: Pem
  let stranger: Pem
  let s: TestServer

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mtls-require-'))
    serverCa = await makeCa(dir, 'server-ca')
    const clientCa = await makeCa(dir, 'client-ca')
    const server = await makeCert(dir, serverCa, 'server', 'berth', 'server')
    alice = await makeCert(dir, clientCa, 'alice', 'admin', 'client')
    stranger = await makeCert(dir, await makeCa(dir, 'other-ca'), 'stranger', 'admin', 'client')
    s = await startAuthServer({ http: { tls: { certificate: server.certPath, key: server.keyPath, clientCA: clientCa.certPath, clientAuth: 'require' } } })
  })
  after(async () => {
    await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('connections without a trusted certificate are refused in the handshake', async () => {
    await ok(call(s, serverCa.cert, 'GET', '/v2/', { client: alice }), 200)
    await assert.rejects(call(s, serverCa.cert, 'GET', '/v2/'), (err: NodeJS.ErrnoException) => /certificate|handshake|ECONNRESET|socket hang up/i.test(`${err.code} ${err.message}`))
    await assert.rejects(call(s, serverCa.cert, 'GET', '/v2/', { client: stranger }), (err: NodeJS.ErrnoException) => /certificate|unknown ca|ECONNRESET|socket hang up/i.test(`${err.code} ${err.message}`))
  })
})
