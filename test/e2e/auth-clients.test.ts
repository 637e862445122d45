// End-to-end: skopeo and podman sign in to Berth (token auth) and push/pull as different roles.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, addUser, apiOk, startAuthServer, ADMIN_PASSWORD } from '../helpers/auth.js'
import { multiArchLayout, type Image } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, needRoot, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'

const skip = requireClients('auth e2e', [needBinary('skopeo'), needBinary('podman'), needRoot('podman with overlay storage')])

describe('real clients through token auth', { skip }, () => {
  let s: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  let image: Image
  let robot: { name: string; secret: string }
  const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
  const podman = (...args: string[]) => run(findBinary('podman') ?? 'podman', args, { env, cwd: work })
  const fails = async (p: Promise<unknown>, pattern: RegExp) => {
    await assert.rejects(p, (err: Error) => pattern.test(err.message))
  }

  before(async () => {
    work = await makeTempDir('berth-e2e-auth-')
    env = await containersEnv(join(work, 'containers'))
    const src = await multiArchLayout(join(work, 'src'))
    image = src.amd64
    await src.layout.tag('img', image.descriptor)
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    for (const [user, role] of [['dev', 'developer'], ['visitor', 'guest']]) {
      await addUser(s, user as string)
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: user, role }, 201)
    }
    robot = await apiOk(s, 'POST', '/robots', ADMIN, { name: 'reader', project: 'team', permissions: ['pull'] }, 201)
  })

  after(async () => {
    if (env) await podman('rmi', '--all', '--force').catch(() => undefined)
    await s?.close()
    await removeTempDir(work)
  })

  it('skopeo pushes with --dest-creds as a developer and pulls back identical digests', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', 'dev:dev-password-1', `oci:${join(work, 'src')}:img`, `docker://${s.host}/team/app:1`)
    const { stdout } = await skopeo('inspect', '--tls-verify=false', '--creds', 'visitor:visitor-password-1', '--format', '{{.Digest}}', `docker://${s.host}/team/app:1`)
    assert.equal(stdout.trim(), image.descriptor.digest)
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', `${robot.name}:${robot.secret}`, `docker://${s.host}/team/app:1`, `oci:${join(work, 'out')}:img`)
  })

  it('refuses a guest push, a pull-only robot push, a developer delete and anonymous access to a private project', async () => {
    await fails(skopeo('copy', '--dest-tls-verify=false', '--dest-creds', 'visitor:visitor-password-1', `oci:${join(work, 'src')}:img`, `docker://${s.host}/team/app:guest`), /denied|unauthorized|authentication required/i)
    await fails(skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `${robot.name}:${robot.secret}`, `oci:${join(work, 'src')}:img`, `docker://${s.host}/team/app:robot`), /denied|unauthorized|authentication required/i)
    await fails(skopeo('delete', '--tls-verify=false', '--creds', 'dev:dev-password-1', `docker://${s.host}/team/app:1`), /denied|unauthorized|authentication required/i)
    await fails(skopeo('inspect', '--tls-verify=false', `docker://${s.host}/team/app:1`), /denied|unauthorized|authentication required|requested access/i)
    await fails(skopeo('inspect', '--tls-verify=false', '--creds', 'dev:wrong-password', `docker://${s.host}/team/app:1`), /unauthorized|invalid username or password|authentication/i)
    // What was refused left nothing behind: the tags are what the developer pushed.
    const { stdout } = await skopeo('list-tags', '--tls-verify=false', '--creds', 'dev:dev-password-1', `docker://${s.host}/team/app`)
    assert.deepEqual((JSON.parse(stdout) as { Tags: string[] }).Tags, ['1'])
  })

  it('lets anonymous clients pull a public project only', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `admin:${ADMIN_PASSWORD}`, `oci:${join(work, 'src')}:img`, `docker://${s.host}/library/pub:1`)
    const { stdout } = await skopeo('inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${s.host}/library/pub:1`)
    assert.equal(stdout.trim(), image.descriptor.digest)
    await fails(skopeo('copy', '--dest-tls-verify=false', `oci:${join(work, 'src')}:img`, `docker://${s.host}/library/pub:anon`), /denied|unauthorized|authentication required/i)
  })

  it('podman login, push and pull as a developer', async () => {
    await podman('login', '--tls-verify=false', '-u', 'dev', '-p', 'dev-password-1', s.host)
    const { stdout: id } = await podman('pull', '--quiet', `oci:${join(work, 'src')}:img`)
    await podman('tag', id.trim(), `${s.host}/team/podman:1`)
    await podman('push', '--tls-verify=false', `${s.host}/team/podman:1`)
    await podman('rmi', '--force', `${s.host}/team/podman:1`)
    await podman('pull', '--tls-verify=false', `${s.host}/team/podman:1`)
    await podman('logout', s.host)
    await fails(podman('push', '--tls-verify=false', `${s.host}/team/podman:1`), /denied|unauthorized|authentication required/i)
    await fails(podman('login', '--tls-verify=false', '-u', 'dev', '-p', 'not-the-password', s.host), /unauthorized|invalid|401/i)
  })
})
