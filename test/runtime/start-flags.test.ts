// One switch for the runtime tuning: `npm start` passes V8's start-up flags unless
// BERTH_RUNTIME_TUNING is false (they are read only when the process starts).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { freePort, waitFor, waitHealthy } from '../helpers/e2e-process.js'

const ROOT = join(import.meta.dirname, '..', '..')

/** The command line of the server `npm start` runs, with BERTH_RUNTIME_TUNING set as given. */
async function startedWith(tuning: string | undefined): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-tuning-'))
  const port = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, BERTH_HTTP_ADDR: `127.0.0.1:${port}`, BERTH_DATA_DIR: dir }
  delete env.BERTH_RUNTIME_TUNING
  if (tuning !== undefined) env.BERTH_RUNTIME_TUNING = tuning
  const npm = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let pid: number | undefined
  npm.stdout.on('data', (d: Buffer) => (pid ??= Number(/"pid":(\d+)/.exec(d.toString())?.[1]) || undefined))
  npm.stderr.resume()
  const exited = new Promise((resolve) => npm.on('exit', resolve))
  try {
    await waitHealthy(`http://127.0.0.1:${port}`, { timeoutMs: 30_000 })
    const server = await waitFor('the server pid in its log', async () => pid, { timeoutMs: 10_000 })
    return (await readFile(`/proc/${server}/cmdline`, 'utf8')).split('\0').filter(Boolean)
  } finally {
    npm.kill('SIGTERM')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
}

const FLAGS = ['--v8-pool-size=2', '--max-semi-space-size=8']

describe('npm start and runtime.tuning', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
  it('passes the V8 flags by default', async () => {
    const args = await startedWith(undefined)
    for (const flag of FLAGS) assert.ok(args.includes(flag), `${flag} in ${args.join(' ')}`)
    assert.ok(args.includes('serve'))
  })

  it('leaves them out with BERTH_RUNTIME_TUNING=false', async () => {
    const args = await startedWith('false')
    for (const flag of FLAGS) assert.ok(!args.includes(flag), `${flag} not in ${args.join(' ')}`)
    assert.ok(args.includes('serve'))
  })
})
