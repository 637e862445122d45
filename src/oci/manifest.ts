import { parseDigest } from './digest.js'
import { INDEX_TYPES, IMAGE_TYPES, SCHEMA1_TYPES, isValidMediaType, MediaTypes } from './media-types.js'

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  artifactType?: string
  annotations?: Record<string, string>
  urls?: string[]
  platform?: Record<string, unknown>
}

export interface ParsedManifest {
  kind: 'image' | 'index'
  mediaType: string
  /** artifactType, else the config media type (as the referrers API reports it) */
  artifactType: string | undefined
  subject: Descriptor | undefined
  /** blobs the manifest needs in the repository (config and layers) */
  blobs: Descriptor[]
  /** manifests an index needs in the repository */
  manifests: Descriptor[]
  annotations: Record<string, string> | undefined
}

export class ManifestProblem extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message)
  }
}

const NON_DISTRIBUTABLE = /(\.nondistributable\.|\.foreign\.)/

/**
 * Validates a manifest body against the OCI image spec (and Docker schema2) and returns the
 * references it carries. `contentType` is the request's Content-Type, which must agree with the
 * body's own mediaType when both are present.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    throw new ManifestProblem('manifest is not valid JSON')
  }
  if (!isObject(doc)) throw new ManifestProblem('manifest must be a JSON object')
  const declared = optionalString(doc, 'mediaType')
  const header = normaliseContentType(contentType)
  if (doc.schemaVersion === 1 || (declared && SCHEMA1_TYPES.has(declared)) || (header && SCHEMA1_TYPES.has(header))) {
    throw new ManifestProblem('Docker schema1 manifests are not supported: push with schema2 or OCI (docker 1.10+ does)', 'schemaVersion')
  }
  if (doc.schemaVersion !== 2) throw new ManifestProblem('schemaVersion must be 2', 'schemaVersion')
  if (declared && header && header !== declared && !isGenericType(header)) {
    throw new ManifestProblem(`Content-Type ${header} does not match the manifest mediaType ${declared}`, 'mediaType')
  }
  const mediaType = declared ?? (header && !isGenericType(header) ? header : undefined) ?? guessType(doc)
  if (INDEX_TYPES.has(mediaType)) return parseIndex(doc, mediaType)
  if (IMAGE_TYPES.has(mediaType)) return parseImage(doc, mediaType)
  throw new ManifestProblem(`unsupported manifest media type ${mediaType}`, 'mediaType')
}

function parseImage(doc: Record<string, unknown>, mediaType: string): ParsedManifest {
  const config = descriptor(doc.config, 'config')
  if (!Array.isArray(doc.layers)) throw new ManifestProblem('layers must be an array', 'layers')
  const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`))
  const artifactType = optionalString(doc, 'artifactType')
  if (artifactType !== undefined && !isValidMediaType(artifactType)) throw new ManifestProblem('artifactType is not a media type', 'artifactType')
  const required = [config, ...layers.filter((l) => !(l.urls?.length && NON_DISTRIBUTABLE.test(l.mediaType)))]
  return {
    kind: 'image',
    mediaType,
    artifactType: artifactType ?? config.mediaType,
    subject: doc.subject === undefined ? undefined : descriptor(doc.subject, 'subject'),
    blobs: required,
    manifests: [],
    annotations: annotations(doc),
  }
}

function parseIndex(doc: Record<string, unknown>, mediaType: string): ParsedManifest {
  if (!Array.isArray(doc.manifests)) throw new ManifestProblem('manifests must be an array', 'manifests')
  const manifests = doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`))
  const artifactType = optionalString(doc, 'artifactType')
  return {
    kind: 'index',
    mediaType,
    artifactType,
    subject: doc.subject === undefined ? undefined : descriptor(doc.subject, 'subject'),
    blobs: [],
    manifests,
    annotations: annotations(doc),
  }
}

function descriptor(value: unknown, field: string): Descriptor {
  if (!isObject(value)) throw new ManifestProblem(`${field} must be a descriptor object`, field)
  const { mediaType, digest, size } = value
  if (typeof mediaType !== 'string' || !isValidMediaType(mediaType)) throw new ManifestProblem(`${field}.mediaType is missing or invalid`, field)
  if (typeof digest !== 'string' || typeof parseDigest(digest) === 'string') throw new ManifestProblem(`${field}.digest is missing or invalid`, field)
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ManifestProblem(`${field}.size must be a non-negative integer`, field)
  const out: Descriptor = { mediaType, digest, size }
  if (typeof value.artifactType === 'string') out.artifactType = value.artifactType
  if (isObject(value.annotations)) out.annotations = value.annotations as Record<string, string>
  if (Array.isArray(value.urls)) out.urls = value.urls.filter((u): u is string => typeof u === 'string')
  if (isObject(value.platform)) out.platform = value.platform
  return out
}

function annotations(doc: Record<string, unknown>): Record<string, string> | undefined {
  if (doc.annotations === undefined) return undefined
  if (!isObject(doc.annotations) || !Object.values(doc.annotations).every((v) => typeof v === 'string')) {
    throw new ManifestProblem('annotations must map strings to strings', 'annotations')
  }
  return doc.annotations as Record<string, string>
}

function guessType(doc: Record<string, unknown>): string {
  if (Array.isArray(doc.manifests)) return MediaTypes.ociIndex
  if (doc.config !== undefined) return MediaTypes.ociManifest
  throw new ManifestProblem('manifest has no mediaType and is neither an image manifest nor an index', 'mediaType')
}

export function normaliseContentType(value: string | undefined): string | undefined {
  if (!value) return undefined
  const base = value.split(';')[0]?.trim().toLowerCase()
  return base || undefined
}

function isGenericType(type: string): boolean {
  return type === 'application/json' || type === 'application/octet-stream'
}

function optionalString(doc: Record<string, unknown>, key: string): string | undefined {
  const v = doc[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new ManifestProblem(`${key} must be a string`, key)
  return v
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
