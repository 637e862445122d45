import type { CredentialRepository, LoginFailureRow } from '../metadata/repositories/credentials.js'

/** The counters a login attempt was checked against: what `succeed` needs to clear. */
export interface ThrottleState {
  /** ms before a password may be checked for this (user, address); 0: now */
  waitMs: number
  /** whether the (user, address) pair has failures on record */
  pairFailed: boolean
}

/** The first delay once the free attempts are spent; each further failure doubles it. */
const FIRST_DELAY_MS = 1_000

/**
 * Brute-force protection by slowing down, not locking out. Failed logins are counted per
 * (user name, client address) and per client address; from the `free`th failure of a pair (or
 * the `free × 3`th of an address, which catches one password tried on many names) no password
 * is checked for it for 1 s, then 2 s, 4 s… up to `window`. An attacker elsewhere cannot lock
 * anyone out: the delay holds for the attacker's address only, and the owner's right password
 * from another address works. A success clears its pair; counts start again after `window`
 * without failures. The counters live in the metadata database, so they hold across restarts
 * and on every node.
 */
export class LoginThrottle {
  constructor(
    private readonly repo: CredentialRepository,
    private readonly free: number,
    private readonly window: number,
    private readonly now: () => number,
  ) {}

  async state(username: string, address: string): Promise<ThrottleState> {
    const rows = await this.repo.failures(username, address)
    const now = this.now()
    const waitMs = Math.max(0, ...rows.map((r) => Number(r.blocked_until) - now))
    return { waitMs, pairFailed: rows.some((r) => isPair(r, username)) }
  }

  /** told of every failed sign-in (metrics) */
  onFail: (() => void) | undefined

  async fail(username: string, address: string): Promise<void> {
    this.onFail?.()
    const now = this.now()
    const since = now - this.window
    await this.count(username, address, this.free, now, since)
    await this.count('', address, this.free * 3, now, since)
    await this.repo.pruneFailures(since)
  }

  async succeed(username: string, address: string): Promise<void> {
    await this.repo.clearFailures(username, address)
  }

  /** The delay after `failures` failures: none before `free`, then 1 s doubling with each. */
  delay(failures: number, free: number): number {
    if (failures < free) return 0
    return Math.min(FIRST_DELAY_MS * 2 ** Math.min(failures - free, 30), this.window)
  }

  private async count(username: string, address: string, free: number, now: number, since: number): Promise<void> {
    const failures = await this.repo.addFailure(username, address, now, since)
    const delay = this.delay(failures, free)
    if (delay > 0) await this.repo.block(username, address, now + delay)
  }
}

function isPair(row: LoginFailureRow, username: string): boolean {
  return row.username === username && username !== ''
}
