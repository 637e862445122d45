import { RegistryError } from '../../errors/registry-error.js'
import type { MetadataDb } from '../../metadata/metadata-db.js'
import { createVulnDbRepository, type VulnDbEntryRow, type VulnDbRepository } from '../../metadata/repositories/vulndb.js'
import type { Finding, Inventory, OsvEcosystem, ScannedPackage, Severity } from '../types.js'
import { baseEcosystem } from '../versions/index.js'
import { affects } from './match.js'
import { OsvError, packageKey, parseAdvisory, type AdvisoryEntry, type StoredAffected } from './osv.js'
import { openSource, type Source } from './sources.js'

// The vulnerability database: OSV advisories imported offline into the metadata database (so
// every node of a cluster serves the same one), indexed by (generation, ecosystem, package).
// An import writes a new generation beside the serving one and swaps it in with one update; a
// broken document fails the import, naming it, and the previous generation keeps serving.

export interface VulnDbSourceStatus {
  ecosystem: OsvEcosystem
  advisories: number
  /** newest `modified` time among its advisories */
  modified: string
}

export interface VulnDbStatus {
  version: string | null
  importedAt: string | null
  sources: VulnDbSourceStatus[]
  advisories: number
  /** seconds since the import was swapped in */
  ageSeconds: number | null
  /** the files or artifacts the database was imported from */
  files: string[]
  /** what the import left out, said plainly */
  notes: string[]
}

export interface ImportProgress {
  phase: 'reading' | 'activating'
  done: number
  total: number
  source: string
}

export interface ImportResult {
  version: string
  advisories: number
  withdrawn: number
  duplicates: number
  sources: VulnDbSourceStatus[]
  files: string[]
  notes: string[]
  ms: number
}

/** A path to import from, with the name messages give it (`repo:tag/all.zip` for an artifact). */
export interface ImportInput {
  path: string
  label?: string
}

interface Summary {
  sources: VulnDbSourceStatus[]
  files: string[]
  notes: string[]
}

/** Entries written per transaction. */
const BATCH = 2000
/** A loading generation older than this belongs to an import that died (ms). */
const STALE_IMPORT = 6 * 3600_000
/** Import rows kept as history. */
const KEEP_IMPORTS = 5
const SEVERITY_ORDER: Severity[] = ['critical', 'high', 'medium', 'low', 'unknown']

export class VulnDb {
  private readonly repo: VulnDbRepository
  private readonly now: () => number

  constructor(metadata: Pick<MetadataDb, 'db'>, opts: { now?: () => number } = {}) {
    this.repo = createVulnDbRepository(metadata.db)
    this.now = opts.now ?? Date.now
  }

  /** Changes on every import; null before the first. */
  async version(): Promise<string | null> {
    const active = await this.repo.active()
    return active ? versionOf(active.id, active.activated_at) : null
  }

  async status(): Promise<VulnDbStatus> {
    const active = await this.repo.active()
    if (!active) return { version: null, importedAt: null, sources: [], advisories: 0, ageSeconds: null, files: [], notes: [] }
    const summary = JSON.parse(active.summary) as Summary
    const at = active.activated_at ?? active.created_at
    return {
      version: versionOf(active.id, active.activated_at),
      importedAt: new Date(at).toISOString(),
      sources: summary.sources,
      advisories: active.advisories,
      ageSeconds: Math.max(0, Math.floor((this.now() - at) / 1000)),
      files: summary.files,
      notes: summary.notes,
    }
  }

  /**
   * Imports OSV sources (ZIP exports, directories, .json files) as a new generation and swaps
   * it in. Any unreadable or invalid document fails the whole import with its name
   * (RegistryError UNPROCESSABLE); the database in use before stays in use.
   */
  async import(inputs: ImportInput[], opts: { onProgress?: (p: ImportProgress) => void; signal?: AbortSignal } = {}): Promise<ImportResult> {
    if (inputs.length === 0) throw RegistryError.invalidField('sources', 'name at least one OSV ZIP file, directory or .json file')
    const started = performance.now()
    const sources: Source[] = []
    try {
      for (const input of inputs) sources.push(await openSource(input.path, input.label).catch((err: Error) => Promise.reject(unprocessable(err.message, err))))
    } catch (err) {
      await Promise.all(sources.map((s) => s.close()))
      throw err
    }
    await this.repo.purge(this.now() - STALE_IMPORT, KEEP_IMPORTS)
    const generation = await this.repo.begin(this.now())
    try {
      const result = await this.load(generation, sources, opts)
      opts.onProgress?.({ phase: 'activating', done: result.total, total: result.total, source: '' })
      const now = this.now()
      const summary: Summary = { sources: result.sources, files: sources.map((s) => s.label), notes: result.notes }
      if (!(await this.repo.activate(generation, JSON.stringify(summary), result.advisories, now))) throw new RegistryError('CONFLICT', 'the import was abandoned while it loaded (another import purged it)')
      await this.repo.purge(now - STALE_IMPORT, KEEP_IMPORTS)
      return { version: versionOf(generation, now), advisories: result.advisories, withdrawn: result.withdrawn, duplicates: result.duplicates, sources: result.sources, files: summary.files, notes: result.notes, ms: Math.round(performance.now() - started) }
    } catch (err) {
      await this.repo.fail(generation, (err as Error).message.slice(0, 2000))
      throw err
    } finally {
      await Promise.all(sources.map((s) => s.close()))
    }
  }

  private async load(generation: number, sources: Source[], opts: { onProgress?: (p: ImportProgress) => void; signal?: AbortSignal }) {
    const total = sources.reduce((n, s) => n + s.count, 0)
    const seen = new Set<string>()
    const perEcosystem = new Map<string, VulnDbSourceStatus>()
    let pending: AdvisoryEntry[] = []
    let done = 0
    let withdrawn = 0
    let duplicates = 0
    let gitOnly = 0
    const flush = async () => {
      const rows = pending.map((e) => ({ generation, ecosystem: e.ecosystem, package: e.package, advisory: e.advisory, aliases: JSON.stringify(e.aliases), summary: e.summary, severity: e.severity, affected: JSON.stringify(e.affected) }))
      pending = []
      await this.repo.addEntries(rows)
    }
    for (const source of sources) {
      for await (const doc of source.documents()) {
        opts.signal?.throwIfAborted()
        let advisory
        try {
          advisory = parseAdvisory((await doc.read()).toString('utf8'))
        } catch (err) {
          throw unprocessable(`${doc.name}: ${(err as Error).message}`, err)
        }
        done++
        if (done % 500 === 0 || done === total) opts.onProgress?.({ phase: 'reading', done, total, source: source.label })
        if (advisory.withdrawn) {
          withdrawn++
          continue
        }
        if (seen.has(advisory.id)) {
          duplicates++
          continue
        }
        seen.add(advisory.id)
        gitOnly += advisory.gitOnly
        const ecosystems = new Set(advisory.entries.map((e) => e.ecosystem))
        for (const ecosystem of ecosystems) {
          const s = perEcosystem.get(ecosystem) ?? { ecosystem, advisories: 0, modified: '' }
          s.advisories++
          if (advisory.modified > s.modified) s.modified = advisory.modified
          perEcosystem.set(ecosystem, s)
        }
        pending.push(...advisory.entries)
        if (pending.length >= BATCH) await flush()
      }
    }
    await flush()
    const notes: string[] = []
    if (withdrawn > 0) notes.push(`${withdrawn} withdrawn advisor${withdrawn === 1 ? 'y' : 'ies'} left out`)
    if (duplicates > 0) notes.push(`${duplicates} advisor${duplicates === 1 ? 'y' : 'ies'} found in more than one source imported once`)
    if (gitOnly > 0) notes.push(`${gitOnly} affected package${gitOnly === 1 ? '' : 's'} described only by GIT (commit) ranges left out: they name commits, not versions`)
    const list = [...perEcosystem.values()].sort((a, b) => (a.ecosystem < b.ecosystem ? -1 : a.ecosystem > b.ecosystem ? 1 : 0))
    return { advisories: seen.size, withdrawn, duplicates, sources: list, notes, total }
  }

  /** The findings of an inventory against the serving database (none before the first import). */
  async match(inv: Inventory): Promise<Finding[]> {
    const active = await this.repo.active()
    if (!active) return []
    const known = (JSON.parse(active.summary) as Summary).sources.map((s) => s.ecosystem)
    const byEcosystem = new Map<string, ScannedPackage[]>()
    for (const p of inv.packages) {
      const list = byEcosystem.get(p.ecosystem)
      if (list) list.push(p)
      else byEcosystem.set(p.ecosystem, [p])
    }
    const findings: Finding[] = []
    const parsed = new Map<VulnDbEntryRow, StoredAffected>()
    for (const [ecosystem, packages] of byEcosystem) {
      const candidates = advisoryEcosystems(ecosystem, known)
      if (candidates.length === 0) continue
      const keys = [...new Set(packages.map((p) => lookupName(p)))]
      const rows = await this.repo.lookup(active.id, candidates, keys)
      const byKey = new Map<string, VulnDbEntryRow[]>()
      for (const r of rows) {
        const list = byKey.get(r.package)
        if (list) list.push(r)
        else byKey.set(r.package, [r])
      }
      for (const p of packages) {
        const seen = new Set<string>()
        const version = matchedAs(p).version
        for (const row of byKey.get(lookupName(p)) ?? []) {
          if (seen.has(row.advisory)) continue
          let affected = parsed.get(row)
          if (!affected) {
            affected = JSON.parse(row.affected) as StoredAffected
            parsed.set(row, affected)
          }
          const hit = affects(row.ecosystem, version, affected)
          if (!hit) continue
          seen.add(row.advisory)
          findings.push({
            id: row.advisory,
            aliases: JSON.parse(row.aliases) as string[],
            package: p.name,
            version: p.version,
            fixedVersion: hit.fixed,
            severity: row.severity as Severity,
            layer: p.layer,
            ecosystem: p.ecosystem,
            purl: p.purl,
            ...(row.summary ? { summary: row.summary } : {}),
          })
        }
      }
    }
    return findings.sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity) || cmp(a.package, b.package) || cmp(a.id, b.id))
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function versionOf(generation: number, activatedAt: number | null): string {
  return `${generation}.${activatedAt ?? 0}`
}

function unprocessable(message: string, cause: unknown): RegistryError {
  return new RegistryError('UNPROCESSABLE', message, { cause: cause instanceof OsvError ? undefined : cause })
}

/**
 * Advisory ecosystems that speak for packages of `ecosystem`: the same name, the bare
 * distribution ('Debian' for 'Debian:12'), and releases of it named more precisely
 * ('Ubuntu:22.04:LTS' for 'Ubuntu:22.04').
 */
export function advisoryEcosystems(ecosystem: OsvEcosystem, known: string[]): string[] {
  const base = baseEcosystem(ecosystem)
  return known.filter((k) => k === ecosystem || (k === base && base !== ecosystem) || k.startsWith(`${ecosystem}:`))
}

/** Debian and Alpine advisories name source packages; RPM distributions' (Red Hat, Rocky, Alma) binary ones. */
function matchedAs(p: ScannedPackage): { name: string; version: string } {
  if (p.purl.startsWith('pkg:rpm/')) return { name: p.name, version: p.version }
  return { name: p.source?.name ?? p.name, version: p.source?.version ?? p.version }
}

function lookupName(p: ScannedPackage): string {
  return packageKey(p.ecosystem, matchedAs(p).name)
}
