import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { parseDigest } from '../oci/digest.js'
import { ManifestProblem, parseManifest, type Descriptor } from '../oci/manifest.js'
import { isValidName, isValidTag } from '../oci/reference.js'
import { entryRepository, entryTag } from '../transfer/layout-side.js'
import { DirLayout, LayoutProblem } from '../transfer/layout-store.js'

/** The `layout` field of a project, as stored. */
export interface LayoutSettings {
  /** the layout directory as given (absolute) */
  path: string
  /** the repository (below the project) of the images index.json does not name */
  repository: string
}

/** What one layout directory serves, as read from its index.json. */
export interface LayoutState {
  /** the directory with symlinks resolved (every file served must lie below it) */
  dir: string
  /** repository → tag → the index.json entry */
  repositories: Map<string, Map<string, Descriptor>>
  /** subject digest → the referrers index.json lists for it */
  referrers: Map<string, Descriptor[]>
}

export interface LayoutManifest {
  bytes: Buffer
  mediaType: string
  digest: string
  size: number
  subjectDigest: string | null
  artifactType: string | undefined
  annotations: Record<string, string> | undefined
}

export interface LayoutDirOptions {
  allowedRoots: readonly string[]
  maxManifestSize: number
  log: Pick<Logger, 'warn'>
  /**
   * The layout is one repository of a per-repository tree (Zot's storage): every entry of its
   * index.json belongs to PROJECT/<settings.repository>, whatever name it carries, and the
   * repository exists even while no entry is tagged.
   */
  oneRepository?: boolean
}

/**
 * One OCI image layout directory backing a project, read-only. The index is read again when
 * index.json changes (another inode, size or mtime: an export renaming a new index.json over
 * the old one, a copy from removable media); blobs are read from their files on each request.
 * The directory may come from untrusted media: every file is resolved (symlinks followed) and
 * must lie below the layout directory, itself below one of the allowed roots, and manifests
 * are read only up to the manifest size limit.
 */
export class LayoutDir {
  private state: LayoutState | undefined
  private key: string | undefined
  private loading: Promise<LayoutState> | undefined

  constructor(
    readonly project: string,
    readonly settings: LayoutSettings,
    private readonly opts: LayoutDirOptions,
  ) {}

  /** The layout as it is now (read again when index.json changed); UNAVAILABLE when it cannot be read. */
  async current(): Promise<LayoutState> {
    const info = await stat(join(this.settings.path, 'index.json')).catch((err: Error) => {
      throw this.unreadable(err)
    })
    const key = `${info.ino}:${info.size}:${info.mtimeMs}`
    if (this.state && key === this.key) return this.state
    this.loading ??= this.load(key).finally(() => {
      this.loading = undefined
    })
    return this.loading
  }

  /** The manifest of `repository` by tag or digest; MANIFEST_UNKNOWN when the layout has none. */
  async manifest(repository: string, reference: string): Promise<LayoutManifest> {
    const state = await this.current()
    const tags = state.repositories.get(repository)
    if (!tags) throw RegistryError.nameUnknown(repository)
    // Any manifest of the layout by digest: the children of an index are not listed in index.json.
    const digest = parseDigest(reference)
    const entry = typeof digest === 'string' ? tags.get(reference) : undefined
    const m = await this.readManifest(state, typeof digest === 'string' ? entry?.digest : digest.value)
    if (!m) throw RegistryError.manifestUnknown(reference)
    return m
  }

  /** A blob file of the layout: its size and a reader of a byte range; BLOB_UNKNOWN when absent. */
  async blob(repository: string, digest: string): Promise<{ size: number; open(start: number, length: number | undefined): Readable }> {
    const state = await this.current()
    if (!state.repositories.has(repository)) throw RegistryError.nameUnknown(repository)
    const file = await this.blobFile(state, digest)
    if (!file) throw RegistryError.blobUnknown(digest)
    return {
      size: file.size,
      open: (start, length) => (length === 0 || file.size === 0 ? Readable.from([]) : createReadStream(file.path, { start, ...(length === undefined ? {} : { end: start + length - 1 }) })),
    }
  }

  async tags(repository: string): Promise<string[]> {
    const tags = (await this.current()).repositories.get(repository)
    if (!tags) throw RegistryError.nameUnknown(repository)
    return [...tags.keys()].sort()
  }

  async referrers(repository: string, subject: string): Promise<Descriptor[]> {
    const state = await this.current()
    if (!state.repositories.has(repository)) throw RegistryError.nameUnknown(repository)
    return state.referrers.get(subject) ?? []
  }

  /** The repositories of the layout; none when it cannot be read (logged). */
  async repositories(): Promise<string[]> {
    try {
      return [...(await this.current()).repositories.keys()]
    } catch (err) {
      if (err instanceof RegistryError) return []
      throw err
    }
  }

  private async load(key: string): Promise<LayoutState> {
    const dir = await this.confined()
    let layout: DirLayout
    try {
      layout = await DirLayout.open(dir)
    } catch (err) {
      if (err instanceof LayoutProblem) throw this.unreadable(err)
      throw err
    }
    const state: LayoutState = { dir, repositories: new Map(), referrers: new Map() }
    if (this.opts.oneRepository) state.repositories.set(this.repositoryOf(''), new Map())
    const untagged: Descriptor[] = []
    const skipped: string[] = []
    for (const d of layout.index().manifests) {
      const tag = entryTag(d)
      const named = this.opts.oneRepository ? '' : entryRepository(d)
      // A referrer (Berth's export, oras) is listed without a name: it is served by its subject.
      if (tag === undefined) untagged.push(d)
      if (tag === undefined && !named) continue
      const repository = this.repositoryOf(named)
      if (!isValidName(repository) || (tag !== undefined && !isValidTag(tag))) {
        skipped.push(`${d.digest} (${repository}${tag === undefined ? '' : `:${tag}`})`)
        continue
      }
      const tags = state.repositories.get(repository) ?? new Map<string, Descriptor>()
      state.repositories.set(repository, tags)
      if (tag !== undefined) tags.set(tag, d)
    }
    if (skipped.length > 0) this.opts.log.warn({ project: this.project, skipped: skipped.slice(0, 20) }, 'index.json entries of a layout skipped: not a valid repository name or tag')
    for (const d of untagged) {
      const m = await this.readManifest(state, d.digest)
      if (!m?.subjectDigest) continue
      const list = state.referrers.get(m.subjectDigest) ?? []
      list.push({ mediaType: m.mediaType, digest: m.digest, size: m.size, ...(m.artifactType ? { artifactType: m.artifactType } : {}), ...(m.annotations ? { annotations: m.annotations } : {}) })
      state.referrers.set(m.subjectDigest, list)
    }
    this.state = state
    this.key = key
    return state
  }

  /** `team/app` (as Berth's export names it) → PROJECT/app; unnamed → PROJECT/<settings.repository>. */
  private repositoryOf(named: string): string {
    if (!named) return `${this.project}/${this.settings.repository}`
    const parts = named.split('/')
    return `${this.project}/${parts.length > 1 ? parts.slice(1).join('/') : named}`
  }

  /** The layout directory resolved, when it lies below an allowed root. */
  private async confined(): Promise<string> {
    const dir = await realpath(this.settings.path).catch((err: Error) => {
      throw this.unreadable(err)
    })
    if (!(await underAllowedRoot(dir, this.opts.allowedRoots))) throw this.unreadable(new Error(`${dir} is not under layouts.allowedRoots`))
    return dir
  }

  /** The file of a blob, resolved, when it is a regular file below the layout directory. */
  private async blobFile(state: LayoutState, digest: string): Promise<{ path: string; size: number } | undefined> {
    const d = parseDigest(digest)
    if (typeof d === 'string') return undefined
    const path = await realpath(join(state.dir, 'blobs', d.algorithm, d.hex)).catch(() => undefined)
    if (path === undefined) return undefined
    if (!path.startsWith(state.dir + sep)) {
      this.opts.log.warn({ project: this.project, digest }, 'a blob of a layout links outside its directory: not served')
      return undefined
    }
    const info = await stat(path).catch(() => undefined)
    return info?.isFile() ? { path, size: info.size } : undefined
  }

  /** A manifest blob, verified against its digest; undefined when absent, too big, damaged or no manifest. */
  private async readManifest(state: LayoutState, digest: string | undefined): Promise<LayoutManifest | undefined> {
    if (digest === undefined) return undefined
    const file = await this.blobFile(state, digest)
    if (!file || file.size > this.opts.maxManifestSize) return undefined
    const bytes = await readFile(file.path)
    const algorithm = digest.slice(0, digest.indexOf(':'))
    if (`${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` !== digest) {
      this.opts.log.warn({ project: this.project, digest }, 'a manifest of a layout does not match its digest: not served')
      return undefined
    }
    try {
      const parsed = parseManifest(bytes, undefined)
      return { bytes, mediaType: parsed.mediaType, digest, size: bytes.length, subjectDigest: parsed.subject?.digest ?? null, artifactType: parsed.artifactType, annotations: parsed.annotations }
    } catch (err) {
      if (err instanceof ManifestProblem) return undefined
      throw err
    }
  }

  /** The reason is logged; the client is told the layout cannot be read, not where it lies. */
  private unreadable(err: Error): RegistryError {
    this.opts.log.warn({ project: this.project, path: this.settings.path, err: err.message }, 'the OCI image layout of a project cannot be read')
    return new RegistryError('UNAVAILABLE', `the OCI image layout of project ${this.project} cannot be read now`)
  }
}

/** Whether `dir` (resolved) is one of the roots or below one (each resolved too). */
export async function underAllowedRoot(dir: string, roots: readonly string[]): Promise<boolean> {
  for (const root of roots) {
    const real = await realpath(root).catch(() => undefined)
    if (real !== undefined && (dir === real || dir.startsWith(real.endsWith(sep) ? real : real + sep))) return true
  }
  return false
}
