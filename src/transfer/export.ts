import { looksLikeDigest } from '../oci/digest.js'
import { INDEX_TYPES } from '../oci/media-types.js'
import { parseManifest, type Descriptor } from '../oci/manifest.js'
import { Copier, platformMatches } from '../replication/copier.js'
import type { Manifest, Side } from '../replication/sides.js'
import { LayoutDestination, entryRepository } from './layout-side.js'
import { DirLayout, openLayout, TarLayoutReader, type LayoutIndex, type LayoutWriter } from './layout-store.js'
import { ProgressCounter, type ProgressListener } from './progress.js'

/** One REPO[:TAG|@DIGEST] argument; no ref: every tag of the repository. */
export interface ExportRef {
  repository: string
  ref?: string
}

export interface ExportOptions {
  /** os/arch[/variant] of an index's children to keep; empty: all */
  platforms: string[]
  /** with signatures, SBOMs and attestations (the referrers of what is exported) */
  referrers: boolean
  /** blobs the receiving side has already (see sinceDigests): left out */
  since?: ReadonlySet<string>
  onProgress?: ProgressListener
  /** blobs of one image read at once (1 for a tar: its entries are written one after the other) */
  blobConcurrency?: number
}

export interface ExportResult {
  images: { repository: string; ref: string; digest: string }[]
  blobsWritten: number
  bytesWritten: number
  blobsSkipped: number
}

/** Parses REPO, REPO:TAG or REPO@DIGEST. */
export function parseExportRef(text: string): ExportRef {
  const at = text.indexOf('@')
  if (at >= 0) return { repository: text.slice(0, at), ref: text.slice(at + 1) }
  const colon = text.lastIndexOf(':')
  if (colon > text.lastIndexOf('/')) return { repository: text.slice(0, colon), ref: text.slice(colon + 1) }
  return { repository: text }
}

/**
 * Writes the images (with their index children, and their referrers when asked) from a side
 * (this Berth, or a remote registry) into an OCI layout. Blobs are streamed from the source into
 * the layout and verified on the way; those the layout holds already (an interrupted export run
 * again) are not read again. Manifests are always written, layers and configs the receiving side
 * has (`since`) are not.
 */
export async function exportImages(source: Side, writer: LayoutWriter, refs: ExportRef[], opts: ExportOptions): Promise<ExportResult> {
  const wanted = await resolveRefs(source, refs)
  const plan = await planBlobs(source, wanted, opts.platforms)
  let planned = { bytes: 0, items: 0 }
  for (const [digest, size] of plan) if (!opts.since?.has(digest)) planned = { bytes: planned.bytes + size, items: planned.items + 1 }
  const counts = { written: 0, bytes: 0, skipped: 0 }
  // Keeps the totals of the result and passes everything on to the caller's listener.
  const counting: ProgressListener = (p, done) => {
    if (done?.skipped) counts.skipped++
    else if (done) {
      counts.written++
      counts.bytes += done.size
    }
    opts.onProgress?.(p, done)
  }
  const progress = new ProgressCounter('copy', planned, counting)
  const destination = new LayoutDestination(writer, { skip: opts.since, progress })
  const copier = new Copier(source, destination, { overwrite: true, platforms: opts.platforms, referrers: opts.referrers, blobConcurrency: opts.blobConcurrency ?? 4 })
  const images: ExportResult['images'] = []
  for (const { repository, ref, manifest } of wanted) {
    const result = await copier.copyTag(repository, ref, repository)
    const digest = result.digest ?? manifest.digest
    if (looksLikeDigest(ref)) await destination.addRoot(repository, destination.written.get(digest) ?? manifest)
    images.push({ repository, ref, digest })
  }
  await writer.finish()
  return { images, blobsWritten: counts.written, bytesWritten: counts.bytes, blobsSkipped: counts.skipped }
}

interface Wanted {
  repository: string
  ref: string
  manifest: Manifest
}

/** Every (repository, tag or digest) to export, each with its manifest; fails naming the first one missing. */
async function resolveRefs(source: Side, refs: ExportRef[]): Promise<Wanted[]> {
  const out: Wanted[] = []
  for (const r of refs) {
    const tags = r.ref ? [r.ref] : await source.tags(r.repository)
    if (tags.length === 0) throw new Error(`${r.repository} has no tags in ${source.label}`)
    for (const ref of tags) {
      const manifest = await source.manifest(r.repository, ref)
      if (!manifest) throw new Error(`${r.repository}${looksLikeDigest(ref) ? '@' : ':'}${ref} is not in ${source.label}`)
      out.push({ repository: r.repository, ref, manifest })
    }
  }
  return out
}

/** The blobs (config, layers) the images need, digest → size, for the progress totals. */
async function planBlobs(source: Side, wanted: Wanted[], platforms: string[]): Promise<Map<string, number>> {
  const blobs = new Map<string, number>()
  const seen = new Set<string>()
  const walk = async (repository: string, m: Manifest): Promise<void> => {
    if (seen.has(m.digest)) return
    seen.add(m.digest)
    const parsed = parseManifest(m.bytes, m.mediaType)
    for (const b of parsed.blobs) blobs.set(b.digest, b.size)
    for (const child of parsed.manifests) {
      if (platforms.length > 0 && INDEX_TYPES.has(m.mediaType) && !platforms.some((p) => platformMatches(p, child.platform))) continue
      const c = await source.manifest(repository, child.digest)
      if (c) await walk(repository, c)
    }
  }
  for (const w of wanted) await walk(w.repository, w.manifest)
  return blobs
}

/**
 * What the receiving side has, from its index.json, or from a layout (directory or tar) it sent
 * back: every manifest it lists and every blob they reach (looked up in `source`, which exported
 * them before), plus every blob file the layout holds.
 */
export async function sinceDigests(path: string, source: Side, repositories: string[]): Promise<Set<string>> {
  const { readFile, stat } = await import('node:fs/promises')
  const have = new Set<string>()
  let index: LayoutIndex
  const info = await stat(path)
  if (info.isFile() && path.endsWith('.json')) {
    index = JSON.parse(await readFile(path, 'utf8')) as LayoutIndex
    if (!Array.isArray(index.manifests)) throw new Error(`${path} is not an OCI index.json (no manifests array)`)
  } else {
    const layout = await openLayout(path)
    index = layout.index()
    if (layout instanceof TarLayoutReader) for (const d of layout.blobDigests()) have.add(d)
    if (layout instanceof DirLayout) {
      const { readdir } = await import('node:fs/promises')
      const { join } = await import('node:path')
      for (const alg of await readdir(join(path, 'blobs')).catch(() => [] as string[])) {
        for (const hex of await readdir(join(path, 'blobs', alg)).catch(() => [] as string[])) if (/^[a-f0-9]+$/.test(hex)) have.add(`${alg}:${hex}`)
      }
    }
  }
  const walk = async (d: Descriptor, repos: string[]): Promise<void> => {
    have.add(d.digest)
    let m: Manifest | null = null
    for (const repo of repos) {
      m = await source.manifest(repo, d.digest)
      if (m) break
    }
    if (!m) return
    const parsed = parseManifest(m.bytes, m.mediaType)
    for (const b of parsed.blobs) have.add(b.digest)
    for (const c of parsed.manifests) await walk(c, repos)
  }
  for (const d of index.manifests) {
    const repo = entryRepository(d)
    await walk(d, repo ? [repo, ...repositories] : repositories)
  }
  return have
}
