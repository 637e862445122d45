// What the auth and scale-out modes (bench/auth.ts, bench/scaleout.ts) share: logging, medians,
// the machine line of a report, docker's token dance, and pushes spread over several nodes.

import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import { dirname } from 'node:path'
import type { BenchConfig } from './config.js'
import type { RegistryClient } from './client.js'
import { blobBytes, blobDigest } from './data.js'

const started = Date.now()
export const log = (msg: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`)
export const elapsedS = () => (Date.now() - started) / 1000

export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = sorted.length / 2
  return sorted.length % 2 ? (sorted[Math.floor(mid)] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a'
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN)
export const times = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a')

export function machine(): string {
  return `${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}, Node ${process.version}`
}

export const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')

function git(dir: string, ...args: string[]): string | undefined {
  const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8', timeout: 10_000 })
  return r.status === 0 ? r.stdout.trim() : undefined
}

export function berthRevision(dir: string): string {
  const rev = git(dir, 'rev-parse', '--short=12', 'HEAD')
  if (!rev) return process.env.BENCH_BERTH_REV ?? 'unknown revision'
  const dirty = git(dir, 'status', '--porcelain', '--untracked-files=no', '--', 'src')
  return dirty ? `${rev} + uncommitted changes in src/` : rev
}

export async function writeReport(cfg: BenchConfig, report: string, raw: unknown): Promise<void> {
  console.log(`\n${report}`)
  await mkdir(dirname(cfg.outFile), { recursive: true })
  await writeFile(cfg.outFile, report)
  const json = cfg.outFile.replace(/(\.md)?$/, '.json')
  await writeFile(json, `${JSON.stringify({ date: new Date().toISOString(), config: cfg, results: raw }, null, 2)}\n`)
  log(`written to ${cfg.outFile} and ${json}`)
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

/**
 * A bearer token the way docker gets one: GET /v2/ → 401 with a Bearer challenge, then the
 * challenge's realm with its service, the scope and Basic credentials; `token` of the answer.
 */
export async function bearerToken(base: string, authorization: string, scope: string): Promise<string> {
  const res = await fetch(`${base}/v2/`, { signal: AbortSignal.timeout(10_000) })
  await res.arrayBuffer()
  const challenge = res.headers.get('www-authenticate') ?? ''
  if (res.status !== 401 || !/^Bearer /i.test(challenge)) throw new Error(`GET ${base}/v2/ answered ${res.status} (${challenge}), expected 401 with a Bearer challenge`)
  const param = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(challenge)?.[1]
  const realm = param('realm')
  if (!realm) throw new Error(`no realm in ${challenge}`)
  const url = new URL(realm)
  const service = param('service')
  if (service) url.searchParams.set('service', service)
  url.searchParams.set('scope', scope)
  const tok = await fetch(url, { headers: { authorization }, signal: AbortSignal.timeout(10_000) })
  const body = (await tok.json().catch(() => ({}))) as { token?: string; access_token?: string }
  const token = body.token ?? body.access_token
  if (tok.status !== 200 || !token) throw new Error(`GET ${url} answered ${tok.status} without a token`)
  return token
}

/**
 * `count` clients push one distinct blob of `bytes` each, all at once (POST, then one PUT
 * ?digest= with the bytes). Client i starts its session on node i and finishes it on node i+1
 * (what a round-robin balancer does to a docker push): the nodes must share upload sessions.
 * Returns MB/s (10^6 bytes) over the whole batch; digests and bodies are made before the clock starts.
 */
export async function pushSpread(clients: RegistryClient[], repo: string, count: number, bytes: number, firstSeed: number, timeoutMs: number): Promise<number> {
  const blobs = Array.from({ length: count }, (_, i) => ({ digest: blobDigest(firstSeed + i, bytes), data: blobBytes(firstSeed + i, bytes) }))
  const t0 = performance.now()
  await Promise.all(
    blobs.map(async ({ digest, data }, i) => {
      const start = clients[i % clients.length] as RegistryClient
      const finish = clients[(i + 1) % clients.length] as RegistryClient
      const session = new URL(await start.startUpload(`${repo}-${i}`))
      await finish.finishUpload(finish.url(`${session.pathname}${session.search}`), digest, data, bytes, timeoutMs)
    }),
  )
  const ms = performance.now() - t0
  // Spot check: the last blob is complete, seen from the first node.
  const last = count - 1
  const lastDigest = blobDigest(firstSeed + last, bytes)
  const head = await (clients[0] as RegistryClient).call('HEAD', `/v2/${repo}-${last}/blobs/${lastDigest}`, { expect: [200] })
  if (Number(head.headers['content-length']) !== bytes) throw new Error(`pushed blob ${lastDigest} has Content-Length ${String(head.headers['content-length'])}`)
  return (count * bytes) / 1e6 / (ms / 1000)
}
