import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CatalogService } from '../../browse/catalog-service.js'
import { principalName } from '../../auth/principal.js'
import { RegistryError } from '../../errors/registry-error.js'
import { SBOM_FORMATS, type SbomFormat, type SbomService } from '../../scan/sbom/sbom-service.js'
import { audit, callerOf, requireProjectAction, type ApiContext } from './context.js'

// SBOMs of an image: GET answers the document (pull on the project); POST stores it as an OCI
// referrer of the image (push on the project), where `oras discover` and the referrers API
// find it. `format` is spdx (SPDX 2.3 JSON, the default) or cyclonedx (CycloneDX 1.6 JSON).

export interface SbomRoutesOptions extends ApiContext {
  catalog: CatalogService
  sbom: SbomService
  authEnabled: boolean
}

type Route = { Params: { project: string; repository: string; digest: string }; Querystring: Record<string, string | undefined> }

function formatOf(query: Record<string, string | undefined>): SbomFormat {
  const format = query.format ?? 'spdx'
  if (!(SBOM_FORMATS as readonly string[]).includes(format)) throw RegistryError.invalidField('format', `one of ${SBOM_FORMATS.join(', ')}`)
  return format as SbomFormat
}

export async function sbomRoutes(app: FastifyInstance, opts: SbomRoutesOptions): Promise<void> {
  // An open registry (auth.enabled false) has no accounts: anyone reads and pushes, as on /v2.
  const may = async (req: FastifyRequest, project: string, action: 'pull' | 'push') => {
    if (opts.authEnabled) await requireProjectAction(opts, req, project, action)
  }
  const path = '/projects/:project/repositories/:repository/artifacts/:digest/sbom'

  app.get<Route>(path, async (req, reply) => {
    const { project, repository, digest } = req.params
    const format = formatOf(req.query)
    await may(req, project, 'pull')
    const { name } = await opts.catalog.resolve(project, repository)
    const sbom = await opts.sbom.document(name, digest, format)
    return reply
      .header('content-type', sbom.mediaType)
      .header('content-disposition', `attachment; filename="${encodeURIComponent(name.replace(/\//g, '_'))}_${sbom.digest.slice(7, 19)}.${format}.json"`)
      .send(Buffer.from(JSON.stringify(sbom.document)))
  })

  app.post<Route>(path, async (req, reply) => {
    const { project, repository, digest } = req.params
    const format = formatOf(req.query)
    if (req.query.attach !== undefined && req.query.attach !== 'true') throw RegistryError.invalidField('attach', 'true, or left out (POST always attaches)')
    await may(req, project, 'push')
    const { name } = await opts.catalog.resolve(project, repository)
    const p = callerOf(req)
    const referrer = await opts.sbom.attach(name, digest, format, {
      actor: { name: principalName(p), kind: p.kind, addr: req.ip, requestId: String(req.id), host: req.headers.host ?? '', method: req.method, userAgent: req.headers['user-agent'] ?? '' },
    })
    audit(opts, req, 'sbom.attach', { project, resource: `${name}@${referrer.subject}`, detail: { referrer: referrer.digest, format } })
    return reply.code(201).send(referrer)
  })
}
