import { Transform, type Readable } from 'node:stream'
import { looksLikeDigest } from '../oci/digest.js'
import { parseManifest, type Descriptor } from '../oci/manifest.js'
import { Copier } from '../replication/copier.js'
import type { BlobDesc, Side } from '../replication/sides.js'
import { LayoutSource, entryRepository, entryTag } from './layout-side.js'
import { blobName, LayoutProblem, type LayoutReader } from './layout-store.js'
import { ProgressCounter, type ProgressListener } from './progress.js'

export interface ImportOptions {
  /** PROJECT (each image keeps its repository name under it) or PROJECT/REPO (every image goes there) */
  into: string
  /** whether the destination repository holds a blob already (a layout exported with --since leaves those out) */
  hasBlob: (repository: string, digest: string) => Promise<boolean>
  onProgress?: ProgressListener
}

export interface ImportResult {
  images: { repository: string; ref: string; digest: string }[]
  blobs: number
  bytes: number
}

interface Root {
  /** repository in the layout ('' when it does not say) */
  source: string
  target: string
  ref: string
}

/**
 * Loads an OCI layout into a side (this Berth, or a remote registry) in two passes. First every
 * object the index reaches is read and hashed: a missing, truncated or damaged one stops the
 * import there, named, before anything is written. Then the copier pushes blobs before the
 * manifests that need them and each tag last, so no tag ever points at an incomplete image. The
 * destination verifies every blob again while it stores it; a failure in that pass (the file
 * changed in between, the destination went away) can leave blobs pushed before it: unreferenced
 * content that garbage collection removes.
 */
export async function importLayout(layout: LayoutReader, destination: Side, opts: ImportOptions): Promise<ImportResult> {
  const source = new LayoutSource(layout)
  const roots = await rootsOf(source, layout, opts.into)
  await verifyLayout(source, layout, roots, opts)
  const blobs = { n: 0, bytes: 0 }
  const plan = await reachableBlobs(source, roots)
  const progress = new ProgressCounter('copy', { bytes: sum(plan), items: plan.size }, opts.onProgress)
  const counted = countingSide(destination, progress, blobs)
  const copier = new Copier(source, counted, { overwrite: true, platforms: [], referrers: true })
  const images: ImportResult['images'] = []
  for (const r of roots) {
    const result = await copier.copyTag(r.source, r.ref, r.target)
    images.push({ repository: r.target, ref: r.ref, digest: result.digest ?? '' })
  }
  return { images, blobs: blobs.n, bytes: blobs.bytes }
}

/** The images index.json lists, with the repository each goes to. Referrers come with their subject. */
async function rootsOf(source: LayoutSource, layout: LayoutReader, into: string): Promise<Root[]> {
  const referrers = new Set([...(await source.referrerMap()).values()].flat().map((d) => d.digest))
  const roots: Root[] = []
  for (const d of layout.index().manifests) {
    const tag = entryTag(d)
    if (!tag && referrers.has(d.digest)) continue
    const repo = entryRepository(d)
    roots.push({ source: repo, target: targetRepository(into, repo, layout.label), ref: tag ?? d.digest })
  }
  if (roots.length === 0) throw new LayoutProblem(`${layout.label}: index.json lists no image`, 'index.json')
  return roots
}

/** PROJECT/REPO as given; PROJECT + the layout's repository name without its own project. */
export function targetRepository(into: string, repository: string, label: string): string {
  if (into.includes('/')) return into
  if (!repository) throw new LayoutProblem(`${label} does not name the repositories of its images (no io.containerd.image.name annotation): give --into PROJECT/REPO`)
  const parts = repository.split('/')
  return `${into}/${parts.length > 1 ? parts.slice(1).join('/') : repository}`
}

/** Reads and hashes everything the roots reach; throws a LayoutProblem naming the first bad object. */
async function verifyLayout(source: LayoutSource, layout: LayoutReader, roots: Root[], opts: ImportOptions): Promise<void> {
  const plan = await reachableBlobs(source, roots)
  const progress = new ProgressCounter('verify', { bytes: sum(plan), items: plan.size }, opts.onProgress)
  for (const [digest, { desc, root }] of plan) {
    const state = await layout.verify(desc, progress.bytes)
    if (state === 'missing' && !(await opts.hasBlob(root.target, digest))) {
      throw new LayoutProblem(`${blobName(digest)} (needed by ${root.source || 'the image'}${looksLikeDigest(root.ref) ? '@' : ':'}${root.ref}) is neither in the layout nor in ${root.target}`, blobName(digest))
    }
    progress.item(digest, 0, false)
  }
}

interface Planned {
  desc: Descriptor
  root: Root
}

/** The blobs (configs, layers) the roots and their referrers reach; reading the manifests verifies them. */
async function reachableBlobs(source: LayoutSource, roots: Root[]): Promise<Map<string, Planned>> {
  const blobs = new Map<string, Planned>()
  const seen = new Set<string>()
  const walk = async (root: Root, ref: string, parent: string | undefined): Promise<void> => {
    const m = await source.manifest(root.source, ref)
    if (!m) {
      const what = looksLikeDigest(ref) ? blobName(ref) : `${root.source}:${ref}`
      throw new LayoutProblem(`${what} ${parent ? `(a manifest ${parent} needs) ` : ''}is not in the layout ${source.label}`, looksLikeDigest(ref) ? blobName(ref) : 'index.json')
    }
    if (seen.has(m.digest)) return
    seen.add(m.digest)
    const parsed = parseManifest(m.bytes, m.mediaType)
    for (const b of parsed.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, { desc: b, root })
    for (const c of parsed.manifests) await walk(root, c.digest, m.digest)
    for (const r of await source.referrers(root.source, m.digest)) await walk(root, r.digest, m.digest)
  }
  for (const r of roots) await walk(r, r.ref, undefined)
  return blobs
}

function sum(plan: Map<string, Planned>): number {
  let n = 0
  for (const { desc } of plan.values()) n += desc.size
  return n
}

/** The destination, counting the bytes it is sent and naming the blob of a failed push. */
function countingSide(inner: Side, progress: ProgressCounter, totals: { n: number; bytes: number }): Side {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'putBlob') {
        const value = Reflect.get(target, prop, receiver) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      }
      return async (repository: string, desc: BlobDesc, open: () => Promise<Readable>): Promise<number> => {
        const counted = async () => {
          const meter = new Transform({
            transform(chunk: Buffer, _encoding, done) {
              progress.bytes(chunk.length)
              done(null, chunk)
            },
          })
          const body = await open()
          body.on('error', (err) => meter.destroy(err))
          return body.pipe(meter)
        }
        try {
          const sent = await target.putBlob(repository, desc, counted)
          progress.item(desc.digest, desc.size, sent === 0)
          if (sent > 0) {
            totals.n++
            totals.bytes += sent
          }
          return sent
        } catch (err) {
          throw new LayoutProblem(`${blobName(desc.digest)}: ${(err as Error).message}`, blobName(desc.digest), { cause: err })
        }
      }
    },
  })
}
