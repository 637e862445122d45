import type { Registry } from '../../registry/registry.js'
import { requireDigest } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { parseRangeHeader } from '../../oci/range.js'
import type { V2Request } from './route.js'

export function blobHandlers(registry: Registry, countOut: (n: number) => void) {
  return {
    async GET({ req, reply, name, ref }: V2Request) {
      const digest = requireDigest(ref)
      const size = await registry.blobs.stat(name, digest)
      reply
        .header('docker-content-digest', digest.value)
        .header('etag', `"${digest.value}"`)
        .header('accept-ranges', 'bytes')
        .header('content-type', 'application/octet-stream')
        .header('cache-control', 'max-age=31536000')
      if (req.method === 'HEAD') return reply.code(200).header('content-length', size).send()
      // storage.s3.redirect: the client fetches the bytes (and any Range) from the store itself.
      const location = await registry.blobs.redirectUrl(digest, 'GET')
      if (location) return reply.code(307).removeHeader('cache-control').header('location', location).header('content-length', 0).send()
      const range = parseRangeHeader(req.headers.range, size)
      if (range === 'unsatisfiable') {
        throw new RegistryError('RANGE_INVALID', 'requested range is not satisfiable', { headers: { 'content-range': `bytes */${size}` }, detail: { size } })
      }
      if (range) {
        const length = range.end - range.start + 1
        const stream = await registry.blobs.open(digest, size, range.start, length)
        countOut(length)
        return reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', length).send(stream)
      }
      const stream = await registry.blobs.open(digest, size)
      countOut(size)
      return reply.code(200).header('content-length', size).send(stream)
    },

    async DELETE({ reply, name, ref }: V2Request) {
      await registry.blobs.delete(name, requireDigest(ref))
      return reply.code(202).header('content-length', 0).send()
    },
  }
}
