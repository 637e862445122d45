// End-to-end: real clients signed in with too few rights are told "denied" at once, with the
// cause (Distribution's insufficient_scope); the catalog lists what each caller may pull
// (crane catalog, podman search); docker mounts blobs across repositories with its token.

import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { startContainerd, startDockerd, type Containerd, type Dockerd } from '../helpers/e2e-daemons.js'
import { OciLayout, sampleFiles } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, needRoot, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'

const craneBinary = await ensureCrane().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const craneMissing = craneBinary instanceof Error ? `crane is not available: ${craneBinary.message.split('\n')[0]}` : undefined
const DOCKER_CANDIDATES = ['/usr/bin/docker']

/** A refused command must fail this fast (docker used to retry for about 50 s). */
const PROMPT_MS = 5_000

const PASSWORDS: Record<string, string> = { admin: ADMIN_PASSWORD, member: 'member-password-1', guest: 'guest-password-1', outsider: 'outsider-password-1' }

/** Starts an auth server with a private project `team` (member: developer, guest: guest) and `outsider`. */
async function teamServer(): Promise<TestServer> {
  const s = await startAuthServer()
  for (const user of ['member', 'guest', 'outsider']) await addUser(s, user)
  await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
  await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'member', role: 'developer' }, 201)
  await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'guest', role: 'guest' }, 201)
  return s
}

/** Runs a command that must fail; returns its output and how long it took. */
async function refused(p: Promise<unknown>): Promise<{ output: string; ms: number }> {
  const started = performance.now()
  try {
    await p
  } catch (err) {
    return { output: (err as Error).message, ms: performance.now() - started }
  }
  throw new Error('the command succeeded')
}

describe('crane, skopeo and podman are told why they are refused', { skip: requireClients('auth-denied e2e', [craneMissing, needBinary('skopeo'), needBinary('podman'), needRoot('podman with overlay storage')]) }, () => {
  let s: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  const crane = (who: string | undefined, ...args: string[]) =>
    run(craneBinary as string, args, { env: { ...process.env, HOME: join(work, `home-${who ?? 'anonymous'}`), DOCKER_CONFIG: join(work, `home-${who ?? 'anonymous'}`, '.docker') }, cwd: work, timeoutMs: 120_000 })
  const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
  const podman = (...args: string[]) => run(findBinary('podman') ?? 'podman', args, { env, cwd: work })
  const creds = (who: string) => `${who}:${PASSWORDS[who]}`

  before(async () => {
    work = await makeTempDir('berth-e2e-denied-')
    env = await containersEnv(join(work, 'containers'))
    const layout = await new OciLayout(join(work, 'img')).init()
    const image = await layout.addImage({ layers: [sampleFiles('denied-1')] })
    await layout.tag('img', image.descriptor)
    s = await teamServer()
    for (const who of ['admin', 'member', 'guest', 'outsider']) {
      await mkdir(join(work, `home-${who}`, '.docker'), { recursive: true })
      await crane(who, 'auth', 'login', s.host, '-u', who, '-p', PASSWORDS[who] as string)
    }
    await mkdir(join(work, 'home-anonymous', '.docker'), { recursive: true })
    await crane('admin', 'push', join(work, 'img'), `${s.host}/team/app:1`)
    await crane('admin', 'push', join(work, 'img'), `${s.host}/library/pub:1`)
  })

  after(async () => {
    await s?.close()
    await removeTempDir(work)
  })

  it('crane: a guest push is denied at once, naming the cause', async () => {
    const { output, ms } = await refused(crane('guest', 'push', join(work, 'img'), `${s.host}/team/app:guest`))
    assert.match(output, /DENIED|denied/)
    assert.match(output, /user guest may not push on team\/app/)
    assert.ok(ms < PROMPT_MS, `crane took ${Math.round(ms)} ms`)
  })

  it('crane: a developer delete is denied at once, naming the cause', async () => {
    const digest = (await crane('member', 'digest', `${s.host}/team/app:1`)).stdout.trim()
    const { output, ms } = await refused(crane('member', 'delete', `${s.host}/team/app@${digest}`))
    assert.match(output, /user member may not delete on team\/app/)
    assert.ok(ms < PROMPT_MS, `crane took ${Math.round(ms)} ms`)
  })

  it('crane: a push to a project that does not exist is refused at once', async () => {
    // crane's first request is a HEAD (no body) and it does not print the challenge's
    // error_description, so all it can say is the status.
    const { output, ms } = await refused(crane('member', 'push', join(work, 'img'), `${s.host}/nowhere/app:1`))
    assert.match(output, /401 Unauthorized/)
    assert.ok(ms < PROMPT_MS, `crane took ${Math.round(ms)} ms`)
  })

  it('skopeo: a guest push and a developer delete are denied at once, naming the cause', async () => {
    const push = await refused(skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds('guest'), `oci:${join(work, 'img')}:img`, `docker://${s.host}/team/app:guest`))
    assert.match(push.output, /denied/i)
    assert.match(push.output, /user guest may not push on team\/app/)
    assert.ok(push.ms < PROMPT_MS, `skopeo copy took ${Math.round(push.ms)} ms`)
    const del = await refused(skopeo('delete', '--tls-verify=false', '--creds', creds('member'), `docker://${s.host}/team/app:1`))
    assert.match(del.output, /user member may not delete on team\/app/)
    assert.ok(del.ms < PROMPT_MS, `skopeo delete took ${Math.round(del.ms)} ms`)
  })

  it('skopeo: a push to a project that does not exist names it and how to create it', async () => {
    const { output, ms } = await refused(skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds('member'), `oci:${join(work, 'img')}:img`, `docker://${s.host}/nowhere/app:1`))
    assert.match(output, /project nowhere does not exist/)
    assert.match(output, /berth project create nowhere/)
    assert.ok(ms < PROMPT_MS, `skopeo took ${Math.round(ms)} ms`)
  })

  it('crane catalog lists what each caller may pull: admin, member, non-member, anonymous', async () => {
    const listed = async (who: string | undefined) => (await crane(who, 'catalog', s.host)).stdout.split('\n').filter(Boolean).sort()
    assert.deepEqual(await listed('admin'), ['library/pub', 'team/app'])
    assert.deepEqual(await listed('member'), ['library/pub', 'team/app'])
    assert.deepEqual(await listed('outsider'), ['library/pub'])
    assert.deepEqual(await listed(undefined), ['library/pub'])
  })

  it('podman search HOST/ lists what each caller may pull: admin, member, non-member, anonymous', async () => {
    const listed = async (who: string | undefined) => {
      const authfile = join(work, `podman-auth-${who ?? 'anonymous'}.json`)
      await writeFile(authfile, JSON.stringify({ auths: {} }))
      if (who) await podman('login', '--tls-verify=false', '--authfile', authfile, '-u', who, '-p', PASSWORDS[who] as string, s.host)
      const { stdout } = await podman('search', '--tls-verify=false', '--authfile', authfile, '--format', '{{.Name}}', `${s.host}/`)
      return stdout.split('\n').filter(Boolean).sort()
    }
    assert.deepEqual(await listed('admin'), [`${s.host}/library/pub`, `${s.host}/team/app`])
    assert.deepEqual(await listed('member'), [`${s.host}/library/pub`, `${s.host}/team/app`])
    assert.deepEqual(await listed('outsider'), [`${s.host}/library/pub`])
    assert.deepEqual(await listed(undefined), [`${s.host}/library/pub`])
  })
})

describe('docker is told why it is refused, and mounts with its token', { skip: requireClients('auth-denied docker e2e', [craneMissing, needBinary('dockerd'), needBinary('docker', DOCKER_CANDIDATES), needBinary('containerd'), needRoot('dockerd')]) }, () => {
  let s: TestServer
  let work: string
  let containerd: Containerd
  let dockerd: Dockerd
  const docker = (...args: string[]) => dockerd.docker(...args)
  const login = (who: string) => docker('login', '-u', who, '-p', PASSWORDS[who] as string, s.host)

  before(async () => {
    work = await makeTempDir('berth-e2e-denied-docker-')
    const layout = await new OciLayout(join(work, 'img')).init()
    const image = await layout.addImage({ layers: [sampleFiles('docker-denied-1'), sampleFiles('docker-denied-2')] })
    await layout.tag('img', image.descriptor)
    s = await teamServer()
    const home = join(work, 'home')
    await mkdir(join(home, '.docker'), { recursive: true })
    const env = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker') }
    await run(craneBinary as string, ['auth', 'login', s.host, '-u', 'admin', '-p', ADMIN_PASSWORD], { env })
    await run(craneBinary as string, ['push', join(work, 'img'), `${s.host}/team/base:1`], { env })
    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
    dockerd = await startDockerd(join(work, 'docker'), containerd.address, { dockerd: findBinary('dockerd'), docker: findBinary('docker', DOCKER_CANDIDATES) })
    await login('member')
    await docker('pull', `${s.host}/team/base:1`)
  })

  after(async () => {
    await dockerd?.stop()
    await containerd?.stop()
    await s?.close()
    await removeTempDir(work)
  })

  // First: a refused mount makes docker forget where the layer came from.
  it('a push to another repository mounts the layers (token for both scopes)', async () => {
    await login('member')
    await docker('tag', `${s.host}/team/base:1`, `${s.host}/team/copy:1`)
    const { stdout } = await docker('push', `${s.host}/team/copy:1`)
    assert.match(stdout, /Mounted from team\/base/, stdout)
  })

  it('a guest push fails at once with "denied" and the cause', async () => {
    await login('guest')
    await docker('tag', `${s.host}/team/base:1`, `${s.host}/team/app:guest`)
    const { output, ms } = await refused(docker('push', `${s.host}/team/app:guest`))
    assert.match(output, /denied: requested access to the resource is denied/)
    assert.match(output, /user guest may not push on team\/app/)
    assert.ok(ms < PROMPT_MS, `docker push took ${Math.round(ms)} ms`)
  })

  it('a push to a project that does not exist fails at once, naming it and how to create it', async () => {
    await login('member')
    await docker('tag', `${s.host}/team/base:1`, `${s.host}/nowhere/app:1`)
    const { output, ms } = await refused(docker('push', `${s.host}/nowhere/app:1`))
    assert.match(output, /denied: project nowhere does not exist/)
    assert.match(output, /berth project create nowhere/)
    assert.ok(ms < PROMPT_MS, `docker push took ${Math.round(ms)} ms`)
  })
})
