import { randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import type { RegistryContext } from './context.js'

/** How long a lease lasts without renewal: a holder that died frees its session after this. */
export const SESSION_LEASE_MS = 30_000
const RENEW_MS = SESSION_LEASE_MS / 3
/** Polls for a lease held elsewhere start at this and double up to MAX_POLL_MS. */
const FIRST_POLL_MS = 2
const MAX_POLL_MS = 100

/**
 * Upload sessions written by several processes (`berth serve --workers`, nodes on one
 * PostgreSQL): a request that changes a session's bytes holds its lease, a row in the metadata
 * database, so that two requests of one session (on different connections, hence maybe
 * different processes) run one after the other, as they do inside one process. Without it both
 * would append to the session's file at once and break the session.
 */
export class SessionLeases {
  constructor(private readonly ctx: RegistryContext) {}

  /** Runs `work` holding session `id`'s lease; waits while another request holds it. */
  async hold<T>(id: string, work: () => Promise<T>): Promise<T> {
    const holder = randomUUID()
    for (let wait = FIRST_POLL_MS; !(await this.take(id, holder)); wait = Math.min(wait * 2, MAX_POLL_MS)) await delay(wait)
    // A long chunk (gigabytes from a slow client) renews the lease while it is written.
    const renewal = setInterval(() => {
      this.take(id, holder).then(
        (held) => held || this.ctx.log.warn({ upload: id }, 'lost the lease of an upload session while writing to it'),
        (err: unknown) => this.ctx.log.warn({ err, upload: id }, 'could not renew the lease of an upload session'),
      )
    }, RENEW_MS)
    renewal.unref()
    try {
      return await work()
    } finally {
      clearInterval(renewal)
      await this.ctx.meta.uploads.release(id, holder).catch((err: unknown) => this.ctx.log.warn({ err, upload: id }, 'could not release the lease of an upload session; it expires'))
    }
  }

  /** Takes the lease unless another holder has it: false then. */
  async take(id: string, holder: string): Promise<boolean> {
    return this.ctx.meta.uploads.lease(id, holder, this.ctx.now(), SESSION_LEASE_MS)
  }
}
