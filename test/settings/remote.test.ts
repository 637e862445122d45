// Settings as code against a running Berth: `berth apply --url` and `berth config export --url`
// through the management API.

import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parse, stringify } from 'yaml'
import { ADMIN, ADMIN_PASSWORD, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'

const DOC = {
  kind: 'BerthSettings',
  version: 1,
  users: [{ username: 'admin', admin: true }, { username: 'alice', email: 'alice@example.com' }],
  projects: [
    {
      name: 'team',
      public: false,
      quotaBytes: 1_000_000,
      members: [{ username: 'alice', role: 'developer' }],
      robots: [{ name: 'ci', permissions: ['pull', 'push'], description: 'CI pushes' }],
      immutability: [{ repositories: 'release/**', tags: 'v*' }],
      retention: { rules: [{ kind: 'latestPushed', count: 10, repositories: '**', tags: '**' }], untagged: 'delete', schedule: '0 3 * * *' },
      trust: { require: 'cosign' },
      scan: { scanOnPush: true, blockSeverity: 'high', blockUnscanned: false, allowlist: [] },
    },
  ],
  robots: [{ name: 'ops', permissions: ['pull'] }],
  scanAllowlist: [{ id: 'CVE-2024-3094', expiresAt: null }],
}

describe('berth apply --url and berth config export --url (a running Berth, through its API)', () => {
  let s: TestServer
  let work: string
  let file: string
  const remote = () => ['--url', s.url, '--user', 'admin', '--password', ADMIN_PASSWORD]

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-settings-remote-'))
    file = join(work, 'settings.yml')
    await writeFile(file, stringify(DOC))
    s = await startAuthServer()
  })

  after(async () => {
    await s?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('plans with --dry-run (nothing written), applies every change, and a second run changes nothing', async () => {
    const dry = await berth(['apply', file, ...remote(), '--dry-run'])
    assert.equal(dry.code, 0, dry.stderr)
    for (const line of ['+ user alice', '+ project team', '+ member alice of team: role: developer', '+ robot robot$team+ci', '+ immutability rule of team', '~ retention policy of team', '~ trust policy of team', '~ scan policy of team', '+ robot robot$ops', '~ system scan allowlist']) {
      assert.ok(dry.stdout.split('\n').some((l) => l.startsWith(line)), `${line} in\n${dry.stdout}`)
    }
    assert.match(dry.stdout, /would be made \(dry run: nothing written\)/)
    assert.equal((await api(s, 'GET', '/projects/team', ADMIN)).status, 404, 'a dry run writes nothing')

    const applied = await berth(['apply', file, ...remote()])
    assert.equal(applied.code, 0, applied.stderr)
    assert.match(applied.stderr, /new password of user alice: \S+/)
    assert.match(applied.stderr, /new secret of robot\$team\+ci: \S+/)
    const team = await apiOk<{ quotaBytes: number }>(s, 'GET', '/projects/team', ADMIN)
    assert.equal(team.quotaBytes, 1_000_000)
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/members', ADMIN), [{ username: 'alice', role: 'developer' }])
    assert.equal((await apiOk<{ schedule: string }>(s, 'GET', '/projects/team/retention', ADMIN)).schedule, '0 3 * * *')
    assert.equal((await apiOk<{ require: string }>(s, 'GET', '/projects/team/trust/policy', ADMIN)).require, 'cosign')
    assert.deepEqual(await apiOk(s, 'GET', '/scan-policy', ADMIN), { allowlist: [{ id: 'CVE-2024-3094', expiresAt: null }] })
    const robots = await apiOk<{ name: string }[]>(s, 'GET', '/robots?project=team', ADMIN)
    assert.deepEqual(robots.map((r) => r.name), ['robot$team+ci'])

    const again = await berth(['apply', file, ...remote()])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(again.stdout.trim(), 'no changes: the registry matches the document')
  })

  it('exports the remote settings (with its configuration) as a document that applies back without changes', async () => {
    const exported = await berth(['config', 'export', ...remote()])
    assert.equal(exported.code, 0, exported.stderr)
    const doc = parse(exported.stdout) as { config?: { auth?: { enabled?: boolean } }; projects: { name: string; members?: unknown[] }[]; scanAllowlist: unknown[] }
    assert.equal(doc.config?.auth?.enabled, true, 'the remote configuration, secrets masked')
    assert.deepEqual(doc.projects.find((p) => p.name === 'team')?.members, [{ username: 'alice', role: 'developer' }])
    assert.deepEqual(doc.scanAllowlist, [{ id: 'CVE-2024-3094', expiresAt: null }])
    const back = join(work, 'exported.yml')
    await writeFile(back, exported.stdout)
    const r = await berth(['apply', back, ...remote(), '--prune'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'no changes: the registry matches the document')
  })

  it('updates and, with --prune, deletes what the document changed or dropped', async () => {
    const changed = structuredClone(DOC)
    const team = changed.projects[0]
    assert.ok(team)
    team.public = true
    team.members = []
    await writeFile(file, stringify(changed))
    const kept = await berth(['apply', file, ...remote()])
    assert.equal(kept.code, 0, kept.stderr)
    assert.match(kept.stdout, /^~ project team: public: false → true$/m)
    assert.doesNotMatch(kept.stdout, /member alice/, 'nothing deleted without --prune')
    const pruned = await berth(['apply', file, ...remote(), '--prune'])
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.match(pruned.stdout, /^- member alice of team$/m)
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/members', ADMIN), [])
  })

  it('refuses wrong credentials, an invalid document (naming the field) and --url with --data-dir, changing nothing', async () => {
    const wrong = await berth(['apply', file, '--url', s.url, '--user', 'admin', '--password', 'wrong-password'])
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /berth: .*(invalid|unauthorized|authentication)/i)
    const bad = join(work, 'bad.yml')
    await writeFile(bad, stringify({ ...DOC, projects: [{ name: 'other', members: [{ username: 'alice', role: 'boss' }] }] }))
    const invalid = await berth(['apply', bad, ...remote()])
    assert.equal(invalid.code, 1)
    assert.match(invalid.stderr, /projects\[0\]\.members\[0\]\.role: one of projectAdmin/)
    assert.equal((await api(s, 'GET', '/projects/other', ADMIN)).status, 404)
    const both = await berth(['apply', file, ...remote(), '--data-dir', work])
    assert.equal(both.code, 1)
    assert.match(both.stderr, /give either --url or --data-dir\/--config, not both/)
  })
})
