// Webhooks scoped to a repository pattern, and chat messages from an editable template.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ADMIN, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { pushAsAdmin, Receiver } from './receiver.js'

test('a project webhook for a repository pattern, with a chat template', async () => {
  const chat = await new Receiver().up()
  const system = await new Receiver().up()
  const s = await startAuthServer({ events: { pollInterval: '50ms', maxBackoff: '300ms' } })
  try {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    const base = { url: chat.url, eventTypes: ['artifact.pushed'] }
    // bad input names the field
    for (const [body, field] of [
      [{ ...base, name: 'x', repositories: '' }, 'repositories'],
      [{ ...base, name: 'x', repositories: 'apps/[' }, 'repositories'],
      [{ ...base, name: 'x', format: 'cloudevents', template: 'hi' }, 'template'],
      [{ ...base, name: 'x', format: 'slack', template: 'x'.repeat(4001) }, 'template'],
    ] as const) {
      const res = await api(s, 'POST', '/projects/team/webhooks', ADMIN, body)
      const text = await res.text()
      assert.equal(res.status, 400, text)
      assert.match(text, new RegExp(field))
    }

    const hook = await apiOk<Record<string, unknown>>(s, 'POST', '/projects/team/webhooks', ADMIN, {
      ...base,
      name: 'apps',
      repositories: 'apps/**',
      format: 'slack',
      template: ':package: {{actor}} pushed {{repository}}:{{tag}} ({{shortDigest}}) to {{project}}{{nothing}}',
    }, 201)
    assert.equal(hook.repositories, 'apps/**')
    assert.equal(typeof hook.template, 'string')
    // a system webhook's pattern sees the full name
    await apiOk(s, 'POST', '/webhooks', ADMIN, { url: system.url, eventTypes: ['artifact.pushed'], name: 'tools', repositories: 'team/tools/*' }, 201)

    const web = await pushAsAdmin(s, 'team/apps/web', 'v1', 'team/apps/web:v1')
    await pushAsAdmin(s, 'team/tools/lint', 'v1', 'team/tools/lint:v1')
    await pushAsAdmin(s, 'team/other', 'v1', 'team/other:v1')

    await eventually(() => chat.received.length >= 1 && system.received.length >= 1, 'one delivery each')
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(chat.received.map((r) => JSON.parse(r.body) as unknown), [{ text: `:package: admin pushed team/apps/web:v1 (${web.slice(0, 19)}) to team` }])
    assert.deepEqual(system.received.map((r) => (JSON.parse(r.body) as { event_data: { repository: { repo_full_name: string } } }).event_data.repository.repo_full_name), ['team/tools/lint'])

    // the pattern can be lifted again
    const patched = await apiOk<Record<string, unknown>>(s, 'PATCH', '/projects/team/webhooks/apps', ADMIN, { repositories: null })
    assert.equal(patched.repositories, undefined)
    await pushAsAdmin(s, 'team/other', 'v2', 'team/other:v2')
    await eventually(() => chat.received.length >= 2, 'the push to team/other')
    assert.match(chat.received[1]?.body ?? '', /team\/other:v2/)
  } finally {
    await s.close()
    await chat.down()
    await system.down()
  }
})
