import type { FastifyInstance, preHandlerHookHandler } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import type { JobQueue } from '../../jobs/queue.js'

export interface JobRoutesOptions {
  queue: JobQueue
  /** refuses callers who are not system administrators */
  requireAdmin: preHandlerHookHandler
}

const STATUSES = new Set(['queued', 'running', 'succeeded', 'failed'])

/** The background job queue under /api/v1 (admins): GET /jobs?status=&kind=&limit=&offset=, GET /jobs/{id}. */
export async function jobRoutes(app: FastifyInstance, opts: JobRoutesOptions): Promise<void> {
  app.addHook('preHandler', opts.requireAdmin)

  app.get<{ Querystring: { status?: string; kind?: string; limit?: string; offset?: string } }>('/jobs', async (req) => {
    const { status, kind } = req.query
    const limit = req.query.limit === undefined ? 50 : Number(req.query.limit)
    const offset = req.query.offset === undefined ? 0 : Number(req.query.offset)
    if (status !== undefined && !STATUSES.has(status)) throw RegistryError.invalidField('status', 'queued, running, succeeded or failed')
    if (kind !== undefined && (kind.length === 0 || kind.length > 200)) throw RegistryError.invalidField('kind', 'a job kind (1 to 200 characters)')
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw RegistryError.invalidField('limit', 'an integer from 1 to 1000')
    if (!Number.isInteger(offset) || offset < 0) throw RegistryError.invalidField('offset', 'a non-negative integer')
    return { jobs: await opts.queue.list({ status, kind }, limit, offset) }
  })

  app.get<{ Params: { id: string } }>('/jobs/:id', async (req) => {
    const job = /^[0-9a-f-]{36}$/.test(req.params.id) ? await opts.queue.get(req.params.id) : undefined
    if (!job) throw RegistryError.notFound(`job ${req.params.id}`)
    return job
  })
}
