import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import type { Body } from '../../registry/upload-service.js'
import { throttled } from '../rate-limits.js'

/** Content-Length as a number; undefined when absent. */
export function contentLength(req: FastifyRequest): number | undefined {
  const header = req.headers['content-length']
  if (header === undefined) return undefined
  const n = Number(header)
  if (!Number.isSafeInteger(n) || n < 0) throw new RegistryError('SIZE_INVALID', 'invalid Content-Length')
  return n
}

/**
 * Whether a request sends a body of a length it did not announce: HTTP/1.1 chunked, or an
 * HTTP/2 request without Content-Length whose headers did not end the stream (HTTP/2 has no
 * Transfer-Encoding: its bodies are DATA frames until the stream ends).
 */
export function unannouncedBody(raw: { headers: IncomingHttpHeaders; httpVersionMajor: number; stream?: unknown }): boolean {
  if (raw.headers['transfer-encoding'] !== undefined) return true
  if (raw.httpVersionMajor !== 2 || raw.headers['content-length'] !== undefined) return false
  return (raw.stream as { endAfterHeaders?: boolean } | undefined)?.endAfterHeaders === false
}

/** Whether a request carries a body (announced or not). */
export function hasBody(raw: { headers: IncomingHttpHeaders; httpVersionMajor: number; stream?: unknown }): boolean {
  const length = raw.headers['content-length']
  return (length !== undefined && length !== '0') || unannouncedBody(raw)
}

/** The request body as a stream, or undefined when the request carries none. */
export function streamBody(req: FastifyRequest): Body | undefined {
  const length = contentLength(req)
  const chunked = unannouncedBody(req.raw)
  if (!chunked && (length === undefined || length === 0)) return undefined
  return { stream: throttled(req, req.raw), length: chunked ? undefined : length }
}

/** A stream body even when it is empty (monolithic uploads of empty blobs are legal). */
export function streamBodyOrEmpty(req: FastifyRequest): Body {
  return streamBody(req) ?? { stream: req.raw, length: 0 }
}

/**
 * Reads a bounded body (manifests). The limit is enforced by counting bytes as they arrive, not
 * only by trusting Content-Length.
 */
export async function readBounded(req: FastifyRequest, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new RegistryError('MANIFEST_INVALID', `manifest exceeds the ${limit} byte limit`, { status: 413, detail: { limit }, headers: { connection: 'close' } })
  const length = contentLength(req)
  if (length !== undefined && length > limit) throw tooLarge()
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of req.raw as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > limit) throw tooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, total)
}
