// The uploads' ceiling on this machine: a bare Node.js server doing only the work no registry can
// avoid for a blob upload — receive the body, hash it (sha256), write it to a file, fsync it and
// answer — run as 1 process or as N processes sharing the listening socket (node:cluster, as
// `berth serve --workers N` does), against C clients each PUTting one blob at once.
// No HTTP routing, no metadata, no digest check.
//
//   node --import tsx bench/upload-ceiling.ts [WORKERS=1,2] [CLIENTS=32] [MB=32] [ROUNDS=3]
//
// Prints one line per round and the median per worker count (aggregate MB/s, MB = 10^6 bytes).

import cluster from 'node:cluster'
import { createHash, randomUUID } from 'node:crypto'
import { open, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { blobBytes } from './data.js'

const MiB = 1024 * 1024

if (cluster.isWorker) {
  const dir = process.env.CEILING_DIR as string
  const server = createServer((req, res) => {
    void (async () => {
      const file = await open(join(dir, randomUUID()), 'w')
      const hash = createHash('sha256')
      try {
        for await (const chunk of req as AsyncIterable<Buffer>) {
          hash.update(chunk)
          await file.write(chunk)
        }
        await file.sync()
      } finally {
        await file.close()
      }
      res.writeHead(201, { 'docker-content-digest': `sha256:${hash.digest('hex')}` }).end()
    })().catch(() => res.destroy())
  })
  server.keepAliveTimeout = 60_000
  server.listen(Number(process.env.CEILING_PORT), '127.0.0.1')
} else {
  await main()
}

async function serve(workers: number, dir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  cluster.setupPrimary({ exec: import.meta.filename, execArgv: ['--import', 'tsx'] })
  const forked = Array.from({ length: workers }, () => cluster.fork({ CEILING_DIR: dir, CEILING_PORT: String(port) }))
  await Promise.all(forked.map((w) => new Promise((resolve) => w.once('listening', resolve))))
  return {
    port,
    stop: async () => {
      await Promise.all(forked.map((w) => new Promise((resolve) => {
        w.once('exit', resolve)
        w.kill('SIGKILL')
      })))
    },
  }
}

async function round(port: number, bodies: Buffer[]): Promise<number> {
  const agent = new Agent({ connections: bodies.length, keepAliveTimeout: 30_000 })
  try {
    const t0 = performance.now()
    await Promise.all(
      bodies.map(async (body) => {
        const res = await request(`http://127.0.0.1:${port}/blob`, { method: 'PUT', body, headers: { 'content-length': String(body.length) }, dispatcher: agent })
        await res.body.dump()
        if (res.statusCode !== 201) throw new Error(`status ${res.statusCode}`)
      }),
    )
    const ms = performance.now() - t0
    return (bodies.length * (bodies[0] as Buffer).length) / 1e6 / (ms / 1000)
  } finally {
    await agent.close()
  }
}

async function main(): Promise<void> {
  const [workersArg = '1,2', clientsArg = '32', mbArg = '32', roundsArg = '3'] = process.argv.slice(2)
  const counts = workersArg.split(',').map(Number)
  const clients = Number(clientsArg)
  const size = Number(mbArg) * MiB
  const rounds = Number(roundsArg)
  const bodies = Array.from({ length: clients }, (_, i) => blobBytes(9_000 + i, size))
  const results = new Map<number, number[]>(counts.map((n) => [n, []]))
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  for (let r = 0; r < rounds; r++) {
    // Worker counts take turns, the first alternating between rounds.
    for (const n of r % 2 ? [...counts].reverse() : counts) {
      const dir = await mkdtemp(join(tmpdir(), 'berth-ceiling-'))
      const server = await serve(n, dir)
      try {
        const rate = await round(server.port, bodies)
        results.get(n)?.push(rate)
        console.log(`round ${r + 1}: ${n} process(es): ${clients} × ${size / MiB} MiB at ${rate.toFixed(0)} MB/s`)
      } finally {
        await server.stop()
        await rm(dir, { recursive: true, force: true })
      }
    }
  }
  for (const [n, rates] of results) {
    const sorted = [...rates].sort((a, b) => a - b)
    console.log(`${n} process(es): median ${(sorted[Math.floor(sorted.length / 2)] ?? NaN).toFixed(0)} MB/s (${rates.map((v) => v.toFixed(0)).join(', ')})`)
  }
  console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
}
