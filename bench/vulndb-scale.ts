// Vulnerability database at scale: `node --expose-gc --import tsx bench/vulndb-scale.ts`
// (ADVISORIES and PACKAGES to resize; DATABASE_URL=postgres://… for PostgreSQL). Writes
// osv.dev-style ZIPs of ADVISORIES OSV advisories (stored entries, one JSON document each, at
// most 60,000 a file) spread over Debian:12, npm, PyPI, Go, Maven and crates.io, imports them
// through the vulnerability database's import as `berth vulndb import` does (wall time, peak
// RSS), then matches an inventory of PACKAGES packages of those ecosystems against it, five
// times: the first match and the median of the others, and the findings (checked against the
// count the generator expects). Prints a markdown table for BENCHMARKS.md.

import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config/load.js'
import type { Inventory, ScannedPackage } from '../src/scan/types.js'
import { readMem, resetPeak } from './rss.js'

const ADVISORIES = Number(process.env.ADVISORIES ?? 300_000)
const PACKAGES = Number(process.env.PACKAGES ?? 2000)
const MIB = 1024 * 1024

/** Ecosystems, each with its share of the advisories and of the inventory, and how its packages are named and versioned. */
const ECOSYSTEMS = [
  { ecosystem: 'Debian:12', share: 0.4, name: (i: number) => `deb-src-${i}`, installed: '1.2.3-1', fixed: '1.2.3-2', purl: (n: string) => `pkg:deb/debian/${n}@1.2.3-1?arch=amd64&distro=debian-12` },
  { ecosystem: 'npm', share: 0.2, name: (i: number) => `npm-pkg-${i}`, installed: '1.2.3', fixed: '1.2.4', purl: (n: string) => `pkg:npm/${n}@1.2.3` },
  { ecosystem: 'PyPI', share: 0.15, name: (i: number) => `py-pkg-${i}`, installed: '1.2.3', fixed: '1.2.4', purl: (n: string) => `pkg:pypi/${n}@1.2.3` },
  { ecosystem: 'Go', share: 0.1, name: (i: number) => `example.com/go/mod${i}`, installed: 'v1.2.3', fixed: '1.2.4', purl: (n: string) => `pkg:golang/${n}@v1.2.3` },
  { ecosystem: 'Maven', share: 0.1, name: (i: number) => `org.example:artifact-${i}`, installed: '1.2.3', fixed: '1.2.4', purl: (n: string) => `pkg:maven/${n.replace(':', '/')}@1.2.3` },
  { ecosystem: 'crates.io', share: 0.05, name: (i: number) => `crate-${i}`, installed: '1.2.3', fixed: '1.2.4', purl: (n: string) => `pkg:cargo/${n}@1.2.3` },
]
/** advisories per package name: each package of an ecosystem has this many, one in AFFECTING of them affecting 1.2.3 */
const PER_PACKAGE = 3
const AFFECTING = 3

function advisory(n: number, ecosystem: string, name: string, fixed: string, affecting: boolean): object {
  return {
    schema_version: '1.6.0',
    id: `BENCH-${n}`,
    modified: '2026-11-01T00:00:00Z',
    published: '2026-10-01T00:00:00Z',
    aliases: [`CVE-2026-${100000 + n}`],
    summary: `${name} issue ${n}`,
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [{ package: { ecosystem, name }, ranges: [{ type: 'ECOSYSTEM', events: affecting ? [{ introduced: '0' }, { fixed }] : [{ introduced: '0' }, { fixed: '0.0.1' }] }] }],
  }
}

/** Most entries in one ZIP (no ZIP64 records are written): larger ecosystems are split over several files, as `berth vulndb import a.zip b.zip …` takes them. */
const PER_ZIP = 60_000

/** A ZIP of stored entries (the format osv.dev's all.zip is read in). */
async function writeZip(path: string, entries: { name: string; body: Buffer }[]): Promise<void> {
  const out = createWriteStream(path)
  const write = async (b: Buffer) => {
    if (!out.write(b)) await once(out, 'drain')
  }
  const central: Buffer[] = []
  let offset = 0
  for (const { name: text, body } of entries) {
    const name = Buffer.from(text)
    const crc = crc32(body)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(body.length, 18)
    local.writeUInt32LE(body.length, 22)
    local.writeUInt16LE(name.length, 26)
    const entry = Buffer.alloc(46)
    entry.writeUInt32LE(0x02014b50, 0)
    entry.writeUInt16LE(20, 4)
    entry.writeUInt16LE(20, 6)
    entry.writeUInt32LE(crc, 16)
    entry.writeUInt32LE(body.length, 20)
    entry.writeUInt32LE(body.length, 24)
    entry.writeUInt16LE(name.length, 28)
    entry.writeUInt32LE(offset, 42)
    central.push(entry, name)
    await write(Buffer.concat([local, name, body]))
    offset += 30 + name.length + body.length
  }
  const dir = Buffer.concat(central)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(dir.length, 12)
  end.writeUInt32LE(offset, 16)
  await write(Buffer.concat([dir, end]))
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
}

/** Writes the advisories as ZIPs in `dir`; answers their paths and the findings an inventory() has against them. */
async function writeDatabase(dir: string): Promise<{ zips: string[]; affecting: number }> {
  const zips: string[] = []
  let affecting = 0
  let n = 0
  for (const e of ECOSYSTEMS) {
    const count = Math.round(ADVISORIES * e.share)
    let batch: { name: string; body: Buffer }[] = []
    const flush = async () => {
      if (batch.length === 0) return
      const path = join(dir, `${e.ecosystem.replace(/[^A-Za-z0-9.]/g, '-')}-${zips.length}.zip`)
      await writeZip(path, batch)
      zips.push(path)
      batch = []
    }
    for (let k = 0; k < count; k++, n++) {
      const pkg = Math.floor(k / PER_PACKAGE)
      const hits = k % (PER_PACKAGE * AFFECTING) === 0
      if (hits && pkg < packagesOf(e)) affecting++
      batch.push({ name: `BENCH-${n}.json`, body: Buffer.from(JSON.stringify(advisory(n, e.ecosystem, e.name(pkg), e.fixed, hits))) })
      if (batch.length === PER_ZIP) await flush()
    }
    await flush()
  }
  return { zips, affecting }
}

/** How many packages of `e` the inventory holds. */
function packagesOf(e: (typeof ECOSYSTEMS)[number]): number {
  return Math.round(PACKAGES * e.share)
}

function inventory(): Inventory {
  const packages: ScannedPackage[] = []
  for (const e of ECOSYSTEMS) {
    for (let i = 0; i < packagesOf(e); i++) {
      const name = e.name(i)
      packages.push({ name, version: e.installed, ecosystem: e.ecosystem, purl: e.purl(name), licenses: [], layer: 'sha256:0', path: '/bench' })
    }
  }
  return { os: { id: 'debian', versionId: '12' }, packages, notes: [] }
}

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'berth-vulndb-bench-'))
  try {
    const written = performance.now()
    const { zips, affecting } = await writeDatabase(work)
    const zipMs = performance.now() - written
    let zipBytes = 0
    for (const z of zips) zipBytes += (await stat(z)).size
    const dialect = process.env.DATABASE_URL ? { database: { url: process.env.DATABASE_URL } } : {}
    const config = parseConfig({ dataDir: join(work, 'data'), auth: { enabled: false }, log: { level: 'silent', accessLog: false }, metrics: { enabled: false }, ...dialect })
    const app = await buildApp(config, { logger: pino({ level: 'silent' }) })
    try {
      globalThis.gc?.()
      const base = readMem(process.pid)
      const reset = resetPeak(process.pid)
      const result = await app.vulndb.import(zips.map((path) => ({ path })))
      const importMem = readMem(process.pid)
      const inv = inventory()
      const times: number[] = []
      let findings = 0
      for (let i = 0; i < 5; i++) {
        const started = performance.now()
        findings = (await app.vulndb.match(inv)).length
        times.push(performance.now() - started)
      }
      const rest = times.slice(1).sort((a, b) => a - b)
      const median = rest[Math.floor(rest.length / 2)] ?? 0
      console.log(`${zips.length} ZIPs written in ${(zipMs / 1000).toFixed(1)} s: ${(zipBytes / MIB).toFixed(0)} MiB`)
      console.log(`| advisories | import | peak RSS (import) | RSS before | packages | first match | match (median of 4) | findings |`)
      console.log(`|---|---|---|---|---|---|---|---|`)
      console.log(`| ${result.advisories} | ${(result.ms / 1000).toFixed(1)} s | ${importMem ? Math.round(importMem.hwmKiB / 1024) : '?'} MiB${reset ? '' : ' (since start)'} | ${base ? Math.round(base.rssKiB / 1024) : '?'} MiB | ${inv.packages.length} | ${(times[0] ?? 0).toFixed(0)} ms | ${median.toFixed(0)} ms | ${findings} |`)
      if (findings !== affecting) throw new Error(`expected ${affecting} findings, found ${findings}`)
    } finally {
      await app.close()
    }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

await main()
