import cliProgress from 'cli-progress'
import { gcServices } from '../app.js'
import { formatDuration } from '../config/duration.js'
import type { Config } from '../config/schema.js'
import { formatBytes, withDeployment, withLoadedDeployment, type Deployment } from './data.js'

export interface GcFlags {
  config?: string
  dataDir?: string
  dryRun?: boolean
  json?: boolean
}

/**
 * Opens what the server opens (config, storage, metadata) without HTTP. Safe beside a running
 * server on the same data directory: SQLite in WAL mode with a busy timeout, and the server's
 * read caches notice this process's commits through PRAGMA data_version.
 */
export async function withGc<T>(flags: GcFlags, work: (s: ReturnType<typeof gcServices>, config: Config) => Promise<T>): Promise<T> {
  return withDeployment(flags, (d) => gcOf(d, work))
}

/** withGc on a config already loaded (a deployment that exists, or a scratch one). */
export async function withGcServices<T>(config: Config, work: (s: ReturnType<typeof gcServices>, config: Config) => Promise<T>): Promise<T> {
  return withLoadedDeployment(config, (d) => gcOf(d, work))
}

function gcOf<T>({ config, meta, storage, registry, log }: Deployment, work: (s: ReturnType<typeof gcServices>, config: Config) => Promise<T>): Promise<T> {
  const services = gcServices({ ...config, gc: { ...config.gc, schedule: undefined }, scrub: { schedule: undefined } }, { meta, storage, uploads: registry.uploads, log, now: Date.now })
  return work(services, config)
}

/** Progress of a command that works in phases. */
export interface PhaseProgress {
  phase: string
  done: number
  total?: number
}

/** A progress bar on stderr's terminal when stdout is one and JSON was not asked for. */
export function progressBar(enabled: boolean): { update(p: PhaseProgress): void; stop(): void } {
  if (!enabled) return { update: () => undefined, stop: () => undefined }
  const bar = new cliProgress.SingleBar({ format: '{phase} [{bar}] {value}/{total}', clearOnComplete: true, hideCursor: true }, cliProgress.Presets.shades_classic)
  let phase: string | undefined
  return {
    update(p) {
      const total = p.total ?? p.done
      if (p.phase !== phase) {
        if (phase !== undefined) bar.stop()
        phase = p.phase
        bar.start(Math.max(total, 1), p.done, { phase: p.phase.padEnd(9) })
      } else {
        bar.setTotal(Math.max(total, p.done, 1))
        bar.update(p.done)
      }
    },
    stop: () => bar.stop(),
  }
}

export async function gcCommand(flags: GcFlags): Promise<void> {
  let gracePeriod = ''
  const record = await withGc(flags, async ({ gc }, config) => {
    gracePeriod = formatDuration(config.gc.gracePeriod)
    const bar = progressBar(process.stdout.isTTY === true && !flags.json)
    try {
      return await gc.run({ trigger: 'cli', dryRun: flags.dryRun === true, onProgress: (p) => bar.update(p) })
    } finally {
      bar.stop()
    }
  })
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(record)}\n`)
    return
  }
  const verb = record.dryRun ? 'would delete' : 'deleted'
  console.log(`gc ${record.id}: ${record.status}; ${verb} ${record.manifestsDeleted} of ${record.manifestsExamined} manifest(s), ${record.blobsDeleted} of ${record.blobsExamined} blob(s) (${record.bytesFreed} bytes), ${record.uploadsDeleted} upload session(s)`)
  for (const digest of record.deleted ?? []) console.log(`  ${digest}`)
  const kept = record.keptByGracePeriod
  if (kept && kept.blobs > 0) console.log(`${kept.blobs} blob${kept.blobs === 1 ? '' : 's'} (${formatBytes(kept.bytes)}) younger than gc.gracePeriod ${gracePeriod} kept`)
}
