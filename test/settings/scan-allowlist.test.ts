// Settings as code: the system-wide scan allowlist (PUT /api/v1/scan-policy) travels in the document.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { withSettingsServices } from '../../src/cli/config-export.js'
import { parseAllowlist } from '../../src/scan/policy.js'
import { applySettings, exportSettings, parseSettingsDocument, type SettingsDocument } from '../../src/settings/settings.js'
import { initDataDir } from '../helpers/server.js'

const XZ = { id: 'CVE-2024-3094', expiresAt: null }
const GHSA = { id: 'GHSA-jfh8-c2jp-5v3q', expiresAt: '2027-01-31T00:00:00.000Z' }

describe('the system scan allowlist in berth config export / berth apply', () => {
  let dir: string
  const settings = () => withSettingsServices({ dataDir: dir }, (s) => exportSettings(s))
  const apply = (doc: SettingsDocument, opts: { prune?: boolean; dryRun?: boolean } = {}) =>
    withSettingsServices({ dataDir: dir }, (s) => applySettings(s, doc, { prune: opts.prune === true, dryRun: opts.dryRun === true }))
  const allowlist = () => withSettingsServices({ dataDir: dir }, async (s) => s.scan?.policies.systemAllowlist())
  /** the current document with another allowlist (or none) */
  const withAllowlist = async (list: unknown) => {
    const { scanAllowlist: _drop, ...rest } = JSON.parse(JSON.stringify(await settings())) as Record<string, unknown>
    return parseSettingsDocument(list === undefined ? rest : { ...rest, scanAllowlist: list })
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-settings-allowlist-'))
    await initDataDir(dir)
    await withSettingsServices({ dataDir: dir }, async (s) => {
      assert.ok(s.scan, 'the deployment has the scan service')
      await s.scan.policies.setSystemAllowlist(parseAllowlist([XZ]))
    })
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('is exported, and applied when the document gives another one (dry run first), idempotently', async () => {
    assert.deepEqual((await settings()).scanAllowlist, [XZ])
    const want = await withAllowlist([XZ, { id: GHSA.id, expiresAt: '2027-01-31T00:00:00Z' }])
    const dry = await apply(want, { dryRun: true })
    assert.deepEqual(dry.changes, [
      // keys sorted, as every change line shows a value
      { op: 'update', target: 'system scan allowlist', details: ['allowlist: [{"expiresAt":null,"id":"CVE-2024-3094"}] → [{"expiresAt":null,"id":"CVE-2024-3094"},{"expiresAt":"2027-01-31T00:00:00.000Z","id":"GHSA-jfh8-c2jp-5v3q"}]'] },
    ])
    assert.deepEqual(await allowlist(), [XZ], 'a dry run writes nothing')
    await apply(want)
    assert.deepEqual(await allowlist(), [XZ, GHSA])
    assert.deepEqual((await apply(want)).changes, [], 'a second run changes nothing')
    assert.deepEqual((await settings()).scanAllowlist, [XZ, GHSA])
  })

  it('is kept when the document leaves it out, and emptied then only with prune', async () => {
    const without = await withAllowlist(undefined)
    assert.deepEqual((await apply(without)).changes, [])
    assert.deepEqual(await allowlist(), [XZ, GHSA])
    const pruned = await apply(without, { prune: true })
    assert.deepEqual(pruned.changes.map((c) => `${c.op} ${c.target}`), ['update system scan allowlist'])
    assert.deepEqual(await allowlist(), [])
  })

  it('refuses an invalid entry before anything is written, naming the field', () => {
    assert.throws(() => parseSettingsDocument({ scanAllowlist: [{ id: 'not an id' }] }), /scanAllowlist\[0\]\.id: a vulnerability id/)
    assert.throws(() => parseSettingsDocument({ scanAllowlist: [XZ, { id: 'CVE-2024-1', until: 'x' }] }), /scanAllowlist\[1\]\.until: unknown field/)
    assert.throws(() => parseSettingsDocument({ scanAllowlist: { id: 'CVE-2024-3094' } }), /scanAllowlist: an array/)
  })
})
