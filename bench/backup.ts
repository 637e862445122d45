// Backup benchmark: `node --import tsx bench/backup.ts` (BACKUP_MANIFESTS, BACKUP_BYTES, BACKUP_BIG_BYTES to resize).
// Measures, with the code `berth backup` / `berth restore` run (in this process, so the figures
// leave out the CLI's start-up):
//  1. a registry of many manifests: BACKUP_MANIFESTS image manifests (config + 3 layers each, in
//     100 repositories, all tagged) holding BACKUP_BYTES in total: a full backup, a restore into an
//     empty data directory, then 100 real pushes through the HTTP API and the incremental backup;
//  2. a registry of few big blobs (BACKUP_BIG_BYTES in 16 MiB layers): the bytes' cost alone.
// The registries are written straight into a fresh SQLite database and blob folder (as bench/gc.ts
// does), with real content: every digest is the sha256 of the bytes on disk.
// Prints a markdown section for BENCHMARKS.md.

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { buildApp, createStorage, databaseUrl } from '../src/app.js'
import { runBackup } from '../src/backup/backup-service.js'
import { runRestore } from '../src/backup/restore-service.js'
import { parseConfig } from '../src/config/load.js'
import { openMetadata } from '../src/metadata/db.js'

const MANIFESTS = Number(process.env.BACKUP_MANIFESTS ?? 10_000)
const BYTES = Number(process.env.BACKUP_BYTES ?? 1024 ** 3)
const BIG_BYTES = Number(process.env.BACKUP_BIG_BYTES ?? 1024 ** 3)
const REPOS = 100
const LAYERS = 3
const BIG_LAYER = 16 * 1024 ** 2
const log = pino({ level: 'silent' })
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const MiB = 1024 ** 2

interface Image {
  config: Buffer
  layers: Buffer[]
}

/** Writes `count` images made by `make` into a fresh data directory's database and blob folder. */
async function generate(dataDir: string, count: number, make: (i: number) => Image): Promise<void> {
  const metadata = await openMetadata(`sqlite:${join(dataDir, 'berth.db')}`)
  const db = metadata.db
  const t = Date.now() - 3_600_000
  await db.insertInto('repositories').values(Array.from({ length: REPOS }, (_, i) => ({ name: `bench/r${i}`, created_at: t }))).execute()
  for (let i = 0; i < count; i += 100) {
    await db.transaction().execute(async (trx) => {
      for (let m = i; m < Math.min(i + 100, count); m++) {
        const img = make(m)
        const repositoryId = (m % REPOS) + 1
        const blobs = [img.config, ...img.layers]
        const digests = blobs.map(sha)
        for (const [k, body] of blobs.entries()) {
          const hex = digests[k]!.slice(7)
          await mkdir(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2)), { recursive: true })
          await writeFile(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex), body)
        }
        await trx.insertInto('blobs').values(blobs.map((b, k) => ({ digest: digests[k]!, size: b.length, created_at: t }))).execute()
        await trx.insertInto('repository_blobs').values(digests.map((digest) => ({ repository_id: repositoryId, digest, created_at: t }))).execute()
        const content = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digests[0], size: img.config.length },
            layers: img.layers.map((l, k) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digests[k + 1], size: l.length })),
          }),
        )
        const digest = sha(content)
        const row = await trx
          .insertInto('manifests')
          .values({ repository_id: repositoryId, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', artifact_type: null, size: content.length, content, subject_digest: null, annotations: null, created_at: t })
          .returning('id')
          .executeTakeFirstOrThrow()
        await trx.insertInto('manifest_references').values(digests.map((d) => ({ manifest_id: Number(row.id), digest: d, kind: 'blob' as const }))).execute()
        await trx.insertInto('tags').values({ repository_id: repositoryId, name: `t${m}`, manifest_digest: digest, updated_at: t }).execute()
      }
    })
  }
  await metadata.close()
}

function config(dataDir: string) {
  return parseConfig({ dataDir, auth: { enabled: false }, log: { level: 'silent', accessLog: false }, metrics: { enabled: false } })
}

async function backup(dataDir: string, to: string) {
  const c = config(dataDir)
  const storage = await createStorage(c)
  const snapshotDb = await openMetadata(databaseUrl(c))
  const leaseDb = await openMetadata(databaseUrl(c))
  try {
    const started = performance.now()
    const manifest = await runBackup({ snapshotDb, leaseDb, storage, log }, { to })
    return { seconds: (performance.now() - started) / 1000, manifest }
  } finally {
    await snapshotDb.close()
    await leaseDb.close()
  }
}

async function restore(from: string, dataDir: string) {
  const c = config(dataDir)
  const storage = await createStorage(c)
  const metadata = await openMetadata(databaseUrl(c))
  try {
    const started = performance.now()
    const result = await runRestore({ metadata, storage, log }, { from })
    return { seconds: (performance.now() - started) / 1000, result }
  } finally {
    await metadata.close()
  }
}

/** `n` real pushes (config + 3 layers + manifest each) through the HTTP API of a Berth on `dataDir`. */
async function push(dataDir: string, n: number, layerBytes: number): Promise<number> {
  const app = await buildApp(config(dataDir), { logger: log })
  await app.http.listen({ host: '127.0.0.1', port: 0 })
  const address = app.http.server.address()
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  const started = performance.now()
  try {
    for (let i = 0; i < n; i++) {
      const blobs = [Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', push: i })), ...Array.from({ length: LAYERS }, () => randomBytes(layerBytes))]
      for (const b of blobs) {
        const res = await fetch(`${base}/v2/bench/pushed/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', body: b as unknown as BodyInit })
        if (res.status !== 201) throw new Error(`blob push: ${res.status}`)
      }
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(blobs[0]!), size: blobs[0]!.length },
          layers: blobs.slice(1).map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(l), size: l.length })),
        }),
      )
      const res = await fetch(`${base}/v2/bench/pushed/manifests/p${i}`, { method: 'PUT', body: manifest as unknown as BodyInit, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
      if (res.status !== 201) throw new Error(`manifest push: ${res.status}`)
    }
  } finally {
    await app.close()
  }
  return (performance.now() - started) / 1000
}

const gib = (b: number) => (b / 1024 ** 3).toFixed(2)
const rate = (bytes: number, s: number) => `${(bytes / MiB / s).toFixed(0)} MiB/s`

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'berth-bench-backup-'))
  try {
    // 1. many manifests
    const layerBytes = Math.max(1, Math.floor(BYTES / MANIFESTS / LAYERS))
    const src = join(root, 'src')
    const genStart = performance.now()
    await generate(src, MANIFESTS, (i) => ({ config: Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', i })), layers: Array.from({ length: LAYERS }, () => randomBytes(layerBytes)) }))
    process.stderr.write(`generated ${MANIFESTS} manifests in ${((performance.now() - genStart) / 1000).toFixed(0)} s\n`)
    const full = await backup(src, join(root, 'backup'))
    process.stderr.write(`full backup ${full.seconds.toFixed(1)} s\n`)
    const restored = await restore(join(root, 'backup'), join(root, 'restored'))
    process.stderr.write(`restore ${restored.seconds.toFixed(1)} s\n`)
    const pushSeconds = await push(src, 100, layerBytes)
    const inc = await backup(src, join(root, 'backup'))
    process.stderr.write(`incremental ${inc.seconds.toFixed(1)} s\n`)
    const nothing = await backup(src, join(root, 'backup'))

    // 2. few big blobs
    const bigSrc = join(root, 'big-src')
    const bigImages = Math.max(1, Math.round(BIG_BYTES / BIG_LAYER / LAYERS))
    await generate(bigSrc, bigImages, (i) => ({ config: Buffer.from(JSON.stringify({ big: i })), layers: Array.from({ length: LAYERS }, () => randomBytes(BIG_LAYER)) }))
    await rm(join(root, 'backup'), { recursive: true })
    await rm(join(root, 'restored'), { recursive: true })
    const bigFull = await backup(bigSrc, join(root, 'big-backup'))
    const bigRestored = await restore(join(root, 'big-backup'), join(root, 'big-restored'))

    const rows = (m: typeof full.manifest) => m.tables.reduce((n, t) => n + t.rows, 0)
    const perGiB = (s: number, bytes: number) => s / (bytes / 1024 ** 3)
    // 10 GiB / 10,000 manifests: the many-manifests run scaled linearly to 10,000 manifests (its
    // cost is per blob file and per row), plus the bytes still missing to 10 GiB at the big-blob rate.
    const scale = 10_000 / MANIFESTS
    const extraGiB = Math.max(0, 10 - (full.manifest.blobs.bytes * scale) / 1024 ** 3)
    const estBackup = full.seconds * scale + extraGiB * perGiB(bigFull.seconds, bigFull.manifest.blobs.bytes)
    const estRestore = restored.seconds * scale + extraGiB * perGiB(bigRestored.seconds, bigFull.manifest.blobs.bytes)

    const out = [
      `| run | manifests | blobs | rows | data | time | rate |`,
      `| --- | ---: | ---: | ---: | ---: | ---: | ---: |`,
      `| full backup, many manifests | ${MANIFESTS.toLocaleString('en')} | ${full.manifest.blobs.count.toLocaleString('en')} | ${rows(full.manifest).toLocaleString('en')} | ${gib(full.manifest.blobs.bytes)} GiB | ${full.seconds.toFixed(1)} s | ${rate(full.manifest.blobs.bytes, full.seconds)} |`,
      `| restore of it (empty data dir, SQLite + filesystem) | ${MANIFESTS.toLocaleString('en')} | ${restored.result.blobs.toLocaleString('en')} | ${restored.result.rows.toLocaleString('en')} | ${gib(restored.result.bytes)} GiB | ${restored.seconds.toFixed(1)} s | ${rate(restored.result.bytes, restored.seconds)} |`,
      `| incremental backup after 100 pushes (${inc.manifest.copied.count} new blobs, ${(inc.manifest.copied.bytes / MiB).toFixed(1)} MiB) | ${(MANIFESTS + 100).toLocaleString('en')} | ${inc.manifest.blobs.count.toLocaleString('en')} | ${rows(inc.manifest).toLocaleString('en')} | ${gib(inc.manifest.blobs.bytes)} GiB | ${inc.seconds.toFixed(1)} s | |`,
      `| backup with nothing new | ${(MANIFESTS + 100).toLocaleString('en')} | ${nothing.manifest.blobs.count.toLocaleString('en')} | | | ${nothing.seconds.toFixed(1)} s | |`,
      `| full backup, big blobs (16 MiB) | ${bigImages} | ${bigFull.manifest.blobs.count} | ${rows(bigFull.manifest)} | ${gib(bigFull.manifest.blobs.bytes)} GiB | ${bigFull.seconds.toFixed(1)} s | ${rate(bigFull.manifest.blobs.bytes, bigFull.seconds)} |`,
      `| restore of it | ${bigImages} | ${bigRestored.result.blobs} | | ${gib(bigRestored.result.bytes)} GiB | ${bigRestored.seconds.toFixed(1)} s | ${rate(bigRestored.result.bytes, bigRestored.seconds)} |`,
      '',
      // At the size (the defaults) the first rows are the figure; smaller runs are scaled up.
      scale === 1 && extraGiB <= 0
        ? `The 100 pushes themselves took ${pushSeconds.toFixed(1)} s.`
        : `Extrapolated to 10 GiB / 10,000 manifests (the many-manifests run × ${scale.toFixed(1)}, plus ${extraGiB.toFixed(1)} GiB more at the big-blob rate): backup ≈ ${estBackup.toFixed(0)} s, restore ≈ ${estRestore.toFixed(0)} s. The 100 pushes themselves took ${pushSeconds.toFixed(1)} s.`,
    ]
    console.log(out.join('\n'))
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

await main()
