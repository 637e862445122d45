import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'

/** A raw connection from `from` (any 127.x.y.z is this machine) that records what it got back. */
interface Raw {
  socket: Socket
  text: () => string
  /** resolves when the server closed the connection, with the ms since it opened */
  closed: Promise<number>
}

function open(port: number, from = '127.0.0.1'): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect({ host: '127.0.0.1', port, localAddress: from })
    let got = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => (got += d))
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - started)))
    socket.once('connect', () => resolve({ socket, text: () => got, closed }))
    socket.once('error', (err) => (socket.connecting ? reject(err) : undefined))
  })
}

const within = <T>(p: Promise<T>, ms: number, what: string) => Promise.race([p, new Promise<never>((_r, fail) => setTimeout(() => fail(new Error(`${what}: not within ${ms} ms`)), ms))])

function loginHead(port: number, length: number): string {
  return `POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`
}

describe('slow and anonymous clients are bounded (http.headersTimeout, anonymousBody*, idleTimeout, maxConnectionsPerAddress)', () => {
  let s: TestServer
  let port: number
  before(async () => {
    s = await startAuthServer({ http: { headersTimeout: '1s', anonymousBodyTimeout: '1s', anonymousBodyLimit: 1024, idleTimeout: '2s', maxConnectionsPerAddress: 5 } })
    port = Number(new URL(s.url).port)
  })
  after(() => s?.close())

  it('cuts an anonymous login whose body trickles in (408, connection closed)', async () => {
    const c = await open(port)
    c.socket.write(`${loginHead(port, 100)}{"user`)
    const ms = await within(c.closed, 6000, 'slow login cut')
    assert.match(c.text(), /^HTTP\/1\.1 408 /)
    assert.match(c.text(), /connection: close/i)
    assert.ok(ms >= 900, `cut after ${ms} ms, not before http.anonymousBodyTimeout`)
  })

  it('refuses an anonymous body over http.anonymousBodyLimit before reading it', async () => {
    const c = await open(port)
    c.socket.write(loginHead(port, 1024 * 1024))
    await within(c.closed, 3000, 'oversized login refused')
    assert.match(c.text(), /^HTTP\/1\.1 413 /)
    // The limit is the anonymous one: a small login still works.
    const ok = await fetch(`${s.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) })
    assert.equal(ok.status, 200)
  })

  it('answers an anonymous upload 401 without reading its body, and closes the connection', async () => {
    const c = await open(port)
    c.socket.write(`POST /v2/team/app/blobs/uploads/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`)
    c.socket.write(Buffer.alloc(1024))
    await within(c.closed, 3000, 'anonymous upload closed')
    assert.match(c.text(), /^HTTP\/1\.1 401 /)
    assert.match(c.text(), /connection: close/i)
  })

  it('closes a connection whose headers do not arrive within http.headersTimeout', async () => {
    const c = await open(port)
    c.socket.write(`GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`)
    const ms = await within(c.closed, 6000, 'slow headers cut')
    assert.ok(ms >= 900, `cut after ${ms} ms`)
  })

  it('lets an authenticated upload take as long as it keeps progressing, and cuts it when it stalls (http.idleTimeout)', async () => {
    const start = await fetch(`${s.url}/v2/library/slow/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    assert.equal(start.status, 202)
    const location = new URL(start.headers.get('location') ?? '', s.url)
    const chunks = 8
    const c = await open(port)
    c.socket.write(`PATCH ${location.pathname}${location.search} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${chunks * 1024}\r\n\r\n`)
    // 8 × 500 ms: longer than the anonymous body timeout and the idle timeout, never silent that long.
    for (let i = 0; i < chunks; i++) {
      c.socket.write(Buffer.alloc(1024, i))
      await new Promise((r) => setTimeout(r, 500))
    }
    await within(
      new Promise<void>((r) => {
        const check = () => (c.text().includes('\r\n\r\n') ? r() : setTimeout(check, 20))
        check()
      }),
      3000,
      'upload answered',
    )
    assert.match(c.text(), /^HTTP\/1\.1 202 /)
    assert.match(c.text(), new RegExp(`range: 0-${chunks * 1024 - 1}`, 'i'))
    // The same connection, a PATCH that stops sending: closed once silent for http.idleTimeout.
    c.socket.write(`PATCH ${location.pathname}${location.search} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n`)
    c.socket.write(Buffer.alloc(1024))
    const ms = await within(c.closed, 10_000, 'stalled upload cut')
    assert.ok(ms >= 4000 + 1900, `cut ${ms} ms after opening: not before the idle timeout`)
  })

  it('closes connections over http.maxConnectionsPerAddress at once; other addresses are served', async () => {
    const held: Raw[] = []
    for (let i = 0; i < 5; i++) held.push(await open(port, '127.0.0.2'))
    const extra = await open(port, '127.0.0.2')
    await within(extra.closed, 2000, 'sixth connection closed')
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200)
    // A held connection is still a connection: it is served.
    held[0]?.socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`)
    await within(
      new Promise<void>((r) => {
        const check = () => (held[0]?.text().startsWith('HTTP/1.1 200') ? r() : setTimeout(check, 20))
        check()
      }),
      3000,
      'held connection served',
    )
    for (const h of held) h.socket.destroy()
  })
})

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

describe('1,500 slow anonymous logins against a server limited to 1,024 file descriptors', () => {
  let child: ChildProcess | undefined
  let dataDir: string
  let port: number
  let log = ''
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'berth-slow-'))
    port = await freePort()
    // The server's own process, with the descriptor limit of a default Linux service.
    child = spawn('bash', ['-c', 'ulimit -n 1024 && exec "$0" --import tsx src/cli/main.ts serve', process.execPath], {
      env: { ...process.env, BERTH_DATA_DIR: dataDir, BERTH_HTTP_ADDR: `127.0.0.1:${port}`, BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_LOG_LEVEL: 'warn', BERTH_HTTP_ANONYMOUS_BODY_TIMEOUT: '5s' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()))
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`server exited: ${log}`)
      const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status === 200, () => false)
      if (up) break
      if (i > 300) throw new Error(`server not up: ${log}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  })
  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM')
      await new Promise((r) => child?.once('exit', r))
    }
    await rm(dataDir, { recursive: true, force: true })
  })

  it('keeps answering new legitimate requests while the attack lasts, and cuts the attackers', async () => {
    const url = `http://127.0.0.1:${port}`
    // 1,500 logins from five addresses, each sending one byte of its body every 2 s.
    const attackers: Raw[] = []
    const opening: Promise<void>[] = []
    for (let i = 0; i < 1500; i++) {
      opening.push(
        open(port, `127.0.0.${2 + (i % 5)}`).then(
          (c) => {
            attackers.push(c)
            c.socket.on('error', () => {})
            c.socket.write(`${loginHead(port, 1000)}{`)
          },
          () => {},
        ),
      )
    }
    await Promise.all(opening)
    const drip = setInterval(() => {
      for (const c of attackers) if (!c.socket.destroyed) c.socket.write(' ')
    }, 2000)
    try {
      await new Promise((r) => setTimeout(r, 1000))
      const holding = attackers.filter((c) => !c.socket.destroyed).length
      assert.ok(holding > 0, 'the attack holds connections')
      // New legitimate requests: a login, a registry token, a probe.
      for (let i = 0; i < 10; i++) {
        const login = await fetch(`${url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }), signal: AbortSignal.timeout(5000) })
        assert.equal(login.status, 200, await login.text())
        const token = await fetch(`${url}/token?service=berth&scope=repository:library/app:pull`, { headers: { authorization: ADMIN }, signal: AbortSignal.timeout(5000) })
        assert.equal(token.status, 200)
        assert.equal((await fetch(`${url}/v2/`, { headers: { authorization: ADMIN }, signal: AbortSignal.timeout(5000) })).status, 200)
      }
      // The server cuts every attacker once http.anonymousBodyTimeout (5 s here) has passed.
      await within(Promise.all(attackers.map((c) => c.closed)), 15_000, 'every slow login cut')
    } finally {
      clearInterval(drip)
      for (const c of attackers) c.socket.destroy()
    }
    assert.equal(child?.exitCode, null, `the server is still running: ${log}`)
    assert.equal((await fetch(`${url}/healthz`)).status, 200)
  })
})
