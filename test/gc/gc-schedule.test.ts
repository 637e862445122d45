import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '../../src/config/load.js'
import { addUser, ADMIN, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { blobDigest, pushImage } from './helpers.js'

interface ScheduleState {
  schedule: string | null
  source: 'api' | 'config' | 'none'
  next: string | null
}

async function gcRuns(srv: TestServer, trigger: string) {
  return (await srv.app.gc.history(100, 0)).filter((r) => r.trigger === trigger)
}

test('GC schedule through the API: admins only, validated, stored over gc.schedule, cleared back to it', async (t) => {
  const srv = await startAuthServer({ gc: { schedule: '0 4 * * *' } })
  t.after(() => srv.close())
  const user = await addUser(srv, 'plain')
  assert.equal((await api(srv, 'GET', '/gc/schedule')).status, 401)
  assert.equal((await api(srv, 'PUT', '/gc/schedule', undefined, { schedule: '0 3 * * *' })).status, 401)
  assert.equal((await api(srv, 'PUT', '/gc/schedule', user, { schedule: '0 3 * * *' })).status, 403)
  assert.equal((await api(srv, 'GET', '/gc/schedule', user)).status, 403)

  const initial = await apiOk<ScheduleState>(srv, 'GET', '/gc/schedule', ADMIN)
  assert.equal(initial.schedule, '0 4 * * *')
  assert.equal(initial.source, 'config')
  assert.equal(new Date(initial.next!).getMinutes(), 0)

  const set = await apiOk<ScheduleState>(srv, 'PUT', '/gc/schedule', ADMIN, { schedule: '30 3 * * *' })
  assert.equal(set.schedule, '30 3 * * *')
  assert.equal(set.source, 'api')
  assert.equal(new Date(set.next!).getMinutes(), 30)
  assert.deepEqual(await apiOk(srv, 'GET', '/gc/schedule', ADMIN), set)

  for (const body of [{ schedule: 'tomorrow' }, { schedule: '0 25 * * *' }, { schedule: 5 }, {}, { schedule: '0 3 * * *', extra: 1 }]) {
    const res = await api(srv, 'PUT', '/gc/schedule', ADMIN, body)
    assert.equal(res.status, 400, JSON.stringify(body))
    const p = (await res.json()) as { code: string; detail: string }
    assert.equal(p.code, 'INVALID_FIELD')
  }
  assert.equal((await apiOk<ScheduleState>(srv, 'GET', '/gc/schedule', ADMIN)).schedule, '30 3 * * *', 'a refused PUT changes nothing')

  for (const cleared of ['', null]) {
    await apiOk(srv, 'PUT', '/gc/schedule', ADMIN, { schedule: '30 3 * * *' })
    const back = await apiOk<ScheduleState>(srv, 'PUT', '/gc/schedule', ADMIN, { schedule: cleared })
    assert.equal(back.schedule, '0 4 * * *')
    assert.equal(back.source, 'config')
  }
})

test('the GC schedule set through the API runs GC, and stops when cleared', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  assert.deepEqual(await apiOk(srv, 'GET', '/gc/schedule', undefined), { schedule: null, source: 'none', next: null })
  await apiOk(srv, 'PUT', '/gc/schedule', undefined, { schedule: '* * * * * *' })
  let runs = await gcRuns(srv, 'schedule')
  for (let i = 0; i < 100 && runs.length === 0; i++) {
    await sleep(50)
    runs = await gcRuns(srv, 'schedule')
  }
  assert.ok(runs.length > 0, 'a scheduled GC run happened')
  await apiOk(srv, 'PUT', '/gc/schedule', undefined, { schedule: null })
  await sleep(1_200)
  const settled = (await gcRuns(srv, 'schedule')).length
  await sleep(1_500)
  assert.equal((await gcRuns(srv, 'schedule')).length, settled)
})

test('gc.afterDelete: a DELETE schedules one GC run a few seconds later (debounced); off by default', async (t) => {
  const on = await startServer({ gc: { afterDelete: true, gracePeriod: '0s' } })
  t.after(() => on.close())
  const off = await startServer({ gc: { gracePeriod: '0s' } })
  t.after(() => off.close())
  for (const srv of [on, off]) {
    const a = await pushImage(srv.url, 'library/auto/gc', 'a', 'auto-a')
    const b = await pushImage(srv.url, 'library/auto/gc', 'b', 'auto-b')
    assert.equal((await fetch(`${srv.url}/v2/library/auto/gc/manifests/${a.digest}`, { method: 'DELETE' })).status, 202)
    assert.equal((await fetch(`${srv.url}/v2/library/auto/gc/manifests/b`, { method: 'DELETE' })).status, 202)
    assert.equal((await fetch(`${srv.url}/v2/library/auto/gc/manifests/${b.digest}`, { method: 'DELETE' })).status, 202)
  }
  let runs = await gcRuns(on, 'delete')
  for (let i = 0; i < 200 && !(runs.length > 0 && runs[0]!.status !== 'running'); i++) {
    await sleep(50)
    runs = await gcRuns(on, 'delete')
  }
  assert.equal(runs.length, 1, 'three deletes, one run')
  assert.equal(runs[0]!.status, 'succeeded')
  assert.ok(runs[0]!.blobsDeleted >= 4, `the deleted images' blobs were collected (${runs[0]!.blobsDeleted})`)
  assert.equal(await blobDigest(on.url, 'library/auto/gc', (await on.app.gc.get(runs[0]!.id, { items: true }))!.deleted![0]!), 404)
  assert.deepEqual(await gcRuns(off, 'delete'), [], 'gc.afterDelete defaults to false')
  assert.equal((await off.app.gc.history(10, 0)).length, 0)
})

test('gc.afterDelete is set by BERTH_GC_AFTER_DELETE', async () => {
  assert.equal((await loadConfig({ env: {} })).config.gc.afterDelete, false)
  assert.equal((await loadConfig({ env: { BERTH_GC_AFTER_DELETE: 'true' } })).config.gc.afterDelete, true)
})
