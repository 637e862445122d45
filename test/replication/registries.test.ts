// Registry endpoints through /api/v1/registries on a real Berth: admin-only, validated, the
// password encrypted at rest and never answered or logged, ping telling unreachable from bad
// credentials (against Distribution with htpasswd and a TLS Berth with its own CA), PATCH
// keeping the password, delete refused while a registered usage check names a user.

import assert from 'node:assert/strict'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { loadConfig, maskSecrets } from '../../src/config/load.js'
import { keyFromConfig, keyFromFile, SecretBox } from '../../src/replication/secrets.js'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { freePort, makeTempDir, needBinary, removeTempDir, run } from '../helpers/e2e-process.js'
import { startServer, type TestServer } from '../helpers/server.js'

const PASSWORD = 'Upstream-Pa55word-never-shown'
const USER = 'mirror'
const distributionMissing = needBinary('docker-registry') ?? needBinary('htpasswd')

interface Endpoint {
  name: string
  url: string
  username: string | null
  insecure: boolean
  caCertificate: string | null
  hasPassword: boolean
  createdAt: string
  updatedAt: string
}
interface Ping {
  reachable: boolean
  authenticated: boolean
  status: number | null
  message: string
}

describe('registry endpoints API', { skip: distributionMissing }, () => {
  let s: TestServer
  let dir: string
  let upstream: Distribution
  let logs = ''

  before(async () => {
    dir = await makeTempDir('berth-registries-')
    upstream = await startDistribution(dir, { htpasswd: { username: USER, password: PASSWORD } })
    s = await startAuthServer({ log: { level: 'trace' } }, { logStream: new Writable({ write: (chunk: Buffer, _e, done) => done(void (logs += chunk.toString())) }) })
  })
  after(async () => {
    await s?.close()
    await upstream?.stop()
    await removeTempDir(dir)
  })

  test('only system administrators manage endpoints', async () => {
    assert.equal((await api(s, 'GET', '/registries')).status, 401)
    const user = await addUser(s, 'plain')
    assert.equal((await api(s, 'GET', '/registries', user)).status, 403)
    assert.equal((await api(s, 'POST', '/registries', user, { name: 'x', url: upstream.url })).status, 403)
    assert.deepEqual(await apiOk(s, 'GET', '/registries', ADMIN), [])
  })

  test('create, read, ping, patch, delete; the password is never shown, logged or stored in clear', async () => {
    const body = { name: 'dist', url: `${upstream.url}/`, username: USER, password: PASSWORD, insecure: false }
    const res = await api(s, 'POST', '/registries', ADMIN, body)
    const text = await res.text()
    assert.equal(res.status, 201, text)
    assert.ok(!text.includes(PASSWORD))
    const createdView = JSON.parse(text) as Endpoint
    assert.deepEqual({ ...createdView, createdAt: '', updatedAt: '' }, { name: 'dist', url: upstream.url, username: USER, insecure: false, caCertificate: null, hasPassword: true, createdAt: '', updatedAt: '' })
    assert.equal((await api(s, 'POST', '/registries', ADMIN, body)).status, 409)

    for (const path of ['/registries', '/registries/dist']) {
      const got = await (await api(s, 'GET', path, ADMIN)).text()
      assert.ok(got.includes('"hasPassword":true') && !got.includes(PASSWORD), got)
    }

    // In the database: ciphertext naming its key, not the password.
    const row = await s.app.metadata.db.selectFrom('registry_endpoints').selectAll().where('name', '=', 'dist').executeTakeFirstOrThrow()
    const stored = row.password ?? ''
    assert.ok(stored.startsWith('v1:'), stored)
    assert.ok(!stored.includes(PASSWORD) && !stored.includes(Buffer.from(PASSWORD).toString('base64')))
    if (!process.env.BERTH_TEST_DATABASE_URL || process.env.BERTH_TEST_DIALECT !== 'postgres') {
      for (const file of ['berth.db', 'berth.db-wal']) {
        const bytes = await readFile(join(s.dataDir, file)).catch(() => Buffer.alloc(0))
        assert.equal(bytes.indexOf(PASSWORD), -1, `${file} holds the password in clear`)
      }
    }
    // The generated key file is the owner's only.
    const key = await stat(join(s.dataDir, 'secrets.key'))
    assert.equal(key.mode & 0o777, 0o600)

    const ok = await apiOk<Ping>(s, 'POST', '/registries/dist/ping', ADMIN)
    assert.deepEqual({ reachable: ok.reachable, authenticated: ok.authenticated }, { reachable: true, authenticated: true }, ok.message)

    // PATCH without a password keeps it (ping still signs in).
    const patched = await apiOk<Endpoint>(s, 'PATCH', '/registries/dist', ADMIN, { insecure: true })
    assert.equal(patched.insecure, true)
    assert.equal(patched.hasPassword, true)
    assert.equal((await apiOk<Ping>(s, 'POST', '/registries/dist/ping', ADMIN)).authenticated, true)

    // Bad credentials: reachable, not authenticated.
    await apiOk(s, 'PATCH', '/registries/dist', ADMIN, { password: 'wrong-password-123' })
    const bad = await apiOk<Ping>(s, 'POST', '/registries/dist/ping', ADMIN)
    assert.deepEqual({ reachable: bad.reachable, authenticated: bad.authenticated, status: bad.status }, { reachable: true, authenticated: false, status: 401 })
    assert.ok(!bad.message.includes('wrong-password-123'))
    // No password at all.
    assert.equal((await apiOk<Endpoint>(s, 'PATCH', '/registries/dist', ADMIN, { password: null })).hasPassword, false)
    const none = await apiOk<Ping>(s, 'POST', '/registries/dist/ping', ADMIN)
    assert.deepEqual({ reachable: none.reachable, authenticated: none.authenticated }, { reachable: true, authenticated: false })
    await apiOk(s, 'PATCH', '/registries/dist', ADMIN, { password: PASSWORD })

    // Unreachable: nothing listens there.
    await apiOk(s, 'POST', '/registries', ADMIN, { name: 'gone', url: `http://127.0.0.1:${await freePort()}` }, 201)
    const gone = await apiOk<Ping>(s, 'POST', '/registries/gone/ping', ADMIN)
    assert.deepEqual({ reachable: gone.reachable, authenticated: gone.authenticated, status: gone.status }, { reachable: false, authenticated: false, status: null })

    // The audit log has the changes, without the password.
    const audit = await apiOk<{ action: string; resource: string; detail: unknown }[]>(s, 'GET', '/audit?limit=1000', ADMIN)
    const ours = audit.filter((a) => a.action.startsWith('registry.'))
    assert.deepEqual(ours.map((a) => a.action).sort(), ['registry.create', 'registry.create', 'registry.update', 'registry.update', 'registry.update', 'registry.update'])
    assert.ok(!JSON.stringify(ours).includes(PASSWORD) && !JSON.stringify(ours).includes('wrong-password-123'))

    await apiOk(s, 'DELETE', '/registries/gone', ADMIN, undefined, 204)
    assert.equal((await api(s, 'GET', '/registries/gone', ADMIN)).status, 404)
    assert.equal((await api(s, 'POST', '/registries/gone/ping', ADMIN)).status, 404)
    assert.ok((await apiOk<{ action: string }[]>(s, 'GET', '/audit?action=registry.delete', ADMIN)).length === 1)

    // Logs never carry the password, in clear or as Basic credentials.
    await new Promise((r) => setTimeout(r, 100))
    assert.ok(logs.length > 0)
    for (const secret of [PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString('base64'), 'wrong-password-123']) assert.ok(!logs.includes(secret), `the log has ${secret}`)
  })

  test('the outbound client of an endpoint works and is kept while the endpoint is unchanged', async () => {
    const endpoints = s.app.replication.endpoints
    const client = await endpoints.client('dist')
    assert.equal(await endpoints.client('dist'), client)
    assert.deepEqual(await client.listTags('nothing/here'), [])
    await apiOk(s, 'PATCH', '/registries/dist', ADMIN, { insecure: false })
    assert.notEqual(await endpoints.client('dist'), client)
    await assert.rejects(endpoints.client('absent'), (err: Error & { code?: string }) => err.code === 'NOT_FOUND')
  })

  test('a delete is refused while a usage check names a user', async () => {
    s.app.replication.endpoints.onUsage(async (name) => (name === 'dist' ? 'proxy project hub' : null))
    const res = await api(s, 'DELETE', '/registries/dist', ADMIN)
    const problem = (await res.json()) as { code: string; detail: string }
    assert.equal(res.status, 409)
    assert.equal(problem.code, 'CONFLICT')
    assert.match(problem.detail, /proxy project hub/)
    assert.equal((await api(s, 'GET', '/registries/dist', ADMIN)).status, 200)
    await apiOk(s, 'POST', '/registries', ADMIN, { name: 'unused', url: 'https://registry.example.com:5000' }, 201)
    await apiOk(s, 'DELETE', '/registries/unused', ADMIN, undefined, 204)
  })

  test('bad input is a 400 naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ name: 'ftp', url: 'ftp://registry.example.com' }, 'url'],
      [{ name: 'rel', url: 'registry.example.com' }, 'url'],
      [{ name: 'path', url: 'https://registry.example.com/v2/' }, 'url'],
      [{ name: 'creds', url: 'https://u:p@registry.example.com' }, 'url'],
      [{ name: 'nourl' }, 'url'],
      [{ name: 'Bad Name', url: 'https://registry.example.com' }, 'name'],
      [{ url: 'https://registry.example.com' }, 'name'],
      [{ name: 'pem', url: 'https://registry.example.com', caCertificate: 'not a certificate' }, 'caCertificate'],
      [{ name: 'pem2', url: 'https://registry.example.com', caCertificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' }, 'caCertificate'],
      [{ name: 'ins', url: 'https://registry.example.com', insecure: 'yes' }, 'insecure'],
      [{ name: 'pw', url: 'https://registry.example.com', password: 42 }, 'password'],
      [{ name: 'extra', url: 'https://registry.example.com', token: 'x' }, 'token'],
    ]
    for (const [body, field] of cases) {
      const res = await api(s, 'POST', '/registries', ADMIN, body)
      const problem = (await res.json()) as { field?: string; detail: string }
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(problem.field, field, `${JSON.stringify(body)}: ${problem.detail}`)
    }
    assert.equal((await api(s, 'PATCH', '/registries/dist', ADMIN, { url: 'file:///etc/passwd' })).status, 400)
    assert.equal((await api(s, 'PATCH', '/registries/dist', ADMIN, { name: 'renamed' })).status, 400)
    assert.equal((await api(s, 'PATCH', '/registries/absent', ADMIN, { insecure: true })).status, 404)
  })
})

describe('registry endpoints over TLS: caCertificate and insecure', () => {
  let dir: string
  let tlsUpstream: TestServer
  let s: TestServer
  let pem: string

  before(async () => {
    dir = await makeTempDir('berth-registries-tls-')
    const key = join(dir, 'key.pem')
    const certificate = join(dir, 'cert.pem')
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', certificate])
    pem = await readFile(certificate, 'utf8')
    tlsUpstream = await startServer({ http: { tls: { certificate, key } } })
    s = await startServer()
  })
  after(async () => {
    await s?.close()
    await tlsUpstream?.close()
    await removeTempDir(dir)
  })

  test('an unknown CA fails the ping as unreachable; the CA or insecure gets through', async () => {
    const url = `https://${tlsUpstream.host}`
    await apiOk(s, 'POST', '/registries', undefined, { name: 'plain', url }, 201)
    const refused = await apiOk<Ping>(s, 'POST', '/registries/plain/ping', undefined)
    assert.equal(refused.reachable, false, refused.message)
    assert.match(refused.message, /certificate|CERT/i)
    await apiOk(s, 'POST', '/registries', undefined, { name: 'withca', url, caCertificate: pem }, 201)
    const withCa = await apiOk<Ping>(s, 'POST', '/registries/withca/ping', undefined)
    assert.deepEqual({ reachable: withCa.reachable, authenticated: withCa.authenticated }, { reachable: true, authenticated: true }, withCa.message)
    assert.equal((await apiOk<Endpoint>(s, 'GET', '/registries/withca', undefined)).caCertificate, pem)
    await apiOk(s, 'PATCH', '/registries/plain', undefined, { insecure: true })
    assert.equal((await apiOk<Ping>(s, 'POST', '/registries/plain/ping', undefined)).authenticated, true)
  })
})

describe('secrets at rest', () => {
  test('keys from config: hex, base64 and passphrases; contexts and key ids are checked', () => {
    const hex = 'a'.repeat(64)
    assert.deepEqual(keyFromConfig(hex), Buffer.alloc(32, 0xaa))
    assert.deepEqual(keyFromConfig(Buffer.alloc(32, 7).toString('base64')), Buffer.alloc(32, 7))
    const phrase = keyFromConfig('correct horse battery staple')
    assert.equal(phrase.length, 32)
    assert.deepEqual(keyFromConfig('correct horse battery staple'), phrase, 'every node derives the same key from one passphrase')
    assert.throws(() => keyFromConfig('short'), /secrets\.key/)

    const box = new SecretBox(phrase)
    const sealed = box.encrypt('p4ss', 'registry endpoint a')
    assert.notEqual(box.encrypt('p4ss', 'registry endpoint a'), sealed, 'a fresh IV each time')
    assert.equal(box.decrypt(sealed, 'registry endpoint a'), 'p4ss')
    assert.throws(() => box.decrypt(sealed, 'registry endpoint b'), /does not decrypt/)
    const tampered = sealed.slice(0, -4) + (sealed.endsWith('AAAA') ? 'BBBB' : 'AAAA')
    assert.throws(() => box.decrypt(tampered, 'registry endpoint a'))
    assert.throws(() => new SecretBox(Buffer.alloc(32, 1)).decrypt(sealed, 'registry endpoint a'), /another key.*secrets\.key/)
  })

  test('the generated key file: created once, 0600, the same key for processes that start together', async () => {
    const dir = await makeTempDir('berth-secrets-')
    try {
      const path = join(dir, 'data', 'secrets.key')
      const results = await Promise.all(Array.from({ length: 8 }, () => keyFromFile(path)))
      assert.equal(results.filter((r) => r.generated).length, 1)
      for (const r of results) assert.deepEqual(r.key, results[0]!.key)
      assert.equal((await stat(path)).mode & 0o777, 0o600)
      assert.deepEqual((await keyFromFile(path)).key, results[0]!.key)
      assert.deepEqual((await readdir(join(dir, 'data'))).sort(), ['secrets.key'], 'no temporary file is left')
    } finally {
      await removeTempDir(dir)
    }
  })

  test('BERTH_SECRETS_KEY sets secrets.key, which config check masks', async () => {
    const { config, unknownEnv } = await loadConfig({ env: { BERTH_SECRETS_KEY: 'd'.repeat(64) } })
    assert.deepEqual(unknownEnv, [])
    assert.equal(config.secrets.key, 'd'.repeat(64))
    assert.equal((maskSecrets(config) as { secrets: { key: string } }).secrets.key, '*****')
  })

  test('secrets.key from the config: the same key after a restart, another key is named in the error', async () => {
    const s1 = await startServer({ secrets: { key: 'b'.repeat(64) } }, { keepData: true })
    let dataDir = s1.dataDir
    try {
      await apiOk(s1, 'POST', '/registries', undefined, { name: 'r', url: 'http://127.0.0.1:9', username: 'u', password: PASSWORD }, 201)
      await assert.rejects(stat(join(s1.dataDir, 'secrets.key')), 'no key file when secrets.key is set')
    } finally {
      await s1.close()
    }
    const s2 = await startServer({ dataDir, secrets: { key: 'b'.repeat(64) } }, { keepData: true })
    try {
      assert.equal((await apiOk<Ping>(s2, 'POST', '/registries/r/ping', undefined)).reachable, false)
    } finally {
      await s2.close()
    }
    const s3 = await startServer({ dataDir, secrets: { key: 'c'.repeat(64) } })
    dataDir = ''
    try {
      const res = await api(s3, 'POST', '/registries/r/ping')
      const problem = (await res.json()) as { detail: string }
      assert.equal(res.status, 503)
      assert.match(problem.detail, /another key.*secrets\.key/)
    } finally {
      await s3.close()
    }
  })
})
