/**
 * What a write changed, as the read caches see it: the kinds of rows they hold. The code that
 * writes says which kinds it changed (the repositories in ./repositories); other nodes' changes
 * arrive with the same names (PostgreSQL notifications, see change-listener.ts and the
 * 0009 migration). Writes of anything else (jobs, audit rows, pull counts, upload sessions,
 * GC bookkeeping) change no kind and leave every cache alone.
 */
export const CHANGE_KINDS = ['repository', 'blob', 'manifest', 'tag', 'user', 'robot', 'project', 'member', 'trust', 'scan'] as const
export type ChangeKind = (typeof CHANGE_KINDS)[number]

/** The kinds each read cache depends on. */
export const MANIFEST_KINDS: readonly ChangeKind[] = ['repository', 'manifest', 'tag']
export const BLOB_LINK_KINDS: readonly ChangeKind[] = ['repository', 'blob']
export const ACCESS_KINDS: readonly ChangeKind[] = ['user', 'robot', 'project', 'member']
/** Trust material, trust policies and verification statuses (the pull gate of src/trust). */
export const TRUST_KINDS: readonly ChangeKind[] = ['trust']
/** scan results and scan policies (the pull gate's decisions, src/scan/policy.ts) */
export const SCAN_KINDS: readonly ChangeKind[] = ['scan']

/** A cache's view of the changes: moves whenever one of its kinds changed; undefined = cache nothing. */
export type Generation = () => number | undefined

/**
 * Counts changes per kind. A cache keeps what it read while the sum of its kinds' counts stays
 * put (see ReadCache). A change announced inside a transaction is counted again when the
 * transaction ends: a read between the write and the commit still saw the old rows and may
 * have cached them under the first count.
 */
export class ChangeFeed {
  private readonly counts = new Map<ChangeKind, number>(CHANGE_KINDS.map((k) => [k, 0]))
  private readonly pending = new Set<ChangeKind>()
  private openTransactions = 0

  /**
   * `live`: whether changes made elsewhere can reach this feed (false: nothing is cached).
   * `poll`: run before each read of the counts, to take in changes made elsewhere.
   */
  constructor(private readonly source: { live(): boolean; poll?(): void } = { live: () => true }) {}

  /** A write of this process changed rows of these kinds. */
  changed(...kinds: ChangeKind[]): void {
    for (const kind of kinds) {
      this.bump(kind)
      if (this.openTransactions > 0) this.pending.add(kind)
    }
  }

  /** Another process (node, CLI) changed rows of these kinds. */
  received(kinds: Iterable<ChangeKind>): void {
    for (const kind of kinds) this.bump(kind)
  }

  /** Anything may have changed (a reconnect, another process's commit of unknown content). */
  everything(): void {
    this.received(CHANGE_KINDS)
  }

  transactionStarted(): void {
    this.openTransactions++
  }

  /** Committed or rolled back: what was announced meanwhile is counted again. */
  transactionEnded(): void {
    this.openTransactions = Math.max(0, this.openTransactions - 1)
    if (this.pending.size === 0) return
    for (const kind of this.pending) this.bump(kind)
    if (this.openTransactions === 0) this.pending.clear()
  }

  /** The generation of a cache that holds rows of `kinds`. */
  generation(kinds: readonly ChangeKind[]): Generation {
    return () => {
      this.source.poll?.()
      if (!this.source.live()) return undefined
      let sum = 0
      for (const kind of kinds) sum += this.counts.get(kind) as number
      return sum
    }
  }

  private bump(kind: ChangeKind): void {
    this.counts.set(kind, (this.counts.get(kind) as number) + 1)
  }
}

/**
 * Runs a write that owns its transaction (or autocommits) and announces what it changed once it
 * committed, or failed (a failed write may have changed nothing, or anything).
 */
export async function announced<T>(changes: ChangeFeed, kinds: readonly ChangeKind[], write: () => Promise<T>): Promise<T> {
  try {
    return await write()
  } finally {
    changes.changed(...kinds)
  }
}

/** A feed for databases whose changes elsewhere cannot be seen: nothing is ever cached. */
export function uncachedFeed(): ChangeFeed {
  return new ChangeFeed({ live: () => false })
}

const KIND_NAMES = new Set<string>(CHANGE_KINDS)

export function isChangeKind(name: string): name is ChangeKind {
  return KIND_NAMES.has(name)
}
