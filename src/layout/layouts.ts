import { realpath, stat } from 'node:fs/promises'
import { basename, isAbsolute, resolve } from 'node:path'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { Generation } from '../metadata/changes.js'
import type { Descriptor } from '../oci/manifest.js'
import { isValidName } from '../oci/reference.js'
import { DirLayout, LayoutProblem } from '../transfer/layout-store.js'
import { underAllowedRoot, type LayoutDir, type LayoutManifest, type LayoutSettings } from './layout-dir.js'
import { isTree, LayoutTree, ProjectLayout, TREE_LIMITS } from './layout-tree.js'

export interface LayoutDeps {
  projects: { list(): Promise<{ name: string; layout: string | null }[]> }
  /** moves when a project changed (on any node) */
  generation: Generation
  /** layouts.allowedRoots: the directories (and what lies below them) a layout project may be served from */
  allowedRoots: readonly string[]
  maxManifestSize: number
  log: Logger
  now: () => number
}

/**
 * Layout-backed projects: a project served read-only from an OCI image layout directory on the
 * server (index.json + blobs/), or from a directory holding one such layout per repository
 * (Zot's storage root), without copying it into the registry (Zot's way for sites fed by
 * removable media). Which projects are backed so is held in memory and read again when a
 * project changes; each directory's index is read again when its index.json changes, and a
 * tree of layouts is scanned again every few seconds (src/layout/layout-tree.ts).
 */
export class LayoutService {
  private snapshot = new Map<string, ProjectLayout>()
  private stored = new Map<string, string>()
  private loaded: number | undefined
  private loadedAt = -Infinity
  private loading: Promise<Map<string, ProjectLayout>> | undefined

  constructor(private readonly deps: LayoutDeps) {}

  // ---- settings (the `layout` field of the projects API) ----

  /** Checks a project's `layout` field: the JSON to store. INVALID_FIELD (400) naming the field otherwise. */
  async parseSettings(input: unknown, project: string): Promise<string> {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw RegistryError.invalidField('layout', 'an object {"path": "/absolute/dir"}')
    const { path, repository, ...rest } = input as Record<string, unknown>
    const unknown = Object.keys(rest)[0]
    if (unknown !== undefined) throw RegistryError.invalidField(`layout.${unknown}`, 'unknown field (path, repository)')
    if (typeof path !== 'string' || !isAbsolute(path)) throw RegistryError.invalidField('layout.path', 'an absolute path of an OCI image layout directory on the server')
    const roots = this.deps.allowedRoots
    if (roots.length === 0) throw RegistryError.invalidField('layout.path', 'no directory may back a project on this server: list the allowed directories in layouts.allowedRoots')
    const real = await realpath(path).catch(() => undefined)
    if (real === undefined || !(await stat(real)).isDirectory()) throw RegistryError.invalidField('layout.path', `${path} is not a directory on the server`)
    if (!(await underAllowedRoot(real, roots))) throw RegistryError.invalidField('layout.path', `${path} is not below a directory of layouts.allowedRoots (${roots.join(', ')})`)
    const settings: LayoutSettings = { path: resolve(path), repository: defaultRepository(path) }
    if (await isTree(real)) {
      // One layout per repository below (Zot's storage root): the directories name the repositories.
      const tree = new LayoutTree(project, real, { allowedRoots: roots, maxManifestSize: this.deps.maxManifestSize, log: this.deps.log, now: this.deps.now })
      if ((await tree.count()) === 0) {
        throw RegistryError.invalidField('layout.path', `${path} is not an OCI image layout: it has no index.json, and no directory below it (up to ${TREE_LIMITS.maxDepth} levels) holds one`)
      }
      if (repository !== undefined) throw RegistryError.invalidField('layout.repository', `${path} holds one OCI image layout per repository, named by its directory: no repository to give`)
      return JSON.stringify(settings)
    }
    try {
      await DirLayout.open(real)
    } catch (err) {
      if (err instanceof LayoutProblem) throw RegistryError.invalidField('layout.path', err.message)
      throw err
    }
    if (repository !== undefined) {
      if (typeof repository !== 'string' || !isValidName(`${project}/${repository}`)) throw RegistryError.invalidField('layout.repository', 'a repository name (lowercase letters, digits, separators . _ - and /)')
      settings.repository = repository
    }
    return JSON.stringify(settings)
  }

  settingsView(stored: string): Record<string, unknown> {
    const settings = readSettings(stored)
    return settings ? { ...settings } : { invalid: true }
  }

  // ---- serving ----

  /** From memory (the pull fast path): whether a request for `repository` may be served from a layout. */
  mayServe(repository: string): boolean {
    return this.outdated() || this.snapshot.has(projectOf(repository))
  }

  /** The layout project serving `repository`, or undefined when it is an ordinary one. */
  async serves(repository: string): Promise<string | undefined> {
    const project = projectOf(repository)
    return (await this.projects()).has(project) ? project : undefined
  }

  async manifest(repository: string, reference: string): Promise<LayoutManifest> {
    return (await this.dir(repository)).manifest(repository, reference)
  }

  async blob(repository: string, digest: string): ReturnType<LayoutDir['blob']> {
    return (await this.dir(repository)).blob(repository, digest)
  }

  async tags(repository: string): Promise<string[]> {
    return (await this.dir(repository)).tags(repository)
  }

  async referrers(repository: string, subject: string): Promise<Descriptor[]> {
    return (await this.dir(repository)).referrers(repository, subject)
  }

  /** The repositories of every layout project (for the catalog), sorted. */
  async repositories(): Promise<string[]> {
    const out: string[] = []
    for (const dir of (await this.projects()).values()) out.push(...(await dir.repositories()))
    return out.sort()
  }

  /** The layout directory serving `repository` (of a tree: that repository's own). */
  private async dir(repository: string): Promise<LayoutDir> {
    const project = (await this.projects()).get(projectOf(repository))
    if (!project) throw RegistryError.nameUnknown(repository)
    return project.dir(repository)
  }

  /** The layout projects by name (read again when a project changed, on any node). */
  private async projects(): Promise<Map<string, ProjectLayout>> {
    if (!this.outdated()) return this.snapshot
    this.loading ??= this.load(this.deps.generation()).finally(() => {
      this.loading = undefined
    })
    return this.loading
  }

  private async load(generation: number | undefined): Promise<Map<string, ProjectLayout>> {
    const next = new Map<string, ProjectLayout>()
    const stored = new Map<string, string>()
    for (const row of await this.deps.projects.list()) {
      const settings = row.layout === null ? undefined : readSettings(row.layout)
      if (!settings || row.layout === null) continue
      stored.set(row.name, row.layout)
      // An unchanged project keeps its directory and what was read of it.
      const same = this.stored.get(row.name) === row.layout ? this.snapshot.get(row.name) : undefined
      next.set(row.name, same ?? new ProjectLayout(row.name, settings, { allowedRoots: this.deps.allowedRoots, maxManifestSize: this.deps.maxManifestSize, log: this.deps.log, now: this.deps.now }))
    }
    this.snapshot = next
    this.stored = stored
    this.loaded = generation
    this.loadedAt = this.deps.now()
    return next
  }

  /** Whether the snapshot may be out of date (without a change feed: read again each second). */
  private outdated(): boolean {
    const generation = this.deps.generation()
    return generation === undefined ? this.deps.now() - this.loadedAt >= 1000 : generation !== this.loaded
  }

  // ---- reads for the web UI's browser (src/browse) ----

  /** The names of the layout projects, sorted. */
  async projectNames(): Promise<string[]> {
    return [...(await this.projects()).keys()].sort()
  }

  /** The tags of `repository` with the index.json entry each names (digest, media type, size). */
  async tagDescriptors(repository: string): Promise<Map<string, Descriptor>> {
    const tags = (await (await this.dir(repository)).current()).repositories.get(repository)
    if (!tags) throw RegistryError.nameUnknown(repository)
    return new Map(tags)
  }
}

function projectOf(repository: string): string {
  const slash = repository.indexOf('/')
  return slash === -1 ? '' : repository.slice(0, slash)
}

function readSettings(stored: string): LayoutSettings | undefined {
  try {
    const doc = JSON.parse(stored) as Partial<LayoutSettings>
    return typeof doc.path === 'string' && typeof doc.repository === 'string' ? { path: doc.path, repository: doc.repository } : undefined
  } catch {
    return undefined
  }
}

/** The directory's name when it is a valid repository name component (skopeo's `oci:/media/usb/alpine:3.19`), else `images`. */
function defaultRepository(path: string): string {
  const name = basename(path).toLowerCase()
  return isValidName(name) && !name.includes('/') ? name : 'images'
}
