import type { Readable } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CatalogService } from '../../browse/catalog-service.js'
import { RegistryError } from '../../errors/registry-error.js'
import { isValidName, isValidTag } from '../../oci/reference.js'
import { importTooLarge, TAR_FORMATS, type ImageTarService, type TarFormat } from '../../transfer/image-tar.js'
import { audit, requireProjectAction, type ApiContext } from './context.js'

// One image as a tar through the API (docs/airgap.md): GET …/artifacts/{digest}/export streams
// an OCI layout tar or a docker-archive (pull on the project); POST …/repositories/{repository}/import
// loads one (push on the project).

export interface ImageTarRoutesOptions extends ApiContext {
  catalog: CatalogService
  imageTar: ImageTarService
  maxImportSize: number
  authEnabled: boolean
}

type Query = Record<string, string | undefined>
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/

function formatOf(query: Query): TarFormat {
  const format = query.format ?? 'oci'
  if (!(TAR_FORMATS as readonly string[]).includes(format)) throw RegistryError.invalidField('format', `one of ${TAR_FORMATS.join(', ')}`)
  return format as TarFormat
}

function platformOf(query: Query): string | undefined {
  if (query.platform === undefined) return undefined
  if (!PLATFORM.test(query.platform)) throw RegistryError.invalidField('platform', 'os/arch or os/arch/variant (linux/arm64/v8)')
  return query.platform
}

export async function imageTarRoutes(app: FastifyInstance, opts: ImageTarRoutesOptions): Promise<void> {
  // An open registry (auth.enabled false) has no accounts: anyone pulls and pushes, as on /v2.
  const may = async (req: FastifyRequest, project: string, action: 'pull' | 'push') => {
    if (opts.authEnabled) await requireProjectAction(opts, req, project, action)
  }
  // The body of an import is a tar of any size: streamed to its temporary file, never parsed here.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))

  app.get<{ Params: { project: string; repository: string; digest: string }; Querystring: Query }>('/projects/:project/repositories/:repository/artifacts/:digest/export', async (req, reply) => {
    const { project, repository, digest } = req.params
    const format = formatOf(req.query)
    const platform = platformOf(req.query)
    if (req.query.referrers !== undefined && req.query.referrers !== 'true' && req.query.referrers !== 'false') throw RegistryError.invalidField('referrers', 'true or false')
    await may(req, project, 'pull')
    const artifact = await opts.catalog.artifact(project, repository, digest)
    const tar = await opts.imageTar.exportTar({
      repository: artifact.name as string,
      digest: artifact.digest as string,
      format,
      platform,
      referrers: req.query.referrers === 'true' && format === 'oci',
      tags: artifact.tags as string[],
      host: req.headers.host,
    })
    audit(opts, req, 'image.export', { project, resource: `${artifact.name as string}@${tar.digest}`, detail: { format, ...(platform ? { platform } : {}) } })
    return reply
      .header('content-type', 'application/x-tar')
      .header('content-disposition', `attachment; filename="${encodeURIComponent(tar.filename)}"`)
      .header('docker-content-digest', tar.digest)
      .send(tar.stream)
  })

  app.post<{ Params: { project: string; repository: string }; Querystring: Query }>('/projects/:project/repositories/:repository/import', async (req, reply) => {
    const { project, repository } = req.params
    const tag = req.query.tag
    if (tag !== undefined && !isValidTag(tag)) throw RegistryError.invalidField('tag', 'a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})')
    const name = `${project}/${repository}`
    if (!isValidName(name)) throw RegistryError.invalidField('repository', 'a repository path (lowercase letters, digits, separators . _ - /)')
    await may(req, project, 'push')
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > opts.maxImportSize) throw importTooLarge(opts.maxImportSize)
    const body = req.body as Readable | undefined
    if (!body || typeof (body as Readable).pipe !== 'function') throw RegistryError.invalidField('body', 'an OCI image layout tar or a docker-archive')
    try {
      const result = await opts.imageTar.importTar(body, name, { tag })
      audit(opts, req, 'image.import', { project, resource: name, detail: { images: result.images.length, blobs: result.blobs, bytes: result.bytes } })
      return await reply.code(201).send({ repository: name, ...result })
    } catch (err) {
      audit(opts, req, 'image.import', { project, resource: name, result: 'failure', detail: { reason: (err as Error).message } })
      throw err
    }
  })
}
