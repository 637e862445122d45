// berth_db_pool_clients: the PostgreSQL pool of the metadata database, as pg-pool counts it.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createTestDatabase, dropTestDatabase, postgresSkip, startServer } from '../helpers/server.js'

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('database pool metrics', { skip: postgresSkip() }, () => {
  it('shows open, idle and waiting on PostgreSQL: a query waiting for the only connection is counted', async () => {
    const url = await createTestDatabase()
    const s = await startServer({ database: { url, pool: { max: 1 } } }, { workers: 0 })
    try {
      const idle = await (await fetch(`${s.url}/metrics`)).text()
      assert.equal(sample(idle, 'berth_db_pool_clients{state="total"}'), 1)
      // background work (the outbox's polling, jobs) may be queued on a pool of one at any time
      assert.equal(typeof sample(idle, 'berth_db_pool_clients{state="waiting"}'), 'number')
      // A transaction holds the pool's only connection; a second query waits for it.
      let release = () => {}
      const held = new Promise<void>((r) => (release = r))
      let started = () => {}
      const inside = new Promise<void>((r) => (started = r))
      const trx = s.app.metadata.db.transaction().execute(async () => {
        started()
        await held
      })
      await inside
      const waiting = s.app.metadata.ping()
      // what the gauge reads at a scrape (a scrape itself would wait for the connection here)
      const busy = s.app.metadata.poolStats?.()
      assert.equal(busy?.total, 1)
      assert.equal(busy?.idle, 0)
      assert.ok((busy?.waiting ?? 0) >= 1, 'the waiting query is counted')
      release()
      await trx
      await waiting
      const after = await (await fetch(`${s.url}/metrics`)).text()
      assert.equal(sample(after, 'berth_db_pool_clients{state="total"}'), 1)
    } finally {
      await s.close()
      await dropTestDatabase(url)
    }
  })
})

describe('database pool metrics on SQLite', () => {
  it('exports the metric without samples (there is no pool)', async () => {
    const s = await startServer({ database: { url: undefined } }, { workers: 0 })
    try {
      const text = await (await fetch(`${s.url}/metrics`)).text()
      if (s.app.metadata.caps.dialect !== 'sqlite') return
      assert.match(text, /^# TYPE berth_db_pool_clients gauge$/m)
      assert.doesNotMatch(text, /^berth_db_pool_clients\{/m)
    } finally {
      await s.close()
    }
  })
})
