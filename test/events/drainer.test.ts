import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { openMetadata } from '../../src/metadata/db.js'
import { createEventRepository, type BerthEvent } from '../../src/metadata/repositories/events.js'
import { EventDrainer } from '../../src/events/drainer.js'
import { Deliverer } from '../../src/events/deliver.js'
import type { Sink } from '../../src/events/sinks.js'
import { eventually } from '../helpers/eventually.js'
import { Receiver } from './receiver.js'

// The drainer reads, sends and records a sink's deliveries a batch at a time: many batches
// still arrive in event order, and finished deliveries past events.deliveryHistory are removed
// while pending ones stay, however old.

const HOUR = 3_600_000

function sink(name: string, url: string): Sink {
  return {
    key: `notify:${name}`,
    url,
    enabled: true,
    timeoutMs: 2_000,
    threshold: 1,
    backoffMs: 100,
    accepts: () => true,
    render: (e) => ({ body: JSON.stringify(e), headers: { 'content-type': 'application/json' } }),
  }
}

test('batched deliveries keep event order; finished deliveries past their history are removed, pending ones kept', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-drainer-'))
  const metadata = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
  const repo = createEventRepository(metadata.db)
  const up = await new Receiver().up()
  const gone = await new Receiver().up()
  const goneUrl = gone.url
  await gone.down() // connections refused: its deliveries stay pending
  let clock = 1_000_000_000
  const deliverer = new Deliverer()
  const drainer = new EventDrainer(repo, async () => [sink('up', up.url), sink('gone', goneUrl)], deliverer, pino({ level: 'silent' }), {
    pollMs: 50,
    leaseMs: 30_000,
    deadLetterMs: 100 * HOUR,
    historyMs: HOUR,
    maxBackoffMs: 60_000,
    now: () => clock,
  })
  try {
    // more than two batches, appended as a burst
    const events: BerthEvent[] = Array.from({ length: 250 }, (_, i) => ({ id: randomUUID(), type: 'artifact.pushed', time: clock, repository: 'a/b', tag: `t${i}` }))
    await repo.append(events, clock)
    drainer.start()
    await eventually(() => up.received.length >= 250, 'all 250 events at the receiver', 20_000)
    assert.deepEqual(up.received.map((r) => (JSON.parse(r.body) as BerthEvent).tag), events.map((e) => e.tag), 'in event order, each once')
    await eventually(async () => (await repo.deliveries('notify:up', 300)).every((d) => d.status === 'delivered'), 'every delivery recorded as delivered', 10_000)
    await eventually(async () => (await repo.deliveries('notify:gone', 300)).some((d) => d.attempts > 0), 'the refused endpoint tried', 10_000)
    const gonePending = await repo.deliveries('notify:gone', 300)
    assert.equal(gonePending.length, 250)
    assert.ok(gonePending.every((d) => d.status === 'pending'))

    // an hour later: a newer delivered event stays (inside its history), the old ones go
    clock += HOUR + 1
    const late: BerthEvent = { id: randomUUID(), type: 'artifact.pushed', time: clock, repository: 'a/b', tag: 'late' }
    await repo.append([late], clock)
    drainer.wake()
    await eventually(async () => {
      const left = await repo.deliveries('notify:up', 300)
      return left.length === 1 && left[0]?.status === 'delivered'
    }, 'the old delivered deliveries removed, the new one delivered', 10_000)
    const kept = await repo.deliveries('notify:up', 300)
    assert.equal(kept[0]?.event_id, late.id)
    assert.equal(kept[0]?.status, 'delivered')
    const stillPending = await repo.deliveries('notify:gone', 300)
    assert.equal(stillPending.length, 251, 'pending deliveries are never removed, however old')
    assert.ok(stillPending.every((d) => d.status === 'pending'))
  } finally {
    await drainer.stop()
    await deliverer.close()
    await up.down()
    await metadata.close()
    await rm(dir, { recursive: true, force: true })
  }
})
