// `berth serve --workers N` (src/runtime/workers.ts): N processes behind one listening socket,
// sharing the SQLite database and the blob store. Which process holds a connection is read from
// /proc (the server side of the TCP connection is a socket inode in exactly one worker's fds).

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, readlink, rm, stat } from 'node:fs/promises'
import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startWorkers, testConfig, type WorkersProcess } from '../helpers/server.js'
import { waitFor } from '../helpers/e2e-process.js'
import { openMetadata } from '../../src/metadata/db.js'
import { buildImage, putManifest } from '../helpers/oci.js'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  /** the client side's port of the connection the request went over */
  localPort: number
}

/** One request over `agent` (one keep-alive connection per agent). */
function call(agent: Agent, port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { 'content-length': String(body.length), 'content-type': 'application/octet-stream', ...headers } : headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), localPort: req.socket?.localPort ?? 0 }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const connection = () => new Agent({ keepAlive: true, maxSockets: 1 })

/** The pids of the primary's live children (its workers). */
async function workerPids(primary: number): Promise<number[]> {
  const text = await readFile(`/proc/${primary}/task/${primary}/children`, 'utf8')
  return text.trim().split(/\s+/).filter(Boolean).map(Number)
}

/** The worker whose fds hold the server side of the connection from client port `clientPort`. */
async function ownerOf(serverPort: number, clientPort: number, pids: number[]): Promise<number> {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0')
  const table = await readFile('/proc/net/tcp', 'utf8')
  const row = table.split('\n').find((line) => {
    const f = line.trim().split(/\s+/)
    return f[1]?.endsWith(`:${hex(serverPort)}`) && f[2]?.endsWith(`:${hex(clientPort)}`)
  })
  assert.ok(row, `no server socket for client port ${clientPort}`)
  const inode = row.trim().split(/\s+/)[9]
  for (const pid of pids) {
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === `socket:[${inode}]`) return pid
    }
  }
  throw new Error(`no worker holds socket inode ${inode}`)
}

const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`

describe('berth serve --workers 2', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
  let dataDir: string
  let served: WorkersProcess
  let primary: number

  before(async () => {
    const config = await testConfig({ uploads: { purgeInterval: '1s' } })
    dataDir = config.dataDir
    served = await startWorkers(config, 2)
    primary = served.child.pid as number
  })

  after(async () => {
    const code = await served.stop()
    await rm(dataDir, { recursive: true, force: true })
    assert.equal(code, 0, 'the primary exits 0 on SIGTERM once its workers have stopped')
  })

  /**
   * A new connection that lands on a worker other than `pid` (a worker that was just restarted
   * takes connections once it listens, which may take a while on a busy machine).
   */
  async function connectionAwayFrom(pid: number): Promise<{ agent: Agent; owner: number }> {
    for (const started = Date.now(); Date.now() - started < 90_000; ) {
      for (let i = 0; i < 4; i++) {
        const agent = connection()
        const r = await call(agent, served.port, 'GET', '/v2/')
        assert.equal(r.status, 200)
        const owner = await ownerOf(served.port, r.localPort, await workerPids(primary))
        if (owner !== pid) return { agent, owner }
        agent.destroy()
      }
      await sleep(500)
    }
    throw new Error('every connection went to the same worker')
  }

  it('runs two workers that take connections in turn', async () => {
    const pids = await workerPids(primary)
    assert.equal(pids.length, 2)
    const owners = new Set<number>()
    for (let i = 0; i < 6; i++) {
      const agent = connection()
      const r = await call(agent, served.port, 'GET', '/v2/')
      owners.add(await ownerOf(served.port, r.localPort, pids))
      agent.destroy()
    }
    assert.equal(owners.size, 2, 'both workers answered')
  })

  it('continues on one worker an upload session another worker started, and serves the blob from both', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024, 7)
    data.write('workers', 0)
    const a = connection()
    const started = await call(a, served.port, 'POST', '/v2/team/app/blobs/uploads/')
    assert.equal(started.status, 202)
    const first = await ownerOf(served.port, started.localPort, await workerPids(primary))
    const location = String(started.headers.location)
    const half = data.length / 2
    const patched = await call(a, served.port, 'PATCH', location, data.subarray(0, half))
    assert.equal(patched.status, 202)
    a.destroy()

    const { agent: b, owner: second } = await connectionAwayFrom(first)
    assert.notEqual(second, first)
    // The session's state (its offset) comes from the database the first worker wrote.
    const status = await call(b, served.port, 'GET', location)
    assert.equal(status.status, 204)
    assert.equal(status.headers.range, `0-${half - 1}`)
    const rest = await call(b, served.port, 'PATCH', String(patched.headers.location), data.subarray(half), { 'content-range': `${half}-${data.length - 1}` })
    assert.equal(rest.status, 202, rest.body.toString())
    const sep = String(rest.headers.location).includes('?') ? '&' : '?'
    const done = await call(b, served.port, 'PUT', `${String(rest.headers.location)}${sep}digest=${digestOf(data)}`)
    assert.equal(done.status, 201, done.body.toString())
    b.destroy()

    // Read-your-writes on a connection to the first worker at once.
    const { agent: c } = await connectionAwayFrom(second)
    const got = await call(c, served.port, 'GET', `/v2/team/app/blobs/${digestOf(data)}`)
    assert.equal(got.status, 200)
    assert.ok(got.body.equals(data))
    c.destroy()
  })

  it('runs two requests of one upload session on two workers one after the other (a lease in the database)', async () => {
    const x = randomBytes(2 * 1024 * 1024)
    const y = randomBytes(1024 * 1024)
    const a = connection()
    const started = await call(a, served.port, 'POST', '/v2/team/race/blobs/uploads/')
    assert.equal(started.status, 202)
    const first = await ownerOf(served.port, started.localPort, await workerPids(primary))
    const location = String(started.headers.location)
    const file = join(dataDir, 'uploads', String(started.headers['docker-upload-uuid']))
    // A: a PATCH whose body arrives in two halves, on the first worker.
    let endA: () => void = () => undefined
    const slow = new Promise<Reply>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: served.port, method: 'PATCH', path: location, agent: a, headers: { 'content-length': String(x.length), 'content-type': 'application/octet-stream' } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), localPort: 0 }))
      })
      req.on('error', reject)
      req.write(x.subarray(0, x.length / 2))
      endA = () => req.end(x.subarray(x.length / 2))
    })
    await waitFor('the first half in storage', async () => ((await stat(file).catch(() => undefined))?.size ?? 0) >= x.length / 2, { timeoutMs: 30_000 })
    // B: a whole PATCH on the other worker while A is still receiving.
    const { agent: b } = await connectionAwayFrom(first)
    const fast = call(b, served.port, 'PATCH', location, y)
    // Without a lease B appends at once (in the middle of A's bytes); with it, B waits for A.
    const early = await Promise.race([fast.then(() => true), sleep(2_000).then(() => false)])
    endA()
    const [ra, rb] = await Promise.all([slow, fast])
    assert.equal(ra.status, 202, `A: ${ra.body.toString()}`)
    assert.equal(rb.status, 202, `B: ${rb.body.toString()}`)
    assert.equal(early, false, 'B waited for A')
    assert.equal(rb.headers.range, `0-${x.length + y.length - 1}`, 'B appended after all of A')
    const whole = Buffer.concat([x, y])
    const done = await call(b, served.port, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${digestOf(whole)}`)
    assert.equal(done.status, 201, done.body.toString())
    const got = await call(b, served.port, 'GET', `/v2/team/race/blobs/${digestOf(whole)}`)
    assert.ok(got.body.equals(whole))
    a.destroy()
    b.destroy()
  })

  it('refuses, after the first is done, a second chunk at the same offset from another worker (416), and keeps the session', async () => {
    const x = randomBytes(1024 * 1024)
    const y = randomBytes(1024 * 1024)
    const a = connection()
    const started = await call(a, served.port, 'POST', '/v2/team/race2/blobs/uploads/')
    const first = await ownerOf(served.port, started.localPort, await workerPids(primary))
    const location = String(started.headers.location)
    const file = join(dataDir, 'uploads', String(started.headers['docker-upload-uuid']))
    let endA: () => void = () => undefined
    const slow = new Promise<Reply>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: served.port, method: 'PATCH', path: location, agent: a, headers: { 'content-length': String(x.length), 'content-range': `0-${x.length - 1}`, 'content-type': 'application/octet-stream' } }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.alloc(0), localPort: 0 }))
      })
      req.on('error', reject)
      req.write(x.subarray(0, x.length / 2))
      endA = () => req.end(x.subarray(x.length / 2))
    })
    await waitFor('the first half in storage', async () => ((await stat(file).catch(() => undefined))?.size ?? 0) >= x.length / 2, { timeoutMs: 30_000 })
    const { agent: b } = await connectionAwayFrom(first)
    const fast = call(b, served.port, 'PATCH', location, y, { 'content-range': `0-${y.length - 1}` })
    await Promise.race([fast, sleep(2_000)])
    endA()
    const [ra, rb] = await Promise.all([slow, fast])
    assert.equal(ra.status, 202)
    assert.equal(rb.status, 416, rb.body.toString())
    assert.equal(rb.headers.range, `0-${x.length - 1}`)
    const done = await call(b, served.port, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${digestOf(x)}`)
    assert.equal(done.status, 201, done.body.toString())
    a.destroy()
    b.destroy()
  })

  it('restarts a worker killed in the middle of an upload, and the session resumes on another', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 3)
    data.write('killed', 0)
    const a = connection()
    const started = await call(a, served.port, 'POST', '/v2/team/crash/blobs/uploads/')
    assert.equal(started.status, 202)
    const half = data.length / 2
    const patched = await call(a, served.port, 'PATCH', String(started.headers.location), data.subarray(0, half))
    assert.equal(patched.status, 202)
    const before = await workerPids(primary)
    const victim = await ownerOf(served.port, patched.localPort, before)
    process.kill(victim, 'SIGKILL')
    a.destroy()
    const after = await waitFor(
      'a replacement worker',
      async () => {
        const pids = await workerPids(primary)
        return pids.length === 2 && !pids.includes(victim) ? pids : undefined
      },
      { timeoutMs: 60_000 },
    )
    assert.equal(after.filter((pid) => !before.includes(pid)).length, 1, 'one new worker in place of the killed one')
    await waitFor('the new worker to listen', async () => /"msg":"worker exited; starting another"/.test(served.output()), { timeoutMs: 5_000 })

    const b = connection()
    const rest = await call(b, served.port, 'PATCH', String(patched.headers.location), data.subarray(half), { 'content-range': `${half}-${data.length - 1}` })
    assert.equal(rest.status, 202, rest.body.toString())
    const sep = String(rest.headers.location).includes('?') ? '&' : '?'
    const done = await call(b, served.port, 'PUT', `${String(rest.headers.location)}${sep}digest=${digestOf(data)}`)
    assert.equal(done.status, 201, done.body.toString())
    const got = await call(b, served.port, 'GET', `/v2/team/crash/blobs/${digestOf(data)}`)
    assert.ok(got.body.equals(data))
    b.destroy()
  })

  it('answers /metrics with the figures of every worker, whichever worker takes the scrape', async () => {
    const a = connection()
    const r = await call(a, served.port, 'GET', '/v2/')
    const { agent: b } = await connectionAwayFrom(await ownerOf(served.port, r.localPort, await workerPids(primary)))
    const scrape = async (agent: Agent) => {
      const res = await call(agent, served.port, 'GET', '/metrics')
      assert.equal(res.status, 200)
      assert.match(String(res.headers['content-type']), /^text\/plain/)
      const text = res.body.toString()
      const value = (name: string, ...labels: string[]) => {
        const lines = text.split('\n').filter((l) => l.startsWith(name) && labels.every((x) => l.includes(x)))
        assert.ok(lines.length <= 1, `one ${name} line: ${lines.join(' | ')}`)
        return Number(lines[0]?.split(' ').pop() ?? 0)
      }
      return { base: value('berth_http_requests_total{', 'method="GET"', 'route="base"', 'status="200"'), blobs: value('berth_blobs_stored ') }
    }
    const before = await scrape(a)
    for (let i = 0; i < 3; i++) assert.equal((await call(a, served.port, 'GET', '/v2/')).status, 200)
    for (let i = 0; i < 4; i++) assert.equal((await call(b, served.port, 'GET', '/v2/')).status, 200)
    const fromA = await scrape(a)
    const fromB = await scrape(b)
    // Counters are summed over the workers: both scrapes saw all 7 requests.
    assert.equal(fromA.base - before.base, 7)
    assert.equal(fromB.base - before.base, 7)
    // Gauges read from the database are the registry's figure, not one per worker added up.
    const metadata = await openMetadata(`sqlite:${dataDir}/berth.db`, { sharedByProcesses: true })
    try {
      const blobs = await metadata.db.selectFrom('blobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      assert.ok(Number(blobs.n) > 0)
      assert.equal(fromA.blobs, Number(blobs.n))
      assert.equal(fromB.blobs, Number(blobs.n))
    } finally {
      await metadata.close()
    }
    a.destroy()
    b.destroy()
  })

  it('keeps the manifests another worker cached when pulls are counted (statistics, not content)', async () => {
    const base = `http://127.0.0.1:${served.port}`
    const image = await buildImage(base, 'team/cached', 'cached')
    assert.equal((await putManifest(base, 'team/cached', 'v1', image.manifest)).status, 201)
    const get = async (agent: Agent) => {
      const r = await call(agent, served.port, 'GET', '/v2/team/cached/manifests/v1', undefined, { accept: 'application/vnd.oci.image.manifest.v1+json' })
      assert.equal(r.status, 200)
      return r
    }
    const a = connection()
    const first = await get(a)
    const { agent: b } = await connectionAwayFrom(await ownerOf(served.port, first.localPort, await workerPids(primary)))
    // B reads the manifest once from the database; from then on it answers from its cache.
    await get(b)
    await get(b)
    // A's pulls are counted and written (every 5 s): commits to the shared database that
    // change statistics only.
    for (let i = 0; i < 5; i++) await get(a)
    const metadata = await openMetadata(`sqlite:${dataDir}/berth.db`, { sharedByProcesses: true })
    try {
      await waitFor(
        'both workers wrote their pull counts',
        async () => {
          const row = await metadata.db.selectFrom('manifest_pulls').select('pull_count').where('digest', '=', image.digest).executeTakeFirst()
          return Number(row?.pull_count ?? 0) === 8
        },
        { timeoutMs: 30_000 },
      )
    } finally {
      await metadata.close()
    }
    const reads = async () => {
      const text = (await call(b, served.port, 'GET', '/metrics')).body.toString()
      const value = (result: string) => Number(text.split('\n').find((l) => l.startsWith('berth_metadata_cache_reads_total{') && l.includes('cache="manifests"') && l.includes(`result="${result}"`))?.split(' ').pop() ?? NaN)
      return { hits: value('hit'), misses: value('miss') }
    }
    const before = await reads()
    assert.equal((await get(b)).body.toString(), image.manifest.toString())
    const after = await reads()
    assert.equal(after.misses - before.misses, 0, 'B answered from its cache: no reload after the other worker counted pulls')
    assert.ok(after.hits - before.hits >= 1, 'the GET was a cache hit')
    a.destroy()
    b.destroy()
  })

  it('runs each firing of a periodic task once, whichever worker takes it', async () => {
    // uploads.purgeInterval is 1 s: both workers' timers fire every second, one job per slot runs.
    await sleep(4_000)
    const metadata = await openMetadata(`sqlite:${dataDir}/berth.db`, { sharedByProcesses: true })
    try {
      const jobs = await metadata.db.selectFrom('jobs').select(['dedupe_key', 'status', 'attempts']).where('kind', '=', 'task:purge-uploads').execute()
      assert.ok(jobs.length >= 3, `${jobs.length} purge jobs in 4 s`)
      assert.equal(new Set(jobs.map((j) => j.dedupe_key)).size, jobs.length)
      for (const job of jobs) if (job.status === 'succeeded') assert.equal(job.attempts, 1, `${job.dedupe_key} ran once`)
    } finally {
      await metadata.close()
    }
  })

  it('on SIGTERM lets the upload in flight finish, then every process exits', async () => {
    const data = Buffer.alloc(1024 * 1024, 5)
    const a = connection()
    const started = await call(a, served.port, 'POST', '/v2/team/drain/blobs/uploads/')
    assert.equal(started.status, 202)
    const sep = String(started.headers.location).includes('?') ? '&' : '?'
    const workers = await workerPids(primary)
    const reply = new Promise<Reply>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: served.port, method: 'PUT', path: `${String(started.headers.location)}${sep}digest=${digestOf(data)}`, agent: a, headers: { 'content-length': String(data.length), 'content-type': 'application/octet-stream' } },
        (res) => {
          res.resume()
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.alloc(0), localPort: 0 }))
        },
      )
      req.on('error', reject)
      req.write(data.subarray(0, 4096))
      // The rest arrives after the primary got SIGTERM and passed it on.
      setTimeout(() => {
        served.child.kill('SIGTERM')
        setTimeout(() => req.end(data.subarray(4096)), 1_000)
      }, 200)
    })
    assert.equal((await reply).status, 201)
    a.destroy()
    assert.equal(await served.stop(), 0)
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), 'the worker is gone')
  })
})
