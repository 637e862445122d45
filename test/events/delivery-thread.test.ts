import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { pushAsAdmin, Receiver } from './receiver.js'

// Deliveries move to a thread of their own once a sink exists (events.deliveryThread, on by
// default): the thread delivers, hears policy changes made on the main thread, and its log
// reaches the server's; with the setting off the event loop delivers, and nothing else changes.

const THREAD_STARTED = 'event delivery runs on a thread of its own'

async function serverWithLog(events: Record<string, unknown>) {
  const lines: string[] = []
  const logStream = new PassThrough()
  logStream.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')))
  const s = await startAuthServer({ log: { level: 'info' }, events: { pollInterval: '50ms', ...events } }, { logStream })
  return { s, log: () => lines.join('') }
}

test('the delivery thread starts with the first webhook, delivers, follows policy changes and logs through the server', async () => {
  const first = await new Receiver().up()
  const second = await new Receiver().up()
  const failing = await new Receiver().up()
  failing.mode = 'fail'
  const { s, log } = await serverWithLog({ deadLetterAfter: '300ms', maxBackoff: '100ms' })
  try {
    await pushAsAdmin(s, 'library/app', 'before', 'no sink yet')
    assert.ok(!log().includes(THREAD_STARTED), 'no thread while no sink exists')

    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'ci', url: first.url, eventTypes: ['artifact.pushed'] }, 201)
    await pushAsAdmin(s, 'library/app', 'v1', 'first')
    await eventually(() => first.received.length === 1, 'the push delivered', 15_000)
    assert.ok(log().includes(THREAD_STARTED), 'the thread delivered it')
    const body = JSON.parse(first.received[0]?.body ?? '{}') as { event_data?: { resources?: { tag?: string }[] } }
    assert.equal(body.event_data?.resources?.[0]?.tag, 'v1', 'the event of the push made after the webhook, not the one before')
    assert.match(String(first.received[0]?.headers['webhook-signature']), /^v1,/, 'signed with the secret the thread decrypted')

    // a change made through the API on the main thread reaches the thread
    await apiOk(s, 'PATCH', '/webhooks/ci', ADMIN, { url: second.url }, 200)
    await pushAsAdmin(s, 'library/app', 'v2', 'second')
    await eventually(() => second.received.length === 1, 'delivered to the new URL', 15_000)
    assert.equal(first.received.length, 1)

    // the thread's log lines reach the server's log
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'failing', url: failing.url, eventTypes: ['artifact.pushed'] }, 201)
    await pushAsAdmin(s, 'library/app', 'v3', 'third')
    await eventually(() => log().includes('event delivery dead-lettered'), 'the thread logged the dead letter', 15_000)
    const line = log().split('\n').find((l) => l.includes('event delivery dead-lettered')) ?? ''
    assert.match(line, /"sink":"webhook:system:failing"/)
  } finally {
    await s.close()
    await Promise.all([first.down(), second.down(), failing.down()])
  }
})

test('with events.deliveryThread false the event loop delivers', async () => {
  const receiver = await new Receiver().up()
  const { s, log } = await serverWithLog({ deliveryThread: false })
  try {
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'ci', url: receiver.url, eventTypes: ['artifact.pushed'] }, 201)
    await pushAsAdmin(s, 'library/app', 'v1', 'first')
    await eventually(() => receiver.received.length === 1, 'the push delivered', 15_000)
    assert.ok(!log().includes(THREAD_STARTED))
  } finally {
    await s.close()
    await receiver.down()
  }
})
