import type { Hash } from 'node:crypto'
import type { Algorithm } from '../oci/digest.js'

/** A session's running hash, with the stored bytes it describes. */
export interface RunningHash {
  hash: Hash
  algorithm: Algorithm
  /** bytes hashed */
  size: number
  /** the stored bytes' version when they were hashed (see FileInfo.version) */
  version?: string
}

/**
 * Running hashes of upload sessions, kept as an optimisation only (a missing one is recomputed
 * from the stored bytes). Bounded: behind a round-robin balancer a node sees chunks of sessions
 * that another node finishes, and would otherwise keep their hashes forever. The least recently
 * used entry goes first.
 */
export class HashCache {
  private readonly entries = new Map<string, RunningHash>()

  constructor(readonly max = 1024) {}

  /** The hash of `id` if it describes exactly `size` bytes of `algorithm` (and that stored `version`, when asked). */
  get(id: string, algorithm: Algorithm, size: number, stored?: { version: string | undefined }): RunningHash | undefined {
    const entry = this.entries.get(id)
    if (!entry) return undefined
    if (entry.algorithm !== algorithm || entry.size !== size || (stored && entry.version !== stored.version)) {
      // Stale: the session moved on elsewhere (another node, a failed chunk).
      this.entries.delete(id)
      return undefined
    }
    // Most recently used last.
    this.entries.delete(id)
    this.entries.set(id, entry)
    return entry
  }

  set(id: string, entry: RunningHash): void {
    this.entries.delete(id)
    this.entries.set(id, entry)
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
  }

  delete(id: string): void {
    this.entries.delete(id)
  }

  get size(): number {
    return this.entries.size
  }
}
