import { parseByteRate, parseRequestRate, type Rate } from '../config/rate.js'
import { RegistryError } from '../errors/registry-error.js'
import { announced, type Generation } from '../metadata/changes.js'
import type { MetadataDb } from '../metadata/metadata-db.js'

/** A project's limits as set through the API: the rates as written ("100/m", "10MiB/s"), null for none. */
export interface ProjectLimitsBody {
  requests: string | null
  bytes: string | null
}

/** A project's limits, parsed. */
export interface ProjectLimits {
  requests?: Rate
  bytes?: Rate
}

/** How often this node looks whether another node changed a project's limits (a number compared; a query only then). */
const CHECK_MS = 2000

/**
 * The limits of every project, held in memory (a small table, read whole) and read again when
 * projects change on any node (the `project` change kind: PostgreSQL notifications, SQLite's
 * data_version), so a request never queries it.
 */
export class ProjectLimitStore {
  private byName = new Map<string, ProjectLimits>()
  private readonly generation: Generation
  private seen: number | undefined
  private timer?: NodeJS.Timeout
  private loading?: Promise<void>

  constructor(
    private readonly metadata: MetadataDb,
    private readonly changed: () => void,
  ) {
    this.generation = metadata.changes.generation(['project'])
  }

  async start(): Promise<void> {
    await this.load()
    this.timer = setInterval(() => {
      const now = this.generation()
      if (now !== undefined && now === this.seen) return
      this.loading ??= this.load()
        .catch(() => undefined)
        .finally(() => (this.loading = undefined))
    }, CHECK_MS)
    this.timer.unref()
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
  }

  get(project: string): ProjectLimits | undefined {
    return this.byName.get(project)
  }

  any(): boolean {
    return this.byName.size > 0
  }

  /** A project's limits as stored (404 when the project does not exist). */
  async read(project: string): Promise<ProjectLimitsBody> {
    const { db } = this.metadata
    const row = await db
      .selectFrom('projects')
      .leftJoin('project_limits', 'project_limits.project_id', 'projects.id')
      .select(['project_limits.requests', 'project_limits.bytes'])
      .where('projects.name', '=', project)
      .executeTakeFirst()
    if (!row) throw RegistryError.notFound(`project ${project}`)
    return { requests: row.requests ?? null, bytes: row.bytes ?? null }
  }

  /** Replaces a project's limits (both null: none); bad rates are 400 INVALID_FIELD. */
  async write(project: string, body: unknown): Promise<ProjectLimitsBody> {
    const limits = validBody(body)
    const { db } = this.metadata
    const found = await db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst()
    if (!found) throw RegistryError.notFound(`project ${project}`)
    await announced(this.metadata.changes, ['project'], async () => {
      if (limits.requests === null && limits.bytes === null) {
        await db.deleteFrom('project_limits').where('project_id', '=', found.id).execute()
        return
      }
      const values = { requests: limits.requests, bytes: limits.bytes, updated_at: Date.now() }
      await db
        .insertInto('project_limits')
        .values({ project_id: found.id, ...values })
        .onConflict((oc) => oc.column('project_id').doUpdateSet(values))
        .execute()
    })
    await this.load()
    return limits
  }

  private async load(): Promise<void> {
    const seen = this.generation()
    const rows = await this.metadata.db
      .selectFrom('project_limits')
      .innerJoin('projects', 'projects.id', 'project_limits.project_id')
      .select(['projects.name', 'project_limits.requests', 'project_limits.bytes'])
      .execute()
    const next = new Map<string, ProjectLimits>()
    for (const row of rows) {
      const limits: ProjectLimits = {}
      const requests = row.requests ? parseRequestRate(row.requests) : undefined
      const bytes = row.bytes ? parseByteRate(row.bytes) : undefined
      if (requests) limits.requests = requests
      if (bytes) limits.bytes = bytes
      if (requests || bytes) next.set(row.name, limits)
    }
    this.byName = next
    this.seen = seen
    this.changed()
  }
}

function validBody(body: unknown): ProjectLimitsBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'expected an object {"requests": "100/m" | null, "bytes": "10MiB/s" | null}')
  const given = body as Record<string, unknown>
  for (const key of Object.keys(given)) if (key !== 'requests' && key !== 'bytes') throw RegistryError.invalidField(key, 'unknown field (expected requests, bytes)')
  const rate = (field: 'requests' | 'bytes', parse: (text: string) => Rate | undefined, example: string): string | null => {
    const value = given[field]
    if (value === undefined || value === null) return null
    if (typeof value !== 'string' || !parse(value)) throw RegistryError.invalidField(field, `expected a rate such as ${example}, or null for none`)
    return value.trim()
  }
  return { requests: rate('requests', parseRequestRate, '"100/s", "600/m" or "5000/h"'), bytes: rate('bytes', parseByteRate, '"10MiB/s" or "1GB/m"') }
}
