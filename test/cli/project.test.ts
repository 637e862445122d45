import assert from 'node:assert/strict'
import { exec, execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { basic } from '../helpers/auth.js'
import { freePort, waitHealthy } from '../helpers/e2e-process.js'
import { initDataDir, startServer } from '../helpers/server.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
const BIN = join(ROOT, 'bin', 'berth.js')

async function berth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args]).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )
}

/** Starts `berth serve` from the checkout as `npm start` does, and stops it with SIGTERM. */
async function serve(dir: string, env: NodeJS.ProcessEnv = {}): Promise<{ port: number; stderr: () => string; stdout: () => string; stop: () => Promise<void> }> {
  const port = await freePort()
  const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', dir], {
    cwd: ROOT,
    env: { ...process.env, BERTH_HTTP_ADDR: `127.0.0.1:${port}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  try {
    await waitHealthy(`http://127.0.0.1:${port}`)
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  }
  return {
    port,
    stderr: () => err,
    stdout: () => out,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}

describe('berth project', () => {
  it('creates and lists projects straight in the database, with one-line reasons for refusals', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-project-'))
    await initDataDir(dir)
    try {
      const team = await berth(['project', 'create', 'team', '--data-dir', dir])
      assert.equal(team.code, 0, team.stderr)
      assert.equal(team.stdout, 'created project team (private)\n')
      const charts = await berth(['project', 'create', 'charts', '--public', '--json', '--data-dir', dir])
      assert.equal(charts.code, 0, charts.stderr)
      assert.equal((JSON.parse(charts.stdout) as { public: boolean }).public, true)

      const dup = await berth(['project', 'create', 'team', '--data-dir', dir])
      assert.equal(dup.code, 1)
      assert.equal(dup.stderr, 'berth: project team already exists\n')
      const bad = await berth(['project', 'create', 'Team!', '--data-dir', dir])
      assert.equal(bad.code, 1)
      assert.equal(bad.stderr.trim().split('\n').length, 1)
      assert.match(bad.stderr, /^berth: name: lowercase letters/)

      const list = await berth(['project', 'list', '--json', '--data-dir', dir])
      assert.deepEqual(
        (JSON.parse(list.stdout) as { name: string; public: boolean }[]).map((p) => `${p.name}:${p.public}`),
        ['charts:true', 'team:false'],
      )
      const text = await berth(['project', 'list', '--data-dir', dir])
      assert.match(text.stdout, /^charts\tpublic\t0 repositories/m)
      assert.match(text.stdout, /^team\tprivate\t0 repositories/m)

      // The server sees them: a project created beside it needs no restart and no API call.
      const s = await startServer({ dataDir: dir, auth: { enabled: true } }, { keepData: true, adminPassword: 'admin-password-xyz' })
      try {
        const res = await fetch(`${s.url}/api/v1/projects/team`, { headers: { authorization: basic('admin', 'admin-password-xyz') } })
        assert.equal(res.status, 200)
        assert.equal(((await res.json()) as { public: boolean }).public, false)
      } finally {
        await s.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('berth serve start-up banner', () => {
  it('says how to log in and push with this address, prints a password command that works, and warns when BERTH_ADMIN_PASSWORD is ignored', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-banner-'))
    try {
      const first = await serve(dir)
      await first.stop()
      const err = first.stderr()
      const host = `127.0.0.1:${first.port}`
      assert.ok(err.includes(`docker login ${host} -u admin`), err)
      assert.ok(err.includes(`npx berth project create team --data-dir ${dir}`), err)
      assert.ok(err.includes(`docker push ${host}/team/app:1`), err)
      assert.ok(!/Change it with: berth /.test(err), 'no bare `berth` when it is not on PATH')
      const passwd = /Change it with: (.+)$/m.exec(err)?.[1] ?? ''
      assert.ok(passwd.startsWith('npx berth user passwd admin --password-stdin'), err)

      // The printed command works as printed, from the checkout.
      await new Promise<void>((resolve, reject) => {
        const child = exec(passwd, { cwd: ROOT }, (e: Error | null) => (e ? reject(e) : resolve()))
        child.stdin?.end('a-new-admin-password\n')
      })

      // A BERTH_ADMIN_PASSWORD that differs from the stored one is reported (never printed).
      const second = await serve(dir, { BERTH_ADMIN_PASSWORD: 'not-the-stored-one' })
      try {
        const login = await fetch(`http://127.0.0.1:${second.port}/v2/`, { headers: { authorization: basic('admin', 'a-new-admin-password') } })
        assert.equal(login.status, 200, 'the password set with the printed command is the one that works')
      } finally {
        await second.stop()
      }
      const warnings = second.stdout().split('\n').filter((l) => l.includes('BERTH_ADMIN_PASSWORD'))
      assert.equal(warnings.length, 1, second.stdout())
      assert.match(warnings[0] ?? '', /"level":40.*differs from the password of the existing user admin and is ignored/)
      assert.ok(!second.stdout().includes('not-the-stored-one') && !second.stderr().includes('not-the-stored-one'))
      assert.ok(!second.stderr().includes('Berth created the user'))

      // The same password as stored: nothing to report.
      const third = await serve(dir, { BERTH_ADMIN_PASSWORD: 'a-new-admin-password' })
      await third.stop()
      assert.ok(!third.stdout().includes('BERTH_ADMIN_PASSWORD'), third.stdout())
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
