// What a project's trust policy costs on the pull path: `npm run bench:trust` (BENCH_MODE=trust).
// Issue target: manifest GET of a signed image with the policy on ≥ 0.9× the rate without it.
//
// Berth is the built `berth serve` of the checkout (dist/, built when missing; as the other modes
// start it: auth off, log level warn, access log off, SQLite + filesystem), in a process of its
// own so that the load generator (autocannon, in this process) does not share its event loop. One
// image is pushed and signed as cosign does (an ECDSA P-256 key made here, the simple-signing
// payload under the legacy `sha256-<hex>.sig` tag), and the public key is registered with the
// project. Each round measures manifest GET by tag with the project's policy at `none`, then at
// `cosign` (the gate verifies once, then answers from its cached decision), each after a short
// warm-up; the table gives the medians over the rounds. TRUST_BENCH_ROUNDS (3),
// TRUST_BENCH_SECONDS (10) and TRUST_BENCH_CONNECTIONS (16) size it.

import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { berthRevision, fmt, load, log, machine, median, times } from './common.js'
import type { BenchConfig } from './config.js'
import { runAutocannon, type LoadResult } from './load.js'
import { startBerth, trackDir } from './servers.js'

const ROUNDS = Number(process.env.TRUST_BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.TRUST_BENCH_SECONDS ?? 10)
const CONNECTIONS = Number(process.env.TRUST_BENCH_CONNECTIONS ?? 16)
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function pushBlob(base: string, repository: string, b: Buffer): Promise<string> {
  const res = await fetch(`${base}/v2/${repository}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: new Uint8Array(b) })
  if (res.status !== 201) throw new Error(`blob: ${res.status} ${await res.text()}`)
  return sha256(b)
}

async function putManifest(base: string, repository: string, reference: string, doc: unknown): Promise<string> {
  const body = Buffer.from(JSON.stringify(doc))
  const res = await fetch(`${base}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: new Uint8Array(body), headers: { 'content-type': MANIFEST } })
  if (res.status !== 201) throw new Error(`manifest: ${res.status} ${await res.text()}`)
  return sha256(body)
}

async function api(base: string, method: string, path: string, body: unknown, status: number): Promise<void> {
  const res = await fetch(`${base}/api/v1${path}`, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  if (res.status !== status) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
}

/** An image with one filesystem layer, signed as `cosign sign --key` does by the tag scheme; returns the public key. */
async function pushSignedImage(base: string, repository: string): Promise<string> {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","bench":"trust"}')
  const layer = randomBytes(4096)
  const digest = await putManifest(base, repository, 'v1', {
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(base, repository, config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: await pushBlob(base, repository, layer), size: layer.length }],
  })
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const payload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': repository }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }))
  const sigConfig = Buffer.from('{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}')
  await putManifest(base, repository, `${digest.replace(':', '-')}.sig`, {
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(base, repository, sigConfig), size: sigConfig.length },
    layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: await pushBlob(base, repository, payload), size: payload.length, annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', payload, privateKey).toString('base64') } }],
  })
  return publicKey.export({ type: 'spki', format: 'pem' }).toString()
}

/** BENCH_MODE=trust (bench/run.ts builds dist/ first and stops the servers after). */
export async function trustMode(cfg: BenchConfig): Promise<void> {
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-trust-'))
  trackDir(root)
  const load0 = load()
  const berth = await startBerth(cfg.berthDir, root)
  const base = berth.url
  const publicKey = await pushSignedImage(base, 'prod/app')
  await api(base, 'POST', '/projects/prod/trust/keys', { name: 'release', type: 'cosign', publicKey }, 201)
  const url = `${base}/v2/prod/app/manifests/v1`
  const headers = { accept: MANIFEST }
  const measured: Record<'off' | 'on', LoadResult[]> = { off: [], on: [] }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const side of ['off', 'on'] as const) {
      await api(base, 'PUT', '/projects/prod/trust/policy', { require: side === 'on' ? 'cosign' : 'none' }, 200)
      const check = await fetch(url, { headers })
      if (check.status !== 200) throw new Error(`policy ${side}: the signed image answers ${check.status} ${await check.text()}`)
      await runAutocannon(url, 'GET', CONNECTIONS, 1, headers)
      log(`round ${round}: manifest GET, policy ${side}, c=${CONNECTIONS}, ${SECONDS} s`)
      measured[side].push(await runAutocannon(url, 'GET', CONNECTIONS, SECONDS, headers))
    }
  }
  const m = (side: 'off' | 'on', f: (r: LoadResult) => number) => median(measured[side].map(f))
  console.log(`\n## Manifest GET of a signed image, trust policy off and on\n`)
  console.log(`Berth ${berthRevision(cfg.berthDir)}, ${machine()}; load before ${load0}, after ${load()}; ${ROUNDS} rounds of ${SECONDS} s each, c=${CONNECTIONS}, medians\n`)
  console.log('| measure | policy off | policy on (require cosign) | on / off |')
  console.log('| --- | --- | --- | --- |')
  console.log(`| manifest GET req/s | ${fmt(m('off', (r) => r.rps))} | ${fmt(m('on', (r) => r.rps))} | ${times(m('on', (r) => r.rps) / m('off', (r) => r.rps))} (target ≥ 0.9×) |`)
  console.log(`| manifest GET p99 (ms) | ${fmt(m('off', (r) => r.p99Ms), 2)} | ${fmt(m('on', (r) => r.p99Ms), 2)} | ${times(m('on', (r) => r.p99Ms) / m('off', (r) => r.p99Ms))} |`)
  console.log(`| errors | ${measured.off.reduce((a, r) => a + r.errors, 0)} | ${measured.on.reduce((a, r) => a + r.errors, 0)} | |`)
}
