import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createHash } from 'node:crypto'
import { constants, deflateSync, gzipSync } from 'node:zlib'
import { buildInventory } from '../../src/scan/inventory/index.js'
import { mayOpenWithBrace } from '../../src/scan/inventory/rust-binary.js'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import type { TestServer } from '../helpers/server.js'
import { artifactPath, importOsv, scanned } from './scan-helpers.js'

// Rust binaries built with `cargo auditable`: a real binary compiled here with rustc, carrying
// zlib-compressed audit JSON in a `.dep-v0` linker section the way cargo auditable links it in
// (checked with objcopy), pushed in an image, inventoried and scanned against crates.io
// advisories; and executables whose audit data is missing, broken or a bomb.

const RUSTC = process.env.RUSTC ?? 'rustc'

const AUDIT = {
  packages: [
    { name: 'app', version: '0.1.0', source: 'local', root: true, dependencies: [1, 2, 3, 4, 5] },
    { name: 'smallvec', version: '1.6.0', source: 'crates.io' },
    { name: 'time', version: '0.1.43', source: 'crates.io', dependencies: [] },
    { name: 'cc', version: '1.0.83', source: 'crates.io', kind: 'build' },
    { name: 'helper', version: '0.2.0', source: 'local' },
    { name: 'forked', version: '0.3.0', source: 'git', kind: 'runtime' },
  ],
}

/** A Rust program whose `.dep-v0` section holds `data`, compiled with rustc (no cargo, no network). */
async function buildRustBinary(data: Buffer): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-rust-'))
  try {
    await writeFile(join(dir, 'dep-v0.zlib'), data)
    await writeFile(
      join(dir, 'main.rs'),
      [
        '#[link_section = ".dep-v0"]',
        '#[used]',
        `static AUDITABLE_VERSION_INFO: [u8; ${data.length}] = *include_bytes!("dep-v0.zlib");`,
        '',
        'fn main() {',
        '    // read once, so that no linker drops the section',
        '    let first = unsafe { std::ptr::read_volatile(&AUDITABLE_VERSION_INFO[0]) };',
        '    println!("{first}");',
        '}',
        '',
      ].join('\n'),
    )
    execFileSync(RUSTC, ['--edition', '2021', '-C', 'opt-level=1', '-C', 'debuginfo=0', '-o', join(dir, 'app'), join(dir, 'main.rs')], { cwd: dir, stdio: 'pipe', timeout: 300_000 })
    // the section is there, holding exactly the compressed data
    execFileSync('objcopy', ['--dump-section', `.dep-v0=${join(dir, 'section')}`, join(dir, 'app'), join(dir, 'copy')], { stdio: 'pipe' })
    assert.deepEqual(await readFile(join(dir, 'section')), data)
    return await readFile(join(dir, 'app'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const osv = (id: string, name: string, events: object[], aliases: string[] = []) => ({
  schema_version: '1.6.0',
  id,
  modified: '2026-11-01T00:00:00Z',
  aliases,
  summary: `${name} issue ${id}`,
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
  affected: [{ package: { ecosystem: 'crates.io', name }, ranges: [{ type: 'SEMVER', events }] }],
})

describe('Rust binaries: cargo auditable data', () => {
  let s: TestServer
  let binary: Buffer

  before(async () => {
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'rust', public: false }, 201)
    binary = await buildRustBinary(deflateSync(JSON.stringify(AUDIT), { level: 9 }))
  })
  after(() => s.close())

  it('reports the crates compiled into the binary (not the root, path or build-time ones) and matches crates.io advisories', async () => {
    const layer = gzipSync(await tarOf([{ name: 'usr/local/bin/app', body: binary, mode: 0o755 }]))
    const img = await pushLayers(s, 'rust/app', 'v1', [{ data: layer }], ADMIN)
    const inv = await buildInventory(s.app.registry, 'rust/app', img.digest)
    assert.deepEqual(inv.notes, [])
    assert.deepEqual(
      inv.packages.map((p) => [p.ecosystem, p.name, p.version, p.purl, p.path, p.layer]),
      [
        ['crates.io', 'smallvec', '1.6.0', 'pkg:cargo/smallvec@1.6.0', '/usr/local/bin/app', img.layers[0]],
        ['crates.io', 'time', '0.1.43', 'pkg:cargo/time@0.1.43', '/usr/local/bin/app', img.layers[0]],
        ['crates.io', 'forked', '0.3.0', 'pkg:cargo/forked@0.3.0', '/usr/local/bin/app', img.layers[0]],
      ],
    )

    await importOsv(s, [
      osv('RUSTSEC-2021-0003', 'smallvec', [{ introduced: '1.6.0' }, { fixed: '1.6.1' }], ['CVE-2021-25900']),
      osv('RUSTSEC-2020-0071', 'time', [{ introduced: '0.0.0-0' }, { fixed: '0.2.23' }], ['CVE-2020-26235']),
      osv('RUSTSEC-2019-0009', 'smallvec', [{ introduced: '0.6.3' }, { fixed: '0.6.10' }]),
      osv('RUSTSEC-2024-9999', 'cc', [{ introduced: '0.0.0-0' }, { fixed: '1.1.0' }]),
    ])
    await apiOk(s, 'POST', `${artifactPath('rust', 'app', img.digest)}/scan`, ADMIN, undefined, 202)
    const report = await scanned(s, 'rust', 'app', img.digest)
    assert.equal(report.status, 'done', report.error)
    assert.deepEqual(
      report.findings.map((f) => [f.id, f.aliases, f.package, f.version, f.fixedVersion, f.purl, f.layer]),
      [
        ['RUSTSEC-2020-0071', ['CVE-2020-26235'], 'time', '0.1.43', '0.2.23', 'pkg:cargo/time@0.1.43', img.layers[0]],
        ['RUSTSEC-2021-0003', ['CVE-2021-25900'], 'smallvec', '1.6.0', '1.6.1', 'pkg:cargo/smallvec@1.6.0', img.layers[0]],
      ],
    )
  })

  it('passes over other zlib streams, and notes audit data that is broken, truncated or a bomb', async () => {
    // an ELF file's first bytes, bytes that look like zlib headers, then the given bytes
    const elf = (body: Buffer, tail = Buffer.alloc(3000, 0x90)) => Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(2000, 0x78), body, tail])
    const other = deflateSync(JSON.stringify({ name: 'not audit data', values: Array.from({ length: 500 }, (_, i) => i) }))
    const broken = deflateSync('{"packages":[{"name":"smallvec"}]}')
    const good = deflateSync(JSON.stringify(AUDIT))
    const bomb = deflateSync(`{"packages":[${' '.repeat(9 * 1024 * 1024)}]}`)
    const layer = gzipSync(
      await tarOf([
        { name: 'bin/other', body: elf(Buffer.concat([other, Buffer.from('x\u009c and x\u00da in text', 'latin1')])), mode: 0o755 },
        { name: 'bin/broken', body: elf(broken), mode: 0o755 },
        { name: 'bin/truncated', body: elf(good.subarray(0, good.length - 12), Buffer.alloc(0)), mode: 0o755 },
        { name: 'bin/bomb', body: elf(bomb), mode: 0o755 },
        // the audit data of a file that is no executable is not looked for
        { name: 'bin/data', body: Buffer.concat([Buffer.alloc(2000), good]), mode: 0o755 },
        // nor in a file that is not executable
        { name: 'lib/app', body: elf(good), mode: 0o644 },
      ]),
    )
    const img = await pushLayers(s, 'rust/bad', 'v1', [{ data: layer }], ADMIN)
    const inv = await buildInventory(s.app.registry, 'rust/bad', img.digest)
    assert.deepEqual(inv.packages, [])
    assert.deepEqual(inv.notes, [
      'Rust audit data (cargo auditable) in /bin/bomb inflates to more than 8388608 bytes (not read)',
      'Rust audit data (cargo auditable) in /bin/broken is malformed: a package without name or version',
      'Rust audit data (cargo auditable) in /bin/truncated is malformed: unexpected end of file',
    ])
  })

  it('tells deflate data that may open with `{` from chance bytes without inflating: stored, fixed and dynamic blocks', () => {
    const json = Buffer.from(JSON.stringify(AUDIT))
    for (const options of [{ level: 0 }, { level: 1 }, { level: 6 }, { level: 9 }, { strategy: constants.Z_FIXED }, { strategy: constants.Z_HUFFMAN_ONLY }]) {
      assert.ok(mayOpenWithBrace(deflateSync(json, options), 2), JSON.stringify(options))
    }
    const list = JSON.stringify(Array.from({ length: 100 }, (_, i) => i))
    assert.equal(mayOpenWithBrace(deflateSync(list, { strategy: constants.Z_FIXED }), 2), false, 'a fixed block opening with another byte')
    assert.equal(mayOpenWithBrace(deflateSync(list, { level: 0 }), 2), false, 'a stored block opening with another byte')
    // pseudo-random bytes: few positions pass
    const noise = Buffer.concat(Array.from({ length: 2048 }, (_, i) => createHash('sha256').update(`noise ${i}`).digest()))
    let passed = 0
    for (let at = 0; at + 24 <= noise.length; at++) if (mayOpenWithBrace(noise, at)) passed++
    assert.ok(passed / noise.length < 0.05, `${passed} of ${noise.length} positions pass`)
  })
})
