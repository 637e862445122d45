import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { freePort, makeTempDir, needBinary, removeTempDir, requireClients, startDaemon, waitFor, type Daemon } from '../helpers/e2e-process.js'
import { api, fetchManifest, pushImage, waitExecution, type PushedImage } from '../helpers/replication.js'

const skip = requireClients('replication restart', [needBinary('docker-registry')])
const ROOT = join(import.meta.dirname, '..', '..')

/** `berth serve` as a child process (open registry, short job leases so a dead node's job is taken over quickly). */
function startBerth(dir: string, port: number, run: number): Daemon {
  return startDaemon('berth', process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'serve', '--data-dir', join(dir, 'data'), '--addr', `127.0.0.1:${port}`], {
    logFile: join(dir, `berth-${run}.log`),
    cwd: ROOT,
    env: { ...process.env, BERTH_AUTH_ENABLED: 'false', BERTH_JOBS_LEASE_TIMEOUT: '2s', BERTH_JOBS_POLL_INTERVAL: '200ms', BERTH_LOG_LEVEL: 'info' },
  })
}

/** Blob files in Distribution's storage (one per digest, whatever was uploaded twice). */
async function storedBlobs(dir: string): Promise<string[]> {
  const root = join(dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256')
  const out: string[] = []
  for (const prefix of await readdir(root).catch(() => [])) for (const hex of await readdir(join(root, prefix))) out.push(`sha256:${hex}`)
  return out.sort()
}

describe('replication across a SIGKILL of Berth', { skip }, () => {
  let dir: string
  let target: Distribution
  let berth: Daemon | undefined

  before(async () => {
    dir = await makeTempDir('berth-replication-kill-')
    target = await startDistribution(dir)
  })

  after(async () => {
    await berth?.stop()
    await target?.stop()
    await removeTempDir(dir)
  })

  test('the job reruns after a restart and completes with no duplicate tasks or blobs', { timeout: 180_000 }, async () => {
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    berth = startBerth(dir, port, 1)
    await waitFor('berth', async () => (await fetch(`${base}/v2/`).catch(() => undefined))?.status === 200, { daemon: berth, timeoutMs: 60_000 })
    const call = api(base)
    assert.equal((await call('POST', '/registries', { name: 'dist', url: target.url })).status, 201)
    const images: PushedImage[] = []
    for (let i = 0; i < 6; i++) images.push(await pushImage(base, 'kill/app', `t${i}`, { layerBytes: 512 * 1024 }))
    // 3 MiB at 1 MiB/s, one artifact at a time: the kill lands in the middle
    const policy = { name: 'slow', direction: 'push', registry: 'dist', source: { repositories: 'kill/**' }, concurrency: 1, bandwidth: '1MiB/s' }
    assert.equal((await call('POST', '/replication/policies', policy)).status, 201)
    const id = (await call('POST', '/replication/policies/slow/executions')).body.id as string
    const midway = await waitExecution(call, id, 60_000, (e) => (e.counts.succeeded ?? 0) >= 2 || e.status !== 'running' && e.status !== 'pending')
    assert.equal(midway.status, 'running', JSON.stringify(midway))
    assert.ok((midway.counts.succeeded ?? 0) < 6, 'killed before the end')
    process.kill(berth.pid, 'SIGKILL')
    await waitFor('berth gone', async () => berth?.exit !== undefined, { timeoutMs: 10_000 })

    berth = startBerth(dir, port, 2)
    await waitFor('berth again', async () => (await fetch(`${base}/v2/`).catch(() => undefined))?.status === 200, { daemon: berth, timeoutMs: 60_000 })
    const done = await waitExecution(call, id, 120_000)
    assert.equal(done.status, 'succeeded', JSON.stringify(done))
    assert.ok(done.attempts >= 2, `the job ran again: ${done.attempts}`)
    assert.equal(done.tasks.length, 6, JSON.stringify(done.tasks))
    assert.deepEqual(done.tasks.map((t) => t.source).sort(), images.map((_, i) => `kill/app:t${i}`))
    assert.ok(done.tasks.every((t) => t.status === 'succeeded'))
    // one execution, not a second one started by the restart
    assert.equal((await call('GET', '/replication/policies/slow/executions')).body.executions.length, 1)
    for (const [i, image] of images.entries()) assert.equal((await fetchManifest(target.url, 'kill/app', `t${i}`))?.digest, image.digest)
    const expected = [...new Set(images.flatMap((img) => [img.digest, ...img.blobs]))].sort()
    assert.deepEqual(await storedBlobs(dir), expected)
  })
})
