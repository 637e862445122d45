import pg from 'pg'
import { isChangeKind, type ChangeFeed } from './changes.js'

/** The channel the triggers (migrations 0004, 0007, 0009) notify on every change to a cached table. */
export const CHANGE_CHANNEL = 'berth_metadata_changes'

/**
 * Keeps one connection LISTENing on CHANGE_CHANNEL and hands what changed (the payload names a
 * change kind, see changes.ts) to the change feed. PostgreSQL delivers a notification only
 * after its transaction commits, so once the feed moves, every later read sees the change.
 * While the connection is down (PostgreSQL restarted, network trouble, a pooler that cannot
 * LISTEN) `listening()` is false, which turns read caching off; on reconnect everything counts
 * as changed, dropping whatever was cached before.
 */
export class ChangeListener {
  private client: pg.Client | undefined
  private live = false
  private closed = false
  private retry: NodeJS.Timeout | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private backoff = 250

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly changes: ChangeFeed,
    private readonly log?: { warn(obj: object, msg: string): void },
    /** How often the connection proves it is alive; a silent connection stops caching. */
    private readonly heartbeatMs = 5_000,
  ) {}

  /** false while not listening (nothing may be cached then). */
  listening(): boolean {
    return this.live
  }

  /** Resolves once listening or after the first failure (caching stays off until it recovers). */
  async start(): Promise<void> {
    await this.connect()
  }

  private async connect(): Promise<void> {
    if (this.closed) return
    const client = new pg.Client({ ...this.config, query_timeout: Math.max(this.heartbeatMs, 1_000) })
    this.client = client
    client.on('notification', (n) => {
      // An empty or unknown payload (a trigger of an older Berth) may mean anything.
      if (n.payload && isChangeKind(n.payload)) this.changes.received([n.payload])
      else this.changes.everything()
    })
    const lost = (err?: Error) => {
      if (this.client !== client) return
      this.down(err)
    }
    client.on('error', lost)
    client.on('end', () => lost())
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANGE_CHANNEL}`)
      if (this.client !== client) {
        // Closed (or replaced) while connecting.
        await client.end().catch(() => undefined)
        return
      }
      // Anything may have changed while nobody was listening.
      this.changes.everything()
      this.live = true
      this.backoff = 250
      this.heartbeat = setInterval(() => {
        client.query('select 1').catch((err: Error) => lost(err))
      }, this.heartbeatMs)
      this.heartbeat.unref()
    } catch (err) {
      lost(err as Error)
    }
  }

  private down(err?: Error): void {
    const wasLive = this.live
    this.live = false
    clearInterval(this.heartbeat)
    const client = this.client
    this.client = undefined
    client?.removeAllListeners('notification')
    client?.on('error', () => undefined)
    void client?.end().catch(() => undefined)
    if (this.closed) return
    if (wasLive || this.backoff === 250) this.log?.warn({ err }, 'metadata: change listener lost its PostgreSQL connection; read cache off until it reconnects')
    this.retry = setTimeout(() => void this.connect(), this.backoff)
    this.retry.unref()
    this.backoff = Math.min(this.backoff * 2, 10_000)
  }

  async close(): Promise<void> {
    this.closed = true
    this.live = false
    clearTimeout(this.retry)
    clearInterval(this.heartbeat)
    const client = this.client
    this.client = undefined
    if (client) {
      client.on('error', () => undefined)
      await client.end().catch(() => undefined)
    }
  }
}
