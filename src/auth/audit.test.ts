import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import pino from 'pino'
import type { AuditRepository, NewAuditRow } from '../metadata/repositories/audit.js'
import { AuditLog, type AuditEntry } from './audit.js'

/** An AuditLog on a clock the test moves, writing into an array. */
function auditLog() {
  const written: NewAuditRow[][] = []
  const repo = { insertMany: async (rows: NewAuditRow[]) => void written.push(rows) } as unknown as AuditRepository
  let clock = Date.parse('2026-11-28T10:00:00.000Z')
  const log = new AuditLog(repo, pino({ level: 'silent' }), () => clock, 60_000)
  return { log, written, tick: (ms: number) => (clock += ms) }
}

const pull = (over: Partial<AuditEntry> = {}): AuditEntry => ({
  actor: 'alice',
  actorType: 'user',
  address: '10.0.0.7',
  action: 'pull',
  project: 'team',
  repository: 'team/app',
  resource: 'v1',
  result: 'success',
  ...over,
})

describe('audit log buffering', () => {
  it('writes identical pulls of one flush window as one row with their count and last time', async () => {
    const { log, written, tick } = auditLog()
    log.record(pull())
    tick(10)
    log.record(pull({ resource: 'v2' }))
    tick(10)
    log.record(pull())
    tick(15)
    log.record(pull())
    log.record(pull({ address: '10.0.0.8' }))
    log.record(pull({ actor: 'bob' }))
    log.record(pull({ result: 'failure' }))
    await log.close()
    const rows = written.flat()
    assert.equal(rows.length, 5)
    const first = rows[0]!
    assert.equal(first.resource, 'v1')
    assert.equal(first.at, Date.parse('2026-11-28T10:00:00.000Z'))
    assert.deepEqual(JSON.parse(first.detail!), { count: 3, lastAt: '2026-11-28T10:00:00.035Z' })
    assert.deepEqual(rows.slice(1).map((r) => r.detail), [null, null, null, null], 'a single pull carries no count')
  })

  it('starts a new row after a flush, and never folds pushes, deletes or entries with details', async () => {
    const { log, written } = auditLog()
    log.record(pull())
    log.record(pull())
    await log.flush()
    log.record(pull())
    log.record(pull({ action: 'push' }))
    log.record(pull({ action: 'push' }))
    log.record(pull({ detail: { reason: 'x' } }))
    log.record(pull({ detail: { reason: 'x' } }))
    await log.close()
    assert.equal(written.length, 2)
    assert.deepEqual(JSON.parse(written[0]![0]!.detail!).count, 2)
    assert.deepEqual(written[1]!.map((r) => `${r.action}:${r.detail ?? ''}`), ['pull:', 'push:', 'push:', 'pull:{"reason":"x"}', 'pull:{"reason":"x"}'])
  })

  it('keeps rows a failed write could not store and writes them at the next flush (a full disk)', async () => {
    const written: NewAuditRow[][] = []
    let failing = true
    const repo = {
      insertMany: async (rows: NewAuditRow[]) => {
        if (failing) throw Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'SQLITE_FULL' })
        written.push(rows)
      },
    } as unknown as AuditRepository
    const log = new AuditLog(repo, pino({ level: 'silent' }), () => Date.now(), 60_000)
    log.record(pull({ action: 'push', resource: 'sha256:a' }))
    await log.flush()
    log.record(pull({ action: 'push', resource: 'sha256:b' }))
    await log.flush()
    assert.equal(written.length, 0)
    failing = false
    log.record(pull({ action: 'push', resource: 'sha256:c' }))
    await log.close()
    assert.deepEqual(written.flat().map((r) => r.resource), ['sha256:a', 'sha256:b', 'sha256:c'])
  })
})
