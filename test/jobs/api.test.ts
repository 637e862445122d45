import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'

interface Job {
  id: string
  kind: string
  status: string
  attempts: number
  payload: unknown
  lastError: string | null
  finishedAt: string | null
}

describe('GET /api/v1/jobs', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer()
  })
  after(async () => {
    await s?.close()
  })

  it('shows admins the queue: a scheduled task enqueued as a job runs and is listed with its outcome', async () => {
    const id = await s.app.jobs.enqueue('task:prune-jobs', { slot: 1 }, { dedupeKey: 'prune-jobs@test' })
    assert.ok(id)
    let job: Job | undefined
    for (let i = 0; i < 200 && job?.status !== 'succeeded'; i++) {
      job = await apiOk<Job>(s, 'GET', `/jobs/${id}`, ADMIN)
      if (job.status !== 'succeeded') await new Promise((r) => setTimeout(r, 25))
    }
    assert.equal(job?.status, 'succeeded')
    assert.equal(job?.kind, 'task:prune-jobs')
    assert.deepEqual(job?.payload, { slot: 1 })
    assert.equal(job?.attempts, 1)
    assert.ok(job?.finishedAt)
    const listed = await apiOk<{ jobs: Job[] }>(s, 'GET', '/jobs?status=succeeded&kind=task:prune-jobs', ADMIN)
    assert.ok(listed.jobs.some((j) => j.id === id))
    assert.deepEqual((await apiOk<{ jobs: Job[] }>(s, 'GET', '/jobs?status=failed', ADMIN)).jobs, [])
  })

  it('refuses anonymous callers (401) and users who are not admins (403)', async () => {
    const alice = await addUser(s, 'alice')
    assert.equal((await api(s, 'GET', '/jobs')).status, 401)
    assert.equal((await api(s, 'GET', '/jobs', alice)).status, 403)
    assert.equal((await api(s, 'GET', '/jobs/00000000-0000-0000-0000-000000000000', alice)).status, 403)
  })

  it('answers 400 for a bad filter and 404 for an unknown job', async () => {
    const bad = await api(s, 'GET', '/jobs?status=done', ADMIN)
    assert.equal(bad.status, 400)
    assert.match(await bad.text(), /status/)
    assert.equal((await api(s, 'GET', '/jobs?limit=0', ADMIN)).status, 400)
    assert.equal((await api(s, 'GET', '/jobs/00000000-0000-0000-0000-000000000000', ADMIN)).status, 404)
    assert.equal((await api(s, 'GET', '/jobs/not-an-id', ADMIN)).status, 404)
  })
})
