import { readdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import { createReadStream } from 'node:fs'

// Docker Distribution's storage tree, below `<root>/docker/registry/v2/` (filesystem) or
// `<rootdirectory>/docker/registry/v2/` (S3), as its storage drivers write it:
//
//   blobs/sha256/<2 hex>/<hex>/data                          content, one copy for all repositories
//   repositories/<name>/_manifests/tags/<tag>/current/link   "sha256:<hex>" of the tag's manifest
//   repositories/<name>/_manifests/revisions/sha256/<hex>/link   a manifest of the repository
//   repositories/<name>/_layers/sha256/<hex>/link            a blob linked into the repository
//   repositories/<name>/_uploads/…                           uploads in progress (ignored)
//
// A repository is a folder holding one of the `_…` folders; names nest (`a/b/c`).

export const V2 = 'docker/registry/v2'

/** One repository of the tree, as listed (link contents of tags are read later). */
export interface RepositoryListing {
  name: string
  /** tag names (their `current/link` is read by `tagTarget`) */
  tags: string[]
  /** hex digests (sha256) of the manifests under `_manifests/revisions` */
  revisions: string[]
  /** how many blobs `_layers` links into the repository */
  layers: number
}

/** Reads a Distribution storage tree; paths are relative to `docker/registry/v2/`. */
export interface DistributionSource {
  /** where the tree is, for messages (a directory or s3://bucket/prefix) */
  readonly location: string
  /** Every repository, each once, in name order (for S3, in key order). */
  repositories(): AsyncIterable<RepositoryListing>
  /** A file's bytes; undefined when absent. */
  read(path: string): Promise<Buffer | undefined>
  /** A file's size; undefined when absent. */
  size(path: string): Promise<number | undefined>
  /** A file's bytes as a stream (copies across stores). */
  reader(path: string): Promise<Readable>
  close(): Promise<void>
}

/** Where Distribution keeps a blob's bytes (`algorithm` as in the digest, sha256 in practice). */
export function blobDataPath(hex: string, algorithm = 'sha256'): string {
  return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}/data`
}

export function tagLinkPath(repository: string, tag: string): string {
  return `repositories/${repository}/_manifests/tags/${tag}/current/link`
}

export function revisionLinkPath(repository: string, hex: string): string {
  return `repositories/${repository}/_manifests/revisions/sha256/${hex}/link`
}

const HEX = /^[0-9a-f]{64}$/

/** A Distribution tree on a filesystem: `dir` is its storage.filesystem.rootdirectory. */
export class FsSource implements DistributionSource {
  readonly root: string

  constructor(readonly location: string) {
    this.root = join(resolve(location), V2)
  }

  /** Absolute path of a tree path (hard links start from it). */
  full(path: string): string {
    return join(this.root, path)
  }

  async *repositories(): AsyncIterable<RepositoryListing> {
    const top = this.full('repositories')
    if (!(await isDirectory(top))) throw new Error(`${this.location} holds no Distribution storage (no ${V2}/repositories)`)
    yield* this.walk('')
  }

  private async *walk(prefix: string): AsyncIterable<RepositoryListing> {
    const dir = this.full(`repositories/${prefix}`)
    const entries = (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))
    if (prefix !== '' && entries.some((e) => e.name.startsWith('_'))) {
      const name = prefix.slice(0, -1)
      yield {
        name,
        tags: await this.names(`repositories/${name}/_manifests/tags`),
        revisions: (await this.names(`repositories/${name}/_manifests/revisions/sha256`)).filter((h) => HEX.test(h)),
        layers: (await this.names(`repositories/${name}/_layers/sha256`)).length,
      }
    }
    for (const e of entries) if (!e.name.startsWith('_')) yield* this.walk(`${prefix}${e.name}/`)
  }

  private async names(path: string): Promise<string[]> {
    return (await readdir(this.full(path)).catch(() => [])).sort()
  }

  async read(path: string): Promise<Buffer | undefined> {
    return readFile(this.full(path)).catch(absent)
  }

  async size(path: string): Promise<number | undefined> {
    const s = await stat(this.full(path)).catch(absent)
    return s?.isFile() ? s.size : undefined
  }

  async reader(path: string): Promise<Readable> {
    return createReadStream(this.full(path))
  }

  async close(): Promise<void> {}
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(absent))?.isDirectory() === true
}

function absent(err: unknown): undefined {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined
  throw err
}

/**
 * Groups the keys below `repositories/` (in key order) into repositories. Every key of a
 * repository starts with `<name>/_`, and no repository name has a component starting with `_`,
 * so the keys of one repository are contiguous in key order: one listing pass suffices.
 */
export async function* groupRepositoryKeys(keys: AsyncIterable<string>): AsyncIterable<RepositoryListing> {
  let current: RepositoryListing | undefined
  const tags = new Set<string>()
  for await (const key of keys) {
    const m = /^(.+?)\/(_manifests|_layers|_uploads)\/(.*)$/.exec(key)
    if (!m) continue
    const [, name, kind, rest] = m as unknown as [string, string, string, string]
    if (current?.name !== name) {
      if (current) yield { ...current, tags: [...tags].sort() }
      current = { name, tags: [], revisions: [], layers: 0 }
      tags.clear()
    }
    let p: RegExpExecArray | null
    if (kind === '_layers' && (p = /^sha256\/([0-9a-f]{64})\/link$/.exec(rest))) current.layers++
    else if (kind === '_manifests' && (p = /^revisions\/sha256\/([0-9a-f]{64})\/link$/.exec(rest))) current.revisions.push(p[1] as string)
    else if (kind === '_manifests' && (p = /^tags\/([^/]+)\/current\/link$/.exec(rest))) tags.add(p[1] as string)
  }
  if (current) yield { ...current, tags: [...tags].sort() }
}
