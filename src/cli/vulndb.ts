import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { fetchArtifactSources } from '../scan/vulndb/artifact.js'
import { VulnDb, type ImportInput, type ImportProgress, type VulnDbStatus } from '../scan/vulndb/index.js'
import { openDeploymentMetadata, withDeployment } from './data.js'
import { commonOptions, type Common } from './user.js'

// `berth vulndb import <osv zip|dir>… | --from-registry REPO:TAG` and `berth vulndb status`:
// the vulnerability database, straight in the metadata database (the server may be running;
// every node sees the import once it is swapped in).

interface ImportFlags extends Common {
  fromRegistry?: string
}

/** Progress on the terminal (cli-progress, loaded only then), else a line per tenth. */
async function progressReporter(json: boolean): Promise<{ update(p: ImportProgress): void; stop(): void }> {
  if (json) return { update: () => undefined, stop: () => undefined }
  if (process.stderr.isTTY) {
    const { default: cliProgress } = await import('cli-progress')
    const bar = new cliProgress.SingleBar({ format: 'importing [{bar}] {value}/{total} advisories {source}', clearOnComplete: true, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    let started = false
    return {
      update(p) {
        if (!started) bar.start(Math.max(p.total, 1), p.done, { source: p.source })
        started = true
        bar.setTotal(Math.max(p.total, 1))
        bar.update(p.done, { source: p.phase === 'activating' ? '(swapping in)' : p.source })
      },
      stop: () => bar.stop(),
    }
  }
  let lastTenth = -1
  return {
    update(p) {
      const tenth = p.total === 0 ? 10 : Math.floor((p.done * 10) / p.total)
      if (p.phase === 'reading' && tenth !== lastTenth) {
        lastTenth = tenth
        process.stderr.write(`importing: ${p.done}/${p.total} documents read (${p.source})\n`)
      }
    },
    stop: () => undefined,
  }
}

function parseRepoTag(ref: string): { repository: string; reference: string } {
  const at = ref.lastIndexOf('@')
  if (at > 0) return { repository: ref.slice(0, at), reference: ref.slice(at + 1) }
  const colon = ref.lastIndexOf(':')
  if (colon <= 0 || ref.indexOf('/', colon) >= 0) throw new Error(`--from-registry: expected REPOSITORY:TAG or REPOSITORY@DIGEST, got ${ref}`)
  return { repository: ref.slice(0, colon), reference: ref.slice(colon + 1) }
}

async function importCommand(paths: string[], flags: ImportFlags): Promise<void> {
  if (paths.length > 0 && flags.fromRegistry) throw new Error('give OSV files or --from-registry, not both')
  if (paths.length === 0 && !flags.fromRegistry) throw new Error('name the OSV ZIP files or directories to import, or --from-registry REPOSITORY:TAG')
  const artifact = flags.fromRegistry ? parseRepoTag(flags.fromRegistry) : undefined
  const progress = await progressReporter(flags.json === true)
  const result = await withDeployment(flags, async ({ meta, registry }) => {
    const scratch = artifact && (await mkdtemp(join(tmpdir(), 'berth-vulndb-')))
    try {
      const inputs: ImportInput[] = artifact && scratch ? await fetchArtifactSources(registry, artifact.repository, artifact.reference, scratch) : paths.map((p) => ({ path: resolve(p), label: p }))
      return await new VulnDb(meta).import(inputs, { onProgress: (p) => progress.update(p) })
    } finally {
      progress.stop()
      if (scratch) await rm(scratch, { recursive: true, force: true })
    }
  })
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`)
    return
  }
  console.log(`imported ${result.advisories} advisories from ${result.files.join(', ')} in ${(result.ms / 1000).toFixed(1)} s (database version ${result.version})`)
  for (const s of result.sources) console.log(`  ${s.ecosystem}: ${s.advisories} (newest ${s.modified})`)
  for (const n of result.notes) console.log(`  note: ${n}`)
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h`
  return `${Math.floor(seconds / 86400)} days`
}

async function statusCommand(flags: Common): Promise<void> {
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  const metadata = await openDeploymentMetadata(config)
  let status: VulnDbStatus
  try {
    status = await new VulnDb(metadata).status()
  } finally {
    await metadata.close()
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(status)}\n`)
    return
  }
  if (status.version === null) {
    console.log('no vulnerability database imported (berth vulndb import <osv all.zip|dir>…)')
    return
  }
  console.log(`database ${status.version}: ${status.advisories} advisories, imported ${status.importedAt} (${formatAge(status.ageSeconds ?? 0)} ago) from ${status.files.join(', ')}`)
  for (const s of status.sources) console.log(`  ${s.ecosystem}: ${s.advisories} (newest ${s.modified})`)
  for (const n of status.notes) console.log(`  note: ${n}`)
}

export function registerVulnDbCommands(program: Command): void {
  const vulndb = program.command('vulndb').description('the vulnerability database (OSV advisories, imported offline)')
  commonOptions(
    vulndb
      .command('import')
      .description("import OSV advisories (osv.dev's per-ecosystem all.zip exports, directories of OSV .json files) as the new database; the previous one serves until the import is complete and valid")
      .argument('[sources...]', 'OSV ZIP files, directories or .json files'),
  )
    .option('--from-registry <repository:tag>', 'import the OSV files pushed into this registry as an artifact (oras push …/system/vulndb:2026-12-01 all.zip)')
    .action(importCommand)
  commonOptions(vulndb.command('status').description('show the database in use: sources, advisory counts, age')).action(statusCommand)
}
