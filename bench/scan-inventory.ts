// Package inventory benchmark: `node --expose-gc --import tsx bench/scan-inventory.ts`
// (IMAGE_MIB and PACKAGES to resize). Writes an image of three gzip layers (IMAGE_MIB MiB of
// files once decompressed, 1-64 KiB each, one in twenty an executable with an ELF header so the
// Go build-info scanner reads it; the first layer holds /etc/os-release and a dpkg status of
// PACKAGES packages, the last rewrites the status), stores it in a Berth data directory
// through the registry services, then takes its inventory with buildInventory as the server
// does: wall time, packages found, peak RSS (the kernel's VmHWM, reset before the run).
// Prints a markdown table for BENCHMARKS.md.

import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import pino from 'pino'
import { pack } from 'tar-stream'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config/load.js'
import { requireDigest } from '../src/registry/validate.js'
import { buildInventory } from '../src/scan/inventory/index.js'
import { readMem, resetPeak } from './rss.js'

const MIB = 1024 * 1024
const TOTAL = Number(process.env.IMAGE_MIB ?? 500) * MIB
const PACKAGES = Number(process.env.PACKAGES ?? 2000)
const LAYERS = 3

function dpkgStatus(count: number): string {
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    out.push(`Package: pkg-${i}\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: ${100 + i}\nMaintainer: Debian <debian@example.org>\nArchitecture: amd64\nSource: src-${i % 700}\nVersion: ${1 + (i % 9)}.${i % 17}.${i}-${1 + (i % 3)}+deb12u1\nDepends: libc6 (>= 2.34)\nDescription: package number ${i}\n This is the long description of package ${i}, as dpkg keeps it.\n`)
  }
  return out.join('\n')
}

async function writeLayer(path: string, n: number, budget: number): Promise<{ files: number; digest: string; size: number }> {
  const pool = Buffer.from(randomBytes(3 * MIB).toString('base64'))
  const p = pack()
  const hash = createHash('sha256')
  const gzip = createGzip({ level: 1 })
  gzip.on('data', (c: Buffer) => hash.update(c))
  const written = pipeline(p, gzip, createWriteStream(path))
  const entry = (name: string, body: Buffer, mode = 0o644) => new Promise<void>((resolve, reject) => p.entry({ name, mode }, body, (err) => (err ? reject(err as Error) : resolve())))
  if (n === 0) await entry('etc/os-release', Buffer.from('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'))
  if (n === 0 || n === LAYERS - 1) await entry('var/lib/dpkg/status', Buffer.from(dpkgStatus(PACKAGES)))
  let bytes = 0
  let files = 0
  while (bytes < budget) {
    const size = 1024 + ((files * 7919) % (63 * 1024))
    const start = (files * 104729) % (pool.length - size)
    const body = Buffer.from(pool.subarray(start, start + size))
    const exec = files % 20 === 0
    if (exec) body.write('\x7fELF', 0, 'latin1')
    await entry(`usr/lib/l${n}/pkg${files % 200}/sub${files % 13}/file-${files}${exec ? '' : '.txt'}`, body, exec ? 0o755 : 0o644)
    bytes += size
    files++
  }
  p.finalize()
  await written
  return { files, digest: `sha256:${hash.digest('hex')}`, size: (await stat(path)).size }
}

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'berth-scan-bench-'))
  const dataDir = join(work, 'data')
  try {
    const layers: { files: number; digest: string; size: number; path: string }[] = []
    for (let i = 0; i < LAYERS; i++) {
      const path = join(work, `layer${i}.tar.gz`)
      layers.push({ ...(await writeLayer(path, i, TOTAL / LAYERS)), path })
    }
    const config = parseConfig({ dataDir, auth: { enabled: false }, log: { level: 'silent', accessLog: false }, metrics: { enabled: false } })
    const app = await buildApp(config, { logger: pino({ level: 'silent' }) })
    const registry = app.registry
    const repo = 'bench/debian'
    const put = async (bytes: Buffer) => {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
      await registry.uploads.monolithic(repo, requireDigest(digest), { stream: Readable.from([bytes]), length: bytes.length })
      return digest
    }
    for (const l of layers) await registry.uploads.monolithic(repo, requireDigest(l.digest), { stream: createReadStream(l.path), length: l.size })
    const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(configBytes), size: configBytes.length },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
      }),
    )
    const { digest } = await registry.manifests.put(repo, 'latest', manifest, 'application/vnd.oci.image.manifest.v1+json', [])
    globalThis.gc?.()
    const base = readMem(process.pid)
    const reset = resetPeak(process.pid)
    const started = performance.now()
    const inv = await buildInventory(registry, repo, digest)
    const ms = performance.now() - started
    const mem = readMem(process.pid)
    await app.close()
    const files = layers.reduce((n, l) => n + l.files, 0)
    const gz = layers.reduce((n, l) => n + l.size, 0)
    console.log(`| image | layers | files | packages | inventory | peak RSS | RSS before |`)
    console.log(`|---|---|---|---|---|---|---|`)
    console.log(`| ${Math.round(TOTAL / MIB)} MiB tar (${Math.round(gz / MIB)} MiB gzip) | ${LAYERS} | ${files} | ${inv.packages.length} | ${(ms / 1000).toFixed(1)} s | ${mem ? Math.round(mem.hwmKiB / 1024) : '?'} MiB${reset ? '' : ' (peak since start)'} | ${base ? Math.round(base.rssKiB / 1024) : '?'} MiB |`)
    if (inv.packages.length !== PACKAGES) throw new Error(`expected ${PACKAGES} packages, found ${inv.packages.length}`)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

await main()
