import type { FastifyInstance, preHandlerHookHandler } from 'fastify'

// GET /api/v1/system/config: the effective configuration (file, BERTH_* variables and defaults
// merged), every secret value masked as `berth config check` masks it. System administrators
// only: it names hosts, buckets and paths.

export interface SystemRoutesOptions {
  /** the effective configuration with its secrets masked */
  config: () => unknown
  /** refuses callers who are not system administrators */
  requireAdmin: preHandlerHookHandler
}

export async function systemRoutes(app: FastifyInstance, opts: SystemRoutesOptions): Promise<void> {
  app.addHook('preHandler', opts.requireAdmin)
  app.get('/system/config', async () => opts.config())
}
