/** Serialises async work per key inside this process (e.g. chunks of one upload session). */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>()

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve()
    const current = before.catch(() => undefined).then(work)
    this.tails.set(key, current)
    try {
      return await current
    } finally {
      if (this.tails.get(key) === current) this.tails.delete(key)
    }
  }

  held(key: string): boolean {
    return this.tails.has(key)
  }
}
