// BENCH_MODE=replication npm run bench: push replication against skopeo (issue 21: "≥ 1.0× the
// speed of skopeo sync/skopeo copy doing the same").
//
// One Berth holds the source images: BENCH_REPLICATION_IMAGES small images (one layer of
// BENCH_REPLICATION_SMALL_KB each, all distinct) as tags of `src/many`, and one big image
// (BENCH_REPLICATION_BIG_LAYERS layers of BENCH_REPLICATION_BIG_LAYER_MB) as `src/big:latest`.
// Two empty Distributions (BENCH_DISTRIBUTION_BIN, docker-registry by default) are the targets:
// Berth replicates into the first with a push policy run by hand (the time from POST …/executions
// to the execution's success), and `skopeo sync` (the small images) and `skopeo copy` (the big
// one) copy the same images from Berth into the second. Both read from the same Berth and write
// to the same kind of target, so the ratio is the copy engine's.

import { spawn } from 'node:child_process'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchConfig } from './config.js'
import { findBinary } from './config.js'
import { makeImage, pushImage, RegistryClient } from './client.js'
import { basic, bearerToken, berthRevision, elapsedS, fmt, load, log, machine, median, ratio, times, writeReport } from './common.js'
import { distributionVersion, startBerth, startDistribution, trackDir, type Server } from './servers.js'

type Job = 'small' | 'big'

export async function replicationMode(cfg: BenchConfig): Promise<void> {
  if (!cfg.distributionBin) throw new Error('BENCH_MODE=replication needs a target: docker-registry (or BENCH_DISTRIBUTION_BIN)')
  const skopeo = findBinary('skopeo')
  if (!skopeo) throw new Error('BENCH_MODE=replication compares with skopeo, which is not installed')
  const load0 = load()
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-replication-'))
  trackDir(root)
  // Replication policies need an admin: auth is on, the pushes carry a token and skopeo logs in
  // the way docker does; the targets are open.
  const password = randomBytes(18).toString('base64url')
  const admin = basic('admin', password)
  const berth = await startBerth(cfg.berthDir, root, { name: 'berth', env: { BERTH_AUTH_ENABLED: 'true', BERTH_ADMIN_PASSWORD: password }, readyStatuses: [401] })
  const api = adminApi(berth, admin)
  const seconds: Record<Job, { berth: number[]; skopeo: number[] }> = { small: { berth: [], skopeo: [] }, big: { berth: [], skopeo: [] } }
  const source = new RegistryClient(berth.url, 600_000)
  try {
    await api('POST', '/projects', { name: 'src' }, 201)
    log(`pushing ${cfg.replicationImages} small images and one of ${cfg.replicationBigLayers} × ${fmt(cfg.replicationBigLayerBytes / 2 ** 20)} MiB into Berth`)
    source.headers = { authorization: `Bearer ${await bearerToken(berth.url, admin, 'repository:src/many:pull,push')}` }
    for (let i = 0; i < cfg.replicationImages; i++) await pushImage(source, 'src/many', `t${i}`, makeImage(9000 + i, 1, cfg.replicationSmallBytes), 1)
    source.headers = { authorization: `Bearer ${await bearerToken(berth.url, admin, 'repository:src/big:pull,push')}` }
    await pushImage(source, 'src/big', 'latest', makeImage(9999, cfg.replicationBigLayers, cfg.replicationBigLayerBytes), 3)
    const host = new URL(berth.url).host

    for (let round = 0; round < cfg.repeat; round++) {
      const forBerth = await startDistribution(cfg.distributionBin, root, { name: `target-berth-${round}` })
      const forSkopeo = await startDistribution(cfg.distributionBin, root, { name: `target-skopeo-${round}` })
      await api('POST', '/registries', { name: `target${round}`, url: forBerth.url }, 201)
      const skopeoTarget = new URL(forSkopeo.url).host
      for (const job of ['small', 'big'] as const) {
        const repo = job === 'small' ? 'src/many' : 'src/big'
        const policy = `${job}${round}`
        await api('POST', '/replication/policies', { name: policy, direction: 'push', registry: `target${round}`, source: { repositories: repo, tags: '*' }, destination: { namespace: 'mirror', flatten: 1 }, trigger: { kind: 'manual' } }, 201)
        const b = await runExecution(api, policy)
        seconds[job].berth.push(b)
        const args = job === 'small'
          ? ['--insecure-policy', 'sync', '--src', 'docker', '--dest', 'docker', `--src-creds=admin:${password}`, '--src-tls-verify=false', '--dest-tls-verify=false', `${host}/${repo}`, `${skopeoTarget}/mirror`]
          : ['--insecure-policy', 'copy', `--src-creds=admin:${password}`, '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${host}/${repo}:latest`, `docker://${skopeoTarget}/mirror/big:latest`]
        const s = await timed(skopeo, args)
        seconds[job].skopeo.push(s)
        log(`round ${round + 1}, ${job}: Berth ${b.toFixed(1)} s, skopeo ${s.toFixed(1)} s`)
      }
      await forBerth.stop()
      await forSkopeo.stop()
    }

    const row = (job: Job, what: string) => {
      const b = median(seconds[job].berth)
      const s = median(seconds[job].skopeo)
      return `| ${what} | ${b.toFixed(1)} s | ${s.toFixed(1)} s | ${times(ratio(s, b))} |`
    }
    const report = [
      '## Replication (`BENCH_MODE=replication`)',
      '',
      `- Berth ${berthRevision(cfg.berthDir)}; targets ${distributionVersion(cfg.distributionBin)}; ${machine()}; load before ${load0}, after ${load()}; ${fmt(elapsedS())} s`,
      `- ${cfg.repeat} round(s), medians; speed ratio = skopeo's time ÷ Berth's (target ≥ 1.0×)`,
      '',
      '| copy | Berth (push policy, manual run) | skopeo | Berth ÷ skopeo speed |',
      '| --- | ---: | ---: | --- |',
      row('small', `${cfg.replicationImages} images of one ${fmt(cfg.replicationSmallBytes / 1024)} KiB layer (\`skopeo sync\`)`),
      row('big', `1 image of ${cfg.replicationBigLayers} × ${fmt(cfg.replicationBigLayerBytes / 2 ** 20)} MiB (\`skopeo copy\`)`),
      '',
    ].join('\n')
    await writeReport(cfg, report, seconds)
  } finally {
    await source.close()
  }
}

type Api = (method: string, path: string, body: unknown, expect: number) => Promise<unknown>

function adminApi(server: Server, authorization: string): Api {
  return async (method, path, body, expect) => {
    const res = await fetch(`${server.url}/api/v1${path}`, { method, headers: body === undefined ? { authorization } : { authorization, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await res.text()
    if (res.status !== expect) throw new Error(`${method} /api/v1${path} answered ${res.status}: ${text}`)
    return text ? (JSON.parse(text) as unknown) : undefined
  }
}

/** Starts an execution of the policy and waits for it to succeed; the seconds it took. */
async function runExecution(api: Api, policy: string): Promise<number> {
  const t0 = performance.now()
  const { id } = (await api('POST', `/replication/policies/${policy}/executions`, undefined, 202)) as { id: string }
  for (;;) {
    const execution = (await api('GET', `/replication/executions/${id}`, undefined, 200)) as { status: string }
    if (execution.status === 'succeeded') return (performance.now() - t0) / 1000
    if (execution.status === 'failed' || execution.status === 'stopped') throw new Error(`execution ${id} of ${policy}: ${JSON.stringify(execution).slice(0, 2000)}`)
    await sleep(50)
  }
}

function timed(command: string, args: string[]): Promise<number> {
  const t0 = performance.now()
  return new Promise((ok, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
    child.once('error', fail)
    child.once('exit', (code) => (code === 0 ? ok((performance.now() - t0) / 1000) : fail(new Error(`${command} ${args.join(' ')} exited ${String(code)}: ${stderr}`))))
  })
}
