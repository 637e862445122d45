// BENCH_MODE=adopt npm run bench (npm run bench:adopt): `berth adopt distribution` on a generated
// Docker Distribution filesystem tree (issue 30: "100,000 blobs / 20,000 manifests / 2,000
// repositories: time ≤ 10 min without copying blob bytes, peak RSS ≤ 300 MiB, and the
// extrapolation to 1 TB").
//
// The tree is written as Distribution's filesystem driver lays it out (blobs/…/data, tags,
// revisions and _layers links): BENCH_ADOPT_REPOS repositories of BENCH_ADOPT_MANIFESTS_PER_REPO
// images each, every image a config and BENCH_ADOPT_LAYERS small layers of its own (so blobs =
// repositories × images × (layers + 1)), each image tagged. The built CLI (dist/) adopts it into
// a fresh data directory on the same filesystem (hard links); its peak RSS is sampled from /proc.
// Then a second run over the unchanged tree (the cut-over's "adopt again"), and a GC dry run and
// scrub are left out: they are measured by their own modes.

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BenchConfig } from './config.js'
import { berthRevision, fmt, load, log, machine, writeReport } from './common.js'
import { RssSampler } from './rss.js'
import { trackDir } from './servers.js'

const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

function num(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}=${process.env[name]}: a positive whole number`)
  return v
}

interface TreeSize {
  repositories: number
  manifests: number
  blobs: number
  bytes: number
}

/** Writes the tree under `root/docker/registry/v2`, a few files at a time. */
async function generateTree(root: string, repos: number, perRepo: number, layers: number, blobBytes: number): Promise<TreeSize> {
  const v2 = join(root, 'docker', 'registry', 'v2')
  const size: TreeSize = { repositories: 0, manifests: 0, blobs: 0, bytes: 0 }
  const blob = async (data: Buffer): Promise<string> => {
    const hex = createHash('sha256').update(data).digest('hex')
    const dir = join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex)
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'data'), data)
    size.blobs++
    size.bytes += data.length
    return hex
  }
  const link = async (path: string, hex: string) => {
    await mkdir(join(v2, path), { recursive: true })
    await writeFile(join(v2, path, 'link'), `sha256:${hex}`)
  }
  const repo = async (r: number) => {
    // Two-level names, spread over 20 projects, as registries are organised.
    const name = `team${r % 20}/app${r}`
    for (let m = 0; m < perRepo; m++) {
      const layerDescs = []
      for (let l = 0; l < layers; l++) {
        const data = randomBytes(blobBytes)
        const hex = await blob(data)
        await link(`repositories/${name}/_layers/sha256/${hex}`, hex)
        layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, size: data.length })
      }
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: new Date(0).toISOString(), rootfs: { type: 'layers', diff_ids: layerDescs.map((d) => d.digest) }, salt: `${r}/${m}` }))
      const configHex = await blob(config)
      await link(`repositories/${name}/_layers/sha256/${configHex}`, configHex)
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configHex}`, size: config.length }, layers: layerDescs }))
      const hex = await blob(manifest)
      size.blobs-- // a manifest is not a blob in the count
      size.manifests++
      await link(`repositories/${name}/_manifests/revisions/sha256/${hex}`, hex)
      await link(`repositories/${name}/_manifests/tags/v${m}/current`, hex)
      await link(`repositories/${name}/_manifests/tags/v${m}/index/sha256/${hex}`, hex)
    }
    size.repositories++
  }
  let next = 0
  const worker = async () => {
    while (next < repos) {
      const r = next++
      await repo(r)
      if (r % 200 === 0) log(`  tree: ${r}/${repos} repositories`)
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  return size
}

interface Run {
  seconds: number
  peakMiB: number
  report: { manifests: { adopted: number; present: number }; blobs: { new: number; hardlinked: number; copied: number; linked: number }; tags: { created: number; unchanged: number }; problems: unknown[] }
}

/** Runs the built CLI, sampling its RSS. */
async function adopt(cfg: BenchConfig, tree: string, dataDir: string): Promise<Run> {
  const started = Date.now()
  const child = spawn(process.execPath, [join(cfg.berthDir, 'bin', 'berth.js'), 'adopt', 'distribution', '--from', tree, '--data-dir', dataDir, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const sampler = new RssSampler(child.pid as number, cfg.rssIntervalMs)
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  const mem = sampler.stop()
  if (code !== 0) throw new Error(`berth adopt exited with ${String(code)}: ${out.slice(0, 2000)}`)
  return { seconds: (Date.now() - started) / 1000, peakMiB: mem.peakKiB / 1024, report: JSON.parse(out) as Run['report'] }
}

export async function adoptMode(cfg: BenchConfig): Promise<void> {
  const repos = num('BENCH_ADOPT_REPOS', cfg.quick ? 200 : 2000)
  const perRepo = num('BENCH_ADOPT_MANIFESTS_PER_REPO', 10)
  const layers = num('BENCH_ADOPT_LAYERS', 4)
  const blobBytes = num('BENCH_ADOPT_BLOB_BYTES', 256)
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-adopt-'))
  trackDir(root)
  const load0 = load()
  log(`generating a Distribution tree: ${repos} repositories × ${perRepo} images × (${layers} layers + config) of ${blobBytes} bytes, under ${root}`)
  const t0 = Date.now()
  const size = await generateTree(join(root, 'distribution'), repos, perRepo, layers, blobBytes)
  const generateS = (Date.now() - t0) / 1000
  log(`tree written in ${fmt(generateS, 1)} s: ${size.repositories} repositories, ${size.manifests} manifests, ${size.blobs} blobs`)
  log('adopting (first run)')
  const first = await adopt(cfg, join(root, 'distribution'), join(root, 'berth'))
  log(`first run: ${fmt(first.seconds, 1)} s, peak RSS ${fmt(first.peakMiB, 0)} MiB`)
  log('adopting again (nothing new)')
  const second = await adopt(cfg, join(root, 'distribution'), join(root, 'berth'))
  log(`second run: ${fmt(second.seconds, 1)} s, peak RSS ${fmt(second.peakMiB, 0)} MiB`)

  // Hard links make the time a matter of objects, not bytes: 1 TB is as many blobs as its mean
  // blob size makes it. Per-object costs of the first run, scaled to 1 TB at a few mean sizes.
  const perObjectS = first.seconds / (size.blobs + size.manifests)
  const manifestsPerBlob = size.manifests / size.blobs
  const extrapolate = (meanMB: number) => {
    const blobs = 1e12 / (meanMB * 1e6)
    return { meanMB, blobs, minutes: (perObjectS * blobs * (1 + manifestsPerBlob)) / 60 }
  }
  const tb = [1, 10, 30].map(extrapolate)
  const lines = [
    '## Adopting Distribution storage (`npm run bench:adopt`)',
    '',
    `${machine()}; load before ${load0}, after ${load()}. Berth ${berthRevision(cfg.berthDir)}.`,
    `Tree: ${fmt(size.repositories)} repositories, ${fmt(size.manifests)} manifests, ${fmt(size.blobs)} blobs of ${blobBytes} bytes (${layers} layers + config per image), written in ${fmt(generateS, 0)} s; Berth on SQLite, same filesystem (hard links).`,
    '',
    '| run | time | peak RSS | manifests adopted | blobs hard-linked / copied | tags created |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    `| first | ${fmt(first.seconds, 1)} s | ${fmt(first.peakMiB, 0)} MiB | ${fmt(first.report.manifests.adopted)} | ${fmt(first.report.blobs.hardlinked)} / ${fmt(first.report.blobs.copied)} | ${fmt(first.report.tags.created)} |`,
    `| again, nothing new | ${fmt(second.seconds, 1)} s | ${fmt(second.peakMiB, 0)} MiB | ${fmt(second.report.manifests.adopted)} (${fmt(second.report.manifests.present)} present) | ${fmt(second.report.blobs.hardlinked)} / ${fmt(second.report.blobs.copied)} | ${fmt(second.report.tags.created)} |`,
    '',
    `Goals: ≤ 10 min (${first.seconds <= 600 ? 'met' : 'NOT met'}), peak RSS ≤ 300 MiB (${first.peakMiB <= 300 ? 'met' : 'NOT met'}).`,
    `1 TB, extrapolated from ${fmt(perObjectS * 1e3, 2)} ms per object (time follows the object count, not the bytes, as no byte is copied): ` +
      tb.map((t) => `${fmt(t.blobs)} blobs at ${t.meanMB} MB mean → ${fmt(t.minutes, 0)} min`).join('; ') +
      '. Peak RSS grows with the number of manifests (the repository listings, with their manifest digests, are held while adopting), not with the bytes.',
  ]
  await writeReport(cfg, lines.join('\n'), { size, generateS, first, second, perObjectS, tb })
}
