import type { Dirent } from 'node:fs'
import { readdir, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { isValidName } from '../oci/reference.js'
import { LayoutDir, underAllowedRoot, type LayoutDirOptions, type LayoutSettings } from './layout-dir.js'

/** Bounds of a scan: a tree on removable media is not trusted to be small or acyclic. */
export interface TreeLimits {
  /** repository paths of at most this many components are found (Zot's `team/app` is 2) */
  maxDepth: number
  /** the scan stops once this many layouts are found */
  maxRepositories: number
  /** the scan stops after this many directories, layouts or not */
  maxDirectories: number
}

export const TREE_LIMITS: TreeLimits = { maxDepth: 8, maxRepositories: 10_000, maxDirectories: 100_000 }

/** A scan is reused this long; an older one is redone in the background while it keeps serving. */
const REFRESH_MS = 5_000
/** A request for a repository the last scan did not find scans again when that scan is older than this. */
const UNKNOWN_RESCAN_MS = 1_000

export interface TreeOptions extends Omit<LayoutDirOptions, 'oneRepository' | 'log'> {
  log: Pick<Logger, 'warn'>
  now: () => number
  limits?: TreeLimits
}

interface Scan {
  /** PROJECT/<relative path> → its layout */
  dirs: Map<string, LayoutDir>
  at: number
}

/**
 * A directory holding one OCI image layout per repository, as Zot stores them
 * (`<root>/team/app/index.json`, `<root>/tools/index.json`): each layout is the repository
 * PROJECT/<its path below the root>, its tags the `org.opencontainers.image.ref.name` of its
 * index.json entries. The tree is scanned breadth first, bounded (TreeLimits; a warning says
 * what was left out), following symbolic links only to directories inside the tree (a link to a directory also
 * scanned serves it under both names); the `blobs`
 * directory of a layout and names that are no repository path component (`.uploads`, `_trivy`)
 * are not entered. A scan is redone every few seconds, and at once (at most each second) when a
 * repository it did not find is asked for, so that a directory added to the tree is served
 * without a restart.
 */
export class LayoutTree {
  private scanned: Scan | undefined
  private scanning: Promise<Scan> | undefined
  /** the warnings of the last scan, as told */
  private warned = '[]'

  constructor(
    readonly project: string,
    readonly path: string,
    private readonly opts: TreeOptions,
  ) {}

  /** The layout serving `repository` (PROJECT/…); NAME_UNKNOWN when the tree has none, UNAVAILABLE when it cannot be read. */
  async dir(repository: string): Promise<LayoutDir> {
    let scan = await this.current()
    let dir = scan.dirs.get(repository)
    if (!dir && this.opts.now() - scan.at >= UNKNOWN_RESCAN_MS) {
      scan = await this.rescan()
      dir = scan.dirs.get(repository)
    }
    if (!dir) throw RegistryError.nameUnknown(repository)
    return dir
  }

  /** The repositories of the tree whose layout can be read now. */
  async repositories(): Promise<string[]> {
    let scan: Scan
    try {
      scan = await this.current()
    } catch (err) {
      if (err instanceof RegistryError) return []
      throw err
    }
    const out: string[] = []
    for (const dir of scan.dirs.values()) out.push(...(await dir.repositories()))
    return out
  }

  /** Scans the tree now: how many layouts it holds (for checking a new project's path). */
  async count(): Promise<number> {
    return (await this.rescan()).dirs.size
  }

  private async current(): Promise<Scan> {
    const scan = this.scanned
    if (!scan) return this.rescan()
    if (this.opts.now() - scan.at >= REFRESH_MS) void this.rescan().catch(() => undefined)
    return scan
  }

  private rescan(): Promise<Scan> {
    this.scanning ??= this.scan()
      .then(
        (scan) => (this.scanned = scan),
        (err: unknown) => {
          this.scanned = undefined
          throw err
        },
      )
      .finally(() => {
        this.scanning = undefined
      })
    return this.scanning
  }

  private async scan(): Promise<Scan> {
    const at = this.opts.now()
    const limits = this.opts.limits ?? TREE_LIMITS
    const root = await realpath(this.path).catch((err: Error) => {
      throw this.unreadable(err)
    })
    if (!(await underAllowedRoot(root, this.opts.allowedRoots))) throw this.unreadable(new Error(`${root} is not under layouts.allowedRoots`))
    const previous = this.scanned?.dirs
    const dirs = new Map<string, LayoutDir>()
    const visited = new Set<string>([root])
    const skipped: string[] = []
    const left: { deeper?: boolean; repositories?: boolean; directories?: boolean } = {}
    let queue: { dir: string; rel: string; depth: number }[] = [{ dir: root, rel: '', depth: 0 }]
    let directories = 0
    scan: while (queue.length > 0) {
      const next: typeof queue = []
      for (const { dir, rel, depth } of queue) {
        let entries: Dirent[]
        try {
          entries = await readdir(dir, { withFileTypes: true })
        } catch (err) {
          if (rel === '') throw this.unreadable(err as Error)
          skipped.push(`${rel} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
          continue
        }
        const isLayout = rel !== '' && entries.some((e) => e.name === 'index.json' && !e.isDirectory())
        if (isLayout) {
          const repository = `${this.project}/${rel}`
          if (!isValidName(repository)) skipped.push(`${rel} (not a valid repository name)`)
          else if (dirs.size >= limits.maxRepositories) {
            left.repositories = true
            break scan
          } else {
            const same = previous?.get(repository)
            dirs.set(repository, same?.settings.path === dir ? same : this.layoutAt(dir, rel))
          }
        }
        for (const e of entries.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
          if (!e.isDirectory() && !e.isSymbolicLink()) continue
          if (isLayout && e.name === 'blobs') continue
          if (!isValidName(e.name)) {
            if (!/^[._]/.test(e.name)) skipped.push(`${rel === '' ? '' : `${rel}/`}${e.name} (not a repository path component)`)
            continue
          }
          const child = await this.inside(join(dir, e.name), e, root)
          if (child === null) skipped.push(`${rel === '' ? '' : `${rel}/`}${e.name} (a symbolic link to outside the tree: not followed)`)
          // A link is followed once, and never back up to a directory already scanned: no cycles.
          if (child === undefined || child === null || (e.isSymbolicLink() && visited.has(child))) continue
          if (depth >= limits.maxDepth) {
            left.deeper = true
            continue
          }
          // Past the bound, the directories found so far are still read; nothing more is added.
          if (directories >= limits.maxDirectories) {
            left.directories = true
            continue
          }
          directories++
          visited.add(child)
          next.push({ dir: child, rel: rel === '' ? e.name : `${rel}/${e.name}`, depth: depth + 1 })
        }
      }
      queue = next
    }
    const warnings: [Record<string, unknown>, string][] = []
    if (skipped.length > 0) warnings.push([{ skipped: skipped.slice(0, 20), count: skipped.length }, 'directories of a per-repository layout tree left out'])
    if (left.deeper) warnings.push([{ maxDepth: limits.maxDepth }, `a per-repository layout tree goes deeper than ${limits.maxDepth} levels: the directories below are not scanned`])
    if (left.repositories) warnings.push([{ maxRepositories: limits.maxRepositories }, `a per-repository layout tree holds more than ${limits.maxRepositories} layouts: the scan stopped there`])
    if (left.directories) warnings.push([{ maxDirectories: limits.maxDirectories }, `a per-repository layout tree has more than ${limits.maxDirectories} directories: the scan stopped there`])
    // Told when they change, not at every scan.
    const told = JSON.stringify(warnings)
    if (told !== this.warned) for (const [fields, message] of warnings) this.opts.log.warn({ project: this.project, ...fields }, message)
    this.warned = told
    return { dirs, at }
  }

  /**
   * The directory an entry names, resolved, when it is the tree or a directory inside it;
   * null for a symbolic link to anything outside the tree, undefined for no directory.
   */
  private async inside(path: string, entry: Dirent, root: string): Promise<string | null | undefined> {
    if (entry.isDirectory()) return path
    const real = await realpath(path).catch(() => undefined)
    if (real === undefined) return undefined
    if (real !== root && !real.startsWith(root + sep)) return null
    return (await stat(real).catch(() => undefined))?.isDirectory() ? real : undefined
  }

  private layoutAt(dir: string, rel: string): LayoutDir {
    const settings: LayoutSettings = { path: dir, repository: rel }
    return new LayoutDir(this.project, settings, { allowedRoots: this.opts.allowedRoots, maxManifestSize: this.opts.maxManifestSize, log: this.opts.log, oneRepository: true })
  }

  /** The reason is logged; the client is told the layout cannot be read, not where it lies. */
  private unreadable(err: Error): RegistryError {
    this.opts.log.warn({ project: this.project, path: this.path, err: err.message }, 'the OCI image layout tree of a project cannot be read')
    return new RegistryError('UNAVAILABLE', `the OCI image layout of project ${this.project} cannot be read now`)
  }
}

/**
 * What backs a layout project: its directory is either one OCI image layout (index.json or
 * oci-layout at its top: LayoutDir, repositories named by index.json) or a tree of them, one
 * per repository (LayoutTree). Which one is decided on each request, so that a medium replaced
 * by one of the other kind is served as it is now.
 */
export class ProjectLayout {
  readonly single: LayoutDir
  readonly tree: LayoutTree

  constructor(project: string, settings: LayoutSettings, opts: TreeOptions) {
    this.single = new LayoutDir(project, settings, { allowedRoots: opts.allowedRoots, maxManifestSize: opts.maxManifestSize, log: opts.log })
    this.tree = new LayoutTree(project, settings.path, opts)
  }

  /** The layout directory serving `repository`. */
  async dir(repository: string): Promise<LayoutDir> {
    return (await isTree(this.single.settings.path)) ? this.tree.dir(repository) : this.single
  }

  async repositories(): Promise<string[]> {
    return (await isTree(this.single.settings.path)) ? this.tree.repositories() : this.single.repositories()
  }
}

/** Whether `path` is no OCI image layout itself (neither index.json nor oci-layout at its top), to be read as a tree of them. */
export async function isTree(path: string): Promise<boolean> {
  for (const name of ['index.json', 'oci-layout']) {
    const found = await stat(join(path, name)).then(
      () => true,
      (err: NodeJS.ErrnoException) => err.code !== 'ENOENT' && err.code !== 'ENOTDIR',
    )
    if (found) return false
  }
  return true
}
