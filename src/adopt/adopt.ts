import type { ProjectService } from '../auth/projects.js'
import { projectOf } from '../auth/permissions.js'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { cosignSubjectOf } from '../oci/cosign-tags.js'
import { digestOf, parseDigest, type Digest } from '../oci/digest.js'
import { ManifestProblem, parseManifest, type ParsedManifest } from '../oci/manifest.js'
import { isValidName, isValidTag } from '../oci/reference.js'
import type { ManifestService } from '../registry/manifest-service.js'
import { PathNotFound } from '../storage/driver.js'
import type { BlobPlacer, Placement } from './placer.js'
import { blobDataPath, revisionLinkPath, tagLinkPath, type DistributionSource, type RepositoryListing } from './source.js'

// Adoption of a Docker Distribution storage tree: Berth's metadata is built from it (manifests
// stored byte for byte through the registry's own ManifestService, so parsing, validation and the
// referrers index are the push path's), and its blobs are put into Berth's layout without a
// re-push (see placer.ts). Only what holds together is adopted: a manifest whose blobs are all
// there with the sizes it names, an index whose children are adoptable, a tag whose manifest is.
// Everything else is reported by the path in the tree that is broken, and nothing of it is served.
//
// A second run adds what was pushed since, moves tags that moved, and deletes the tags an earlier
// run adopted that were deleted from Distribution since (unless a Berth user moved them: see
// metadata/repositories/adoption.ts); what is already adopted is
// skipped after one query per repository (no manifest read, no blob looked at), which is also
// what makes an interrupted run resumable.

export type ProblemKind = 'missing-blob' | 'truncated-blob' | 'dangling-link' | 'bad-manifest' | 'broken-reference' | 'bad-name'

export interface AdoptProblem {
  kind: ProblemKind
  /** the path in the tree (below docker/registry/v2/) that is broken */
  path: string
  repository: string
  digest?: string
  message: string
}

export interface AdoptReport {
  source: string
  dryRun: boolean
  repositories: { found: number; changed: number }
  projectsCreated: string[]
  manifests: { found: number; adopted: number; present: number }
  tags: { created: number; moved: number; unchanged: number; deleted: number }
  /**
   * Tags an earlier run adopted that are gone from Distribution since and still point where that
   * run set them (no Berth user moved them): deleted in Berth too (a dry run only lists them).
   */
  deletedTags: { repository: string; tag: string; digest: string }[]
  /**
   * Tags Distribution moved or deleted that stay as they are in Berth because an immutability
   * rule of their project protects them (`reason` names the rule).
   */
  keptTags: { repository: string; tag: string; digest: string; reason: string }[]
  /** adopted manifests with a subject (the referrers API lists them) */
  referrers: number
  /** adopted tags of the referrers tag schema (`sha256-<hex>`) and of cosign's (`sha256-<hex>.sig|att|sbom`) */
  referrerTags: number
  /**
   * Blob links made; blobs new to Berth's store (and their bytes) and how they got there (a dry
   * run counts them as new only); blobs its store held already.
   */
  blobs: { linked: number; new: number; hardlinked: number; copied: number; serverCopied: number; present: number; bytes: number }
  /** blobs Distribution links into repositories (`_layers`); those no adopted manifest needs are left to Distribution */
  layerLinks: number
  problems: AdoptProblem[]
  seconds: number
}

export interface AdoptProgress {
  repositoriesDone: number
  repositoriesTotal: number
  manifests: number
  blobs: number
  bytes: number
}

export interface AdoptTarget {
  meta: MetadataRepositories
  manifests: ManifestService
  projects: ProjectService
  placer: BlobPlacer
  /** why a tag may not be moved or deleted (an immutability rule), or undefined */
  immutableTag?: (repository: string, tag: string) => Promise<string | undefined>
}

export interface AdoptOptions {
  source: DistributionSource
  /** the deployment to fill; absent for a dry run without one (everything counts as new) */
  target?: AdoptTarget
  dryRun: boolean
  /** every repository into this project (`<into>/<name>`) instead of its first path component */
  into?: string
  /** repositories adopted at once (default 4) */
  concurrency?: number
  now?: () => number
  onProgress?: (p: AdoptProgress) => void
}

/** A manifest read from the tree and found adoptable. */
interface Loaded {
  digest: string
  body: Buffer
  parsed: ParsedManifest
  blobs: { digest: Digest; size: number }[]
}

/** Sizes of the tree's blobs looked up so far (many manifests share base layers). */
const SIZE_MEMO_MAX = 200_000

export async function adoptDistribution(opts: AdoptOptions): Promise<AdoptReport> {
  const started = Date.now()
  const now = opts.now ?? Date.now
  const { source, target } = opts
  const write = target !== undefined && !opts.dryRun
  const report: AdoptReport = {
    source: source.location,
    dryRun: opts.dryRun,
    repositories: { found: 0, changed: 0 },
    projectsCreated: [],
    manifests: { found: 0, adopted: 0, present: 0 },
    tags: { created: 0, moved: 0, unchanged: 0, deleted: 0 },
    deletedTags: [],
    keptTags: [],
    referrers: 0,
    referrerTags: 0,
    blobs: { linked: 0, new: 0, hardlinked: 0, copied: 0, serverCopied: 0, present: 0, bytes: 0 },
    layerLinks: 0,
    problems: [],
    seconds: 0,
  }
  const listings: RepositoryListing[] = []
  for await (const l of source.repositories()) listings.push(l)
  report.repositories.found = listings.length
  const progress: AdoptProgress = { repositoriesDone: 0, repositoriesTotal: listings.length, manifests: 0, blobs: 0, bytes: 0 }
  opts.onProgress?.(progress)

  const sizes = new Map<string, number | undefined>()
  const blobSize = async (d: Digest): Promise<number | undefined> => {
    if (sizes.has(d.value)) return sizes.get(d.value)
    const size = await source.size(blobDataPath(d.hex, d.algorithm))
    if (sizes.size >= SIZE_MEMO_MAX) sizes.clear()
    sizes.set(d.value, size)
    return size
  }
  // Blobs put into Berth's store by this run (a dry run counts them here too): a repository
  // that needs a blob another one is placing waits for it, so no link precedes its file.
  const placed = new Map<string, Promise<void>>()
  // Blobs new to Berth by this run: their digests are not checked here (that would read every
  // byte), so they are marked unverified and hashed on their first read (or by a scrub).
  const fresh = new Set<string>()
  const place = async (digest: Digest, size: number): Promise<void> => {
    const known = target ? await target.meta.blobs.find(digest.value) : undefined
    if (known !== undefined) return count(report, 'present', size)
    fresh.add(digest.value)
    if (write && target) count(report, await target.placer.place(digest, size), size)
    else count(report, 'new', size)
    progress.bytes += size
  }
  const projects = new Map<string, Promise<void>>()
  const ensureProject = (name: string): Promise<void> => {
    let p = projects.get(name)
    if (!p) {
      p = (async () => {
        if (target && (await target.meta.projects.find(name))) return
        // `library` is public as on a first start; the others private until an admin opens them.
        if (write) await target.projects.ensure(name, name === 'library')
        report.projectsCreated.push(name)
      })()
      projects.set(name, p)
    }
    return p
  }
  const problem = (p: AdoptProblem) => report.problems.push(p)

  async function adoptRepository(listing: RepositoryListing): Promise<void> {
    report.layerLinks += listing.layers
    const name = opts.into ? `${opts.into}/${listing.name}` : listing.name
    if (!isValidName(name)) {
      problem({ kind: 'bad-name', path: `repositories/${listing.name}`, repository: listing.name, message: `${name} is not a valid repository name` })
      return
    }
    const tagTargets = new Map<string, string>()
    for (const tag of listing.tags) {
      const path = tagLinkPath(listing.name, tag)
      if (!isValidTag(tag)) {
        problem({ kind: 'bad-name', path, repository: name, message: `tag ${tag} is not a valid tag` })
        continue
      }
      const link = await source.read(path)
      const text = link?.toString('utf8').trim() ?? ''
      const d = parseDigest(text)
      if (typeof d === 'string') {
        problem({ kind: 'dangling-link', path, repository: name, message: link === undefined ? `tag ${tag} has no current/link` : `tag ${tag} links to ${JSON.stringify(text.slice(0, 80))}, not a digest` })
        continue
      }
      tagTargets.set(tag, d.value)
    }
    const revisionPaths = new Map(listing.revisions.map((hex) => [`sha256:${hex}`, revisionLinkPath(listing.name, hex)]))
    const candidates = [...new Set([...revisionPaths.keys(), ...tagTargets.values()])]
    report.manifests.found += candidates.length
    const repositoryId = target ? await target.meta.repositories.findId(name) : undefined
    const present = new Set<string>()
    if (repositoryId !== undefined && target) {
      const missing = new Set(await target.meta.manifests.missing(repositoryId, candidates))
      for (const c of candidates) if (!missing.has(c)) present.add(c)
    }
    report.manifests.present += present.size

    // Reads and checks the new manifests, children before the indexes that name them.
    const state = new Map<string, Loaded | null>()
    const order: Loaded[] = []
    async function check(digest: string, via: string): Promise<boolean> {
      if (present.has(digest)) return true
      if (state.has(digest)) return state.get(digest) != null
      state.set(digest, null) // a cycle is broken
      const d = parseDigest(digest)
      if (typeof d === 'string') return false
      const path = blobDataPath(d.hex, d.algorithm)
      const body = await source.read(path)
      if (body === undefined) {
        problem({ kind: 'dangling-link', path: via, repository: name, digest, message: `links to ${digest}, whose data (${path}) does not exist` })
        return false
      }
      if (digestOf(body, d.algorithm) !== digest) {
        problem({ kind: 'bad-manifest', path, repository: name, digest, message: `manifest bytes do not match their digest ${digest} (truncated or corrupt)` })
        return false
      }
      let parsed: ParsedManifest
      try {
        parsed = parseManifest(body, undefined)
      } catch (err) {
        if (!(err instanceof ManifestProblem)) throw err
        problem({ kind: 'bad-manifest', path, repository: name, digest, message: err.message })
        return false
      }
      let ok = true
      const blobs: Loaded['blobs'] = []
      for (const b of uniqueBy(parsed.blobs, (x) => x.digest)) {
        const bd = parseDigest(b.digest)
        if (typeof bd === 'string') continue // parseManifest accepted only valid digests
        const blobPath = blobDataPath(bd.hex, bd.algorithm)
        const size = await blobSize(bd)
        if (size === undefined) {
          problem({ kind: 'missing-blob', path: blobPath, repository: name, digest: b.digest, message: `blob of manifest ${digest} is missing` })
          ok = false
        } else if (size !== b.size) {
          problem({ kind: 'truncated-blob', path: blobPath, repository: name, digest: b.digest, message: `blob of manifest ${digest} has ${size} bytes where the manifest says ${b.size}` })
          ok = false
        } else blobs.push({ digest: bd, size })
      }
      for (const m of parsed.manifests) {
        if (!(await check(m.digest, path))) {
          problem({ kind: 'broken-reference', path, repository: name, digest, message: `index ${digest} names ${m.digest}, which cannot be adopted` })
          ok = false
        }
      }
      if (!ok) return false
      const loaded = { digest, body, parsed, blobs }
      state.set(digest, loaded)
      order.push(loaded)
      return true
    }
    for (const [digest, path] of revisionPaths) await check(digest, path)
    for (const [tag, digest] of tagTargets) await check(digest, tagLinkPath(listing.name, tag))

    // Tags an earlier run adopted whose folder is gone from the tree: deleted from Distribution.
    const adopted = repositoryId !== undefined && target ? await target.meta.adoption.adoptedTags(name) : new Map<string, string>()
    const listed = new Set(listing.tags)
    const gone = [...adopted].filter(([tag]) => !listed.has(tag))

    // Tags: new ones, moved ones, and those of manifests that cannot be adopted.
    const current = repositoryId !== undefined && target ? await target.meta.tags.current(repositoryId, [...tagTargets.keys(), ...gone.map(([tag]) => tag)]) : new Map<string, string>()
    // Deleted in Berth too unless a Berth user moved (or deleted) them since, or a rule keeps them.
    const keep = async (tag: string, digest: string): Promise<boolean> => {
      const reason = await target?.immutableTag?.(name, tag)
      if (reason) report.keptTags.push({ repository: name, tag, digest, reason })
      return reason !== undefined
    }
    const deletions: [string, string][] = []
    for (const [tag, digest] of gone) if (current.get(tag) === digest && !(await keep(tag, current.get(tag) as string))) deletions.push([tag, digest])
    for (const [tag, digest] of deletions) {
      report.tags.deleted++
      report.deletedTags.push({ repository: name, tag, digest })
    }
    if (write && target && repositoryId !== undefined && gone.length > 0) {
      await target.meta.db.transaction().execute(async (trx) => {
        // A kept tag is forgotten too: Distribution no longer has it, nothing more to track.
        const deleting = new Set(deletions.map(([tag]) => tag))
        for (const [tag, digest] of gone) await target.meta.adoption.deleteAdoptedTag(repositoryId, name, tag, deleting.has(tag) ? digest : '', trx)
      })
    }
    if (deletions.length > 0) report.repositories.changed++
    const tagsOf = new Map<string, string[]>()
    const movedOnly: [string, string][] = []
    for (const [tag, digest] of tagTargets) {
      if (!present.has(digest) && !state.get(digest)) {
        // (a tag whose link names nothing was reported as such already)
        if (report.problems.some((p) => p.path === tagLinkPath(listing.name, tag))) continue
        problem({ kind: 'broken-reference', path: tagLinkPath(listing.name, tag), repository: name, digest, message: `tag ${tag} is not adopted: its manifest ${digest} cannot be` })
        continue
      }
      const before = current.get(tag)
      if (before === digest) {
        report.tags.unchanged++
        continue
      }
      if (before !== undefined && (await keep(tag, before))) continue
      if (before === undefined) report.tags.created++
      else report.tags.moved++
      if (/^sha256-[0-9a-f]{64}$/.test(tag) || cosignSubjectOf(tag)) report.referrerTags++
      if (present.has(digest)) movedOnly.push([tag, digest])
      else tagsOf.set(digest, [...(tagsOf.get(digest) ?? []), tag])
    }
    if (order.length === 0 && movedOnly.length === 0) return
    if (deletions.length === 0) report.repositories.changed++
    await ensureProject(opts.into ?? projectOf(name))

    // Blobs into Berth's store, then linked into the repository, then the manifests in order.
    const needed: Loaded['blobs'] = []
    for (const b of uniqueBy(order.flatMap((l) => l.blobs), (b) => b.digest.value)) {
      let placing = placed.get(b.digest.value)
      if (!placing) {
        placing = place(b.digest, b.size)
        placed.set(b.digest.value, placing)
      }
      try {
        await placing
        needed.push(b)
      } catch (err) {
        // Gone since it was looked at (Distribution's GC): the manifests needing it fail below.
        if (!(err instanceof PathNotFound) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
        problem({ kind: 'missing-blob', path: blobDataPath(b.digest.hex, b.digest.algorithm), repository: name, digest: b.digest.value, message: `blob disappeared while it was adopted: ${(err as Error).message}` })
      }
    }
    report.blobs.linked += needed.length
    progress.blobs += needed.length
    for (const l of order) {
      report.manifests.adopted++
      if (l.parsed.subject) report.referrers++
    }
    progress.manifests += order.length
    if (!write || !target) return
    const at = now()
    await target.meta.db.transaction().execute(async (trx) => {
      const id = await target.meta.repositories.ensure(name, at, trx)
      for (const b of needed) await target.meta.blobs.addAndLink(id, b.digest.value, b.size, at, trx)
      await target.meta.blobs.markUnverified(needed.filter((b) => fresh.has(b.digest.value)).map((b) => b.digest.value), trx)
      for (const [tag, digest] of movedOnly) await target.meta.tags.upsert(id, tag, digest, at, trx)
      await target.meta.adoption.recordTags(name, movedOnly, trx)
    })
    for (const l of order) {
      try {
        const tags = tagsOf.get(l.digest) ?? []
        await target.manifests.put(name, l.digest, l.body, l.parsed.mediaType, tags)
        await target.meta.adoption.recordTags(name, tags.map((tag) => [tag, l.digest]))
      } catch (err) {
        // Refused by the push path's own checks: reported, and what names it fails after it.
        if (!(err instanceof RegistryError)) throw err
        report.manifests.adopted--
        problem({ kind: 'bad-manifest', path: blobDataPath(l.digest.slice(7), l.digest.slice(0, 6)), repository: name, digest: l.digest, message: err.message })
      }
    }
  }

  // A few repositories at once: the tree's reads (S3 round trips above all) overlap.
  const queue = listings.values()
  const worker = async () => {
    for (let next = queue.next(); !next.done; next = queue.next()) {
      await adoptRepository(next.value)
      progress.repositoriesDone++
      opts.onProgress?.(progress)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker))
  report.projectsCreated.sort()
  report.deletedTags.sort((a, b) => (a.repository === b.repository ? (a.tag < b.tag ? -1 : 1) : a.repository < b.repository ? -1 : 1))
  report.problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  report.seconds = Math.round((Date.now() - started) / 100) / 10
  return report
}

function count(report: AdoptReport, how: Placement | 'new', size: number): void {
  if (how === 'present') report.blobs.present++
  else {
    report.blobs.new++
    report.blobs.bytes += size
    if (how === 'hardlink') report.blobs.hardlinked++
    else if (how === 'copy') report.blobs.copied++
    else if (how === 'server-copy') report.blobs.serverCopied++
  }
}

function uniqueBy<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>()
  return items.filter((i) => !seen.has(key(i)) && seen.add(key(i)) !== undefined)
}
