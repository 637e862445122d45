/**
 * Writes that no read cache depends on: audit rows (one per pull, batched), robots' last-use
 * times, pull statistics (flushed every few seconds) and the job queue's bookkeeping (polled
 * every second). Counting them would empty the pull path's caches every second under load.
 */
const CACHE_NEUTRAL = /^\s*(insert into "audit_log"|delete from "audit_log"|update "robots" set "last_used_at"|insert into "manifest_pulls"|insert into "jobs"|update "jobs"|delete from "jobs")/i

export function isCacheNeutral(sql: string): boolean {
  return CACHE_NEUTRAL.test(sql)
}
