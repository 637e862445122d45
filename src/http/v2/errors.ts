import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import { toOciEnvelope } from '../../errors/envelope.js'

const CLIENT_GONE = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_DESTROYED'])

/** Renders any error of the /v2 scope as the spec's envelope; internals never reach the client. */
export function renderV2Error(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const e = toRegistryError(err, req)
  if (req.raw.socket?.destroyed || reply.raw.destroyed) {
    req.log.info({ status: 499, reason: (err as Error).message }, 'client disconnected')
    reply.code(499)
    return reply.send()
  }
  if (e.statusCode >= 500) req.log.error({ err }, 'request failed')
  else req.log.info(refusal(e), 'request refused')
  const answer = errorAnswer(e, req.method)
  reply.code(e.statusCode).headers(answer.headers)
  return answer.body === undefined ? reply.send() : reply.send(answer.body)
}

/** The log fields of a refused request. */
export function refusal(e: RegistryError): { code: string; status: number; reason: string } {
  return { code: e.code, status: e.statusCode, reason: e.message }
}

/** The headers and body of an error answer (shared with the pull fast path). */
export function errorAnswer(e: RegistryError, method: string): { headers: OutgoingHttpHeaders; body?: string } {
  const body = JSON.stringify(toOciEnvelope(e))
  // A HEAD answer announces the length its GET would have (RFC 9110), as Distribution does:
  // without it, clients such as undici cannot tell where the response ends and drop the
  // connection after every refused HEAD — the common "does this blob exist?" of a push.
  const headers: OutgoingHttpHeaders = { ...e.headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }
  return method === 'HEAD' ? { headers } : { headers, body }
}

function toRegistryError(err: unknown, req: FastifyRequest): RegistryError {
  if (err instanceof RegistryError) return err
  const e = err as { code?: string; statusCode?: number; message?: string }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new RegistryError('SIZE_INVALID', 'request body too large', { status: 413 })
  // A reset only means "the client's body ended early" when the request stream itself broke;
  // the same codes from the database or S3 connection are an outage (503), not a bad request.
  if (e.code && CLIENT_GONE.has(e.code) && (req.raw.readableAborted || req.raw.errored)) {
    return new RegistryError('BLOB_UPLOAD_INVALID', 'request body ended early')
  }
  if (e.code && CLIENT_GONE.has(e.code)) return new RegistryError('UNAVAILABLE', 'a backend connection was reset; retry', { cause: err })
  if (e.statusCode === 400) return new RegistryError('UNSUPPORTED', e.message ?? 'bad request', { status: 400 })
  if (isUnavailable(err)) return new RegistryError('UNAVAILABLE', 'the metadata database is unavailable; retry', { cause: err })
  // SQLite's file system is full: like a full blob store, 507 that clients may retry later.
  if (e.code === 'SQLITE_FULL') {
    return new RegistryError('UNAVAILABLE', 'the metadata database is out of space; retry later or ask the administrator to free space', {
      cause: err,
      status: 507,
      headers: { 'retry-after': '60', connection: 'close' },
    })
  }
  return new RegistryError('UNKNOWN', 'internal error', { cause: err })
}

/**
 * The database is down or busy (PostgreSQL connection errors, operator shutdown, out of
 * resources; SQLite busy): 503, which clients retry, rather than 500.
 */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown }
  if (typeof e.code === 'string' && (/^(08|57P|53)/.test(e.code) || e.code.startsWith('SQLITE_BUSY'))) return true
  return typeof e.message === 'string' && /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(e.message)
}
