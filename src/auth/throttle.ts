/**
 * Brute-force protection: after `limit` failed logins within `window` ms for one user name or
 * one client address, further attempts for it are refused until the window passes.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>()

  constructor(
    private readonly limit: number,
    private readonly window: number,
    private readonly now: () => number,
  ) {}

  blocked(username: string | undefined, address: string): boolean {
    return (username !== undefined && this.count(`u:${username}`) >= this.limit) || this.count(`a:${address}`) >= this.limit * 3
  }

  fail(username: string | undefined, address: string): void {
    if (username !== undefined) this.push(`u:${username}`)
    this.push(`a:${address}`)
  }

  succeed(username: string): void {
    this.failures.delete(`u:${username}`)
  }

  private count(key: string): number {
    const list = this.failures.get(key)
    if (!list) return 0
    const cutoff = this.now() - this.window
    while (list.length > 0 && (list[0] ?? 0) < cutoff) list.shift()
    if (list.length === 0) this.failures.delete(key)
    return list.length
  }

  private push(key: string): void {
    const list = this.failures.get(key) ?? []
    list.push(this.now())
    if (list.length > this.limit * 4) list.shift()
    this.failures.set(key, list)
    // Bound memory under a spray of names/addresses.
    if (this.failures.size > 100_000) this.failures.delete(this.failures.keys().next().value as string)
  }
}
