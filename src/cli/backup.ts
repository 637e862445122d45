import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import pino, { type Logger } from 'pino'
import { createStorage, databaseUrl } from '../app.js'
import { runBackup } from '../backup/backup-service.js'
import { runRestore } from '../backup/restore-service.js'
import { loadConfig, parseConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { openMetadata } from '../metadata/db.js'
import { progressBar, withGcServices } from './gc.js'
import { formatBytes, requireBerthData } from './data.js'

interface DeploymentFlags {
  config?: string
  dataDir?: string
  json?: boolean
}

function quietLog(config: Config): Logger {
  return pino({ level: config.log.level === 'info' ? 'warn' : config.log.level }, pino.destination(2))
}

function bar(flags: { json?: boolean }) {
  return progressBar(process.stdout.isTTY === true && !flags.json)
}

/** `berth backup --to DIR`: a consistent snapshot of a running (or stopped) deployment. */
export async function backupCommand(flags: DeploymentFlags & { to?: string; keep?: string }): Promise<void> {
  if (!flags.to) throw new Error('backup: give the backup directory as --to DIR')
  const keep = Number(flags.keep ?? 2)
  if (!Number.isInteger(keep) || keep < 1) throw new Error('backup: --keep must be a positive integer')
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  requireBerthData(config)
  const storage = await createStorage(config)
  await storage.check()
  const url = databaseUrl(config)
  const snapshotDb = await openMetadata(url)
  const leaseDb = await openMetadata(url).catch(async (err: unknown) => {
    await snapshotDb.close()
    throw err
  })
  const progress = bar(flags)
  try {
    const manifest = await runBackup({ snapshotDb, leaseDb, storage, log: quietLog(config) }, { to: resolve(flags.to), keep, onProgress: (p) => progress.update(p) })
    progress.stop()
    if (flags.json) process.stdout.write(`${JSON.stringify(manifest)}\n`)
    else {
      const rows = manifest.tables.reduce((n, t) => n + t.rows, 0)
      console.log(`backup ${manifest.generation}: ${rows} row(s) in ${manifest.tables.length} table(s), ${manifest.blobs.count} blob(s) (${formatBytes(manifest.blobs.bytes)}), ${manifest.copied.count} new (${formatBytes(manifest.copied.bytes)}) in ${(manifest.durationMs / 1000).toFixed(1)}s`)
    }
  } finally {
    progress.stop()
    await snapshotDb.close()
    await leaseDb.close()
    await storage.close?.()
  }
}

/** `berth restore DIR --data-dir DIR2 | --config FILE`: into an empty deployment only. */
export async function restoreCommand(from: string, flags: DeploymentFlags): Promise<void> {
  if (!flags.config && !flags.dataDir) throw new Error('restore: give the target as --data-dir DIR or --config FILE')
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  const progress = bar(flags)
  try {
    const result = await restoreInto(config, resolve(from), { onProgress: (p) => progress.update(p) })
    progress.stop()
    if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`)
    else console.log(`restored backup ${result.generation} (taken ${result.createdAt}): ${result.rows} row(s) in ${result.tables} table(s), ${result.blobs} blob(s) (${formatBytes(result.bytes)})`)
  } finally {
    progress.stop()
  }
}

async function restoreInto(config: Config, from: string, opts: Omit<Parameters<typeof runRestore>[1], 'from'>) {
  const storage = await createStorage(config)
  await storage.check()
  const metadata = await openMetadata(databaseUrl(config))
  try {
    return await runRestore({ metadata, storage, log: quietLog(config) }, { ...opts, from })
  } finally {
    await metadata.close()
    await storage.close?.()
  }
}

/**
 * `berth backup verify DIR`: restores the backup into a scratch data directory (SQLite and the
 * filesystem, whatever the backup came from) and scrubs it there. Exit code 2 on any problem.
 */
export async function backupVerifyCommand(dir: string, flags: { json?: boolean }): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'berth-verify-'))
  const problems: string[] = []
  let summary: Record<string, unknown> = {}
  try {
    // Not loadConfig: BERTH_* variables of the shell must not point the scratch restore elsewhere.
    const config = parseConfig({ dataDir: scratch, log: { level: 'warn' } })
    const progress = bar(flags)
    try {
      const restored = await restoreInto(config, resolve(dir), {
        onBadBlob: (digest, reason) => problems.push(`blob ${digest} ${reason}`),
        onProgress: (p) => progress.update(p),
      })
      const scrub = await withGcServices(config, ({ scrub }) => scrub.run({ trigger: 'backup-verify', onProgress: (p) => progress.update(p) }))
      progress.stop()
      for (const p of scrub.problems) problems.push(`scrub: ${p.kind} ${p.digest}${p.reason ? `: ${p.reason}` : ''}${p.breaks?.length ? ` (breaks ${p.breaks.map((b) => `${b.repository}@${b.manifest}`).join(', ')})` : ''}`)
      summary = { generation: restored.generation, createdAt: restored.createdAt, rows: restored.rows, blobs: restored.blobs, bytes: restored.bytes, blobsScrubbed: scrub.blobsExamined, manifestsScrubbed: scrub.manifestsExamined }
    } finally {
      progress.stop()
    }
  } catch (err) {
    problems.push((err as Error).message)
  } finally {
    await rm(scratch, { recursive: true, force: true })
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ ok: problems.length === 0, ...summary, problems })}\n`)
  else {
    if (summary.generation) console.log(`backup ${String(summary.generation)}: restored ${String(summary.rows)} row(s) and ${String(summary.blobs)} blob(s); scrub checked ${String(summary.blobsScrubbed)} blob(s) and ${String(summary.manifestsScrubbed)} manifest(s)`)
    for (const p of problems) console.log(`  problem: ${p}`)
    console.log(problems.length === 0 ? 'backup verified: it restores and scrubs clean' : `backup NOT usable: ${problems.length} problem(s)`)
  }
  if (problems.length > 0) process.exitCode = 2
}
