import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { Deliverer } from '../../src/events/deliver.js'
import { NetworkGuard } from '../../src/events/ssrf.js'
import { pushAsAdmin, Receiver } from './receiver.js'

// Deliveries ride keep-alive connections, one pool per destination, and the network guard still
// decides every new connection of a guarded destination.

const JSON_HEADERS = { 'content-type': 'application/json' }

test('deliveries to one destination share a keep-alive connection; the guard decides each new connection', async () => {
  const receiver = await new Receiver().up()
  const d = new Deliverer()
  try {
    for (let i = 0; i < 5; i++) {
      const r = await d.post(receiver.url, `{"n":${i}}`, JSON_HEADERS, 2_000)
      assert.deepEqual([r.statusCode, r.error], [200, undefined])
    }
    assert.equal(receiver.received.length, 5)
    // kept alive: a new connection is opened only while the last one is not yet free again
    assert.ok(receiver.connections <= 2, `five deliveries over ${receiver.connections} connections`)

    // A guarded delivery to the same origin does not ride the open pool's connection: refused,
    // by address literal and by a name that resolves to loopback, and nothing reaches the receiver.
    const strict = new NetworkGuard([])
    const before = receiver.connections
    const port = new URL(receiver.url).port
    for (const url of [receiver.url, `http://localhost:${port}/hook`]) {
      const r = await d.post(url, '{}', JSON_HEADERS, 2_000, strict)
      assert.equal(r.statusCode, null, url)
      assert.match(r.error ?? '', /loopback, link-local, private or reserved address/, url)
    }
    assert.equal(receiver.received.length, 5)
    assert.equal(receiver.connections, before, 'no connection was opened')
    const open = receiver.connections

    // allowed by allowedNetworks: a guarded pool of its own, kept alive too
    const allowing = new NetworkGuard(['127.0.0.1/32'])
    for (let i = 0; i < 5; i++) assert.equal((await d.post(receiver.url, '{}', JSON_HEADERS, 2_000, allowing)).statusCode, 200)
    assert.ok(receiver.connections > open && receiver.connections <= open + 2, `${receiver.connections - open} new connections`)

    // a hanging receiver is cut at the timeout; a 10 MB answer is not read
    receiver.mode = 'hang'
    const hung = await d.post(receiver.url, '{}', JSON_HEADERS, 300)
    assert.deepEqual([hung.statusCode, hung.error], [null, 'no answer within 300 ms'])
    receiver.mode = 'huge'
    const started = Date.now()
    const huge = await d.post(receiver.url, '{}', JSON_HEADERS, 20_000)
    assert.equal(huge.statusCode, 200)
    assert.ok(Date.now() - started < 5_000, 'answered without the 10 MB body')
    receiver.mode = 'fail'
    const failed = await d.post(receiver.url, '{}', JSON_HEADERS, 2_000)
    assert.deepEqual([failed.statusCode, failed.error], [503, 'HTTP 503: try later'])
  } finally {
    await d.close()
    await receiver.down()
  }
  const after = await d.post(receiver.url, '{}', JSON_HEADERS, 2_000)
  assert.match(after.error ?? '', /shutting down/)
})

test('the drainer delivers a burst of events to a webhook over one connection', async () => {
  const receiver = await new Receiver().up()
  const s = await startAuthServer({ events: { pollInterval: '50ms' } })
  try {
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'ci', url: receiver.url, eventTypes: ['artifact.pushed', 'tag.created'] }, 201)
    for (let i = 0; i < 6; i++) await pushAsAdmin(s, 'library/app', `v${i}`, `seed ${i}`)
    await eventually(() => receiver.received.length === 12, 'twelve deliveries', 10_000)
    assert.ok(receiver.connections <= 2, `twelve deliveries over ${receiver.connections} keep-alive connections`)
  } finally {
    await s.close()
    await receiver.down()
  }
})
