import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { getHeapSpaceStatistics } from 'node:v8'
import { IdleGc, runtimeGc, runtimeScavenge } from '../../src/runtime/idle-gc.js'
import { freePort, waitHealthy } from '../helpers/e2e-process.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const MiB = 1024 * 1024

/** An IdleGc on a hand-moved clock and heap size, ticked by the test. */
function harness() {
  const state = { now: 0, heap: 30 * MiB, young: MiB, runs: 0 }
  const gc = new IdleGc(() => state.runs++, {
    quietMs: 6_000,
    tickMs: 0,
    heapGrowth: 8 * MiB,
    transferBytes: 100,
    heapSize: () => state.heap,
    youngSize: () => state.young,
    now: () => state.now,
  })
  const wait = (ms: number) => {
    for (let t = 0; t < ms; t += 1_000) {
      state.now += 1_000
      gc.tick()
    }
  }
  return { gc, state, wait }
}

describe('garbage collection when the server goes quiet', () => {
  it('collects once after start-up, then only after a burst that left something to give back', () => {
    const { gc, state, wait } = harness()
    wait(5_000)
    assert.equal(state.runs, 0, 'not before the quiet period')
    wait(2_000)
    assert.equal(state.runs, 1, 'start-up counts as a burst')
    state.heap = 22 * MiB
    gc.tick()
    // Health checks and scrapes every few seconds: activity, but the heap did not grow.
    for (let i = 0; i < 5; i++) {
      gc.touch()
      wait(7_000)
    }
    assert.equal(state.runs, 1, 'nothing to give back, no collection')
  })

  it('waits for the quiet period after the last request, then collects a grown heap', () => {
    const { gc, state, wait } = harness()
    wait(7_000)
    state.heap = 22 * MiB
    assert.equal(state.runs, 1)
    // A burst: requests every second for 20 s, the young generation grows to 32 MiB.
    for (let i = 0; i < 20; i++) {
      gc.touch()
      state.heap = 54 * MiB
      wait(1_000)
    }
    assert.equal(state.runs, 1, 'not while requests keep coming')
    wait(4_000)
    assert.equal(state.runs, 1, 'not within V8 allocation-rate window')
    wait(3_000)
    assert.equal(state.runs, 2)
    wait(30_000)
    assert.equal(state.runs, 2, 'one collection per quiet period')
  })

  it('collects after large transfers even when the heap did not grow', () => {
    const { gc, state, wait } = harness()
    wait(7_000)
    assert.equal(state.runs, 1)
    gc.record(60)
    wait(7_000)
    assert.equal(state.runs, 1, 'below transferBytes')
    gc.record(60)
    wait(7_000)
    assert.equal(state.runs, 2, 'dead transfer buffers are external memory: counted in bytes moved')
  })

  it('tries again after another quiet period when V8 kept its young generation', () => {
    const { gc, state, wait } = harness()
    state.young = 32 * MiB
    wait(7_000)
    assert.equal(state.runs, 1)
    wait(6_000)
    assert.equal(state.runs, 2, 'the young generation is still 32 MiB: again')
    state.young = MiB
    wait(6_000)
    assert.equal(state.runs, 3)
    wait(30_000)
    assert.equal(state.runs, 3, 'shrunk: done')
    state.young = 32 * MiB
    state.heap += 32 * MiB
    gc.touch()
    wait(60_000)
    assert.equal(state.runs, 6, 'at most three tries per growth')
  })

  it('does not start its tries again for requests that did not grow the heap', () => {
    const { gc, state, wait } = harness()
    state.young = 32 * MiB // V8 never shrinks it here (say, a --min-semi-space-size)
    for (let i = 0; i < 20; i++) {
      wait(7_000)
      gc.touch() // a health check every 7 s
    }
    assert.equal(state.runs, 3)
  })

  it('collects the young generation every few MiB of upload, and counts them as transfers', () => {
    let scavenges = 0
    let runs = 0
    let now = 0
    const gc = new IdleGc(() => runs++, { tickMs: 0, quietMs: 6_000, transferBytes: 10 * MiB, scavenge: () => scavenges++, scavengeBytes: 2 * MiB, now: () => now, heapSize: () => 0, youngSize: () => 0 })
    for (let i = 0; i < 64; i++) gc.received(64 * 1024)
    assert.equal(scavenges, 2, '4 MiB in 64 KiB chunks: one scavenge per 2 MiB')
    gc.received(MiB)
    gc.record(8 * MiB) // a download: moves bytes, but its buffers are reused, no scavenge
    assert.equal(scavenges, 2)
    gc.received(MiB)
    assert.equal(scavenges, 3)
    // 8 uploads at once: the interval grows with them, so that chunks still being written are
    // not moved to the old generation by two scavenges in a row.
    for (let i = 0; i < 255; i++) gc.received(64 * 1024, 8)
    assert.equal(scavenges, 3, 'under 16 MiB received with 8 bodies in flight')
    gc.received(64 * 1024, 8)
    assert.equal(scavenges, 4)
    for (let t = 0; t < 7; t++) {
      now += 1_000
      gc.tick()
    }
    assert.equal(runs, 1, 'the bytes received count towards the collection once quiet')
  })

  it('frees the buffers of dead chunks with a scavenge', async () => {
    const scavenge = runtimeScavenge()
    const collect = runtimeGc()
    assert.ok(scavenge && collect, 'this runtime lets the flag be set')
    const held = () => process.memoryUsage().arrayBuffers
    // V8 collects on its own when external memory grows fast (it did in CI, between two
    // chunks): start each try from a full collection, and try again if V8 got there first.
    let grown = 0
    for (let attempt = 0; attempt < 5 && grown < 8 * MiB; attempt++) {
      collect()
      const before = held()
      // Chunks as a request body arrives: each its own buffer, dead once handled.
      for (let i = 0; i < 256; i++) Buffer.allocUnsafeSlow(64 * 1024).fill(i)
      grown = held() - before
      if (grown < 8 * MiB) continue
      scavenge()
      // V8 may release the swept buffers on a helper thread: give it a moment.
      for (let i = 0; i < 50 && held() - before >= 8 * MiB; i++) await sleep(10)
      assert.ok(held() - before < 8 * MiB, `freed: ${held() - before} bytes still held`)
    }
    assert.ok(grown >= 8 * MiB, `V8 collected the dead chunks on its own in every try (${grown} bytes held)`)
  })

  it('runs on its own timer and stops on close', async () => {
    let runs = 0
    const gc = new IdleGc(() => runs++, { quietMs: 30, tickMs: 10, youngSize: () => 0 })
    await sleep(120)
    assert.equal(runs, 1)
    gc.record(1)
    gc.close()
    await sleep(80)
    assert.equal(runs, 1)
  })

  it('reaches the real collector without --expose-gc', async () => {
    const gc = runtimeGc()
    assert.ok(gc, 'this runtime lets the flag be set')
    let ref: WeakRef<object> | undefined
    ;(() => {
      ref = new WeakRef({ big: Buffer.alloc(1024) })
    })()
    // WeakRef targets live at least until the current job ends.
    await sleep(0)
    gc()
    assert.equal(ref?.deref(), undefined, 'the unreachable object was collected')
  })

  it('compacts old space: the pages its dead objects leave sparse are given back', () => {
    const gc = runtimeGc()
    assert.ok(gc)
    const old = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')
    // ≈ 80 MiB of objects old enough for old space, then all but one in 16 dropped: every page
    // keeps a few live objects, so only moving them frees the pages (V8's plain full collection
    // kept all 80 MiB here).
    let kept: object[] = []
    for (let i = 0; i < 600_000; i++) kept.push({ i, s: `x${i}`, a: [i, i + 1] })
    gc()
    kept = kept.filter((_, i) => i % 16 === 0)
    gc()
    const space = old()
    assert.ok(space, 'V8 reports its old space')
    assert.ok(space.space_size <= 2 * space.space_used_size + 4 * MiB, `old space ${space.space_size} bytes for ${space.space_used_size} used`)
    assert.equal(kept.length, 37_500)
  })

  const v8Major = Number(process.versions.v8.split('.')[0])
  it('also shrinks the young generation', { skip: v8Major < 12 && 'V8 before 12 has no memory-reducing flavor (Node 20)' }, () => {
    const gc = runtimeGc()
    assert.ok(gc)
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
    // Objects that survive their first scavenges make V8 grow the young generation.
    const kept: object[] = []
    for (let i = 0; i < 400_000; i++) kept.push({ i, s: `x${i}` })
    assert.ok(young() > 4 * MiB, `grown: ${young()} bytes`)
    kept.length = 0
    gc()
    assert.ok(young() <= 2 * MiB, `shrunk: ${young()} bytes`)
  })

  it('a served registry hands its young generation back once requests stop', async () => {
    await withServer(async (base) => {
      const youngBytes = async () => {
        const text = await (await fetch(`${base}/metrics`)).text()
        return Number(/^berth_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(text)?.[1])
      }
      // A burst of requests: manifest lookups, tag lists, catalog, metrics.
      for (let round = 0; round < 40; round++) {
        await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${base}/v2/library/app${i % 5}/tags/list`).then((r) => r.arrayBuffer())))
      }
      const busy = await youngBytes()
      assert.ok(busy > 4 * MiB, `V8 grew the young generation while busy: ${busy} bytes`)
      // Quiet: no request at all for the quiet period (6 s, longer than V8's allocation-rate
      // window), and for one retry in case V8 kept the young generation in the first collection.
      await sleep(15_000)
      const idle = await youngBytes()
      assert.ok(idle <= 2 * MiB, `given back when quiet: ${idle} bytes (was ${busy})`)
    })
  })

  const smaps = existsSync('/proc/self/smaps')
  it("a served registry's malloc heap stays small through a large upload", { skip: !smaps && 'needs /proc/<pid>/smaps (Linux)' }, async () => {
    await withServer(async (base, pid) => {
      // glibc's main heap: where the chunks of a request body are allocated.
      const heapKiB = async () => {
        const text = await readFile(`/proc/${pid}/smaps`, 'utf8')
        const at = text.search(/^\S+ \S+ \S+ \S+ \S+\s+\[heap\]$/m)
        return at < 0 ? 0 : Number(/^Rss:\s+(\d+) kB/m.exec(text.slice(at))?.[1])
      }
      const piece = randomBytes(MiB)
      const pieces = 256
      const hash = createHash('sha256')
      for (let i = 0; i < pieces; i++) hash.update(piece)
      const before = await heapKiB()
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${base}/v2/library/big/blobs/uploads/?digest=sha256:${hash.digest('hex')}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': pieces * MiB } }, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        })
        req.on('error', reject)
        let sent = 0
        const more = () => {
          while (sent < pieces) {
            sent++
            if (!req.write(piece)) return void req.once('drain', more)
          }
          req.end()
        }
        more()
      })
      assert.equal(status, 201)
      const after = await heapKiB()
      // Measured: +2 MiB with a scavenge every 2 MiB of upload, +17 to +34 MiB without.
      assert.ok(after - before < 8 * 1024, `the heap grew by ${after - before} KiB during a 256 MiB upload (from ${before} KiB)`)
    })
  })
})

/** `berth serve` (the built one, open: no auth) in a child process on a fresh data dir, for `use`. */
async function withServer(use: (base: string, pid: number) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-idle-'))
  const port = await freePort()
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'berth.js')
  const child = spawn(process.execPath, [bin, 'serve', '--data-dir', dir, '--addr', `127.0.0.1:${port}`], {
    env: { ...process.env, BERTH_AUTH_ENABLED: 'false', BERTH_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  })
  try {
    const base = `http://127.0.0.1:${port}`
    await waitHealthy(base)
    await use(base, child.pid as number)
  } finally {
    child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}
