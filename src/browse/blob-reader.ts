import type { Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'
import type { Registry } from '../registry/registry.js'
import { requireDigest } from '../registry/validate.js'

/** Reads a small blob of a repository into memory, refusing (413) one larger than `maxBytes`. */
export async function readSmallBlob(registry: Registry, repository: string, digest: string, maxBytes: number): Promise<Buffer> {
  const d = requireDigest(digest)
  const size = await registry.blobs.stat(repository, d)
  if (size > maxBytes) throw tooLarge(`blob ${digest}`, size, maxBytes)
  const stream = await registry.blobs.open(d, size)
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > maxBytes) {
      stream.destroy()
      throw tooLarge(`blob ${digest}`, total, maxBytes)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** A blob of a repository as a stream (the repository's link to it checked first). */
export async function openBlob(registry: Registry, repository: string, digest: string): Promise<Readable> {
  const d = requireDigest(digest)
  const size = await registry.blobs.stat(repository, d)
  return registry.blobs.open(d, size)
}

/** The first bytes of a blob (its compression's magic number). */
export async function blobHead(registry: Registry, repository: string, digest: string, bytes = 4): Promise<Buffer> {
  const d = requireDigest(digest)
  const size = await registry.blobs.stat(repository, d)
  if (size === 0) return Buffer.alloc(0)
  const stream = await registry.blobs.open(d, size, 0, Math.min(bytes, size))
  const chunks: Buffer[] = []
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks)
}

export function tooLarge(what: string, size: number, maxBytes: number): RegistryError {
  return new RegistryError('INVALID_FIELD', `${what} is ${size} bytes, more than the ${maxBytes} bytes this endpoint returns`, { status: 413, detail: { size, limit: maxBytes } })
}

/** Image configs by digest (immutable), parsed; a bounded cache shared by every request. */
export class ConfigCache {
  private readonly entries = new Map<string, { value: Record<string, unknown>; weight: number }>()
  private weight = 0

  constructor(
    private readonly registry: Registry,
    private readonly maxBytes = 4 * 1024 * 1024,
    private readonly budget = 16 * 1024 * 1024,
  ) {}

  /** The config as JSON; undefined when it is not JSON. */
  async get(repository: string, digest: string): Promise<Record<string, unknown> | undefined> {
    const hit = this.entries.get(digest)
    if (hit) {
      this.entries.delete(digest)
      this.entries.set(digest, hit)
      return hit.value
    }
    const bytes = await readSmallBlob(this.registry, repository, digest, this.maxBytes)
    let value: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse(bytes.toString('utf8'))
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined
      value = parsed as Record<string, unknown>
    } catch {
      return undefined
    }
    this.entries.set(digest, { value, weight: bytes.length + 256 })
    this.weight += bytes.length + 256
    for (const [key, e] of this.entries) {
      if (this.weight <= this.budget) break
      this.entries.delete(key)
      this.weight -= e.weight
    }
    return value
  }
}
