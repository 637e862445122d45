// Credentials of `berth export|import|apply|config export --url`: --password-stdin, and the
// logins skopeo (and crane, docker) saved, read as skopeo reads them; a refusal names the host.

import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { stringify } from 'yaml'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer } from '../helpers/auth.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { findBinary, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, digestOf, pushMultiArch, type Pushed } from './helpers.js'

const SKOPEO = findBinary('skopeo')

describe('credentials for --url: --password-stdin and saved logins', () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let layout: string
  let pushed: Pushed
  /** an environment with no saved login anywhere */
  let bare: NodeJS.ProcessEnv

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-credentials-'))
    a = await startServer()
    b = await startAuthServer()
    pushed = await pushMultiArch(a.url, 'team/app', 'multi', join(work, 'src'))
    layout = join(work, 'layout')
    const exported = await berth(['export', '--url', a.url, 'team/app:multi', '--referrers', '--to', layout])
    assert.equal(exported.code, 0, exported.stderr)
    await apiOk(b, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    await mkdir(join(work, 'bare'))
    bare = { HOME: join(work, 'bare'), XDG_RUNTIME_DIR: undefined, XDG_CONFIG_HOME: undefined, DOCKER_CONFIG: undefined, REGISTRY_AUTH_FILE: undefined }
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('imports and exports with --password-stdin (the password is on no command line)', async () => {
    const imported = await berth(['import', layout, '--into', 'team/app', '--url', b.url, '--user', 'admin', '--password-stdin'], bare, `${ADMIN_PASSWORD}\n`)
    assert.equal(imported.code, 0, imported.stderr)
    assert.equal(await digestOf(b.url, 'team/app', 'multi', ADMIN), pushed.index.descriptor.digest)
    const exported = await berth(['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'back'), '--user', 'admin', '--password-stdin', '--json'], bare, ADMIN_PASSWORD)
    assert.equal(exported.code, 0, exported.stderr)
    assert.equal((JSON.parse(exported.stdout) as { images: { digest: string }[] }).images[0]?.digest, pushed.index.descriptor.digest)
  })

  it('runs berth config export and berth apply with --password-stdin', async () => {
    const exported = await berth(['config', 'export', '--url', b.url, '--user', 'admin', '--password-stdin', '--json'], bare, `${ADMIN_PASSWORD}\n`)
    assert.equal(exported.code, 0, exported.stderr)
    const doc = JSON.parse(exported.stdout) as { projects: { name: string }[] }
    assert.ok(doc.projects.some((p) => p.name === 'team'), exported.stdout)
    const file = join(work, 'settings.yml')
    await writeFile(file, stringify({ ...doc, projects: [...doc.projects, { name: 'added' }] }))
    const dry = await berth(['apply', file, '--url', b.url, '--user', 'admin', '--password-stdin', '--dry-run'], bare, ADMIN_PASSWORD)
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /^\+ project added/m)
  })

  it('refuses a wrong password read from stdin with an error naming the host and where the password came from', async () => {
    for (const args of [
      ['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'wrong')],
      ['import', layout, '--into', 'team/app', '--url', b.url],
      ['config', 'export', '--url', b.url],
    ]) {
      const r = await berth([...args, '--user', 'admin', '--password-stdin'], bare, 'not-the-password\n')
      assert.equal(r.code, 1, args.join(' '))
      assert.match(r.stderr, new RegExp(`^berth: ${b.host.replace(/\./g, '\\.')} refused the credentials of admin \\(from --password-stdin\\)`, 'm'), `${args.join(' ')}: ${r.stderr}`)
      assert.doesNotMatch(r.stderr, /not-the-password/, 'the password is not echoed')
    }
  })

  it('tells what to do when the registry wants credentials and none are given or saved', async () => {
    const r = await berth(['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'anonymous')], bare)
    assert.equal(r.code, 1)
    assert.match(r.stderr, new RegExp(`berth: ${b.host.replace(/\./g, '\\.')} wants credentials: give --user with --password-stdin, or log in first \\(skopeo login`))
    const noUser = await berth(['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'anonymous'), '--password-stdin'], bare, ADMIN_PASSWORD)
    assert.equal(noUser.code, 1)
    assert.match(noUser.stderr, /--password-stdin needs --user/)
    const both = await berth(['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'anonymous'), '--user', 'admin', '--password', 'x', '--password-stdin'], bare, ADMIN_PASSWORD)
    assert.equal(both.code, 1)
    assert.match(both.stderr, /give either --password or --password-stdin, not both/)
    const local = await berth(['export', '--data-dir', a.dataDir, 'team/app:multi', '--to', join(work, 'anonymous'), '--password-stdin'], bare, ADMIN_PASSWORD)
    assert.equal(local.code, 1)
    assert.match(local.stderr, /--user, --password and --password-stdin go with --url/)
  })

  it('uses the login `skopeo login --authfile` saved in $REGISTRY_AUTH_FILE, and the default one in $XDG_RUNTIME_DIR', { skip: SKOPEO ? false : 'skopeo is not installed' }, async () => {
    const env = await containersEnv(join(work, 'containers'))
    const skopeo = (e: NodeJS.ProcessEnv, ...args: string[]) => run(SKOPEO as string, args, { env: e, cwd: work })
    const authfile = join(work, 'skopeo-auth.json')
    await skopeo(env, 'login', '--tls-verify=false', '--authfile', authfile, '-u', 'admin', '-p', ADMIN_PASSWORD, b.host)
    const withFile = { ...env, REGISTRY_AUTH_FILE: authfile }
    const exported = await berth(['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'from-authfile'), '--json'], withFile)
    assert.equal(exported.code, 0, exported.stderr)
    assert.equal((JSON.parse(exported.stdout) as { images: { digest: string }[] }).images[0]?.digest, pushed.index.descriptor.digest)
    const settings = await berth(['config', 'export', '--url', b.url], withFile)
    assert.equal(settings.code, 0, settings.stderr)
    assert.match(settings.stdout, /name: team/)

    // Without REGISTRY_AUTH_FILE: skopeo's default file, $XDG_RUNTIME_DIR/containers/auth.json.
    const defaults = { ...env, REGISTRY_AUTH_FILE: undefined }
    await skopeo(defaults, 'login', '--tls-verify=false', '-u', 'admin', '-p', ADMIN_PASSWORD, b.host)
    const imported = await berth(['import', layout, '--into', 'team/copy', '--url', b.url], defaults)
    assert.equal(imported.code, 0, imported.stderr)
    assert.equal(await digestOf(b.url, 'team/copy', 'multi', ADMIN), pushed.index.descriptor.digest)
  })

  it('names the auth file when the saved login is refused (the password changed since)', { skip: SKOPEO ? false : 'skopeo is not installed' }, async () => {
    await apiOk(b, 'POST', '/users', ADMIN, { username: 'ops', password: 'ops-password-1', admin: true }, 201)
    const env = await containersEnv(join(work, 'containers-ops'))
    const authfile = join(work, 'ops-auth.json')
    await run(SKOPEO as string, ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'ops', '-p', 'ops-password-1', b.host], { env, cwd: work })
    const ok = await berth(['config', 'export', '--url', b.url], { ...env, REGISTRY_AUTH_FILE: authfile })
    assert.equal(ok.code, 0, ok.stderr)
    await apiOk(b, 'PATCH', '/users/ops', ADMIN, { password: 'ops-password-2' })
    for (const args of [
      ['config', 'export', '--url', b.url],
      ['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'stale')],
    ]) {
      const r = await berth(args, { ...env, REGISTRY_AUTH_FILE: authfile })
      assert.equal(r.code, 1, args.join(' '))
      assert.ok(r.stderr.includes(`berth: ${b.host} refused the credentials of ops (from ${authfile}): log in again (skopeo login ${b.host})`), r.stderr)
    }
  })

  it("uses the login crane saved in docker's config.json", async (t) => {
    const crane = await ensureCrane().catch(() => undefined)
    if (!crane) return t.skip('crane is not available')
    const home = join(work, 'crane-home')
    await mkdir(home, { recursive: true })
    const env = { ...bare, HOME: home, DOCKER_CONFIG: undefined }
    await run(crane, ['auth', 'login', b.host, '-u', 'admin', '-p', ADMIN_PASSWORD], { env: { ...process.env, ...env }, cwd: work })
    const exported = await berth(['export', '--url', b.url, 'team/app:multi', '--to', join(work, 'from-docker-config'), '--json'], env)
    assert.equal(exported.code, 0, exported.stderr)
    assert.equal((JSON.parse(exported.stdout) as { images: { digest: string }[] }).images[0]?.digest, pushed.index.descriptor.digest)
  })
})
