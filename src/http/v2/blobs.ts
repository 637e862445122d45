import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import { isDirectSource, type DirectSource } from '../../registry/blob-service.js'
import type { Registry } from '../../registry/registry.js'
import { requireDigest } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { parseRangeHeader } from '../../oci/range.js'
import type { V2Request } from './route.js'

export function blobHandlers(registry: Registry, countOut: (n: number) => void) {
  return {
    async GET({ req, reply, name, ref }: V2Request) {
      const digest = requireDigest(ref)
      const { size, unverified } = await registry.blobs.find(name, digest)
      reply.headers(blobHeaders(digest.value))
      if (req.method === 'HEAD') return reply.code(200).header('content-length', size).send()
      // storage.s3.redirect: the client fetches the bytes (and any Range) from the store itself,
      // once Berth has checked them (an adopted blob is hashed on its first read, here).
      const location = unverified ? undefined : await registry.blobs.redirectUrl(digest, 'GET')
      // A first read may end in BLOB_UNKNOWN (the bytes did not match): no cache keeps its answer.
      if (unverified) reply.header('cache-control', 'no-store')
      if (location) return reply.code(307).removeHeader('cache-control').header('location', location).header('content-length', 0).send()
      return sendBlobBytes(req, reply, size, (start, length) => registry.blobs.open(digest, size, start, length, { verify: unverified }), countOut)
    },

    async DELETE({ reply, name, ref }: V2Request) {
      await registry.blobs.delete(name, requireDigest(ref))
      return reply.code(202).header('content-length', 0).send()
    },
  }
}

/** The bytes of a blob GET: all of them (200), or the one range the client asked for (206). */
export async function sendBlobBytes(
  req: FastifyRequest,
  reply: FastifyReply,
  size: number,
  open: (start: number, length: number | undefined) => Promise<Readable>,
  countOut: (n: number) => void,
): Promise<unknown> {
  const range = parseRangeHeader(req.headers.range, size)
  if (range === 'unsatisfiable') {
    // No spec code names a download range; UNSUPPORTED is "an invalid set of parameters".
    throw new RegistryError('UNSUPPORTED', 'requested range is not satisfiable', { headers: { 'content-range': `bytes */${size}` }, detail: { size }, status: 416 })
  }
  if (range) {
    const length = range.end - range.start + 1
    const stream = await open(range.start, length)
    countOut(length)
    return send(reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', length), stream)
  }
  const stream = await open(0, undefined)
  countOut(size)
  return send(reply.code(200).header('content-length', size), stream)
}

/** The headers of a blob GET or HEAD but its length (shared with the pull fast path). */
export function blobHeaders(digest: string): OutgoingHttpHeaders {
  return {
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'accept-ranges': 'bytes',
    'content-type': 'application/octet-stream',
    'cache-control': 'max-age=31536000',
  }
}

function send(reply: FastifyReply, stream: Readable): FastifyReply | Promise<void> {
  // Under a byte limit the bytes go through its throttle, at its pace.
  const throttle = reply.request.berthThrottle
  if (throttle) return reply.send(throttle(stream))
  return isDirectSource(stream) ? sendDirect(reply, stream) : reply.send(stream)
}

/**
 * Writes the status, headers and bytes straight to the socket, bypassing the stream pipe.
 * Fastify's response hooks (metrics, access log) still run when the response finishes; a
 * failure mid-body can only cut the connection, as a broken pipe would.
 */
async function sendDirect(reply: FastifyReply, source: DirectSource): Promise<void> {
  reply.hijack()
  const res = reply.raw
  res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)
  try {
    await source.sendTo(res)
    res.end()
  } catch (err) {
    if (!res.destroyed) reply.log.warn({ err }, 'blob download ended early')
    res.destroy()
  }
}
