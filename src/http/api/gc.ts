import type { FastifyInstance, preHandlerHookHandler } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import type { GcService } from '../../gc/gc-service.js'

export interface GcRoutesOptions {
  gc: GcService
  /** refuses callers who are not system administrators (apiRoutes' adminOnly) */
  requireAdmin: preHandlerHookHandler
  /** the GC cron schedule kept in the database (GET/PUT /gc/schedule) */
  schedule?: {
    get(): Promise<unknown>
    /** validates {"schedule": "<cron>" | "" | null}; throws INVALID_FIELD */
    set(body: unknown): Promise<unknown>
  }
}

/**
 * Garbage collection under /api/v1: POST /gc {"dryRun":bool} → 202 {"id"}; GET /gc/{id} → the
 * run record with the deleted digests; GET /gc/history → the latest runs; GET|PUT /gc/schedule →
 * the cron schedule kept in the database. Admins only. Registered by apiRoutes (its caller
 * check and error rendering apply).
 */
export async function gcRoutes(app: FastifyInstance, opts: GcRoutesOptions): Promise<void> {
  app.addHook('preHandler', opts.requireAdmin)

  app.post<{ Body: { dryRun?: unknown } | undefined }>('/gc', async (req, reply) => {
    const body = req.body ?? {}
    if (typeof body !== 'object' || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object')
    if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw RegistryError.invalidField('dryRun', 'a boolean')
    const { id, done } = await opts.gc.start({ trigger: 'api', dryRun: body.dryRun === true })
    // The outcome is in the run record; a failure is logged and recorded there.
    done.catch((err: unknown) => req.log.error({ err, runId: id }, 'garbage collection run failed'))
    return reply.code(202).header('location', `/api/v1/gc/${id}`).send({ id })
  })

  app.get<{ Querystring: { limit?: string; offset?: string } }>('/gc/history', async (req) => {
    const limit = req.query.limit === undefined ? 50 : Number(req.query.limit)
    const offset = req.query.offset === undefined ? 0 : Number(req.query.offset)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw RegistryError.invalidField('limit', 'an integer from 1 to 1000')
    if (!Number.isInteger(offset) || offset < 0) throw RegistryError.invalidField('offset', 'a non-negative integer')
    return { runs: await opts.gc.history(limit, offset) }
  })

  // Blobs that scrub took out of service (until a re-push heals them).
  app.get<{ Querystring: { limit?: string; offset?: string } }>('/gc/quarantine', async (req) => {
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit)
    const offset = req.query.offset === undefined ? 0 : Number(req.query.offset)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw RegistryError.invalidField('limit', 'an integer from 1 to 1000')
    if (!Number.isInteger(offset) || offset < 0) throw RegistryError.invalidField('offset', 'a non-negative integer')
    const rows = await opts.gc.repo.quarantined(limit, offset)
    return { blobs: rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() })) }
  })

  // The cron schedule of GC runs: set here it wins over gc.schedule; "" or null clears it.
  const sched = opts.schedule
  if (sched) {
    app.get('/gc/schedule', async () => sched.get())
    app.put<{ Body: unknown }>('/gc/schedule', async (req) => sched.set(req.body ?? {}))
  }

  app.get<{ Params: { id: string } }>('/gc/:id', async (req) => {
    const record = /^[0-9a-f-]{36}$/.test(req.params.id) ? await opts.gc.get(req.params.id, { items: true }) : undefined
    if (!record) throw RegistryError.notFound(`gc run ${req.params.id}`)
    return record
  })
}
