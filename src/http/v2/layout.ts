import type { Readable } from 'node:stream'
import { isScannerPull } from '../../auth/principal.js'
import { RegistryError } from '../../errors/registry-error.js'
import type { Descriptor } from '../../oci/manifest.js'
import type { PullGates } from '../../policy/pull-gate.js'
import { requireDigest } from '../../registry/registry.js'
import { blobHeaders, sendBlobBytes } from './blobs.js'
import { sendTagPage } from './lists.js'
import { manifestHeaders } from './manifests.js'
import type { Operation, V2Request } from './route.js'
import type { UrlBuilder } from './urls.js'

/** What /v2 asks of the layout-backed projects (src/layout): read-only repositories served from an OCI image layout. */
export interface V2Layout {
  /** from memory: whether a request for this repository may be served from a layout (the pull fast path leaves those alone) */
  mayServe(repository: string): boolean
  /** the layout project serving `repository`, or undefined */
  serves(repository: string): Promise<string | undefined>
  manifest(repository: string, reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: string; size: number; subjectDigest: string | null }>
  blob(repository: string, digest: string): Promise<{ size: number; open(start: number, length: number | undefined): Readable }>
  tags(repository: string): Promise<string[]>
  referrers(repository: string, subject: string): Promise<Descriptor[]>
  /** every repository of every layout project, sorted (the catalog) */
  repositories(): Promise<string[]>
}

/**
 * Answers every /v2 request for a repository of a layout project: pulls (manifests, blobs,
 * tags, referrers) from the layout, with the pull policies applied; pushes refused with DENIED
 * and deletes with UNSUPPORTED (as a registry with deletes disabled answers), each saying why.
 */
export function layoutHandler(layout: V2Layout, urls: UrlBuilder, countOut: (n: number) => void, gates?: PullGates) {
  return async (r: V2Request, op: Operation, project: string): Promise<unknown> => {
    const { req, reply, name, ref } = r
    const method = req.method
    if (method === 'DELETE') {
      throw new RegistryError('UNSUPPORTED', `project ${project} is served read-only from an OCI image layout: deletes are refused (remove the image from the layout instead)`)
    }
    if (op === 'upload' || method === 'PUT') throw RegistryError.denied(`project ${project} is served read-only from an OCI image layout: pushes are refused`)
    if (op === 'manifest') {
      const head = method === 'HEAD'
      const m = await layout.manifest(name, ref)
      if (!head && gates && !gates.empty && !isScannerPull(r.caller?.principal)) {
        const refused = await gates.check(name, m.digest, m.mediaType)
        if (refused) throw refused
      }
      reply.headers(manifestHeaders(m))
      if (head) return reply.code(200).send()
      countOut(m.size)
      return reply.code(200).send(m.bytes)
    }
    if (op === 'blob') {
      const digest = requireDigest(ref).value
      const blob = await layout.blob(name, digest)
      reply.headers(blobHeaders(digest))
      if (method === 'HEAD') return reply.code(200).header('content-length', blob.size).send()
      return sendBlobBytes(req, reply, blob.size, async (start, length) => blob.open(start, length), countOut)
    }
    if (op === 'tags') return sendTagPage(r, await layout.tags(name), (n, last) => urls.next(`/v2/${name}/tags/list`, n, last))
    if (op === 'referrers') {
      const subject = requireDigest(ref).value
      const artifactType = r.query.get('artifactType') ?? undefined
      const all = await layout.referrers(name, subject)
      const manifests = artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType)
      if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType')
      const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }
      return reply.code(200).header('content-type', 'application/vnd.oci.image.index.v1+json').send(Buffer.from(JSON.stringify(index)))
    }
    throw new RegistryError('UNSUPPORTED', `${method} is not supported on this endpoint`)
  }
}
