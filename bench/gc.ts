// GC benchmark: `node --import tsx bench/gc.ts` (GC_BLOBS / GC_MANIFESTS to resize).
// Generates rows directly in a fresh SQLite metadata database plus one small file per blob, then
// starts Berth in this process on that data directory and measures:
//  - push latency (3 blobs + manifest per push, 4 pushers) without GC,
//  - a real GC run (mark + sweep time, peak RSS and heap while it runs),
//  - push latency while that GC runs.
// Prints a markdown section for BENCHMARKS.md.

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config/load.js'
import { openMetadata } from '../src/metadata/db.js'

const BLOBS = Number(process.env.GC_BLOBS ?? 100_000)
const MANIFESTS = Number(process.env.GC_MANIFESTS ?? 20_000)
const REPOS = 100
const LAYERS = 3 // + config: 4 blob references per manifest
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function generate(dataDir: string): Promise<void> {
  const metadata = await openMetadata(`sqlite:${join(dataDir, 'berth.db')}`)
  const db = metadata.db
  const old = Date.now() - 3 * 3_600_000
  await db.insertInto('repositories').values(Array.from({ length: REPOS }, (_, i) => ({ name: `bench/r${i}`, created_at: old }))).execute()
  const digests: string[] = []
  for (let i = 0; i < BLOBS; i += 500) {
    const rows = []
    const links = []
    for (let j = i; j < Math.min(i + 500, BLOBS); j++) {
      const body = Buffer.from(`blob ${j}`)
      const digest = sha(body)
      digests.push(digest)
      const hex = digest.slice(7)
      await mkdir(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2)), { recursive: true })
      await writeFile(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex), body)
      rows.push({ digest, size: body.length, created_at: old })
      links.push({ repository_id: (j % REPOS) + 1, digest, created_at: old })
    }
    await db.insertInto('blobs').values(rows).execute()
    await db.insertInto('repository_blobs').values(links).execute()
  }
  // Manifest m references blobs 4m..4m+3 (in its own repository): 80% of the blobs are referenced.
  for (let i = 0; i < MANIFESTS; i += 250) {
    await db.transaction().execute(async (trx) => {
      for (let m = i; m < Math.min(i + 250, MANIFESTS); m++) {
        const refs = digests.slice(m * (LAYERS + 1), (m + 1) * (LAYERS + 1))
        const repositoryId = ((m * (LAYERS + 1)) % REPOS) + 1
        const content = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: refs[0], size: 10 },
            layers: refs.slice(1).map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d, size: 10 })),
          }),
        )
        const digest = sha(content)
        const row = await trx
          .insertInto('manifests')
          .values({ repository_id: repositoryId, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', artifact_type: null, size: content.length, content, subject_digest: null, annotations: null, created_at: old })
          .returning('id')
          .executeTakeFirstOrThrow()
        await trx.insertInto('manifest_references').values(refs.map((d) => ({ manifest_id: Number(row.id), digest: d, kind: 'blob' as const }))).execute()
        // 3 of 4 manifests are tagged; the rest are untagged garbage (gc.untagged: delete)
        if (m % 4 !== 3) await trx.insertInto('tags').values({ repository_id: repositoryId, name: `t${m}`, manifest_digest: digest, updated_at: old }).execute()
      }
    })
  }
  await metadata.close()
}

function p(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN
}

async function pushLoop(base: string, until: () => boolean, minPushes: number): Promise<number[]> {
  const latencies: number[] = []
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let n = 0; !until() || latencies.length < minPushes; n++) {
        const repo = `push/w${w}`
        const blobs = [randomBytes(1024), randomBytes(4096), Buffer.from(`{"n":"${w}-${n}-${Math.random()}"}`)]
        const t0 = performance.now()
        for (const b of blobs) {
          const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', body: b as unknown as BodyInit })
          if (res.status !== 201) throw new Error(`blob push ${res.status}`)
        }
        const manifest = JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(blobs[2]!), size: blobs[2]!.length },
          layers: blobs.slice(0, 2).map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(b), size: b.length })),
        })
        const res = await fetch(`${base}/v2/${repo}/manifests/w${w}-${n}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
        if (res.status !== 201) throw new Error(`manifest push ${res.status}`)
        latencies.push(performance.now() - t0)
      }
    }),
  )
  return latencies
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-gc-bench-'))
  try {
    let t = performance.now()
    await generate(dataDir)
    const generateS = (performance.now() - t) / 1000
    const config = parseConfig({ dataDir, auth: { enabled: false }, log: { level: 'silent', accessLog: false }, gc: { gracePeriod: '1h', untagged: 'delete', untaggedAfter: '1h' }, metrics: { enabled: false } })
    const app = await buildApp(config, { logger: pino({ level: 'silent' }) })
    await app.http.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.http.server.address() as { port: number }).port}`
    await pushLoop(base, () => true, 50) // warm-up
    const without = await pushLoop(base, () => true, 400)

    global.gc?.()
    const rss0 = process.memoryUsage().rss
    let peakRss = rss0
    let peakHeap = 0
    const sampler = setInterval(() => {
      const m = process.memoryUsage()
      peakRss = Math.max(peakRss, m.rss)
      peakHeap = Math.max(peakHeap, m.heapUsed)
    }, 20)
    const loopDelay = monitorEventLoopDelay({ resolution: 5 })
    loopDelay.enable()
    t = performance.now()
    const { done } = await app.gc.start({ trigger: 'bench' })
    let finished = false
    const record = done.finally(() => (finished = true))
    const during = await pushLoop(base, () => finished, 50)
    const run = await record
    const gcS = (performance.now() - t) / 1000
    loopDelay.disable()
    clearInterval(sampler)
    await app.close()

    const line = (name: string, v: number[]) => `| ${name} | ${v.length} | ${p(v, 0.5).toFixed(1)} | ${p(v, 0.99).toFixed(1)} |`
    console.log(`## Garbage collection (bench/gc.ts)

Run on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, SQLite + filesystem, shared machine.
Command: \`node --expose-gc --import tsx bench/gc.ts\` (GC_BLOBS=${BLOBS}, GC_MANIFESTS=${MANIFESTS}; rows generated in ${generateS.toFixed(1)} s).

Data: ${BLOBS} blobs (one small file each) in ${REPOS} repositories, ${MANIFESTS} manifests with ${LAYERS + 1} blob references each; a quarter of the manifests untagged
(gc.untagged: delete), ${BLOBS - MANIFESTS * (LAYERS + 1)} blobs referenced by no manifest; everything older than the grace period.

| GC run (online, in the server process) | value |
|---|---|
| manifests examined / deleted | ${run.manifestsExamined} / ${run.manifestsDeleted} |
| blobs examined / deleted | ${run.blobsExamined} / ${run.blobsDeleted} |
| mark + sweep wall time (with pushes running) | ${gcS.toFixed(1)} s |
| peak RSS of the process during the run | ${(peakRss / 1048576).toFixed(0)} MiB (before: ${(rss0 / 1048576).toFixed(0)} MiB) |
| peak JS heap during the run | ${(peakHeap / 1048576).toFixed(0)} MiB |
| event-loop delay during the run: p99 / max | ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms / ${(loopDelay.max / 1e6).toFixed(0)} ms |

| pushes (4 pushers, 3 blobs + manifest each) | pushes | p50 ms | p99 ms |
|---|---|---|---|
${line('without GC', without)}
${line('while GC runs', during)}
`)
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

await main()
