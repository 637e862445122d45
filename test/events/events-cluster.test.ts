// At-least-once delivery across a node's death: two `berth serve` nodes on one PostgreSQL
// database deliver Distribution notifications to a slow receiver; the node delivering is
// SIGKILLed in the middle of a delivery. Every event must arrive, duplicates only by id, in the
// order the pushes were made, and the surviving node must finish the work.

import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort, makeTempDir, removeTempDir, startDaemon, waitFor, type Daemon } from '../helpers/e2e-process.js'
import { buildImage, putManifest } from '../helpers/oci.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'
import { Receiver } from './receiver.js'

const ROOT = join(import.meta.dirname, '..', '..')
const PUSHES = 24

interface Notification {
  id: string
  action: string
  target: { tag?: string; repository: string }
  source: { addr: string }
}

describe('events across a SIGKILL of the delivering node (PostgreSQL, 2 nodes)', { skip: postgresSkip() }, () => {
  const receiver = new Receiver()
  let dir: string
  let dbUrl: string
  const nodes = new Map<string, Daemon>()

  before(async () => {
    dir = await makeTempDir('berth-events-kill-')
    dbUrl = await createTestDatabase()
    await receiver.up()
    // each delivery is answered after 150 ms: there is always one in flight
    receiver.delayMs = 150
    const config = join(dir, 'berth.yaml')
    await writeFile(
      config,
      [
        'auth: { enabled: false }',
        'events: { pollInterval: 100ms, leaseTimeout: 2s, maxBackoff: 500ms }',
        'notifications:',
        '  endpoints:',
        `    - { name: receiver, url: "${receiver.url}", timeout: 2s, threshold: 3, backoff: 100ms }`,
        '',
      ].join('\n'),
    )
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      const addr = `127.0.0.1:${port}`
      const node = startDaemon(`berth-${i}`, process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'serve', '--config', config, '--data-dir', join(dir, 'data'), '--addr', addr], {
        logFile: join(dir, `berth-${i}.log`),
        cwd: ROOT,
        env: { ...process.env, BERTH_DATABASE_URL: dbUrl, BERTH_LOG_LEVEL: 'info' },
      })
      nodes.set(addr, node)
      await waitFor(`berth ${i}`, async () => (await fetch(`http://${addr}/readyz`).catch(() => undefined))?.status === 200 || undefined, { daemon: node, timeoutMs: 60_000 })
    }
  })

  after(async () => {
    for (const node of nodes.values()) await node.stop()
    await receiver.down()
    if (dbUrl) await dropTestDatabase(dbUrl)
    await removeTempDir(dir)
  })

  it('delivers every push once or more, in order, after the delivering node dies', { timeout: 120_000 }, async () => {
    const addrs = [...nodes.keys()]
    const started = Date.now()
    const events = () => receiver.received.map((r) => (JSON.parse(r.body) as { events: Notification[] }).events[0] as Notification)
    const push = async (addr: string, i: number) => {
      const base = `http://${addr}`
      const img = await buildImage(base, 'kill/app', `push ${i}`)
      assert.equal((await putManifest(base, 'kill/app', `t${String(i).padStart(2, '0')}`, img.manifest)).status, 201)
    }
    // the first two pushes, one through each node; the first delivery names the delivering node
    await push(addrs[0] ?? '', 0)
    await push(addrs[1] ?? '', 1)
    await waitFor('a first delivery', async () => receiver.received.length >= 1 || undefined, { timeoutMs: 30_000 })
    const delivering = events()[0]?.source.addr ?? ''
    const victim = nodes.get(delivering)
    const survivor = addrs.find((a) => a !== delivering) ?? ''
    assert.ok(victim, `the delivering node is one of ours: ${delivering}`)
    // the 4th delivery is recorded and waits for its answer: its sender dies then
    const kill = waitFor('a few deliveries', async () => receiver.received.length >= 4 || undefined, { timeoutMs: 60_000, intervalMs: 5 }).then(() => {
      process.kill(victim.pid, 'SIGKILL')
      return receiver.received.length
    })
    // the other pushes, one after another (their order is the outbox's order), through the survivor
    for (let i = 2; i < PUSHES; i++) await push(survivor, i)
    const killedAfter = await kill
    await waitFor('the node gone', async () => victim.exit !== undefined || undefined, { timeoutMs: 10_000 })

    await waitFor('every push delivered', async () => new Set(events().filter((e) => e.action === 'push').map((e) => e.id)).size >= PUSHES || undefined, { timeoutMs: 90_000 })
    const pushes = events().filter((e) => e.action === 'push')
    // duplicates only by id: a second delivery of an id is the same event
    const byId = new Map<string, Notification>()
    for (const e of pushes) {
      const seen = byId.get(e.id)
      if (seen) assert.deepEqual({ ...e, source: undefined }, { ...seen, source: undefined }, 'a redelivery is the same event')
      else byId.set(e.id, e)
    }
    assert.equal(byId.size, PUSHES)
    console.log(`# ${pushes.length} deliveries of ${PUSHES} events (${pushes.length - PUSHES} again after the kill), ${killedAfter} before the kill, ${Date.now() - started} ms`)
    // in order: the first delivery of each event follows the pushes' order
    const firstSeen = [...byId.values()].map((e) => e.target.tag)
    assert.deepEqual(firstSeen, Array.from({ length: PUSHES }, (_, i) => `t${String(i).padStart(2, '0')}`))
    // the survivor finished the work
    assert.ok(receiver.received.length > killedAfter, 'deliveries went on after the kill')
    assert.ok(events().slice(killedAfter).every((e) => e.source.addr === survivor), 'only the surviving node delivered after the kill')
  })
})
