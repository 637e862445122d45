// Layer indexing benchmark: `node --expose-gc --import tsx bench/layer-index.ts` (LAYER_MIB to
// resize). Writes a tar of LAYER_MIB MiB (files of 1-64 KiB of text-like bytes, in nested
// directories) compressed with gzip and with zstd to a temporary directory, then indexes each
// with the file browser's indexer (src/browse/layer-index.ts) as the server does, from a file
// stream: wall time, entries, peak RSS and JS heap. Prints a markdown table for BENCHMARKS.md.

import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, open, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { pack } from 'tar-stream'
import { indexLayer } from '../src/browse/layer-index.js'
import { readMem, resetPeak } from './rss.js'

const MIB = 1024 * 1024
const TOTAL = Number(process.env.LAYER_MIB ?? 500) * MIB

async function writeTar(path: string): Promise<number> {
  const pool = Buffer.from(randomBytes(3 * MIB).toString('base64'))
  const p = pack()
  const written = pipeline(p, createWriteStream(path))
  let bytes = 0
  let files = 0
  while (bytes < TOTAL) {
    const size = 1024 + ((files * 7919) % (63 * 1024))
    const start = (files * 104729) % (pool.length - size)
    const name = `usr/lib/pkg${files % 200}/sub${files % 13}/file-${files}.txt`
    await new Promise<void>((resolve, reject) => p.entry({ name, mode: 0o644 }, pool.subarray(start, start + size), (err) => (err ? reject(err as Error) : resolve())))
    bytes += size
    files++
  }
  p.finalize()
  await written
  return files
}

async function head(path: string): Promise<Buffer> {
  const fh = await open(path, 'r')
  const buf = Buffer.alloc(4)
  await fh.read(buf, 0, 4, 0)
  await fh.close()
  return buf
}

async function measure(label: string, path: string) {
  globalThis.gc?.()
  const before = process.memoryUsage()
  resetPeak(process.pid)
  let peakHeap = before.heapUsed
  const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 20)
  const started = performance.now()
  const index = await indexLayer('sha256:bench', async () => createReadStream(path), await head(path))
  const ms = performance.now() - started
  clearInterval(sampler)
  const mem = readMem(process.pid)
  const size = (await stat(path)).size
  return { label, size, ms, entries: index.entries.size, rssBefore: before.rss, peakRss: (mem?.hwmKiB ?? NaN) * 1024, peakHeap, heapBefore: before.heapUsed, keep: index }
}

const dir = await mkdtemp(join(tmpdir(), 'berth-layer-bench-'))
try {
  const tar = join(dir, 'layer.tar')
  const files = await writeTar(tar)
  const tarSize = (await stat(tar)).size
  await pipeline(createReadStream(tar), createGzip({ level: 6 }), createWriteStream(`${tar}.gz`))
  execFileSync('zstd', ['-q', '-3', '-f', tar, '-o', `${tar}.zst`])
  const rows = []
  for (const [label, path] of [['gzip', `${tar}.gz`], ['zstd', `${tar}.zst`], ['uncompressed', tar]] as const) rows.push(await measure(label, path))
  const mib = (n: number) => `${(n / MIB).toFixed(0)} MiB`
  console.log(`\n${files} files, ${mib(tarSize)} of tar\n`)
  console.log('| layer | blob size | entries | index time | MiB/s (tar) | peak RSS (before) | peak JS heap (before) |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const r of rows) {
    console.log(`| ${r.label} | ${mib(r.size)} | ${r.entries} | ${(r.ms / 1000).toFixed(1)} s | ${(tarSize / MIB / (r.ms / 1000)).toFixed(0)} | ${mib(r.peakRss)} (${mib(r.rssBefore)}) | ${mib(r.peakHeap)} (${mib(r.heapBefore)}) |`)
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
