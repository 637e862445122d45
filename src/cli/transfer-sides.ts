import { ProjectService } from '../auth/projects.js'
import { parseDigest } from '../oci/digest.js'
import { RemoteRegistry } from '../replication/client.js'
import { LocalSide, RemoteSide, type Side } from '../replication/sides.js'
import type { ProgressListener, TransferProgress } from '../transfer/progress.js'
import { explainRefusal, urlCredentials, type PasswordFlags } from './credentials.js'
import { formatBytes, withDeployment } from './data.js'

/** Where `berth export` reads from and `berth import` writes to: a deployment, or a registry URL. */
export interface SideFlags extends PasswordFlags {
  config?: string
  dataDir?: string
  url?: string
  user?: string
  json?: boolean
}

export interface OpenedSide {
  side: Side
  /** whether the repository holds the blob already */
  hasBlob(repository: string, digest: string): Promise<boolean>
  /** refuses a project that does not exist where pushes need one (a registry URL answers for itself) */
  requireProject(name: string): Promise<void>
}

/** Opens the side the flags name, runs `work` on it and closes it. */
export async function withSide<T>(flags: SideFlags, work: (s: OpenedSide) => Promise<T>): Promise<T> {
  if (flags.url) {
    if (flags.dataDir || flags.config) throw new Error('give either --url or --data-dir/--config, not both')
    const url = flags.url
    const creds = await urlCredentials({ ...flags, url })
    const client = new RemoteRegistry({ url, username: creds.user ?? null, password: creds.password ?? null })
    // Blobs sent in this run, for cross-repository mounts between the images of one import.
    const known = new Map<string, string>()
    const memory = {
      remoteBlobRepository: async (_registry: string, digest: string) => known.get(digest),
      rememberRemoteBlob: async (_registry: string, digest: string, repository: string) => void known.set(digest, repository),
    }
    try {
      return await work({
        side: new RemoteSide(new URL(url).host, client, memory, Date.now),
        hasBlob: async (repository, digest) => (await client.headBlob(repository, digest)) !== null,
        requireProject: async () => undefined,
      })
    } catch (err) {
      throw explainRefusal(err, url, creds)
    } finally {
      await client.close()
    }
  }
  if (flags.user || flags.password || flags.passwordStdin) throw new Error('--user, --password and --password-stdin go with --url')
  return withDeployment(flags, ({ registry, meta, config }) => {
    const projects = new ProjectService(meta, Date.now)
    return work({
      side: new LocalSide(registry),
      hasBlob: async (repository, digest) => {
        const d = parseDigest(digest)
        return typeof d !== 'string' && (await registry.blobs.stat(repository, d).then(() => true, () => false))
      },
      // As the server: with auth off, any repository name may be pushed.
      requireProject: async (name) => {
        if (!config.auth.enabled) return
        await projects.get(name).catch(() => {
          throw new Error(`project ${name} does not exist: create it first (berth project create ${name})`)
        })
      },
    })
  })
}

/**
 * Progress of an export or import on stderr: a bar (bytes, blobs, rate, ETA) on a terminal,
 * loaded only then; otherwise one plain line per blob, for logs and CI.
 */
export async function progressReporter(enabled: boolean): Promise<{ listener: ProgressListener; stop(): void }> {
  if (!enabled) return { listener: () => undefined, stop: () => undefined }
  if (!process.stderr.isTTY) {
    return {
      listener: (p, done) => {
        if (done) console.error(`${p.phase} ${p.itemsDone}/${p.itemsTotal} ${done.digest} ${done.skipped ? 'skipped' : formatBytes(done.size)} (${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)})`)
      },
      stop: () => undefined,
    }
  }
  const cliProgress = (await import('cli-progress')).default
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{phase} [{bar}] {percentage}% | {done}/{all} | {items}/{itemsTotal} blobs | {speed}/s | ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  )
  let phase: string | undefined
  const started = { at: Date.now(), bytes: 0 }
  const payload = (p: TransferProgress) => {
    const seconds = Math.max((Date.now() - started.at) / 1000, 0.001)
    return { phase: p.phase.padEnd(6), done: formatBytes(p.bytesDone), all: formatBytes(p.bytesTotal), items: p.itemsDone, itemsTotal: p.itemsTotal, speed: formatBytes(Math.round((p.bytesDone - started.bytes) / seconds)) }
  }
  return {
    listener: (p) => {
      if (p.phase !== phase) {
        if (phase !== undefined) bar.stop()
        phase = p.phase
        started.at = Date.now()
        started.bytes = p.bytesDone
        bar.start(Math.max(p.bytesTotal, 1), p.bytesDone, payload(p))
      } else {
        bar.setTotal(Math.max(p.bytesTotal, 1))
        bar.update(p.bytesDone, payload(p))
      }
    },
    stop: () => bar.stop(),
  }
}
