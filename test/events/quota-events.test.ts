// quota.warning events (80 % and 100 % of a project's quota, and a push refused for it), delivered
// as CloudEvents that validate against the CloudEvents 1.0 JSON format's rules.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { asBody, sha256 } from '../helpers/oci.js'
import { Receiver } from './receiver.js'

/**
 * CloudEvents 1.0 in its JSON format, written from the specification (spec.md, formats/json-format.md):
 * the four required attributes, and the types and formats of the optional ones Berth sends.
 */
const CLOUDEVENT_SCHEMA = {
  type: 'object',
  required: ['specversion', 'id', 'source', 'type'],
  properties: {
    specversion: { const: '1.0' },
    id: { type: 'string', minLength: 1 },
    source: { type: 'string', format: 'uri-reference', minLength: 1 },
    type: { type: 'string', minLength: 1 },
    datacontenttype: { type: 'string', minLength: 1 },
    dataschema: { type: 'string', format: 'uri' },
    subject: { type: 'string', minLength: 1 },
    time: { type: 'string', format: 'date-time' },
    data: { type: ['object', 'string', 'number', 'array', 'boolean', 'null'] },
    data_base64: { type: 'string', contentEncoding: 'base64' },
  },
  // extension attributes: lower-case letters and digits only
  propertyNames: { pattern: '^(data_base64|[a-z0-9]+)$' },
}

async function pushBlob(url: string, repo: string, bytes: number, seed: string): Promise<number> {
  const blob = Buffer.alloc(bytes, seed)
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: { authorization: ADMIN }, body: asBody(blob) })
  await res.arrayBuffer()
  return res.status
}

test('quota warnings at 80 % and 100 %, as valid CloudEvents, once per level while a client retries', async () => {
  const receiver = await new Receiver().up()
  const s = await startAuthServer({ events: { pollInterval: '50ms', maxBackoff: '300ms' } })
  try {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'small', quotaBytes: 1000 }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'other', quotaBytes: 1000 }, 201)
    await apiOk(s, 'POST', '/projects/small/webhooks', ADMIN, { name: 'quota', url: receiver.url, eventTypes: ['quota.warning'], format: 'cloudevents' }, 201)

    assert.equal(await pushBlob(s.url, 'small/app', 700, 'a'), 201, '70 %: no warning')
    assert.equal(await pushBlob(s.url, 'small/app', 150, 'b'), 201, '85 %: the 80 % warning')
    assert.equal(await pushBlob(s.url, 'small/app', 200, 'c'), 403, 'over the quota: refused, the 100 % warning')
    assert.equal(await pushBlob(s.url, 'small/app', 200, 'c'), 403, 'the client retries: no second warning')
    // another project's warning does not reach this project's webhook
    assert.equal(await pushBlob(s.url, 'other/app', 900, 'd'), 201)

    await eventually(() => receiver.received.length >= 2, 'two quota warnings').catch((err: unknown) => assert.fail(`${String(err)}: ${JSON.stringify(receiver.received.map((r) => r.body))}`))
    const validate = addFormats.default(new Ajv({ strict: false })).compile(CLOUDEVENT_SCHEMA)
    const events = receiver.received.map((r) => JSON.parse(r.body) as { type: string; source: string; data: { project: string; detail: Record<string, unknown> } })
    for (const e of events) assert.ok(validate(e), JSON.stringify(validate.errors))
    assert.deepEqual(
      events.map((e) => [e.type, e.source, e.data.project, e.data.detail.level, e.data.detail.refused, e.data.detail.usedBytes]),
      [
        ['io.berth.quota.warning', '/berth/projects/small', 'small', 80, false, 850],
        ['io.berth.quota.warning', '/berth/projects/small', 'small', 100, true, 850],
      ],
    )
    assert.equal(events[1]?.data.detail.quotaBytes, 1000)
    // wait a poll longer: still two
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(receiver.received.length, 2)
  } finally {
    await s.close()
    await receiver.down()
  }
})
