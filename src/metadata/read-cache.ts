import type { Generation } from './changes.js'

interface CacheCounts {
  hits: number
  misses: number
}

/** Reads of each named cache of this process: answered from memory (hits) or loaded (misses). */
const COUNTS = new Map<string, CacheCounts>()

/** The hit and miss counts of every named read cache, by name. */
export function readCacheCounts(): ReadonlyMap<string, Readonly<CacheCounts>> {
  return COUNTS
}

/**
 * A bounded cache of metadata reads that is emptied whenever its generation moves: a change of
 * a kind of row it holds (see ChangeFeed), by this process or another. Reads on the pull path
 * (manifest by tag, blob link lookups) and access decisions hit it.
 */
export class ReadCache<V> {
  private readonly entries = new Map<string, V>()
  private seen: number | undefined
  private weight = 0

  private readonly counts: CacheCounts | undefined

  /**
   * `weigh` gives an entry's cost (bytes); the cache holds at most `budget` in total. A cache
   * with a `name` counts its hits and misses (readCacheCounts, the metrics).
   */
  constructor(
    private readonly generation: Generation,
    private readonly budget: number,
    private readonly weigh: (value: V) => number = () => 1,
    name?: string,
  ) {
    if (name === undefined) return
    this.counts = COUNTS.get(name) ?? { hits: 0, misses: 0 }
    COUNTS.set(name, this.counts)
  }

  async get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const now = this.current()
    if (now !== undefined) {
      const hit = this.entries.get(key)
      if (hit !== undefined) {
        if (this.counts) this.counts.hits++
        return hit
      }
    }
    if (this.counts) this.counts.misses++
    const value = await load()
    if (value !== undefined) this.offer(key, value, now)
    return value
  }

  /** The value held for `key`, without loading it (a hit counts; a miss is counted by the get that follows). */
  peek(key: string): V | undefined {
    const hit = this.current() === undefined ? undefined : this.entries.get(key)
    if (hit !== undefined && this.counts) this.counts.hits++
    return hit
  }

  /** Keeps a value read while the generation was `at`, unless something was written since. */
  offer(key: string, value: V, at: number | undefined): void {
    if (at === undefined || this.current() !== at) return
    this.add(key, value)
  }

  drop(key: string): void {
    const held = this.entries.get(key)
    if (held === undefined) return
    this.weight -= this.weigh(held)
    this.entries.delete(key)
  }

  /** The write generation now; everything held is dropped when it moved. */
  private current(): number | undefined {
    const now = this.generation()
    if (now !== undefined && now !== this.seen) {
      this.entries.clear()
      this.weight = 0
      this.seen = now
    }
    return now
  }

  private add(key: string, value: V): void {
    const cost = this.weigh(value)
    if (cost > this.budget / 4) return
    while (this.weight + cost > this.budget && this.entries.size > 0) {
      const oldest = this.entries.keys().next().value as string
      this.weight -= this.weigh(this.entries.get(oldest) as V)
      this.entries.delete(oldest)
    }
    this.entries.set(key, value)
    this.weight += cost
  }
}
