import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../helpers/server.js'
import { buildImage, putManifest } from '../helpers/oci.js'
import { eventually } from '../helpers/eventually.js'
import { Receiver } from './receiver.js'

const ENVELOPE = 'application/vnd.docker.distribution.events.v2+json'

/** A consumer written against Distribution's documented envelope (notifications/event.go). */
interface DistributionEvent {
  id: string
  timestamp: string
  action: 'push' | 'pull' | 'delete' | 'mount'
  target: { mediaType: string; size: number; digest: string; length: number; repository: string; url: string; tag?: string }
  request: { id: string; addr: string; host: string; method: string; useragent: string }
  actor: { name: string }
  source: { addr: string; instanceID: string }
}

function parseEnvelope(contentType: string | undefined, body: string): DistributionEvent[] {
  assert.equal(contentType, ENVELOPE)
  const parsed = JSON.parse(body) as { events: DistributionEvent[] }
  assert.ok(Array.isArray(parsed.events))
  for (const e of parsed.events) {
    assert.match(e.id, /^[0-9a-f-]{36}$/)
    assert.ok(!Number.isNaN(Date.parse(e.timestamp)))
    assert.ok(['push', 'pull', 'delete', 'mount'].includes(e.action))
    for (const k of ['mediaType', 'digest', 'repository', 'url'] as const) assert.equal(typeof e.target[k], 'string', `target.${k}`)
    assert.equal(typeof e.target.size, 'number')
    assert.equal(e.target.length, e.target.size)
    for (const k of ['id', 'addr', 'host', 'method', 'useragent'] as const) assert.equal(typeof e.request[k], 'string', `request.${k}`)
    assert.equal(typeof e.actor.name, 'string')
    assert.equal(typeof e.source.instanceID, 'string')
  }
  return parsed.events
}

function events(r: Receiver): DistributionEvent[] {
  return r.received.flatMap((m) => parseEnvelope(m.headers['content-type'], m.body))
}

const fast = { pollInterval: '50ms', maxBackoff: '300ms', pullBatchInterval: '100ms' }

test('an endpoint down for a while then back gets every event, in order, duplicates only by id', async () => {
  const receiver = await new Receiver().up()
  const url = receiver.url
  await receiver.down()
  const s = await startServer({ notifications: { endpoints: [{ name: 'down-then-up', url, timeout: '1s', threshold: 2, backoff: '50ms', headers: { 'x-token': ['a', 'b'] } }] }, events: fast })
  try {
    const pushed: string[] = []
    for (let i = 0; i < 6; i++) {
      const img = await buildImage(s.url, 'proj/app', `seed-${i}`)
      assert.equal((await putManifest(s.url, 'proj/app', `v${i}`, img.manifest)).status, 201)
      pushed.push(img.digest)
    }
    const last = pushed[5] ?? ''
    assert.equal((await fetch(`${s.url}/v2/proj/app/manifests/v0`, { method: 'DELETE' })).status, 202)
    assert.equal((await fetch(`${s.url}/v2/proj/app/manifests/${last}`)).status, 200)
    // the receiver is down through several attempts
    await new Promise((r) => setTimeout(r, 1500))
    assert.equal(receiver.received.length, 0)
    await receiver.up()
    await eventually(() => events(receiver).some((e) => e.action === 'pull'), 'all events after the receiver is back', 15_000)
    const got = events(receiver)
    const unique = new Map(got.map((e) => [e.id, e]))
    // duplicates (a delivery whose answer was lost) repeat an id; every event is there once at least
    const ordered = [...unique.values()]
    assert.deepEqual(ordered.filter((e) => e.action === 'push').map((e) => e.target.digest), pushed)
    assert.deepEqual(ordered.filter((e) => e.action === 'push').map((e) => e.target.tag), ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'])
    const del = ordered.find((e) => e.action === 'delete')
    assert.equal(del?.target.tag, 'v0')
    assert.equal(del?.target.digest, pushed[0])
    const pull = ordered.find((e) => e.action === 'pull')
    assert.equal(pull?.target.digest, last)
    // in order: every push before the delete, the delete before the pull
    const actions = ordered.map((e) => e.action)
    assert.deepEqual(actions, ['push', 'push', 'push', 'push', 'push', 'push', 'delete', 'pull'])
    const first = ordered[0]
    assert.equal(first?.target.repository, 'proj/app')
    assert.equal(first?.target.mediaType, 'application/vnd.oci.image.manifest.v1+json')
    assert.equal(first?.target.url, `http://${s.host}/v2/proj/app/manifests/${pushed[0]}`)
    assert.equal(first?.request.method, 'PUT')
    assert.equal(first?.request.addr, '127.0.0.1')
    assert.equal(receiver.received[0]?.headers['x-token'], 'a, b')
  } finally {
    await s.close()
    await receiver.down()
  }
})

test('ignore.actions and ignoredmediatypes filter what an endpoint gets; disabled endpoints get nothing', async () => {
  const all = await new Receiver().up()
  const noPush = await new Receiver().up()
  const off = await new Receiver().up()
  const s = await startServer({
    notifications: {
      endpoints: [
        { name: 'all', url: all.url },
        { name: 'no-push', url: noPush.url, ignore: { actions: ['push'] }, ignoredmediatypes: ['application/vnd.oci.image.index.v1+json'] },
        { name: 'off', url: off.url, disabled: true },
      ],
    },
    events: fast,
  })
  try {
    const img = await buildImage(s.url, 'lib/x', 'x')
    assert.equal((await putManifest(s.url, 'lib/x', 'latest', img.manifest)).status, 201)
    assert.equal((await fetch(`${s.url}/v2/lib/x/manifests/latest`, { method: 'DELETE' })).status, 202)
    await eventually(() => events(all).length === 2 && events(noPush).length === 1, 'deliveries', 10_000)
    assert.deepEqual(events(noPush).map((e) => e.action), ['delete'])
    assert.equal(off.received.length, 0)
  } finally {
    await s.close()
    await Promise.all([all.down(), noPush.down(), off.down()])
  }
})

test('a restart while a delivery hangs loses nothing: the next start delivers it', async () => {
  const receiver = await new Receiver().up()
  receiver.mode = 'hang'
  const config = { notifications: { endpoints: [{ name: 'slow', url: receiver.url, timeout: '30s' }] }, events: fast }
  const first = await startServer(config, { keepData: true })
  let second: Awaited<ReturnType<typeof startServer>> | undefined
  try {
    const img = await buildImage(first.url, 'p/r', 'restart')
    assert.equal((await putManifest(first.url, 'p/r', 'one', img.manifest)).status, 201)
    await new Promise((r) => setTimeout(r, 500))
    await first.close()
    receiver.mode = 'ok'
    second = await startServer({ ...config, dataDir: first.dataDir })
    await eventually(() => events(receiver).length >= 1, 'the event after the restart', 10_000)
    assert.equal(events(receiver)[0]?.target.digest, img.digest)
  } finally {
    await second?.close()
    await receiver.down()
  }
})

test('a hanging endpoint is cut at its timeout and does not delay another endpoint', async () => {
  const hanging = await new Receiver().up()
  hanging.mode = 'hang'
  const quick = await new Receiver().up()
  const s = await startServer({ notifications: { endpoints: [{ name: 'hangs', url: hanging.url, timeout: '60s' }, { name: 'quick', url: quick.url, timeout: '1s' }] }, events: fast })
  try {
    for (let i = 0; i < 3; i++) {
      const img = await buildImage(s.url, 'p/h', `h${i}`)
      assert.equal((await putManifest(s.url, 'p/h', `t${i}`, img.manifest)).status, 201)
    }
    await eventually(() => events(quick).length === 3, 'the quick endpoint has all events while the other hangs', 5_000)
  } finally {
    await s.close()
    await Promise.all([hanging.down(), quick.down()])
  }
})
