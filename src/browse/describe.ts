import { INDEX_TYPES } from '../oci/media-types.js'

// What the browser reads out of a stored manifest (its bytes were validated when pushed).

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
  artifactType?: string
}

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export interface Described {
  kind: 'image' | 'index'
  config?: Descriptor
  layers: Descriptor[]
  /** children of an index */
  manifests: Descriptor[]
  subject?: Descriptor
  artifactType?: string
  annotations?: Record<string, string>
}

export const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'])

export function describe(content: Buffer, mediaType: string): Described {
  let json: Record<string, unknown>
  try {
    json = JSON.parse(content.toString('utf8')) as Record<string, unknown>
  } catch {
    return { kind: 'image', layers: [], manifests: [] }
  }
  const list = (v: unknown): Descriptor[] => (Array.isArray(v) ? v.filter(isDescriptor) : [])
  const kind = INDEX_TYPES.has(mediaType) || Array.isArray(json.manifests) ? 'index' : 'image'
  return {
    kind,
    config: isDescriptor(json.config) ? json.config : undefined,
    layers: list(json.layers),
    manifests: list(json.manifests),
    subject: isDescriptor(json.subject) ? json.subject : undefined,
    artifactType: typeof json.artifactType === 'string' ? json.artifactType : undefined,
    annotations: isStringMap(json.annotations) ? json.annotations : undefined,
  }
}

function isDescriptor(v: unknown): v is Descriptor {
  const d = v as Descriptor
  return typeof v === 'object' && v !== null && typeof d.digest === 'string' && typeof d.size === 'number' && typeof d.mediaType === 'string'
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The platform of a descriptor or an image config (os/architecture/variant only). */
export function platformOf(v: unknown): Platform | undefined {
  const p = v as { os?: unknown; architecture?: unknown; variant?: unknown }
  if (typeof v !== 'object' || v === null || typeof p.os !== 'string' || typeof p.architecture !== 'string') return undefined
  return { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' ? { variant: p.variant } : {}) }
}

/** Bytes of a manifest, its children present in the repository and their blobs, each digest once. */
export function totalSize(digest: string, manifestSizes: Map<string, number>, described: Map<string, Described>): number {
  const seen = new Set<string>()
  let total = 0
  const add = (d: string, size: number) => {
    if (seen.has(d)) return
    seen.add(d)
    total += size
  }
  const visit = (m: string) => {
    const d = described.get(m)
    add(m, manifestSizes.get(m) ?? 0)
    if (!d) return
    if (d.config) add(d.config.digest, d.config.size)
    for (const l of d.layers) add(l.digest, l.size)
    for (const c of d.manifests) if (described.has(c.digest) && !seen.has(c.digest)) visit(c.digest)
  }
  visit(digest)
  return total
}

/** The config's history, each step with the index of the layer it made (null for empty layers). */
export function history(config: Record<string, unknown> | undefined, layerCount: number) {
  const steps = Array.isArray(config?.history) ? (config.history as Record<string, unknown>[]) : []
  let layer = 0
  return steps.map((h) => {
    const empty = h.empty_layer === true
    const index = empty || layer >= layerCount ? null : layer++
    return {
      created: typeof h.created === 'string' ? h.created : null,
      createdBy: typeof h.created_by === 'string' ? h.created_by : null,
      comment: typeof h.comment === 'string' ? h.comment : null,
      emptyLayer: empty,
      layerIndex: index,
    }
  })
}

export function where(name: string) {
  return { name, ...split(name) }
}

/** project and path of a full repository name (one-part names are the library project's). */
export function split(name: string): { project: string; repository: string } {
  const slash = name.indexOf('/')
  return slash === -1 ? { project: 'library', repository: name } : { project: name.slice(0, slash), repository: name.slice(slash + 1) }
}
