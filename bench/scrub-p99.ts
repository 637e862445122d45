// Manifest GET latency while scrub re-hashes: `node --import tsx bench/scrub-p99.ts`.
// Issue target: manifest GET p99 while scrub re-hashes 5 GiB stays ≤ 2× its idle p99.
//
// Berth runs in a child process (this file with the argument `serve`: buildApp on a fresh data
// directory, auth and access log off), so that the load generator (autocannon, in this process)
// does not share its event loop. The parent pushes SCRUB_BENCH_GIB GiB of random blobs of
// SCRUB_BENCH_BLOB_MIB MiB each (chunked uploads, streamed) and one small image, measures
// manifest GET at SCRUB_BENCH_CONNECTIONS connections for SCRUB_BENCH_SECONDS idle, then tells
// the child to run a scrub (ScrubService.run, the same as `berth scrub` or scrub.schedule inside
// the server) and measures again while it runs. Prints a Markdown table; the scrub's own
// duration says whether it covered the whole measurement (it must, for the figure to mean
// anything: raise SCRUB_BENCH_GIB otherwise).
//
// Needs the disk space of the blobs under the system's temp directory (5 GiB by default).

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config/load.js'
import { fmt, log, machine, times } from './common.js'
import { runAutocannon } from './load.js'

const GIB = Number(process.env.SCRUB_BENCH_GIB ?? 5)
const BLOB_MIB = Number(process.env.SCRUB_BENCH_BLOB_MIB ?? 256)
const CONNECTIONS = Number(process.env.SCRUB_BENCH_CONNECTIONS ?? 16)
const SECONDS = Number(process.env.SCRUB_BENCH_SECONDS ?? 10)
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** The child: a Berth on `dataDir`; prints {port}, then {scrub} after each `scrub` line on stdin. */
async function serve(dataDir: string): Promise<void> {
  const config = parseConfig({ dataDir, auth: { enabled: false }, log: { level: 'silent', accessLog: false }, metrics: { enabled: false } })
  const app = await buildApp(config, { logger: pino({ level: 'silent' }) })
  await app.http.listen({ host: '127.0.0.1', port: 0 })
  const address = app.http.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'scrub') continue
    const started = Date.now()
    const record = await app.scrub.run({ trigger: 'bench' })
    process.stdout.write(`${JSON.stringify({ scrub: { ms: Date.now() - started, bytes: record.bytesRead, blobs: record.blobsExamined, problems: record.problems.length } })}\n`)
  }
  await app.close()
}

/** Streams `mib` MiB of random bytes through a chunked upload (POST, PATCH, PUT ?digest=). */
async function pushRandomBlob(base: string, repository: string, mib: number): Promise<void> {
  const started = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST' })
  if (started.status !== 202) throw new Error(`POST: ${started.status}`)
  const location = new URL(started.headers.get('location') ?? '', base)
  const hash = createHash('sha256')
  const body = Readable.from(
    (function* () {
      for (let i = 0; i < mib; i++) {
        const chunk = randomBytes(1024 * 1024)
        hash.update(chunk)
        yield chunk
      }
    })(),
  )
  const patched = await fetch(location, { method: 'PATCH', body: Readable.toWeb(body) as ReadableStream, headers: { 'content-type': 'application/octet-stream' }, duplex: 'half' } as RequestInit)
  if (patched.status !== 202) throw new Error(`PATCH: ${patched.status} ${await patched.text()}`)
  const next = new URL(patched.headers.get('location') ?? '', base)
  next.searchParams.set('digest', `sha256:${hash.digest('hex')}`)
  const put = await fetch(next, { method: 'PUT' })
  if (put.status !== 201) throw new Error(`PUT: ${put.status} ${await put.text()}`)
}

async function pushImage(base: string, repository: string): Promise<string> {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","bench":"scrub"}')
  const layer = randomBytes(4096)
  for (const b of [config, layer]) {
    const res = await fetch(`${base}/v2/${repository}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: b })
    if (res.status !== 201) throw new Error(`blob: ${res.status}`)
  }
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }] }))
  const res = await fetch(`${base}/v2/${repository}/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': MANIFEST } })
  if (res.status !== 201) throw new Error(`manifest: ${res.status}`)
  return `${base}/v2/${repository}/manifests/v1`
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-scrub-bench-'))
  const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, 'serve', dataDir], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => JSON.parse(String((await lines.next()).value)) as { port?: number; scrub?: { ms: number; bytes: number; blobs: number; problems: number } }
  try {
    const { port } = await next()
    const base = `http://127.0.0.1:${port}`
    const blobs = Math.ceil((GIB * 1024) / BLOB_MIB)
    log(`pushing ${blobs} blobs of ${BLOB_MIB} MiB`)
    for (let i = 0; i < blobs; i++) await pushRandomBlob(base, 'bench/scrub', BLOB_MIB)
    const url = await pushImage(base, 'bench/app')
    const headers = { accept: MANIFEST }
    log(`manifest GET idle, c=${CONNECTIONS}, ${SECONDS} s`)
    const idle = await runAutocannon(url, 'GET', CONNECTIONS, SECONDS, headers)
    log('manifest GET while scrub re-hashes')
    child.stdin.write('scrub\n')
    const scrubbed = next()
    const during = await runAutocannon(url, 'GET', CONNECTIONS, SECONDS, headers)
    const { scrub } = await scrubbed
    if (!scrub) throw new Error('no scrub result')
    const covered = scrub.ms >= SECONDS * 1000
    console.log(`\n## Manifest GET while scrub re-hashes (${machine()})\n`)
    console.log('| measure | idle | during scrub | ratio |')
    console.log('| --- | --- | --- | --- |')
    console.log(`| manifest GET p99 (ms), c=${CONNECTIONS} | ${fmt(idle.p99Ms, 2)} | ${fmt(during.p99Ms, 2)} | ${times(during.p99Ms / idle.p99Ms)} (target ≤ 2×) |`)
    console.log(`| manifest GET req/s | ${fmt(idle.rps)} | ${fmt(during.rps)} | ${times(during.rps / idle.rps)} |`)
    console.log(`| errors | ${idle.errors} | ${during.errors} | |`)
    console.log(`\nscrub: ${scrub.blobs} blobs, ${(scrub.bytes / 2 ** 30).toFixed(2)} GiB in ${(scrub.ms / 1000).toFixed(1)} s (${(scrub.bytes / 2 ** 20 / (scrub.ms / 1000)).toFixed(0)} MiB/s), ${scrub.problems} problem(s)`)
    if (!covered) console.log(`scrub ended before the ${SECONDS} s measurement did: raise SCRUB_BENCH_GIB for a figure that covers it`)
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'serve') await serve(process.argv[3] as string)
else await main()
