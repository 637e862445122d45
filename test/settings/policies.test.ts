// Settings as code: trust material, the trust (signature) and scan policies of projects travel in the document.

import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { withSettingsServices } from '../../src/cli/config-export.js'
import { parsePolicy } from '../../src/scan/policy.js'
import { applySettings, exportSettings, parseSettingsDocument } from '../../src/settings/settings.js'
import { initDataDir } from '../helpers/server.js'

const TRUST = { require: 'cosign', exemptRepositories: 'team/dev/**' }
const pem = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
const TEAM_KEY = { name: 'release', type: 'cosign', publicKey: pem() }
const SYSTEM_KEY = { name: 'company', type: 'cosign', publicKey: pem() }
const SCAN = { scanOnPush: true, blockSeverity: 'high', blockUnscanned: true, allowlist: [{ id: 'CVE-2024-3094', expiresAt: null }] }

describe('trust keys, trust and scan policies in berth config export / berth apply', () => {
  let source: string
  let target: string
  const settings = (dir: string) => withSettingsServices({ dataDir: dir }, (s) => exportSettings(s))
  const team = async (dir: string) => (await settings(dir)).projects.find((p) => p.name === 'team')

  before(async () => {
    source = await mkdtemp(join(tmpdir(), 'berth-settings-policies-src-'))
    target = await mkdtemp(join(tmpdir(), 'berth-settings-policies-dst-'))
    await initDataDir(source)
    await initDataDir(target)
    await withSettingsServices({ dataDir: source }, async (s) => {
      await s.auth.projects.create({ name: 'team' })
      await s.auth.projects.create({ name: 'plain' })
      assert.ok(s.trust && s.scan, 'the deployment has the trust and scan services')
      await s.trust.setPolicy('team', TRUST)
      await s.scan.policies.setProject('team', parsePolicy(SCAN))
      await s.trust.addMaterial('team', TEAM_KEY)
      await s.trust.addMaterial(undefined, SYSTEM_KEY)
    })
  })

  after(async () => {
    await rm(source, { recursive: true, force: true })
    await rm(target, { recursive: true, force: true })
  })

  it('exports trust keys (registry-wide and a project’s) and a project’s trust and scan policies (a project on the defaults has none) and applies them to another Berth, idempotently', async () => {
    const doc = await settings(source)
    const exported = doc.projects.find((p) => p.name === 'team')
    assert.deepEqual(exported?.trust, TRUST)
    assert.deepEqual(exported?.scan, SCAN)
    assert.deepEqual(exported?.trustKeys, [TEAM_KEY])
    assert.deepEqual(doc.trustKeys, [SYSTEM_KEY])
    const plain = doc.projects.find((p) => p.name === 'plain')
    assert.equal(plain?.trust, undefined)
    assert.equal(plain?.scan, undefined)

    const parsed = parseSettingsDocument(JSON.parse(JSON.stringify(doc)))
    const dry = await withSettingsServices({ dataDir: target }, (s) => applySettings(s, parsed, { prune: false, dryRun: true }))
    const planned = dry.changes.map((c) => `${c.op} ${c.target}`)
    assert.ok(planned.includes('update trust policy of team'), planned.join('\n'))
    assert.ok(planned.includes('update scan policy of team'), planned.join('\n'))
    assert.ok(planned.includes('create trust key release of team'), planned.join('\n'))
    assert.ok(planned.includes('create trust key company of the registry'), planned.join('\n'))
    assert.deepEqual(dry.changes.find((c) => c.target === 'trust policy of team')?.details, ['require: "none" → "cosign"', 'exemptRepositories: null → "team/dev/**"'])
    assert.equal(await team(target), undefined, 'a dry run writes nothing')

    await withSettingsServices({ dataDir: target }, (s) => applySettings(s, parsed, { prune: false, dryRun: false }))
    const applied = await team(target)
    assert.deepEqual(applied?.trust, TRUST)
    assert.deepEqual(applied?.scan, SCAN)
    assert.deepEqual(applied?.trustKeys, [TEAM_KEY])
    assert.deepEqual((await settings(target)).trustKeys, [SYSTEM_KEY])
    const again = await withSettingsServices({ dataDir: target }, (s) => applySettings(s, parsed, { prune: false, dryRun: false }))
    assert.deepEqual(again.changes, [])
  })

  it('changes a policy in place, puts the defaults back only with prune, replaces a rotated key, deletes a dropped one only with prune, and refuses invalid entries naming the field', async () => {
    const doc = parseSettingsDocument(JSON.parse(JSON.stringify(await settings(target))))
    const entry = doc.projects.find((p) => p.name === 'team')
    assert.ok(entry)
    entry.trust = { require: 'any' }
    delete entry.scan
    const changed = await withSettingsServices({ dataDir: target }, (s) => applySettings(s, doc, { prune: false, dryRun: false }))
    assert.deepEqual(changed.changes.map((c) => `${c.op} ${c.target}`), ['update trust policy of team'])
    assert.deepEqual((await team(target))?.trust, { require: 'any' })
    assert.deepEqual((await team(target))?.scan, SCAN, 'left out without prune: kept')

    const pruned = await withSettingsServices({ dataDir: target }, (s) => applySettings(s, doc, { prune: true, dryRun: false }))
    assert.deepEqual(pruned.changes.map((c) => `${c.op} ${c.target}`), ['update scan policy of team'])
    assert.equal((await team(target))?.scan, undefined)

    // Another key under the same name replaces it; a key the document drops goes only with prune.
    const keys = parseSettingsDocument(JSON.parse(JSON.stringify(await settings(target))))
    const rotated = { ...TEAM_KEY, publicKey: pem() }
    ;(keys.projects.find((p) => p.name === 'team') as { trustKeys: unknown[] }).trustKeys = [rotated]
    keys.trustKeys = []
    const rotation = await withSettingsServices({ dataDir: target }, (s) => applySettings(s, keys, { prune: false, dryRun: false }))
    assert.deepEqual(rotation.changes.map((c) => `${c.op} ${c.target}`), ['recreate trust key release of team'])
    assert.deepEqual((await team(target))?.trustKeys, [rotated])
    assert.deepEqual((await settings(target)).trustKeys, [SYSTEM_KEY])
    const dropped = await withSettingsServices({ dataDir: target }, (s) => applySettings(s, keys, { prune: true, dryRun: false }))
    assert.deepEqual(dropped.changes.map((c) => `${c.op} ${c.target}`), ['delete trust key company of the registry'])
    assert.deepEqual((await settings(target)).trustKeys, [])

    assert.throws(() => parseSettingsDocument({ trustKeys: [{ name: 'k', type: 'cosign', publicKey: 'not a key' }] }), /trustKeys\[0\]\.publicKey: a PEM public key/)
    const bad = (project: Record<string, unknown>) => () => parseSettingsDocument({ projects: [{ name: 'team', ...project }] })
    assert.throws(bad({ trust: { require: 'always' } }), /projects\[0\]\.trust\.require: none, cosign, notation, any/)
    assert.throws(bad({ trust: { require: 'cosign', colour: 'red' } }), /projects\[0\]\.trust\.colour: not a field here/)
    assert.throws(bad({ trust: { require: 'cosign', exemptRepositories: '[' } }), /projects\[0\]\.trust\.exemptRepositories/)
    assert.throws(bad({ scan: { blockSeverity: 'severe' } }), /projects\[0\]\.scan\.blockSeverity/)
  })
})
