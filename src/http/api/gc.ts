import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import type { GcService } from '../../gc/gc-service.js'
import type { AuthService } from '../../auth/service.js'
import { safeEqual } from '../../auth/passwords.js'
import { identify } from '../auth/credentials.js'

export interface GcRoutesOptions {
  gc: GcService
  /** refuses callers who are not system administrators (wired by the caller: see app.ts) */
  requireAdmin: preHandlerAsyncHookHandler
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
 * the cron schedule kept in the database. Admins only.
 */
export async function gcRoutes(app: FastifyInstance, opts: GcRoutesOptions): Promise<void> {
  app.setErrorHandler((err, req, reply) => problem(err, req, reply))
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

/** The /api problem+json rendering of an error (for plugins registered beside apiRoutes). */
export function problem(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  let e: RegistryError
  if (err instanceof RegistryError) e = err
  else if ((err as { statusCode?: number }).statusCode === 400 || (err as { validation?: unknown }).validation) e = RegistryError.invalidField('body', (err as Error).message)
  else e = new RegistryError('UNKNOWN', 'internal error', { cause: err })
  if (e.statusCode >= 500) req.log.error({ err }, 'api request failed')
  const detail = e.detail as { field?: string } | null
  for (const [k, v] of Object.entries(e.headers)) reply.header(k, v)
  return reply
    .code(e.statusCode)
    .header('content-type', 'application/problem+json')
    .send(JSON.stringify({ type: 'about:blank', title: e.code, status: e.statusCode, detail: e.message, code: e.code, ...(detail?.field ? { field: detail.field } : {}) }))
}

/**
 * The admin check of the /api/v1 management API for gcRoutes: the caller's credentials (Basic,
 * Bearer, or the UI session cookie with its CSRF token on writes) must name a system
 * administrator. With auth.enabled false there are no accounts, and the open registry lets
 * anyone trigger GC (as it lets anyone delete).
 */
export function adminOnly(auth: AuthService, authEnabled: boolean): preHandlerAsyncHookHandler {
  return async (req) => {
    if (!authEnabled) return
    const caller = await identify(req, auth, { cookies: true })
    if (caller.scheme === 'cookie' && req.method !== 'GET' && req.method !== 'HEAD') {
      const sent = req.headers['x-csrf-token']
      if (typeof sent !== 'string' || !caller.claims?.csrf || !safeEqual(sent, caller.claims.csrf)) throw RegistryError.denied('missing or wrong X-CSRF-Token')
    }
    const p = caller.principal
    if (p.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'sign in first')
    if (p.kind !== 'user' || !p.admin) throw RegistryError.denied('system administrators only')
  }
}
