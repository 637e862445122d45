import type { Generation } from './changes.js'

/**
 * A bounded cache of metadata reads that is emptied whenever its generation moves: a change of
 * a kind of row it holds (see ChangeFeed), by this process or another. Reads on the pull path
 * (manifest by tag, blob link lookups) and access decisions hit it.
 */
export class ReadCache<V> {
  private readonly entries = new Map<string, V>()
  private seen: number | undefined
  private weight = 0

  /** `weigh` gives an entry's cost (bytes); the cache holds at most `budget` in total. */
  constructor(
    private readonly generation: Generation,
    private readonly budget: number,
    private readonly weigh: (value: V) => number = () => 1,
  ) {}

  async get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const now = this.current()
    if (now === undefined) return load()
    const hit = this.entries.get(key)
    if (hit !== undefined) return hit
    const value = await load()
    if (value !== undefined) this.offer(key, value, now)
    return value
  }

  /** The value held for `key`, without loading it. */
  peek(key: string): V | undefined {
    return this.current() === undefined ? undefined : this.entries.get(key)
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
