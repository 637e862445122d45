import { existsSync } from 'node:fs'
import { adoptDistribution, type AdoptProgress, type AdoptReport, type AdoptTarget } from '../adopt/adopt.js'
import { createPlacer } from '../adopt/placer.js'
import { FsSource, type DistributionSource } from '../adopt/source.js'
import { databaseUrl } from '../app.js'
import { ProjectService } from '../auth/projects.js'
import { ImmutabilityService } from '../policy/immutability.js'
import { PROJECT_NAME } from '../auth/permissions.js'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { FsDriver } from '../storage/fs/driver.js'
import { formatBytes, withLoadedDeployment } from './data.js'

export interface AdoptFlags {
  from: string
  config?: string
  dataDir?: string
  dryRun?: boolean
  json?: boolean
  into?: string
  concurrency?: string
}

/**
 * `berth adopt distribution --from DIR|s3://bucket/prefix`: builds Berth's metadata from a Docker
 * Distribution storage tree and puts its blobs into Berth's store without a re-push (src/adopt/).
 * Exit code 2 when part of the tree could not be adopted (the report lists it by path).
 */
export async function adoptDistributionCommand(flags: AdoptFlags): Promise<void> {
  if (flags.dataDir && flags.config) throw new Error('give either --data-dir or --config, not both')
  if (flags.into !== undefined && !PROJECT_NAME.test(flags.into)) throw new Error(`--into ${flags.into}: not a project name`)
  const concurrency = flags.concurrency === undefined ? 4 : Number(flags.concurrency)
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new Error('--concurrency: a whole number from 1 to 64')
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  const source = await openSource(flags.from, config)
  const progress = await progressReporter(!flags.json)
  let report: AdoptReport
  try {
    const run = (target: AdoptTarget | undefined) => adoptDistribution({ source, target, dryRun: flags.dryRun === true, into: flags.into, concurrency, onProgress: progress.update })
    // A dry run reads a deployment when there is one, and never creates one.
    if (flags.dryRun && !deploymentExists(config)) report = await run(undefined)
    else {
      report = await withLoadedDeployment(config, async ({ meta, registry, storage }) => {
        const placer = createPlacer({ source, storage, ...(await placerStores(config, storage)) })
        const immutability = new ImmutabilityService(meta)
        return run({ meta, manifests: registry.manifests, projects: new ProjectService(meta, Date.now), placer, immutableTag: (repository, tag) => immutability.check(repository, tag) })
      })
    }
  } finally {
    progress.stop()
    await source.close()
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`)
  else printReport(report)
  if (report.problems.length > 0) process.exitCode = 2
}

/** The tree `--from` names: a directory (Distribution's rootdirectory), s3://bucket/prefix or azure://container/prefix. */
async function openSource(from: string, config: Config): Promise<DistributionSource> {
  if (from.startsWith('azure://')) return openAzureSource(from, config)
  if (!from.startsWith('s3://')) return new FsSource(from)
  const url = /^s3:\/\/([^/]+)\/?(.*)$/.exec(from)
  if (!url) throw new Error(`--from ${from}: expected s3://bucket/prefix`)
  // Reached with Berth's storage.s3 settings (endpoint, region, credentials), bucket and prefix from the URL.
  const { S3Source } = await import('../adopt/s3-source.js')
  const s3 = config.storage.s3
  return new S3Source(url[1] as string, url[2] as string, { ...s3, requestTimeoutMs: s3.requestTimeout || undefined })
}

/** azure://container/prefix, reached with Berth's storage.azure settings (endpoint, credentials). */
async function openAzureSource(from: string, config: Config): Promise<DistributionSource> {
  const url = /^azure:\/\/([^/]+)\/?(.*)$/.exec(from)
  if (!url) throw new Error(`--from ${from}: expected azure://container/prefix`)
  const a = config.storage.azure
  if (!a.connectionString && !(a.accountName && a.accountKey) && !a.sasToken) {
    throw new Error(`--from ${from}: give the Azure credentials in storage.azure of the config (connectionString, accountName + accountKey, or sasToken), or their BERTH_STORAGE_AZURE_* variables`)
  }
  const { AzureSource } = await import('../adopt/azure-source.js')
  return new AzureSource(url[1] as string, url[2] as string, {
    connectionString: a.connectionString,
    accountName: a.accountName,
    accountKey: a.accountKey,
    sasToken: a.sasToken,
    endpoint: a.endpoint,
    realm: a.realm,
    maxAttempts: a.maxAttempts,
    requestTimeoutMs: a.requestTimeout || undefined,
  })
}

/** Where the placer can link or copy server-side: Berth's filesystem root, or its bucket. */
async function placerStores(config: Config, storage: unknown): Promise<{ fsRoot?: string; s3?: { bucket: string; key(path: string): string } }> {
  if (storage instanceof FsDriver) return { fsRoot: storage.root }
  if (config.storage.driver !== 's3') return {}
  // The key of a path as Berth's driver makes it (a read cache in front of it changes nothing there).
  const { S3Driver } = await import('../storage/s3/driver.js')
  const s3 = config.storage.s3
  const keys = new S3Driver({ bucket: s3.bucket ?? '', region: s3.region, prefix: s3.prefix })
  return { s3: { bucket: keys.bucket, key: (path) => keys.key(path) } }
}

function deploymentExists(config: Config): boolean {
  const url = databaseUrl(config)
  return !url.startsWith('sqlite:') || existsSync(url.slice('sqlite:'.length))
}

function printReport(r: AdoptReport): void {
  const verb = r.dryRun ? 'would adopt' : 'adopted'
  console.log(`${r.source}: ${r.repositories.found} repositories (${r.repositories.changed} with something new), ${r.manifests.found} manifests, ${r.layerLinks} layer links`)
  console.log(`${verb} ${r.manifests.adopted} manifest(s) (${r.manifests.present} already in Berth), ${r.referrers} referrer(s)`)
  console.log(`tags: ${r.tags.created} created, ${r.tags.moved} moved, ${r.tags.deleted} deleted, ${r.tags.unchanged} unchanged (${r.referrerTags} referrer/signature tags)`)
  for (const t of r.deletedTags) console.log(`  ${r.dryRun ? 'would delete' : 'deleted'} ${t.repository}:${t.tag} (${t.digest}): deleted from Distribution`)
  for (const t of r.keptTags) console.log(`  kept ${t.repository}:${t.tag} (${t.digest}), moved or deleted in Distribution: ${t.reason}`)
  const how = r.dryRun ? '' : ` (${r.blobs.hardlinked} hard-linked, ${r.blobs.copied} copied, ${r.blobs.serverCopied} copied server-side)`
  console.log(`blobs: ${r.blobs.linked} linked into repositories, ${r.blobs.new} new to Berth's store${how}, ${formatBytes(r.blobs.bytes)}; ${r.blobs.present} already there`)
  if (r.blobs.copied > 0) console.log(`note: ${r.blobs.copied} blob(s) were copied, not hard-linked: Berth's store is on another filesystem than the tree (or one without hard links), so they take space twice`)
  if (r.projectsCreated.length > 0) console.log(`${r.dryRun ? 'would create' : 'created'} project(s): ${r.projectsCreated.join(', ')}${r.projectsCreated.some((p) => p !== 'library') ? ' (private: make them public if Distribution served anonymous pulls)' : ''}`)
  if (r.problems.length > 0) {
    console.log(`${r.problems.length} problem(s), not adopted:`)
    for (const p of r.problems) console.log(`  ${p.kind} ${p.path}: ${p.message}`)
  }
  console.log(`took ${r.seconds} s`)
}

/**
 * Progress on stderr: a bar (repositories, manifests, blobs, bytes, ETA) on a terminal, loaded
 * only then; otherwise a plain line every few seconds and at the end.
 */
async function progressReporter(enabled: boolean): Promise<{ update(p: AdoptProgress): void; stop(): void }> {
  if (!enabled) return { update: () => undefined, stop: () => undefined }
  const line = (p: AdoptProgress) => `repositories ${p.repositoriesDone}/${p.repositoriesTotal} | ${p.manifests} manifests | ${p.blobs} blobs | ${formatBytes(p.bytes)}`
  if (!process.stderr.isTTY) {
    let last = 0
    return {
      update: (p) => {
        const done = p.repositoriesDone === p.repositoriesTotal
        if (!done && Date.now() - last < 2000) return
        last = Date.now()
        console.error(`adopt: ${line(p)}`)
      },
      stop: () => undefined,
    }
  }
  const cliProgress = (await import('cli-progress')).default
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'adopt [{bar}] {value}/{total} repositories | {manifests} manifests | {blobs} blobs | {bytes} | ETA {eta_formatted}', hideCursor: true, etaBuffer: 100 },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  return {
    update: (p) => {
      const payload = { manifests: p.manifests, blobs: p.blobs, bytes: formatBytes(p.bytes) }
      if (!started) {
        started = true
        bar.start(Math.max(p.repositoriesTotal, 1), p.repositoriesDone, payload)
      } else bar.update(p.repositoriesDone, payload)
    },
    stop: () => {
      if (started) bar.stop()
    },
  }
}
