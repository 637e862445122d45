// End-to-end: README.md's "Quick start" and "Using it" commands, read from README.md itself so
// that they cannot drift, run against a fresh Berth (authentication on) with the real clients.
//
// How the commands are run (mechanical; nothing else is changed):
// - The `sh` blocks under the two headings are read; `\` continuations are joined.
// - `localhost:5000` becomes `127.0.0.1:<ephemeral port>`.
// - `npm install` and `npm test` are not run: this test runs inside `npm test` of an installed checkout
//   (`npm install && npm start` runs only `npm start`).
// - `export NAME=VALUE` sets NAME (as bash evaluates VALUE) for every later command.
// - `npm start` starts the server in the background, in the checkout, with
//   BERTH_HTTP_ADDR=127.0.0.1:<port> and BERTH_DATA_DIR=<temp>/data in its environment (every
//   command gets them too, so `npx berth` finds the same data); it is stopped at the end.
// - Every other line runs with `bash -eo pipefail -c LINE`: `npm`/`npx` commands in the
//   checkout, client commands in a scratch directory holding `app.tar` (a small image saved as a
//   docker-archive, as `docker save` writes it). The clients' state lives in the temp directory:
//   HOME, the containers/image and containers/storage configs, DOCKER_HOST and DOCKER_CONFIG for
//   a dockerd, CONTAINERD_ADDRESS and CONTAINERD_NAMESPACE for ctr, all started by this test;
//   crane, helm and Debian's docker CLI are put first on PATH.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startContainerd, startDockerd, type Containerd, type Dockerd } from '../helpers/e2e-daemons.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { ensureHelm } from '../helpers/e2e-helm.js'
import { addBusyboxImage, OciLayout } from '../helpers/e2e-layout.js'
import { findBinary, freePort, isStaticElf, makeTempDir, needBinary, needRoot, removeTempDir, requireClients, run, waitHealthy } from '../helpers/e2e-process.js'
import { containersEnv, listTags } from '../helpers/e2e-registry.js'

const ROOT = join(import.meta.dirname, '..', '..')
const BUSYBOX = '/bin/busybox'
const DOCKER_CANDIDATES = ['/usr/bin/docker']

const craneBinary = await ensureCrane().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const helmBinary = await ensureHelm().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const skip = requireClients('README e2e', [
  needBinary('skopeo'),
  needBinary('podman'),
  needBinary('dockerd'),
  needBinary('docker', DOCKER_CANDIDATES),
  needBinary('containerd'),
  needBinary('ctr'),
  needBinary('runc'),
  needRoot('dockerd'),
  craneBinary instanceof Error ? `crane is not available: ${craneBinary.message.split('\n')[0]}` : undefined,
  helmBinary instanceof Error ? `helm is not available: ${helmBinary.message.split('\n')[0]}` : undefined,
  isStaticElf(BUSYBOX) ? undefined : `${BUSYBOX} is not a static binary (Debian package busybox-static)`,
])

/** The commands of the ```sh blocks in the README section under `heading`, continuations joined. */
export function sectionCommands(readme: string, heading: string): string[] {
  const start = readme.indexOf(`\n## ${heading}\n`)
  assert.notEqual(start, -1, `README.md has a "## ${heading}" section`)
  const next = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, next === -1 ? undefined : next)
  const commands: string[] = []
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = (block[1] ?? '').replace(/\\\n\s*/g, '')
    for (const line of joined.split('\n')) if (line.trim() && !line.trim().startsWith('#')) commands.push(line.trim())
  }
  return commands
}

/** The command without a trailing shell comment (for recognising `npm start` and friends). */
function withoutComment(line: string): string {
  return line.replace(/\s+#[^'"]*$/, '').trim()
}

/** What this test runs of a README line: without its comment, and without `npm install && `. */
function runnable(line: string): string {
  return withoutComment(line).replace(/^npm install && /, '')
}

describe('README.md, as written', { skip }, () => {
  let work: string
  let port: number
  let containerd: Containerd
  let dockerd: Dockerd
  let server: ChildProcess | undefined
  let serverLog = ''
  let env: NodeJS.ProcessEnv
  let scratch: string

  before(async () => {
    work = await makeTempDir('berth-e2e-readme-')
    port = await freePort()
    scratch = join(work, 'scratch')
    const bin = join(work, 'bin')
    await mkdir(scratch, { recursive: true })
    await mkdir(bin, { recursive: true })
    await symlink(findBinary('docker', DOCKER_CANDIDATES) as string, join(bin, 'docker'))
    await symlink(craneBinary as string, join(bin, 'crane'))
    await symlink(helmBinary as string, join(bin, 'helm'))
    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
    dockerd = await startDockerd(join(work, 'docker'), containerd.address, { dockerd: findBinary('dockerd'), docker: findBinary('docker', DOCKER_CANDIDATES) })
    const containers = await containersEnv(join(work, 'containers'))
    env = {
      ...containers,
      DOCKER_HOST: dockerd.env.DOCKER_HOST,
      DOCKER_CONFIG: dockerd.env.DOCKER_CONFIG,
      CONTAINERD_ADDRESS: containerd.address,
      CONTAINERD_NAMESPACE: 'readme',
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      BERTH_HTTP_ADDR: `127.0.0.1:${port}`,
      BERTH_DATA_DIR: join(work, 'data'),
    }
    delete env.BERTH_ADMIN_PASSWORD
    // app.tar: a small runnable image, saved as docker save does.
    const layout = await new OciLayout(join(work, 'src')).init()
    const image = await addBusyboxImage(layout, await readFile(BUSYBOX))
    await layout.tag('app', image.descriptor)
    await run('skopeo', ['copy', `oci:${join(work, 'src')}:app`, `docker-archive:${join(scratch, 'app.tar')}`], { env })
  })

  after(async () => {
    if (server?.pid !== undefined && server.exitCode === null) {
      const exited = new Promise((resolve) => server?.once('exit', resolve))
      process.kill(-server.pid, 'SIGTERM') // npm, its shell and the server: the whole group
      await exited
    }
    await dockerd?.stop()
    await containerd?.stop()
    await removeTempDir(work)
  })

  it('its quick start and "Using it" commands all succeed on a fresh server', { timeout: 600_000 }, async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
    const commands = [...sectionCommands(readme, 'Quick start'), ...sectionCommands(readme, 'Using it')]
    // The README must keep showing the whole path; an emptied block would pass vacuously.
    for (const expected of [/^npm start$/, /^npx berth project create team\b/, /^skopeo /, /^podman /, /^docker /, /^ctr /, /^crane /, /^helm push /]) {
      assert.ok(commands.some((c) => expected.test(runnable(c))), `README shows a command matching ${String(expected)}`)
    }

    for (const original of commands) {
      const line = original.replaceAll('localhost:5000', `127.0.0.1:${port}`)
      const command = runnable(line)
      if (command === 'npm install' || command === 'npm test') continue
      const exported = /^export ([A-Z_][A-Z0-9_]*)=/.exec(command)
      if (exported?.[1]) {
        const name = exported[1]
        env[name] = (await run('bash', ['-c', `${command}; printf %s "$${name}"`], { env })).stdout
        continue
      }
      if (command === 'npm start') {
        server = spawn('bash', ['-c', command], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
        server.stdout?.on('data', (d: Buffer) => (serverLog += d.toString()))
        server.stderr?.on('data', (d: Buffer) => (serverLog += d.toString()))
        await waitHealthy(`http://127.0.0.1:${port}`, { timeoutMs: 60_000 }).catch((err: unknown) => {
          throw new Error(`npm start did not answer: ${String(err)}\n${serverLog}`)
        })
        continue
      }
      const cwd = /^(npm|npx) /.test(command) ? ROOT : scratch
      await run('bash', ['-eo', 'pipefail', '-c', line], { env, cwd, timeoutMs: 180_000 }).catch((err: unknown) => {
        throw new Error(`README command failed: ${original}\n${String(err)}`)
      })
    }

    // What the commands did is there: the tags pushed by skopeo, docker and crane, and the chart.
    const base = `http://127.0.0.1:${port}`
    const auth = { authorization: `Basic ${Buffer.from(`admin:${env.BERTH_ADMIN_PASSWORD ?? ''}`).toString('base64')}` }
    assert.deepEqual((await listTags(base, 'team/app', auth)).sort(), ['1', '2', 'copy'])
    assert.deepEqual(await listTags(base, 'charts/demo'), ['0.1.0'], 'charts is public: anyone lists its tags')
    assert.match(serverLog, new RegExp(`docker login 127\\.0\\.0\\.1:${port} -u admin`), 'the banner names this server')
  })
})
