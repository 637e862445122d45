import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Registry } from '../../registry/registry.js'
import { requireDigest, requireName } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { isAlgorithm } from '../../oci/digest.js'
import { parseContentRange, type ByteRange } from '../../oci/range.js'
import { streamBody, streamBodyOrEmpty } from './body.js'
import type { V2Request } from './route.js'
import type { UrlBuilder } from './urls.js'

export function uploadHandlers(registry: Registry, urls: UrlBuilder, minChunk: number) {
  const sessionHeaders = (reply: FastifyReply, name: string, id: string, size: number) =>
    reply
      .header('location', urls.upload(name, id))
      .header('docker-upload-uuid', id)
      .header('range', `0-${Math.max(size - 1, 0)}`)
      .header('content-length', 0)

  const created = (reply: FastifyReply, name: string, digest: string) =>
    reply.code(201).header('location', urls.blob(name, digest)).header('docker-content-digest', digest).header('content-length', 0).send()

  /** The Content-Range of a chunk (PATCH, or the last chunk of a PUT); malformed → 416. */
  const chunkRange = async (req: FastifyRequest, name: string, id: string): Promise<ByteRange | undefined> => {
    const header = req.headers['content-range']
    if (header === undefined) return undefined
    const range = parseContentRange(header)
    if (range) return range
    const current = await registry.uploads.status(name, id)
    throw RegistryError.rangeInvalid('malformed Content-Range', current.size)
  }

  return {
    /** Start a session, upload monolithically (?digest=) or mount (?mount=&from=). */
    async POST({ req, reply, name, ref, query }: V2Request) {
      if (ref !== '') throw new RegistryError('UNSUPPORTED', 'POST is not supported on an upload session URL')
      const mount = query.get('mount')
      if (mount !== null) {
        const digest = requireDigest(mount)
        const from = query.get('from')
        if (from !== null && (await registry.blobs.mount(name, digest, requireName(from))) !== undefined) {
          return created(reply, name, digest.value)
        }
        // The source does not hold the blob: fall back to a normal upload session (spec: 202).
      }
      const digestParam = query.get('digest')
      if (digestParam !== null && mount === null) {
        const digest = requireDigest(digestParam)
        await registry.uploads.monolithic(name, digest, streamBodyOrEmpty(req))
        return created(reply, name, digest.value)
      }
      const algorithm = query.get('digest-algorithm') ?? 'sha256'
      if (!isAlgorithm(algorithm)) {
        throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm ${algorithm.slice(0, 32)}`, { detail: { supported: ['sha256', 'sha512'] } })
      }
      const session = await registry.uploads.start(name, algorithm)
      if (minChunk > 0) reply.header('oci-chunk-min-length', minChunk)
      return sessionHeaders(reply, name, session.id, 0).code(202).send()
    },

    async PATCH({ req, reply, name, ref }: V2Request) {
      const range = await chunkRange(req, name, ref)
      const body = streamBody(req) ?? { stream: req.raw, length: 0 }
      const session = await registry.uploads.append(name, ref, body, range)
      return sessionHeaders(reply, name, session.id, session.size).code(202).send()
    },

    async PUT({ req, reply, name, ref, query }: V2Request) {
      const digestParam = query.get('digest')
      if (digestParam === null) throw RegistryError.digestInvalid('the digest query parameter is required to close an upload')
      const digest = requireDigest(digestParam)
      const range = await chunkRange(req, name, ref)
      await registry.uploads.finish(name, ref, digest, streamBody(req), range)
      return created(reply, name, digest.value)
    },

    async GET({ reply, name, ref }: V2Request) {
      const session = await registry.uploads.status(name, ref)
      return sessionHeaders(reply, name, session.id, session.size).code(204).send()
    },

    async DELETE({ reply, name, ref }: V2Request) {
      await registry.uploads.cancel(name, ref)
      return reply.code(204).send()
    },
  }
}
