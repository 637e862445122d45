import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk } from '../helpers/auth.js'
import { startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import { eventually } from '../helpers/eventually.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'
import { pushAsAdmin, Receiver, type Received } from '../events/receiver.js'

// Webhooks in a real browser: a system administrator's system-wide webhook (create, secret shown
// once, test send, edit, deliveries of a real push, replay, delete), a project administrator's
// project webhook under the SSRF guard, and a developer who sees none of it.

const skip = browserSkip()

/** The Standard Webhooks signature of a received request checks out with `secret`. */
function signedWith(secret: string, r: Received): boolean {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64')
  const mac = createHmac('sha256', key).update(`${String(r.headers['webhook-id'])}.${String(r.headers['webhook-timestamp'])}.${r.body}`).digest('base64')
  return String(r.headers['webhook-signature']).split(' ').includes(`v1,${mac}`)
}

describe('webhooks in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let page: Page
  let receiver: Receiver
  let allowed: Receiver

  before(async () => {
    ensureUiBuilt()
    receiver = await new Receiver().up()
    // 127.0.0.2: loopback, and the one network events.allowedNetworks opens to project administrators
    allowed = await new Receiver('127.0.0.2').up()
    s = await startAuthServer({ events: { allowedNetworks: ['127.0.0.2/32'], pollInterval: '50ms', maxBackoff: '300ms' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    browser = await launchBrowser()
    ;({ page } = await signedInPage(browser, `${s.url}/admin/webhooks`, 'admin', ADMIN_PASSWORD))
  })

  after(async () => {
    await browser?.close()
    await s?.close()
    await receiver?.down()
    await allowed?.down()
  })

  test('a system webhook: create, secret once, test, edit, deliveries of a push, replay, delete', async () => {
    const tab = page.getByRole('region', { name: 'System webhooks' })
    await tab.getByText('No webhooks yet.').waitFor()
    await tab.getByRole('button', { name: 'New webhook' }).click()
    const form = page.getByRole('form', { name: 'New webhook' })
    await form.getByLabel('Name', { exact: true }).fill('audit')
    await form.getByLabel('Endpoint URL').fill(receiver.url)
    await form.getByLabel('tag.deleted').check()
    await form.getByLabel('Repositories').fill('team/**')
    await form.getByLabel('Payload format').selectOption('cloudevents')
    await noSeriousViolations(page, 'new webhook form')
    await form.getByRole('button', { name: 'Create webhook' }).click()
    const secret = (await page.getByTestId('webhook-secret').textContent()) ?? ''
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]{20,}$/, 'the generated secret is shown')
    await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click()
    assert.equal(await page.getByTestId('webhook-secret').count(), 0, 'and gone once the dialog is closed')
    const row = tab.getByRole('row').filter({ hasText: receiver.url })
    await row.getByRole('cell', { name: 'CloudEvents 1.0' }).waitFor()
    const [stored] = await apiOk<{ name: string; eventTypes: string[]; format: string; hasSecret: boolean; enabled: boolean }[]>(s, 'GET', '/webhooks', ADMIN)
    assert.deepEqual(stored, { scope: 'system', name: 'audit', url: receiver.url, eventTypes: ['artifact.pushed', 'tag.deleted'], format: 'cloudevents', enabled: true, hasSecret: true, hasAuthHeader: false, repositories: 'team/**' })

    // a test event, sent now and signed with the secret shown
    await row.getByRole('button', { name: 'Send a test event to audit' }).click()
    await tab.getByRole('status').filter({ hasText: /^Test of audit: delivered \(HTTP 200\) in \d+ ms$/ }).waitFor()
    assert.equal(receiver.received.length, 1)
    const sent = receiver.received[0]
    assert.equal((JSON.parse(sent?.body ?? '{}') as { type?: string }).type, 'io.berth.test', 'a CloudEvent')
    assert.ok(sent && signedWith(secret, sent), 'signed with the secret shown')
    // a receiver that fails: its status and words
    receiver.mode = 'fail'
    await row.getByRole('button', { name: 'Send a test event to audit' }).click()
    await tab.getByRole('status').filter({ hasText: /^Test of audit: failed \(HTTP 503: try later\) in \d+ ms$/ }).waitFor()
    receiver.mode = 'ok'

    // edit: the chat format with a template of its own, an authorization header; the secret is kept
    await row.getByRole('button', { name: 'Edit audit' }).click()
    const edit = page.getByRole('form', { name: 'Edit webhook audit' })
    assert.equal(await edit.getByLabel('Endpoint URL').inputValue(), receiver.url)
    assert.equal(await edit.getByLabel('Repositories').inputValue(), 'team/**')
    assert.ok(await edit.getByLabel('tag.deleted').isChecked())
    await edit.getByLabel('tag.deleted').uncheck()
    await edit.getByLabel('Payload format').selectOption('slack')
    await edit.getByLabel('Message template').fill('{{type}} of {{repository}}:{{tag}}')
    await edit.getByLabel('Authorization header').fill('Bearer hook-token')
    await noSeriousViolations(page, 'edit webhook form')
    await edit.getByRole('button', { name: 'Save webhook' }).click()
    await row.getByRole('cell', { name: 'Slack or Teams message' }).waitFor()
    const changed = await apiOk<{ eventTypes: string[]; format: string; hasSecret: boolean; hasAuthHeader: boolean; template?: string }>(s, 'GET', '/webhooks/audit', ADMIN)
    assert.deepEqual([changed.eventTypes, changed.format, changed.hasSecret, changed.hasAuthHeader, changed.template], [['artifact.pushed'], 'slack', true, true, '{{type}} of {{repository}}:{{tag}}'])

    // a push: its delivery listed with its outcome, then replayed
    await pushAsAdmin(s, 'team/app', 'v1', 'webhooks-ui')
    await eventually(() => receiver.received.some((r) => r.body.includes('team/app')), 'the push event is delivered')
    const delivered = receiver.received.find((r) => r.body.includes('team/app'))
    assert.equal(delivered?.headers.authorization, 'Bearer hook-token')
    assert.match(delivered?.body ?? '', /artifact\.pushed of team\/app:v1/, 'the message from the template')
    assert.ok(delivered && signedWith(secret, delivered))
    await row.getByRole('button', { name: 'Deliveries of audit' }).click()
    const deliveries = page.getByRole('region', { name: 'Deliveries of audit' })
    const first = deliveries.getByRole('row').filter({ hasText: 'artifact.pushed' })
    await first.getByText('delivered').waitFor()
    await first.getByRole('cell', { name: '200', exact: true }).waitFor()
    await noSeriousViolations(page, 'webhooks and deliveries')
    await screenshot(page, 'webhooks')
    await first.getByRole('button', { name: /^Replay delivery \d+$/ }).click()
    await eventually(() => receiver.received.filter((r) => r.body.includes('team/app')).length === 2, 'the replayed event arrives again')
    await deliveries.getByRole('row').filter({ hasText: 'artifact.pushed' }).nth(1).waitFor()
    await deliveries.getByRole('button', { name: 'Refresh' }).click()
    await eventually(async () => (await deliveries.getByRole('row').filter({ hasText: 'delivered' }).count()) === 2, 'both deliveries listed as delivered', 10_000)

    // delete (the confirmation is accepted)
    await row.getByRole('button', { name: 'Delete audit' }).click()
    await tab.getByText('No webhooks yet.').waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/webhooks', ADMIN), [])
  })

  test("a project administrator manages the project's webhooks, under the network guard; a developer sees none", async () => {
    await addUser(s, 'pat')
    await addUser(s, 'dev')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'pat', role: 'projectAdmin' }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)

    const pat = await signedInPage(browser, `${s.url}/projects/team`, 'pat', 'pat-password-1')
    await pat.page.getByRole('link', { name: 'Webhooks' }).click()
    await pat.page.waitForURL(`${s.url}/projects/team/webhooks`)
    const tab = pat.page.getByRole('region', { name: 'Webhooks' })
    await tab.getByRole('button', { name: 'New webhook' }).click()
    const form = pat.page.getByRole('form', { name: 'New webhook' })
    await form.getByLabel('Name', { exact: true }).fill('ci')
    await form.getByLabel('Endpoint URL').fill(receiver.url)
    await form.getByRole('button', { name: 'Create webhook' }).click()
    // 127.0.0.1 is loopback: refused for a project administrator, in words
    await form.getByRole('alert').filter({ hasText: /refused/ }).waitFor()
    await form.getByLabel('Endpoint URL').fill(allowed.url)
    await form.getByRole('button', { name: 'Create webhook' }).click()
    await pat.page.getByRole('dialog').getByRole('button', { name: 'Done' }).click()
    await tab.getByRole('row').filter({ hasText: allowed.url }).waitFor()
    const listed = await apiOk<{ name: string; scope: string }[]>(s, 'GET', '/projects/team/webhooks', ADMIN)
    assert.deepEqual(listed.map((w) => [w.scope, w.name]), [['team', 'ci']])
    await pat.context.close()

    const dev = await signedInPage(browser, `${s.url}/projects/team`, 'dev', 'dev-password-1')
    await dev.page.getByRole('link', { name: 'Members' }).waitFor()
    assert.equal(await dev.page.getByRole('link', { name: 'Webhooks' }).count(), 0, 'no Webhooks tab for a developer')
    await dev.context.close()
    const refused = await api(s, 'GET', '/projects/team/webhooks', 'Basic ' + Buffer.from('dev:dev-password-1').toString('base64'))
    assert.equal(refused.status, 403)
  })
})
