import type { OutgoingHttpHeaders } from 'node:http'
import type { Registry } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { readBounded } from './body.js'
import type { V2Request } from './route.js'
import type { UrlBuilder } from './urls.js'
import type { EventActor } from '../../registry/registry.js'
import { isScannerPull, principalName } from '../../auth/principal.js'
import type { PullGates } from '../../policy/pull-gate.js'

export function manifestHandlers(registry: Registry, urls: UrlBuilder, maxSize: number, countOut: (n: number) => void, gates?: PullGates) {
  return {
    async GET({ reply, name, ref, req, caller }: V2Request) {
      const head = req.method === 'HEAD'
      const gated = !head && gates !== undefined && !gates.empty && !isScannerPull(caller?.principal)
      // A gated pull is counted once the gates let it through.
      const m = await registry.manifests.get(name, ref, { pull: !head && !gated })
      if (gated) {
        const refused = await gates.check(name, m.digest, m.mediaType)
        if (refused) throw refused
        registry.manifests.pulled(name, m)
      }
      reply.headers(manifestHeaders(m))
      if (head) return reply.code(200).send()
      countOut(m.size)
      return reply.code(200).send(m.content)
    },

    async PUT(r: V2Request) {
      const { req, reply, name, ref, query } = r
      const body = await readBounded(req, maxSize)
      const result = await registry.manifests.put(name, ref, body, req.headers['content-type'], query.getAll('tag'), { actor: actorOf(r) })
      reply.header('location', urls.manifest(name, result.digest)).header('docker-content-digest', result.digest).header('content-length', 0)
      if (result.subject) reply.header('oci-subject', result.subject)
      if (result.tags.length > 0) reply.header('oci-tag', result.tags)
      return reply.code(201).send()
    },

    async DELETE(r: V2Request) {
      const { reply, name, ref } = r
      await registry.manifests.delete(name, ref, { actor: actorOf(r) })
      return reply.code(202).header('content-length', 0).send()
    },
  }
}

/** Who made a request, for the events it causes. */
export function actorOf({ req, caller }: V2Request): EventActor {
  const p = caller?.principal
  return {
    name: p ? principalName(p) : 'anonymous',
    kind: p?.kind ?? 'anonymous',
    addr: req.ip,
    requestId: String(req.id),
    host: req.headers.host ?? '',
    method: req.method,
    userAgent: req.headers['user-agent'] ?? '',
  }
}

/** The headers of a manifest GET or HEAD (shared with the pull fast path). */
export function manifestHeaders(m: { mediaType: string; digest: string; size: number; subjectDigest: string | null }): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { 'content-type': m.mediaType, 'docker-content-digest': m.digest, etag: `"${m.digest}"`, 'content-length': m.size }
  if (m.subjectDigest) headers['oci-subject'] = m.subjectDigest
  return headers
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
