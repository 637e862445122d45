import type { Registry } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { readBounded } from './body.js'
import type { V2Request } from './route.js'
import type { UrlBuilder } from './urls.js'

export function manifestHandlers(registry: Registry, urls: UrlBuilder, maxSize: number, countOut: (n: number) => void) {
  return {
    async GET({ reply, name, ref, req }: V2Request) {
      const head = req.method === 'HEAD'
      const m = await registry.manifests.get(name, ref, { pull: !head })
      reply.header('content-type', m.mediaType).header('docker-content-digest', m.digest).header('etag', `"${m.digest}"`).header('content-length', m.size)
      if (m.subjectDigest) reply.header('oci-subject', m.subjectDigest)
      if (head) return reply.code(200).send()
      countOut(m.size)
      return reply.code(200).send(m.content)
    },

    async PUT({ req, reply, name, ref, query }: V2Request) {
      const body = await readBounded(req, maxSize)
      const result = await registry.manifests.put(name, ref, body, req.headers['content-type'], query.getAll('tag'))
      reply.header('location', urls.manifest(name, result.digest)).header('docker-content-digest', result.digest).header('content-length', 0)
      if (result.subject) reply.header('oci-subject', result.subject)
      if (result.tags.length > 0) reply.header('oci-tag', result.tags)
      return reply.code(201).send()
    },

    async DELETE({ reply, name, ref }: V2Request) {
      await registry.manifests.delete(name, ref)
      return reply.code(202).header('content-length', 0).send()
    },
  }
}

export function referrersHandler(registry: Registry) {
  return async ({ reply, name, ref, query }: V2Request) => {
    const artifactType = query.get('artifactType') ?? undefined
    const index = await registry.manifests.referrers(name, ref, artifactType)
    if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType')
    return reply.code(200).header('content-type', 'application/vnd.oci.image.index.v1+json').send(Buffer.from(JSON.stringify(index)))
  }
}

export function notAllowed(method: string): never {
  throw new RegistryError('UNSUPPORTED', `${method} is not supported on this endpoint`)
}
