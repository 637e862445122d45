import { sql, type Selectable } from 'kysely'
import { announced, type ChangeFeed } from '../changes.js'
import type { ScanResultsTable } from '../schema.js'
import type { Db } from './repositories.js'

// Queries of vulnerability scanning (src/scan): inventories, results, the finding and package
// rows of the registry-wide queries, and the scan policies. Results and policies are what the
// pull gate caches: their writes announce the 'scan' kind.

export type ScanResultRow = Selectable<ScanResultsTable>

export interface FindingIdRow {
  identifier: string
  vulnId: string
  package: string
  version: string
  fixedVersion: string | null
  severity: string
  purl: string
}

export interface PackageRow {
  packageKey: string
  name: string
  version: string
  ecosystem: string
  purl: string
  layer: string
}

/** What a finished scan of one digest stores. */
export interface ScanOutcome {
  dbVersion: string | null
  scannedAt: number
  /** the findings as JSON */
  findings: string
  /** an index: its platforms as JSON */
  platforms: string | null
  /** one row per identifier (id and aliases) of each finding; none for an index (its platforms hold them) */
  ids: FindingIdRow[]
  /** the external scanner that made it (never re-matched); null or absent: Berth's own */
  scanner?: string | null
}

/** Where a manifest is stored: its repository, and the tags that reach it (its own, its indexes'). */
export interface ManifestHolder {
  digest: string
  repository: string
  tags: string[]
  /** indexes of the same repository that list this manifest */
  indexes: string[]
}

const CHUNK = 400

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK))
  return out
}

export function createScanRepository(db: Db, changes: ChangeFeed) {
  return {
    async inventory(digest: string): Promise<string | undefined> {
      return (await db.selectFrom('scan_inventories').select('inventory').where('digest', '=', digest).executeTakeFirst())?.inventory
    },

    /** Keeps an image's inventory and its package rows (content-addressed: a second save changes nothing). */
    async saveInventory(digest: string, inventory: string, packages: PackageRow[], now: number): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const r = await trx.insertInto('scan_inventories').values({ digest, inventory, created_at: now }).onConflict((oc) => oc.column('digest').doNothing()).executeTakeFirst()
        if (Number(r.numInsertedOrUpdatedRows ?? 0) !== 1) return
        for (const part of chunks(packages)) {
          await trx
            .insertInto('scan_packages')
            .values(part.map((p) => ({ digest, package_key: p.packageKey, name: p.name, version: p.version, ecosystem: p.ecosystem, purl: p.purl, layer: p.layer })))
            .execute()
        }
      })
    },

    async result(digest: string): Promise<ScanResultRow | undefined> {
      return db.selectFrom('scan_results').selectAll().where('digest', '=', digest).executeTakeFirst()
    },

    /** A scan was requested (job `jobId`): pending, keeping the findings of an earlier scan. */
    async markPending(digest: string, jobId: string | null, now: number): Promise<void> {
      await announced(changes, ['scan'], () =>
        db
          .insertInto('scan_results')
          .values({ digest, status: 'pending', job_id: jobId, error: null, db_version: null, scanned_at: null, findings: null, platforms: null, updated_at: now })
          .onConflict((oc) => oc.column('digest').doUpdateSet({ status: 'pending', job_id: jobId, error: null, updated_at: now }))
          .execute(),
      )
    },

    async markRunning(digest: string, jobId: string | null, now: number): Promise<void> {
      await announced(changes, ['scan'], () =>
        db
          .insertInto('scan_results')
          .values({ digest, status: 'running', job_id: jobId, error: null, db_version: null, scanned_at: null, findings: null, platforms: null, updated_at: now })
          .onConflict((oc) => oc.column('digest').doUpdateSet({ status: 'running', job_id: jobId, error: null, updated_at: now }))
          .execute(),
      )
    },

    async markFailed(digest: string, error: string, now: number): Promise<void> {
      await announced(changes, ['scan'], () => db.updateTable('scan_results').set({ status: 'failed', error, updated_at: now }).where('digest', '=', digest).execute())
    },

    /** Stores the findings of a scan or a re-match, replacing the digest's finding rows. */
    async saveResult(digest: string, o: ScanOutcome, now: number): Promise<void> {
      await announced(changes, ['scan'], () =>
        db.transaction().execute(async (trx) => {
          const values = { status: 'done' as const, error: null, db_version: o.dbVersion, scanned_at: o.scannedAt, findings: o.findings, platforms: o.platforms, updated_at: now, scanner: o.scanner ?? null }
          await trx
            .insertInto('scan_results')
            .values({ digest, job_id: null, ...values })
            .onConflict((oc) => oc.column('digest').doUpdateSet(values))
            .execute()
          await trx.deleteFrom('scan_finding_ids').where('digest', '=', digest).execute()
          for (const part of chunks(o.ids)) {
            await trx
              .insertInto('scan_finding_ids')
              .values(part.map((f) => ({ digest, identifier: f.identifier, vuln_id: f.vulnId, package: f.package, version: f.version, fixed_version: f.fixedVersion, severity: f.severity, purl: f.purl })))
              .execute()
          }
        }),
      )
    },

    /**
     * Results matched against another database version than `version` (or none): images first
     * (an index is re-combined from its platforms), oldest first.
     */
    async stale(version: string, limit: number): Promise<ScanResultRow[]> {
      return db
        .selectFrom('scan_results')
        .selectAll()
        .where('scanned_at', 'is not', null)
        .where('status', '=', 'done')
        // An external scanner's results are its own: never re-matched against Berth's database.
        .where('scanner', 'is', null)
        .where((eb) => eb.or([eb('db_version', 'is', null), eb('db_version', '!=', version)]))
        // Images (no platforms) before indexes: an index is re-combined from re-matched platforms.
        .orderBy(sql`case when platforms is null then 0 else 1 end`)
        .orderBy('scanned_at')
        .orderBy('digest')
        .limit(limit)
        .execute()
    },

    async findingsOf(identifier: string): Promise<(FindingIdRow & { digest: string })[]> {
      const rows = await db.selectFrom('scan_finding_ids').selectAll().where('identifier', '=', identifier).orderBy('digest').orderBy('package').execute()
      return rows.map((r) => ({ digest: r.digest, identifier: r.identifier, vulnId: r.vuln_id, package: r.package, version: r.version, fixedVersion: r.fixed_version, severity: r.severity, purl: r.purl }))
    },

    async packagesOf(packageKey: string): Promise<(PackageRow & { digest: string })[]> {
      const rows = await db.selectFrom('scan_packages').selectAll().where('package_key', '=', packageKey).orderBy('digest').orderBy('version').execute()
      return rows.map((r) => ({ digest: r.digest, packageKey: r.package_key, name: r.name, version: r.version, ecosystem: r.ecosystem, purl: r.purl, layer: r.layer }))
    },

    /** The repositories holding these manifests, with the tags that reach each (directly or through an index). */
    async holders(digests: string[]): Promise<ManifestHolder[]> {
      const out = new Map<string, ManifestHolder>()
      const key = (repository: string, digest: string) => `${repository}@${digest}`
      const parents: { repositoryId: number; repository: string; child: string; parent: string }[] = []
      const ids = new Map<number, string>()
      for (const part of chunks([...new Set(digests)])) {
        const rows = await db.selectFrom('manifests as m').innerJoin('repositories as r', 'r.id', 'm.repository_id').select(['m.digest', 'r.name', 'r.id']).where('m.digest', 'in', part).execute()
        for (const r of rows) {
          out.set(key(r.name, r.digest), { digest: r.digest, repository: r.name, tags: [], indexes: [] })
          ids.set(Number(r.id), r.name)
        }
        const refs = await db
          .selectFrom('manifest_references as mr')
          .innerJoin('manifests as p', 'p.id', 'mr.manifest_id')
          .innerJoin('repositories as r', 'r.id', 'p.repository_id')
          .select(['mr.digest as child', 'p.digest as parent', 'r.id', 'r.name'])
          .where('mr.kind', '=', 'manifest')
          .where('mr.digest', 'in', part)
          .execute()
        for (const r of refs) parents.push({ repositoryId: Number(r.id), repository: r.name, child: r.child, parent: r.parent })
      }
      const tagged = new Map<string, string[]>()
      const wanted = [...new Set([...out.values()].map((h) => h.digest).concat(parents.map((p) => p.parent)))]
      for (const part of chunks(wanted)) {
        const rows = await db.selectFrom('tags as t').innerJoin('repositories as r', 'r.id', 't.repository_id').select(['t.name', 't.manifest_digest', 'r.name as repository']).where('t.manifest_digest', 'in', part).execute()
        for (const t of rows) {
          const k = key(t.repository, t.manifest_digest)
          tagged.set(k, [...(tagged.get(k) ?? []), t.name])
        }
      }
      for (const h of out.values()) h.tags.push(...(tagged.get(key(h.repository, h.digest)) ?? []))
      for (const p of parents) {
        const h = out.get(key(p.repository, p.child))
        if (!h) continue
        h.indexes.push(p.parent)
        h.tags.push(...(tagged.get(key(p.repository, p.parent)) ?? []))
      }
      for (const h of out.values()) h.tags = [...new Set(h.tags)].sort()
      return [...out.values()].sort((a, b) => (a.repository === b.repository ? a.digest.localeCompare(b.digest) : a.repository.localeCompare(b.repository)))
    },

    // --- scan policies ('*' is the system allowlist) -------------------------------------------

    async policies(): Promise<{ scope: string; definition: string }[]> {
      return db.selectFrom('scan_policies').select(['scope', 'definition']).orderBy('scope').execute()
    },

    async setPolicy(scope: string, definition: string, now: number): Promise<void> {
      await announced(changes, ['scan'], () =>
        db
          .insertInto('scan_policies')
          .values({ scope, definition, updated_at: now })
          .onConflict((oc) => oc.column('scope').doUpdateSet({ definition, updated_at: now }))
          .execute(),
      )
    },
  }
}

export type ScanRepository = ReturnType<typeof createScanRepository>
