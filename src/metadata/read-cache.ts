/**
 * A bounded cache of metadata reads that is emptied whenever the database's write generation
 * moves (any commit, by this process or another). Reads on the pull path (manifest by tag,
 * blob link lookups) hit it; a write anywhere makes the next read go to the database.
 */
export class ReadCache<V> {
  private readonly entries = new Map<string, V>()
  private seen: string | undefined
  private weight = 0

  /** `weigh` gives an entry's cost (bytes); the cache holds at most `budget` in total. */
  constructor(
    private readonly generation: () => string | undefined,
    private readonly budget: number,
    private readonly weigh: (value: V) => number = () => 1,
  ) {}

  async get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const now = this.generation()
    if (now === undefined) return load()
    if (now !== this.seen) {
      this.entries.clear()
      this.weight = 0
      this.seen = now
    }
    const hit = this.entries.get(key)
    if (hit !== undefined) return hit
    const value = await load()
    // Only keep it if nothing was written while it loaded.
    if (value !== undefined && this.generation() === now) this.add(key, value)
    return value
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
