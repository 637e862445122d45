import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { MetadataDb } from '../metadata/metadata-db.js'

/** How long a slot counts without its node renewing it: a crashed node's uploads stop counting after this. */
export const SLOT_LEASE_MS = 30_000
/** How often a node renews the leases of the slots it holds. */
const RENEW_MS = 10_000

interface Held {
  holder: string
  slot: number
}

/**
 * Uploads in flight per principal, counted in the metadata database every node and worker
 * shares (the upload_slots table, migration 0021). A principal allowed N uploads has the slots
 * 0 … N-1; taking one is a single upsert that succeeds only on a free slot or one whose lease
 * lapsed, so two nodes racing for the last slot cannot both get it (PostgreSQL locks the
 * conflicting row and checks the lease again; SQLite has one writer at a time). The node
 * renews the leases of its slots while their uploads run; a crashed node stops renewing, and
 * its slots are free again within SLOT_LEASE_MS.
 */
export class UploadSlots {
  /** lease id → the slot it holds, for this process's uploads in flight */
  private readonly held = new Map<string, Held>()
  private timer?: NodeJS.Timeout

  constructor(
    private readonly metadata: MetadataDb,
    private readonly log: Pick<Logger, 'warn'>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes one of `holder`'s `max` slots. Resolves with the function that gives it back, or
   * undefined when every slot is held under a live lease.
   */
  async take(holder: string, max: number): Promise<(() => Promise<void>) | undefined> {
    const lease = randomBytes(12).toString('base64url')
    for (let slot = 0; slot < max; slot++) {
      const now = this.now()
      const expires = now + SLOT_LEASE_MS
      const result = await this.metadata.db
        .insertInto('upload_slots')
        .values({ holder, slot, lease, expires_at: expires })
        .onConflict((oc) => oc.columns(['holder', 'slot']).doUpdateSet({ lease, expires_at: expires }).where('upload_slots.expires_at', '<=', now))
        .executeTakeFirst()
      if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) continue
      this.held.set(lease, { holder, slot })
      this.renewing()
      return this.releaser(lease)
    }
    return undefined
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Gives the slot back; resolves once the row is gone (never rejects). Called twice: once. */
  private releaser(lease: string): () => Promise<void> {
    return async () => {
      const held = this.held.get(lease)
      if (!held) return
      this.held.delete(lease)
      if (this.held.size === 0) this.close()
      await this.metadata.db
        .deleteFrom('upload_slots')
        .where('holder', '=', held.holder)
        .where('slot', '=', held.slot)
        .where('lease', '=', lease)
        .execute()
        // Not deleted: the slot frees itself when its lease lapses.
        .catch((err: unknown) => this.log.warn({ err }, 'limits: cannot release an upload slot; it frees itself when its lease lapses'))
    }
  }

  /** Renews this process's leases every RENEW_MS while it holds any (an unref'd timer). */
  private renewing(): void {
    if (this.timer) return
    this.timer = setInterval(() => void this.renew(), RENEW_MS)
    this.timer.unref()
  }

  private async renew(): Promise<void> {
    const leases = [...this.held.keys()]
    if (leases.length === 0) return
    const now = this.now()
    try {
      await this.metadata.db
        .updateTable('upload_slots')
        .set({ expires_at: now + SLOT_LEASE_MS })
        .where('lease', 'in', leases)
        .execute()
      // Slots whose lease lapsed long ago (a crashed node's, a principal gone): no longer needed.
      await this.metadata.db
        .deleteFrom('upload_slots')
        .where('expires_at', '<', now - SLOT_LEASE_MS)
        .execute()
    } catch (err) {
      this.log.warn({ err }, 'limits: cannot renew the leases of upload slots')
    }
  }
}
