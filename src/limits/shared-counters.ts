import type SQLite from 'better-sqlite3'

/**
 * Fixed-window counters in a SQLite file of their own, shared by the processes of
 * `berth serve --workers N` on the embedded database, so that a limit means the same with 1 or N
 * workers (in memory each worker would allow the whole rate). A file apart from the metadata
 * database: a counter's write never waits for a push's transaction, nor a push for it.
 *
 * Not rate-limiter-flexible's RateLimiterSQLite: it prepares a new statement on every call, and
 * better-sqlite3 statements collected by the garbage collector abort Node.js 24 (see
 * withStatementCache in src/metadata/db.ts). The one statement here is prepared once, with the
 * same window rule as the library's other stores (points add up until the window expires).
 */
export class SharedCounters {
  private readonly upsert: SQLite.Statement<[string, number, number, number, number], { points: number; expire: number }>
  private readonly prune: SQLite.Statement<[number]>
  private readonly timer: NodeJS.Timeout

  private constructor(private readonly db: SQLite.Database) {
    this.upsert = db.prepare(
      `insert into rate_limits (key, points, expire) values (?, ?, ?)
       on conflict (key) do update set
         points = case when expire > ? then points + excluded.points else excluded.points end,
         expire = case when expire > ? then expire else excluded.expire end
       returning points, expire`,
    )
    this.prune = db.prepare('delete from rate_limits where expire < ?')
    // Windows that ended an hour ago are of no use to anyone.
    this.timer = setInterval(() => this.prune.run(Date.now() - 3_600_000), 300_000).unref()
  }

  static async open(path: string): Promise<SharedCounters> {
    const { default: Database } = await import('better-sqlite3')
    const db = new Database(path)
    db.exec('pragma journal_mode = WAL')
    // Counters may lose their last writes in a power failure: they are not worth an fsync each.
    db.exec('pragma synchronous = OFF')
    db.exec('pragma busy_timeout = 5000')
    db.exec('create table if not exists rate_limits (key text primary key, points integer not null, expire integer not null)')
    return new SharedCounters(db)
  }

  /** Adds `points` to `key`'s window of `windowMs` (a new one when it expired): the total and when it ends. */
  take(key: string, points: number, windowMs: number): { points: number; expire: number } {
    const now = Date.now()
    return this.upsert.get(key, points, now + windowMs, now, now) as { points: number; expire: number }
  }

  close(): void {
    clearInterval(this.timer)
    this.db.close()
  }
}
