import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { Logger } from 'pino'
import { splitAddr } from '../config/addr.js'

/**
 * /metrics on a listener of its own (metrics.addr), as Distribution's debug address: the
 * figures stay off the public port, for a scraper on a private network or loopback. It answers
 * GET /metrics and nothing else.
 */
export async function listenMetrics(addr: string, render: () => Promise<{ contentType: string; body: string }>, log: Pick<Logger, 'error'>): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain; charset=utf-8' }).end(path === '/metrics' ? 'method not allowed\n' : 'not found: this listener serves /metrics only\n')
      return
    }
    render().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) }).end(req.method === 'HEAD' ? undefined : body),
      (err: unknown) => {
        log.error({ err }, 'metrics could not be rendered')
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('internal error\n')
      },
    )
  })
  const { host, port } = splitAddr(addr)
  server.listen(port, host)
  try {
    await once(server, 'listening')
  } catch (err) {
    throw new Error(`metrics.addr ${addr}: ${(err as Error).message}`)
  }
  return server
}
