// BENCH_MODE=proxy npm run bench: the pull-through proxy cache (issue 21).
//
// One Distribution (BENCH_DISTRIBUTION_BIN, docker-registry by default) plays the upstream, with
// its access log on; one Berth has a registry endpoint for it and a proxy project `hub` bound to
// it. Per round, a fresh image of BENCH_PROXY_LAYERS layers of BENCH_PROXY_LAYER_MB is pushed to
// the upstream (and the same image into Berth's own project `local`), then pulled the way a
// client does (manifest, config, then the layers three at a time, as docker's
// max-concurrent-downloads) four ways:
//   direct — from the upstream itself (the figure a proxy cannot beat);
//   ceiling — through bench/proxy-ceiling.ts, a bare forwarder doing only what no proxy cache
//            can avoid (receive, hash, write durably, send): the ceiling on this machine;
//   cold   — through the proxy project, nothing cached (Berth fetches, streams and stores);
//   warm   — through the proxy project again (served from Berth's storage);
//   local  — the same image from Berth's own project (what a warm pull should equal).
// Then BENCH_HERD_CLIENTS clients pull one fresh image of one BENCH_HERD_MB layer through the
// proxy all at once, cold, and the upstream's access log says how many times each of its
// manifest and blob was fetched (the target: exactly once).

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { BenchConfig } from './config.js'
import { MANIFEST_ACCEPT, makeImage, manifestOf, pushImage, RegistryClient, type Image } from './client.js'
import { basic, bearerToken, berthRevision, elapsedS, fmt, load, log, machine, median, ratio, times, writeReport } from './common.js'
import { sha256 } from './data.js'
import { atCleanup, distributionVersion, freePort, startBerth, startDistribution, trackDir, type Server } from './servers.js'

type Way = 'direct' | 'ceiling' | 'cold' | 'warm' | 'local'
const WAYS: Way[] = ['direct', 'ceiling', 'cold', 'warm', 'local']
const LABEL: Record<Way, string> = {
  direct: 'from the upstream directly',
  ceiling: 'through a bare forwarder (receive, hash, write, fsync, send: the ceiling)',
  cold: 'through the proxy, cold',
  warm: 'through the proxy, warm',
  local: "from Berth's own project",
}

export async function proxyMode(cfg: BenchConfig): Promise<void> {
  if (!cfg.distributionBin) throw new Error('BENCH_MODE=proxy needs an upstream: docker-registry (or BENCH_DISTRIBUTION_BIN)')
  const load0 = load()
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-proxy-'))
  trackDir(root)
  const upstream = await startDistribution(cfg.distributionBin, root, { name: 'upstream', accessLog: true })
  // Proxy projects are projects: they need auth on (an admin creates them). Every pull below
  // carries a bearer token, as docker's would; the upstream is open.
  const password = randomBytes(18).toString('base64url')
  const admin = basic('admin', password)
  const berth = await startBerth(cfg.berthDir, root, { name: 'berth', env: { BERTH_AUTH_ENABLED: 'true', BERTH_ADMIN_PASSWORD: password }, readyStatuses: [401] })
  log(`upstream ${upstream.url}, Berth ${berth.url}; data under ${root}`)
  const api = adminApi(berth, admin)
  await api('POST', '/registries', { name: 'upstream', url: upstream.url }, 201)
  await api('POST', '/projects', { name: 'hub', proxy: { registry: 'upstream', ttl: '5m' } }, 201)
  await api('POST', '/projects', { name: 'local' }, 201)

  const up = new RegistryClient(upstream.url, 600_000)
  /** a client of Berth holding a token for one repository */
  const berthClient = async (repo: string, actions: string) => {
    const client = new RegistryClient(berth.url, 600_000)
    client.headers = { authorization: `Bearer ${await bearerToken(berth.url, admin, `repository:${repo}:${actions}`)}` }
    return client
  }
  const imageBytes = cfg.proxyLayers * cfg.proxyLayerBytes
  const mbps: Record<Way, number[]> = { direct: [], ceiling: [], cold: [], warm: [], local: [] }
  const forwarder = await startForwarder(upstream.url, root)
  const bare = new RegistryClient(forwarder.url, 600_000)
  try {
    for (let round = 0; round < cfg.repeat; round++) {
      const image = makeImage(7000 + round, cfg.proxyLayers, cfg.proxyLayerBytes)
      const repo = `library/big${round}`
      await pushImage(up, repo, 'latest', image, 3)
      const local = await berthClient(`local/big${round}`, 'pull,push')
      const proxied = await berthClient(`hub/${repo}`, 'pull')
      await pushImage(local, `local/big${round}`, 'latest', image, 3)
      for (const way of WAYS) {
        const [client, name] = way === 'direct' ? [up, repo] : way === 'ceiling' ? [bare, repo] : way === 'local' ? [local, `local/big${round}`] : [proxied, `hub/${repo}`]
        const seconds = await pull(client, name, image)
        mbps[way].push(imageBytes / 1e6 / seconds)
        log(`round ${round + 1}: ${LABEL[way]}: ${fmt(imageBytes / 1e6 / seconds)} MB/s`)
      }
      await local.close()
      await proxied.close()
    }

    // The herd: every client asks for the same cold image at once.
    const herd = makeImage(8000, 1, cfg.herdBytes)
    await pushImage(up, 'library/herd', 'latest', herd, 1)
    const before = (await readFile(upstream.logFile, 'utf8')).length
    const clients = await Promise.all(Array.from({ length: cfg.herdClients }, () => berthClient('hub/library/herd', 'pull')))
    const t0 = performance.now()
    await Promise.all(clients.map((c) => pull(c, 'hub/library/herd', herd)))
    const herdS = (performance.now() - t0) / 1000
    await Promise.all(clients.map((c) => c.close()))
    const accessLog = (await readFile(upstream.logFile, 'utf8')).slice(before)
    const counts = upstreamGets(accessLog, 'library/herd', herd)
    log(`herd of ${cfg.herdClients}: ${herdS.toFixed(1)} s; upstream GETs: manifest ${counts.manifest}, config ${counts.config}, layer ${counts.layer}`)

    const m = (w: Way) => median(mbps[w])
    const report = [
      '## Proxy cache (`BENCH_MODE=proxy`)',
      '',
      `- Berth ${berthRevision(cfg.berthDir)}; upstream ${distributionVersion(cfg.distributionBin)}; ${machine()}; load before ${load0}, after ${load()}; ${fmt(elapsedS())} s`,
      `- image: ${cfg.proxyLayers} layers × ${fmt(cfg.proxyLayerBytes / 2 ** 20)} MiB (${fmt(imageBytes / 2 ** 20)} MiB), pulled as a client does (manifest, config, 3 layers at a time); ${cfg.repeat} round(s), medians`,
      '',
      '| pull | MB/s | ratio |',
      '| --- | ---: | --- |',
      `| ${LABEL.direct} | ${fmt(m('direct'))} | 1.00× (the reference) |`,
      `| ${LABEL.ceiling} | ${fmt(m('ceiling'))} | ${times(ratio(m('ceiling'), m('direct')))} of direct |`,
      `| ${LABEL.cold} | ${fmt(m('cold'))} | ${times(ratio(m('cold'), m('direct')))} of direct (target ≥ 0.9×), ${times(ratio(m('cold'), m('ceiling')))} of the ceiling |`,
      `| ${LABEL.warm} | ${fmt(m('warm'))} | ${times(ratio(m('warm'), m('local')))} of a local pull (target 1×) |`,
      `| ${LABEL.local} | ${fmt(m('local'))} | |`,
      '',
      `${cfg.herdClients} concurrent cold pulls of one image (${fmt(cfg.herdBytes / 2 ** 20)} MiB layer) through the proxy: ${herdS.toFixed(1)} s; the upstream's access log shows ${counts.manifest} GET(s) of the manifest, ${counts.config} of the config and ${counts.layer} of the layer (target: 1 each).`,
      '',
    ].join('\n')
    await writeReport(cfg, report, { mbps, herd: { seconds: herdS, ...counts } })
  } finally {
    await up.close()
    await bare.close()
  }
}

/** bench/proxy-ceiling.ts in a child process of its own (not on the load generator's event loop). */
async function startForwarder(upstreamUrl: string, root: string): Promise<{ url: string }> {
  const dir = join(root, 'forwarder')
  await mkdir(dir, { recursive: true })
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'proxy-ceiling.ts'), upstreamUrl, String(port), dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  atCleanup(async () => {
    child.kill('SIGKILL')
  })
  const [line] = (await Promise.race([once(child.stdout, 'data'), sleep(30_000).then(() => [Buffer.from('timeout')])])) as [Buffer]
  if (!line.toString().includes('ready')) throw new Error(`the bare forwarder did not start: ${line.toString()}`)
  return { url: `http://127.0.0.1:${port}` }
}

function adminApi(server: Server, authorization: string) {
  return async (method: string, path: string, body: unknown, expect: number): Promise<unknown> => {
    const res = await fetch(`${server.url}/api/v1${path}`, { method, headers: body === undefined ? { authorization } : { authorization, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await res.text()
    if (res.status !== expect) throw new Error(`${method} /api/v1${path} answered ${res.status}: ${text}`)
    return text ? (JSON.parse(text) as unknown) : undefined
  }
}

/** Pulls an image as a client does; returns the seconds it took, after checking every byte count. */
async function pull(client: RegistryClient, repo: string, image: Image): Promise<number> {
  const t0 = performance.now()
  await client.call('GET', `/v2/${repo}/manifests/latest`, { headers: { accept: MANIFEST_ACCEPT }, expect: [200] })
  const config = await client.download(`/v2/${repo}/blobs/${sha256(image.config)}`)
  if (config !== image.config.length) throw new Error(`${repo}: config of ${config} bytes, expected ${image.config.length}`)
  let next = 0
  const worker = async () => {
    while (next < image.layers.length) {
      const layer = image.layers[next++] as Buffer
      const n = await client.download(`/v2/${repo}/blobs/${sha256(layer)}`)
      if (n !== layer.length) throw new Error(`${repo}: layer of ${n} bytes, expected ${layer.length}`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(3, image.layers.length) }, worker))
  return (performance.now() - t0) / 1000
}

/** GETs (not HEADs) in a Distribution access log of the image's manifest (by tag or digest), config and first layer. */
function upstreamGets(accessLog: string, repo: string, image: Image): { manifest: number; config: number; layer: number } {
  const gets = accessLog.split('\n').filter((l) => l.includes('"GET /v2/'))
  const count = (path: string) => gets.filter((l) => l.includes(`"GET /v2/${repo}/${path} `) || l.includes(`"GET /v2/${repo}/${path}?`)).length
  const manifestDigest = sha256(manifestOf(image))
  return {
    manifest: count('manifests/latest') + count(`manifests/${manifestDigest}`),
    config: count(`blobs/${sha256(image.config)}`),
    layer: count(`blobs/${sha256(image.layers[0] as Buffer)}`),
  }
}
