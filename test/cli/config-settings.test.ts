import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { parse, stringify } from 'yaml'
import { withSettingsServices } from '../../src/cli/config-export.js'
import { applySettings, exportSettings, parseSettingsDocument, stable, type SettingsDocument } from '../../src/settings/settings.js'
import { initDataDir } from '../helpers/server.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')]

async function berth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // the settings commands open the deployment's SQLite database: keep the test on SQLite
  const env = { ...process.env, BERTH_ADMIN_PASSWORD: 'admin-password-1' }
  return run(process.execPath, [...CLI, ...args], { cwd: ROOT, env }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )
}

/** The settings of the deployment in `dir`, without its config section (which names the data dir). */
async function settingsOf(dir: string): Promise<Omit<SettingsDocument, 'config'>> {
  return withSettingsServices({ dataDir: dir }, (s) => exportSettings(s))
}

/** A registry with one of everything the document holds, made through the services. */
async function populate(dir: string): Promise<void> {
  await withSettingsServices({ dataDir: dir }, async (s) => {
    await s.auth.users.create({ username: 'alice', password: 'alice-password-1', email: 'alice@example.com' })
    await s.auth.users.create({ username: 'bob', password: 'bob-password-12' })
    await s.replication.endpoints.create({ name: 'hub', url: 'https://registry-1.docker.io', username: 'hubuser', password: 'hubpass' })
    await s.auth.projects.create({ name: 'team', public: true, quotaBytes: 10_000_000_000 })
    await s.auth.projects.addMember('team', { username: 'alice', role: 'projectAdmin' })
    await s.auth.projects.addMember('team', { group: 'devs', role: 'developer' })
    await s.auth.robots.create({ name: 'ci', project: 'team', permissions: ['push', 'pull'], description: 'CI pushes' })
    await s.auth.robots.create({ name: 'ops', permissions: ['pull'] })
    await s.immutability.create('team', { repositories: 'release/**', tags: 'v*' })
    await s.retention.setPolicy('team', { rules: [{ kind: 'latestPushed', count: 10, repositories: '**', tags: '**' }], untagged: 'delete', schedule: '0 3 * * *' })
    await s.events.webhooks.create('team', { name: 'chat', url: 'https://hooks.example.com/team', eventTypes: ['artifact.pushed'] }, { admin: true })
    await s.events.webhooks.create('system', { name: 'audit', url: 'https://hooks.example.com/all', eventTypes: ['artifact.deleted', 'artifact.pushed'], format: 'cloudevents' }, { admin: true })
    await s.auth.projects.create({ name: 'cache', proxy: { registry: 'hub', ttl: '1h', default: true } })
    await s.replication.policies.create({ name: 'mirror-out', direction: 'push', registry: 'hub', source: { repositories: 'team/**' }, trigger: { kind: 'manual' } })
  })
}

describe('berth config export / berth apply', () => {
  it('export from a populated registry, apply to an empty one (dry run first), apply again, export again: equal', async () => {
    const source = await mkdtemp(join(tmpdir(), 'berth-settings-src-'))
    const target = await mkdtemp(join(tmpdir(), 'berth-settings-dst-'))
    try {
      await initDataDir(source)
      await initDataDir(target)
      await populate(source)

      const exported = await berth(['config', 'export', '--data-dir', source])
      assert.equal(exported.code, 0, exported.stderr)
      const doc = parse(exported.stdout) as SettingsDocument
      assert.equal(doc.kind, 'BerthSettings')
      assert.equal((doc.config as { dataDir: string }).dataDir, source)
      const team = doc.projects.find((p) => p.name === 'team')
      assert.deepEqual(team, {
        name: 'team',
        public: true,
        quotaBytes: 10_000_000_000,
        members: team?.members,
        robots: [{ name: 'ci', permissions: ['pull', 'push'], description: 'CI pushes' }],
        immutability: [{ repositories: 'release/**', tags: 'v*' }],
        retention: { rules: [{ kind: 'latestPushed', count: 10, repositories: '**', tags: '**' }], untagged: 'delete', schedule: '0 3 * * *' },
        webhooks: [{ name: 'chat', url: 'https://hooks.example.com/team', eventTypes: ['artifact.pushed'], format: 'default', enabled: true }],
      })
      assert.deepEqual(new Set(team?.members?.map((m) => stable(m))), new Set([stable({ username: 'alice', role: 'projectAdmin' }), stable({ group: 'devs', role: 'developer' })]))
      assert.deepEqual(doc.registries, [{ name: 'hub', url: 'https://registry-1.docker.io', username: 'hubuser' }])
      assert.deepEqual(doc.robots, [{ name: 'ops', permissions: ['pull'] }])
      // no secret of any kind in the document
      for (const secret of ['hubpass', 'alice-password-1', 'admin-password-1', '$argon2', '$2']) assert.ok(!exported.stdout.includes(secret), secret)

      const file = join(target, 'settings.yml')
      await writeFile(file, exported.stdout)
      const empty = await settingsOf(target)

      // dry run: every change printed, nothing written
      const dry = await berth(['apply', file, '--data-dir', target, '--dry-run'])
      assert.equal(dry.code, 0, dry.stderr)
      for (const line of ['+ user alice', '+ registry hub', '+ project team', '+ member alice of team', '+ robot robot$team+ci', '+ robot robot$ops', '+ webhook audit (system)', '+ replication policy mirror-out', '+ project cache']) {
        assert.ok(dry.stdout.split('\n').some((l) => l.startsWith(line)), `${line} in:\n${dry.stdout}`)
      }
      assert.match(dry.stdout, /dry run: nothing written/)
      assert.equal(stable(await settingsOf(target)), stable(empty))

      const applied = await berth(['apply', file, '--data-dir', target])
      assert.equal(applied.code, 0, applied.stderr)
      assert.match(applied.stderr, /new secret of robot\$team\+ci: \S+/)
      assert.match(applied.stderr, /new password of user alice: \S+/)

      const again = await berth(['apply', file, '--data-dir', target])
      assert.equal(again.code, 0, again.stderr)
      assert.equal(again.stdout, 'no changes: the registry matches the document\n')

      const { config: _c, ...want } = doc
      assert.deepEqual(await settingsOf(target), want)
    } finally {
      await rm(source, { recursive: true, force: true })
      await rm(target, { recursive: true, force: true })
    }
  })

  it('updates in place, deletes only with prune, and an invalid document changes nothing and names the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-settings-'))
    try {
      await initDataDir(dir)
      await populate(dir)
      const before = await settingsOf(dir)
      const doc = parseSettingsDocument(JSON.parse(JSON.stringify(before)))
      const team = doc.projects.find((p) => p.name === 'team')
      assert.ok(team)
      team.public = false
      team.robots = []
      team.members = [{ username: 'alice', role: 'maintainer' }]
      doc.robots = [{ name: 'ops', permissions: ['pull', 'push'] }]

      const withoutPrune = await withSettingsServices({ dataDir: dir }, (s) => applySettings(s, doc, { prune: false, dryRun: false }))
      assert.deepEqual(
        withoutPrune.changes.map((c) => `${c.op} ${c.target}`),
        ['update project team', 'update member alice of team', 'recreate robot robot$ops'],
      )
      let now = await settingsOf(dir)
      assert.equal(now.projects.find((p) => p.name === 'team')?.robots?.length, 1, 'not deleted without --prune')
      assert.equal(now.projects.find((p) => p.name === 'team')?.members?.length, 2)

      const pruned = await withSettingsServices({ dataDir: dir }, (s) => applySettings(s, doc, { prune: true, dryRun: false }))
      assert.deepEqual(pruned.changes.map((c) => `${c.op} ${c.target}`).sort(), ['delete member group:devs of team', 'delete robot robot$team+ci'])
      now = await settingsOf(dir)
      assert.equal(now.projects.find((p) => p.name === 'team')?.robots, undefined)
      assert.deepEqual(now.projects.find((p) => p.name === 'team')?.members, [{ username: 'alice', role: 'maintainer' }])
      assert.equal((await withSettingsServices({ dataDir: dir }, (s) => applySettings(s, doc, { prune: true, dryRun: false }))).changes.length, 0)

      // invalid: a new project first, then a bad role; the document is refused whole
      const bad = parseSettingsDocument(JSON.parse(JSON.stringify(now)))
      bad.projects.unshift({ name: 'fresh' })
      ;(bad.projects[1] as { members: unknown[] }).members = [{ username: 'alice', role: 'owner' }]
      const file = join(dir, 'bad.yml')
      await writeFile(file, stringify(bad))
      const refused = await berth(['apply', file, '--data-dir', dir])
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, /projects\[1\]\.members\[0\]\.role: one of projectAdmin/)
      assert.equal(stable(await settingsOf(dir)), stable(now))
      assert.throws(() => parseSettingsDocument({ projects: [{ name: 'x', colour: 'red' }] }), /projects\[0\]\.colour: not a field here/)
      assert.throws(() => parseSettingsDocument({ projects: [{ name: 'x', retention: { rules: [{ kind: 'latestPushed' }] } }] }), /projects\[0\]\.retention\.rules\[0\]\.count/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
