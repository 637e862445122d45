import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { Tracing } from './types.js'

export type { RequestTracing, Tracing } from './types.js'

// OpenTelemetry tracing, off by default (tracing.enabled). The OpenTelemetry SDK is imported only
// when tracing is on, and nothing here runs when it is off: the server, the registry services,
// the storage driver and the database are then the same objects as without this module.

/** Tracing as configured; undefined when tracing.enabled is false (nothing is loaded then). */
export async function openTracing(config: Config['tracing'], log: Logger): Promise<Tracing | undefined> {
  if (!config.enabled || !config.endpoint) return undefined
  const { startTracing } = await import('./otel.js')
  const tracing = startTracing({ endpoint: config.endpoint, serviceName: config.serviceName, sampleRatio: config.sampleRatio, headers: config.headers, log })
  log.info({ endpoint: withoutCredentials(config.endpoint), serviceName: config.serviceName, sampleRatio: config.sampleRatio }, 'OpenTelemetry tracing enabled')
  return tracing
}

/** A URL without its user and password, for logs. */
function withoutCredentials(url: string): string {
  const u = new URL(url)
  u.username = ''
  u.password = ''
  return u.toString()
}
