import type { FastifyInstance } from 'fastify'

export interface OperabilityOptions {
  ready: () => Promise<void>
  metrics?: () => Promise<{ contentType: string; body: string }>
}

/** /healthz (the process answers), /readyz (storage and database reachable), /metrics. */
export async function operabilityRoutes(app: FastifyInstance, opts: OperabilityOptions): Promise<void> {
  app.get('/healthz', async (_req, reply) => reply.send({ status: 'ok' }))
  app.get('/readyz', async (req, reply) => {
    try {
      await opts.ready()
      return reply.send({ status: 'ready' })
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
