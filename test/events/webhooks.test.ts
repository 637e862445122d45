import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { pushAsAdmin as push, Receiver, type Received } from './receiver.js'

/** Standard Webhooks verification, written from the specification (standardwebhooks.com). */
function verify(secret: string, r: Received): void {
  const id = r.headers['webhook-id']
  const ts = r.headers['webhook-timestamp']
  const sig = r.headers['webhook-signature']
  assert.equal(typeof id, 'string')
  assert.match(String(ts), /^\d+$/)
  assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 300, 'timestamp within 5 minutes')
  assert.ok(secret.startsWith('whsec_'))
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64')
  const expected = createHmac('sha256', key).update(`${String(id)}.${String(ts)}.${r.body}`).digest('base64')
  const offered = String(sig).split(' ').map((s) => s.split(','))
  assert.ok(offered.some(([v, mac]) => v === 'v1' && mac === expected), `signature ${String(sig)} verifies`)
}

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`

test('webhook policies: SSRF guard, formats, signatures, test send, deliveries and replay', async () => {
  const loopback = await new Receiver().up()
  // 127.0.0.2 is loopback too, and the one address events.allowedNetworks lets non-administrators use
  const allowed = await new Receiver('127.0.0.2').up()
  const chat = await new Receiver().up()
  const s = await startAuthServer({ events: { allowedNetworks: ['127.0.0.2/32'], pollInterval: '50ms', maxBackoff: '300ms' } })
  try {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'other' }, 201)
    const pat = await addUser(s, 'pat')
    const dev = await addUser(s, 'dev')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'pat', role: 'projectAdmin' }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    const hook = (name: string, url: string, extra: Record<string, unknown> = {}) => ({ name, url, eventTypes: ['artifact.pushed', 'tag.created'], ...extra })

    // SSRF: a project administrator may not aim at metadata or loopback addresses
    for (const url of ['http://169.254.169.254/latest/meta-data/', loopback.url, 'http://[::1]:9/x', 'http://localhost:9/']) {
      const res = await api(s, 'POST', '/projects/team/webhooks', pat, hook('bad', url))
      const body = (await res.json()) as { detail?: string; field?: string }
      assert.equal(res.status, 400, `${url}: ${JSON.stringify(body)}`)
    }
    // ...nor can a developer manage webhooks, nor a project administrator system-wide ones
    assert.equal((await api(s, 'POST', '/projects/team/webhooks', dev, hook('d', allowed.url))).status, 403)
    assert.equal((await api(s, 'POST', '/webhooks', pat, hook('p', allowed.url))).status, 403)
    // bad input: 400 with the field named
    assert.equal((await api(s, 'POST', '/webhooks', ADMIN, hook('x', 'ftp://a/'))).status, 400)
    assert.equal((await api(s, 'POST', '/webhooks', ADMIN, hook('x', loopback.url, { eventTypes: ['nope'] }))).status, 400)
    assert.equal((await api(s, 'POST', '/webhooks', ADMIN, hook('x', loopback.url, { format: 'xml' }))).status, 400)
    assert.equal((await api(s, 'POST', '/webhooks', ADMIN, hook('x', loopback.url, { secret: 'plain' }))).status, 400)

    // a system administrator may, and a non-administrator may reach what allowedNetworks allows
    const system = await apiOk<Record<string, unknown>>(s, 'POST', '/webhooks', ADMIN, hook('ce', loopback.url, { format: 'cloudevents', secret: SECRET, authHeader: 'Bearer hook-token' }), 201)
    assert.equal(system.secret, undefined, 'a given secret is not answered')
    assert.equal(system.hasSecret, true)
    const project = await apiOk<{ secret?: string }>(s, 'POST', '/projects/team/webhooks', pat, hook('harbor', allowed.url), 201)
    assert.ok(project.secret?.startsWith('whsec_'), 'a generated secret is answered once')
    await apiOk(s, 'POST', '/projects/team/webhooks', ADMIN, hook('chat', chat.url, { format: 'slack', eventTypes: ['artifact.pushed'] }), 201)
    const listed = await apiOk<Record<string, unknown>[]>(s, 'GET', '/projects/team/webhooks', pat)
    assert.deepEqual(listed.map((w) => w.name).sort(), ['chat', 'harbor'])
    for (const w of listed) assert.ok(!('secret' in w) && !('authHeader' in w), 'secrets are never returned')
    assert.equal((await api(s, 'POST', '/projects/team/webhooks', pat, hook('harbor', allowed.url))).status, 409)
    // changing the URL of a project webhook to a refused address is refused too
    assert.equal((await api(s, 'PATCH', '/projects/team/webhooks/harbor', pat, { url: 'http://169.254.169.254/' })).status, 400)

    const digest = await push(s, 'team/app', 'v1', 'one')
    await push(s, 'other/app', 'v1', 'other')

    await eventually(() => loopback.received.length === 4 && allowed.received.length === 2 && chat.received.length === 1, 'webhook deliveries', 10_000)
    // CloudEvents 1.0 structured: the required attributes
    for (const r of loopback.received) {
      assert.equal(r.headers['content-type'], 'application/cloudevents+json')
      assert.equal(r.headers.authorization, 'Bearer hook-token')
      verify(SECRET, r)
      const ce = JSON.parse(r.body) as Record<string, unknown>
      assert.equal(ce.specversion, '1.0')
      for (const k of ['id', 'source', 'type']) assert.ok(typeof ce[k] === 'string' && (ce[k] as string).length > 0, k)
      assert.ok(!Number.isNaN(Date.parse(String(ce.time))))
      assert.equal(ce.id, r.headers['webhook-id'])
    }
    const types = loopback.received.map((r) => (JSON.parse(r.body) as { type: string; subject: string }))
    assert.deepEqual(types.map((t) => t.type), ['io.berth.artifact.pushed', 'io.berth.tag.created', 'io.berth.artifact.pushed', 'io.berth.tag.created'])
    assert.equal(types[0]?.subject, 'team/app:v1')
    // the project's webhook hears only its project, in Harbor's payload, signed with its generated secret
    const harbor = allowed.received.map((r) => JSON.parse(r.body) as { type: string; operator: string; event_data: { resources: { digest: string; tag: string }[]; repository: { repo_full_name: string; namespace: string } } })
    assert.equal(harbor[0]?.type, 'PUSH_ARTIFACT')
    assert.equal(harbor[0]?.operator, 'admin')
    assert.equal(harbor[0]?.event_data.resources[0]?.digest, digest)
    assert.equal(harbor[0]?.event_data.resources[0]?.tag, 'v1')
    assert.equal(harbor[0]?.event_data.repository.repo_full_name, 'team/app')
    assert.equal(harbor[0]?.event_data.repository.namespace, 'team')
    for (const r of allowed.received) verify(String(project.secret), r)
    assert.match((JSON.parse(chat.received[0]?.body ?? '{}') as { text: string }).text, /artifact\.pushed team\/app:v1/)

    // test send, synchronously
    const tested = await apiOk<{ statusCode: number; latencyMs: number }>(s, 'POST', '/projects/team/webhooks/harbor/test', pat)
    assert.equal(tested.statusCode, 200)
    assert.equal(allowed.received.length, 3)
    verify(String(project.secret), allowed.received[2] as Received)

    // deliveries with status code, attempts, latency; replay sends the same event id again
    const deliveries = await apiOk<{ id: number; eventId: string; status: string; attempts: number; statusCode: number; latencyMs: number }[]>(s, 'GET', '/projects/team/webhooks/harbor/deliveries', pat)
    assert.equal(deliveries.length, 2)
    for (const d of deliveries) {
      assert.equal(d.status, 'delivered')
      assert.equal(d.attempts, 1)
      assert.equal(d.statusCode, 200)
      assert.equal(typeof d.latencyMs, 'number')
    }
    const first = deliveries[1]
    assert.ok(first)
    const replayed = await apiOk<{ eventId: string }>(s, 'POST', `/projects/team/webhooks/harbor/deliveries/${first.id}/replay`, pat, undefined, 202)
    assert.equal(replayed.eventId, first.eventId)
    await eventually(() => allowed.received.length === 4, 'the replayed delivery', 10_000)
    assert.equal(allowed.received[3]?.headers['webhook-id'], first.eventId)
    assert.equal((await api(s, 'POST', '/projects/team/webhooks/chat/deliveries/999999/replay', pat)).status, 404)

    // delete
    assert.equal((await api(s, 'DELETE', '/projects/team/webhooks/chat', pat)).status, 204)
    assert.equal((await api(s, 'GET', '/projects/team/webhooks/chat', pat)).status, 404)
  } finally {
    await s.close()
    await Promise.all([loopback.down(), allowed.down(), chat.down()])
  }
})

test('a webhook answering 10 MB is not read to the end; a failing one is retried, listed, dead-lettered, replayed; metrics count it', async () => {
  const huge = await new Receiver().up()
  huge.mode = 'huge'
  const failing = await new Receiver().up()
  failing.mode = 'fail'
  const s = await startAuthServer({ events: { pollInterval: '50ms', maxBackoff: '200ms', webhookTimeout: '20s', deadLetterAfter: '1500ms' } })
  try {
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'huge', url: huge.url, eventTypes: ['artifact.pushed'] }, 201)
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'failing', url: failing.url, eventTypes: ['artifact.pushed'] }, 201)
    const started = Date.now()
    const tested = await apiOk<{ statusCode: number; latencyMs: number }>(s, 'POST', '/webhooks/huge/test', ADMIN)
    assert.equal(tested.statusCode, 200)
    assert.ok(Date.now() - started < 5_000, 'answered without waiting for the 10 MB body')
    await push(s, 'library/x', 'v1', 'x')
    await eventually(async () => {
      const list = await apiOk<{ attempts: number; statusCode: number; lastError: string; status: string }[]>(s, 'GET', '/webhooks/failing/deliveries', ADMIN)
      return list.length === 1 && (list[0]?.attempts ?? 0) >= 3 && list[0]?.statusCode === 503 && /HTTP 503: try later/.test(list[0]?.lastError ?? '')
    }, 'a failing delivery retried and listed', 10_000)
    type D = { id: number; status: string; eventId: string }
    await eventually(async () => (await apiOk<D[]>(s, 'GET', '/webhooks/failing/deliveries', ADMIN))[0]?.status === 'dead', 'dead-lettered after events.deadLetterAfter', 10_000)
    // the delivery thread hands its counts over a few times a second
    const metricsMatch = (re: RegExp) => eventually(async () => re.test(await (await fetch(`${s.url}/metrics`)).text()), `metrics match ${re}`, 5_000)
    await metricsMatch(/berth_event_deliveries_total\{sink="webhook:system:failing",result="failed"\} [1-9]/)
    await metricsMatch(/berth_events_emitted_total [1-9]/)
    const [dead] = await apiOk<D[]>(s, 'GET', '/webhooks/failing/deliveries', ADMIN)
    failing.mode = 'ok'
    await apiOk(s, 'POST', `/webhooks/failing/deliveries/${dead?.id}/replay`, ADMIN, undefined, 202)
    await eventually(() => failing.received.length === 1, 'the replayed dead letter delivered', 10_000)
    assert.equal(failing.received[0]?.headers['webhook-id'], dead?.eventId)
    await metricsMatch(/berth_event_delivery_lag_seconds_count\{sink="webhook:system:failing"\} 1/)

    // a GC run is an event too (system scope)
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'runs', url: failing.url, eventTypes: ['gc.finished'], format: 'cloudevents' }, 201)
    const { id: runId } = await apiOk<{ id: string }>(s, 'POST', '/gc', ADMIN, { dryRun: true }, 202)
    await eventually(() => failing.received.length === 2, 'the gc.finished event', 10_000)
    const ce = JSON.parse(failing.received[1]?.body ?? '{}') as { type: string; data: { detail: { runId: string; status: string; dryRun: boolean } } }
    assert.equal(ce.type, 'io.berth.gc.finished')
    assert.deepEqual([ce.data.detail.runId, ce.data.detail.status, ce.data.detail.dryRun], [runId, 'succeeded', true])
    const ok = await apiOk<{ status: string }[]>(s, 'GET', '/webhooks/huge/deliveries', ADMIN)
    await eventually(async () => (await apiOk<{ status: string }[]>(s, 'GET', '/webhooks/huge/deliveries', ADMIN))[0]?.status === 'delivered', 'the huge answer counts as delivered', 10_000)
    assert.ok(ok.length === 1)
  } finally {
    await s.close()
    await Promise.all([huge.down(), failing.down()])
  }
})
