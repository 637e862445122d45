// Request-rate measurements: wrk (GET) or autocannon (GET and HEAD), both with bounded runs and
// every non-2xx response or socket error reported, so that a fast error page never counts.

import { spawn } from 'node:child_process'
import autocannon, { type Client, type Result } from 'autocannon'

export interface LoadResult {
  tool: 'wrk' | 'autocannon'
  rps: number
  p50Ms: number
  p99Ms: number
  requests: number
  /** non-2xx responses, socket errors and timeouts */
  errors: number
}

/** wrk's durations: 1.23us, 4.56ms, 7.89s, 1.00m */
function wrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (!m) return NaN
  const n = Number(m[1])
  const unit = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2] as 'us' | 'ms' | 's' | 'm' | 'h']
  return n * unit
}

export function parseWrk(out: string): LoadResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)
  const p50 = wrkDuration(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const p99 = wrkDuration(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN)
  let errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  if (socket) errors += socket.slice(1).reduce((a, b) => a + Number(b), 0)
  if (!Number.isFinite(rps) || !Number.isFinite(p99)) throw new Error(`could not parse wrk output:\n${out}`)
  return { tool: 'wrk', rps, p50Ms: p50, p99Ms: p99, requests, errors }
}

export async function runWrk(url: string, connections: number, durationS: number, headers: Record<string, string>, threads: number): Promise<LoadResult> {
  const args = ['-t', String(Math.min(threads, connections)), '-c', String(connections), '-d', `${durationS}s`, '--latency', '--timeout', '10s']
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`)
  args.push(url)
  const out = await runTool('wrk', args, (durationS + 30) * 1000)
  return parseWrk(out)
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

/**
 * autocannon with two fixes for this use: HEAD responses are told to skip their body (its parser
 * would otherwise wait for Content-Length bytes that never come and stall), and latencies are
 * recorded from each response at full resolution (its own histogram rounds to whole ms).
 */
export async function runAutocannon(url: string, method: 'GET' | 'HEAD', connections: number, durationS: number, headers: Record<string, string>, paths?: string[]): Promise<LoadResult> {
  const { result, latencies } = await autocannonRun(url, method, connections, durationS, headers, paths)
  return summary(result, latencies)
}

function summary(result: { '2xx': number; duration: number; non2xx: number; errors: number; timeouts: number }, latencies: Float64Array): LoadResult {
  const sorted = latencies.sort()
  return {
    tool: 'autocannon',
    rps: result['2xx'] / result.duration,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    requests: result['2xx'],
    errors: result.non2xx + result.errors + result.timeouts,
  }
}

/**
 * The same load spread over several URLs (the nodes of a cluster) by the load generator itself:
 * one autocannon instance per URL, all at once, `connections` split between them as evenly as
 * possible; req/s summed, percentiles over every response of every instance.
 */
export async function runAutocannonSpread(urls: string[], method: 'GET' | 'HEAD', connections: number, durationS: number, headers: Record<string, string>): Promise<LoadResult> {
  if (urls.length === 1) return runAutocannon(urls[0] as string, method, connections, durationS, headers)
  const share = (i: number) => Math.max(1, Math.floor(connections / urls.length) + (i < connections % urls.length ? 1 : 0))
  const parts = await Promise.all(urls.map((url, i) => autocannonRun(url, method, share(i), durationS, headers)))
  const all = new Float64Array(parts.reduce((n, p) => n + p.latencies.length, 0))
  let at = 0
  for (const p of parts) {
    all.set(p.latencies, at)
    at += p.latencies.length
  }
  const sum = (pick: (r: Result) => number) => parts.reduce((n, p) => n + pick(p.result), 0)
  // Every instance ran for the same duration: req/s add up.
  const duration = Math.max(...parts.map((p) => p.result.duration))
  return summary({ '2xx': sum((r) => r['2xx']), duration, non2xx: sum((r) => r.non2xx), errors: sum((r) => r.errors), timeouts: sum((r) => r.timeouts) }, all)
}

async function autocannonRun(
  url: string,
  method: 'GET' | 'HEAD',
  connections: number,
  durationS: number,
  headers: Record<string, string>,
  /** several paths of the URL's server, cycled through by each connection (default: the URL's) */
  paths?: string[],
): Promise<{ result: Result; latencies: Float64Array }> {
  let latencies = new Float64Array(1 << 16)
  let count = 0
  const setupClient =
    method === 'HEAD'
      ? (client: Client) => {
          // The constructor assigns the parser callbacks right after calling setupClient.
          queueMicrotask(() => {
            const onHeadersComplete = client.parser[2]
            if (!onHeadersComplete) return
            client.parser[2] = function (this: unknown, ...args: unknown[]) {
              onHeadersComplete.apply(this, args)
              return true // skipBody
            }
          })
        }
      : undefined
  const requests = paths?.map((path) => ({ method, path }))
  const instance = autocannon({ url, method, connections, duration: durationS, timeout: 10, headers, setupClient, requests })
  const hardStop = setTimeout(() => instance.stop(), (durationS + 30) * 1000)
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (statusCode < 200 || statusCode > 299) return
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2)
      grown.set(latencies)
      latencies = grown
    }
    latencies[count++] = responseTime
  })
  const result = await instance
  clearTimeout(hardStop)
  return { result, latencies: latencies.subarray(0, count) }
}

/** wrk against each URL at once (one process per node, `connections` split between them): req/s summed, the worst p50/p99. */
export async function runWrkSpread(urls: string[], connections: number, durationS: number, headers: Record<string, string>, threads: number): Promise<LoadResult> {
  const share = (i: number) => Math.max(1, Math.floor(connections / urls.length) + (i < connections % urls.length ? 1 : 0))
  const parts = await Promise.all(urls.map((url, i) => runWrk(url, share(i), durationS, headers, threads)))
  const sum = (pick: (r: LoadResult) => number) => parts.reduce((n, p) => n + pick(p), 0)
  return { tool: 'wrk', rps: sum((r) => r.rps), p50Ms: Math.max(...parts.map((p) => p.p50Ms)), p99Ms: Math.max(...parts.map((p) => p.p99Ms)), requests: sum((r) => r.requests), errors: sum((r) => r.errors) }
}

/**
 * One GET with curl, body to /dev/null; the bytes it received. curl reads into a reused buffer
 * in its own process, so a single stream measures the server rather than the benchmark's own
 * event loop (undici in this process tops out near 1 GB/s on one stream here).
 */
export async function curlDownload(url: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', String(Math.ceil(timeoutMs / 1000))]
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`)
  args.push(url)
  const out = await runTool('curl', args, timeoutMs + 5_000)
  const [status, bytes] = out.trim().split(' ')
  if (status !== '200') throw new Error(`GET ${url} with curl answered ${status}`)
  return Number(bytes)
}

/** Runs a measuring tool to its end (killed after `timeoutMs`); its stdout and stderr. */
function runTool(command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise<string>((ok, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (d: Buffer) => (text += d.toString()))
    child.stderr.on('data', (d: Buffer) => (text += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', fail)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) ok(text)
      else fail(new Error(`${command} ${args.join(' ')} ended with ${signal ?? code}:\n${text}`))
    })
  })
}
