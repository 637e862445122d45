import type { FastifyInstance } from 'fastify'

export interface OperabilityOptions {
  /** throws when not ready; resolves with warnings (e.g. low disk space) that leave it ready */
  ready: () => Promise<string[]>
  metrics?: () => Promise<{ contentType: string; body: string }>
}

/** /healthz (the process answers), /readyz (storage and database reachable), /metrics. */
export async function operabilityRoutes(app: FastifyInstance, opts: OperabilityOptions): Promise<void> {
  app.get('/healthz', async (_req, reply) => reply.send({ status: 'ok' }))
  app.get('/readyz', async (req, reply) => {
    try {
      const warnings = await opts.ready()
      if (warnings.length === 0) return reply.send({ status: 'ready' })
      req.log.warn({ warnings }, 'ready, with warnings')
      return reply.send({ status: 'ready', warnings })
    } catch (err) {
      req.log.warn({ err }, 'not ready')
      return reply.code(503).send({ status: 'unavailable', reason: (err as Error).message })
    }
  })
  const metrics = opts.metrics
  if (metrics) {
    app.get('/metrics', async (_req, reply) => {
      const { contentType, body } = await metrics()
      return reply.header('content-type', contentType).send(body)
    })
  }
}
