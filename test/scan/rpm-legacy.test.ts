import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { buildInventory } from '../../src/scan/inventory/index.js'
import { apiOk } from '../helpers/auth.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { pkg } from './rpm-headers.js'
import { artifactPath, importOsv, scanned } from './scan-helpers.js'

// RPM's databases before SQLite, written here byte for byte as their own code lays them out:
// a BerkeleyDB hash database (`/var/lib/rpm/Packages`: a hash metadata page, a hash page of
// key/value items, header blobs on chains of overflow pages, or on the hash page itself when
// small) in either byte order, and an NDB `Packages.db` (rpm's lib/backend/ndb: a header, slot
// pages, blobs with head, Adler-32 tail). The same header blobs as rpmdb.sqlite's.

const PAGE_HEADER = 26

/** A Berkeley DB hash database of these values (keys: package numbers), as libdb writes it. */
function berkeleyDb(values: Buffer[], o: { pageSize?: number; bigEndian?: boolean; inline?: boolean } = {}): Buffer {
  const pageSize = o.pageSize ?? 4096
  const w32 = (b: Buffer, v: number, at: number) => (o.bigEndian ? b.writeUInt32BE(v, at) : b.writeUInt32LE(v, at))
  const w16 = (b: Buffer, v: number, at: number) => (o.bigEndian ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at))
  const meta = Buffer.alloc(pageSize)
  const hash = Buffer.alloc(pageSize)
  const pages = [meta, hash]
  const items: Buffer[] = []
  values.forEach((value, n) => {
    const key = Buffer.alloc(5)
    key[0] = 1 // H_KEYDATA: the package number
    w32(key, n + 1, 1)
    if (o.inline) {
      items.push(key, Buffer.concat([Buffer.from([1]), value]))
      return
    }
    // H_OFFPAGE: the value on a chain of overflow pages
    const first = pages.length
    const room = pageSize - PAGE_HEADER
    for (let off = 0; off < value.length; off += room) {
      const page = Buffer.alloc(pageSize)
      const pgno = pages.length
      const bytes = Math.min(room, value.length - off)
      w32(page, pgno, 8)
      w32(page, off === 0 ? 0 : pgno - 1, 12)
      w32(page, off + bytes < value.length ? pgno + 1 : 0, 16)
      w16(page, bytes, 22)
      page[25] = 7
      value.copy(page, PAGE_HEADER, off, off + bytes)
      pages.push(page)
    }
    const item = Buffer.alloc(12)
    item[0] = 3
    w32(item, first, 4)
    w32(item, value.length, 8)
    items.push(key, item)
  })
  // items lie from the end of the page down, their offsets after the page header
  let top = pageSize
  items.forEach((item, i) => {
    top -= item.length
    item.copy(hash, top)
    w16(hash, top, PAGE_HEADER + 2 * i)
  })
  assert.ok(top > PAGE_HEADER + 2 * items.length, 'the items fit on the hash page')
  w32(hash, 1, 8)
  w16(hash, items.length, 20)
  w16(hash, top, 22)
  hash[25] = 13
  w32(meta, 0x061561, 12)
  w32(meta, 9, 16)
  w32(meta, pageSize, 20)
  meta[25] = 8
  w32(meta, pages.length - 1, 32)
  return Buffer.concat(pages)
}

function adler32(data: Buffer): number {
  let a = 1
  let b = 0
  for (const byte of data) {
    a = (a + byte) % 65521
    b = (b + a) % 65521
  }
  return ((b << 16) | a) >>> 0
}

/** An NDB Packages.db of these blobs (package numbers 1…), as rpm's rpmpkg.c writes it; `free` slots left empty before them. */
function ndb(blobs: Buffer[], free = 1): Buffer {
  const slots = Buffer.alloc(4096)
  slots.write('RpmP', 0, 'latin1')
  slots.writeUInt32LE(0, 4)
  slots.writeUInt32LE(7, 8)
  slots.writeUInt32LE(1, 12)
  slots.writeUInt32LE(blobs.length + 1, 16)
  for (let at = 32; at < 4096; at += 16) slots.write('Slot', at, 'latin1')
  const areas: Buffer[] = []
  let block = 4096 / 16
  blobs.forEach((blob, i) => {
    const count = Math.ceil((16 + blob.length + 12) / 16)
    const area = Buffer.alloc(count * 16)
    area.write('BlbS', 0, 'latin1')
    area.writeUInt32LE(i + 1, 4)
    area.writeUInt32LE(1_700_000_000, 8)
    area.writeUInt32LE(blob.length, 12)
    blob.copy(area, 16)
    const tail = area.length - 12
    area.writeUInt32LE(adler32(area.subarray(0, tail)), tail)
    area.writeUInt32LE(blob.length, tail + 4)
    area.write('BlbE', tail + 8, 'latin1')
    const slot = 32 + 16 * (free + i)
    slots.writeUInt32LE(i + 1, slot + 4)
    slots.writeUInt32LE(block, slot + 8)
    slots.writeUInt32LE(count, slot + 12)
    areas.push(area)
    block += count
  })
  return Buffer.concat([slots, ...areas])
}

const CENTOS = 'NAME="Rocky Linux"\nVERSION="8.9 (Green Obsidian)"\nID="rocky"\nVERSION_ID="8.9"\n'
const SLES = 'NAME="SLES"\nVERSION="15-SP5"\nVERSION_ID="15.5"\nID="sles"\n'

describe('rpm BerkeleyDB and NDB databases', () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ scan: { rematchInterval: '0s' } })
  })
  after(() => s.close())

  const headers = () => [
    // a header larger than several pages: a chain of overflow pages
    pkg('openssl-libs', '1.1.1k', '9.el8_7', { epoch: 1, license: 'OpenSSL and ASL 2.0', source: 'openssl-1.1.1k-9.el8_7.src.rpm', description: 'The OpenSSL toolkit. '.repeat(600) }),
    pkg('gpg-pubkey', '6d745a60', '60287f36', { arch: '(none)' }),
    pkg('bash', '4.4.20', '4.el8_6', { license: 'GPLv3+', source: 'bash-4.4.20-4.el8_6.src.rpm' }),
  ]
  const expected = (distro: string, path: string, layer: string | undefined) => [
    ['openssl-libs', '1:1.1.1k-9.el8_7', `pkg:rpm/${distro}/openssl-libs@1.1.1k-9.el8_7?arch=x86_64&distro=${distro === 'rocky' ? 'rocky-8.9' : 'sles-15.5'}&epoch=1`, ['OpenSSL and ASL 2.0'], { name: 'openssl', version: '1:1.1.1k-9.el8_7' }, path, layer],
    ['bash', '4.4.20-4.el8_6', `pkg:rpm/${distro}/bash@4.4.20-4.el8_6?arch=x86_64&distro=${distro === 'rocky' ? 'rocky-8.9' : 'sles-15.5'}`, ['GPLv3+'], { name: 'bash', version: '4.4.20-4.el8_6' }, path, layer],
  ]

  it('reads a BerkeleyDB Packages (little- and big-endian, overflow chains and values on the hash page), and matches advisories', async () => {
    const tmpBefore = (await readdir(tmpdir())).filter((n) => n.startsWith('berth-rpmdb-')).length
    for (const [tag, db] of [
      ['le', berkeleyDb(headers())],
      ['be', berkeleyDb(headers(), { bigEndian: true, pageSize: 1024 })],
      ['inline', berkeleyDb([pkg('openssl-libs', '1.1.1k', '9.el8_7', { epoch: 1, license: 'OpenSSL and ASL 2.0', source: 'openssl-1.1.1k-9.el8_7.src.rpm' }), pkg('bash', '4.4.20', '4.el8_6', { license: 'GPLv3+', source: 'bash-4.4.20-4.el8_6.src.rpm' })], { inline: true, pageSize: 8192 })],
    ] as const) {
      const { digest, layers } = await pushLayers(s, 'rocky/el8', tag, [{ data: gzipSync(await tarOf([{ name: 'etc/os-release', body: CENTOS }, { name: 'var/lib/rpm/Packages', body: db }])) }])
      const inv = await buildInventory(s.app.registry, 'rocky/el8', digest)
      assert.deepEqual(inv.notes, [], tag)
      assert.deepEqual(inv.packages.map((p) => [p.name, p.version, p.purl, p.licenses, p.source, p.path, p.layer]), expected('rocky', '/var/lib/rpm/Packages', layers[0]), tag)
      assert.ok(inv.packages.every((p) => p.ecosystem === 'Rocky Linux:8'))
    }
    assert.equal((await readdir(tmpdir())).filter((n) => n.startsWith('berth-rpmdb-')).length, tmpBefore, 'the temporary copies are removed')

    await importOsv(s, [{ schema_version: '1.6.0', id: 'RLSA-2023:1405', modified: '2026-11-01T00:00:00Z', aliases: ['CVE-2023-0286'], affected: [{ package: { ecosystem: 'Rocky Linux:8', name: 'openssl-libs' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:1.1.1k-9.el8_7.1' }] }] }] }])
    const { digest } = await pushLayers(s, 'rocky/el8', 'le', [{ data: gzipSync(await tarOf([{ name: 'etc/os-release', body: CENTOS }, { name: 'var/lib/rpm/Packages', body: berkeleyDb(headers()) }])) }])
    await apiOk(s, 'POST', `${artifactPath('rocky', 'el8', digest)}/scan`, undefined, undefined, 202)
    const report = await scanned(s, 'rocky', 'el8', digest, '')
    assert.equal(report.status, 'done', report.error)
    assert.deepEqual(report.findings.map((f) => [f.id, f.package, f.version, f.fixedVersion]), [['RLSA-2023:1405', 'openssl-libs', '1:1.1.1k-9.el8_7', '1:1.1.1k-9.el8_7.1']])
  })

  it('reads an NDB Packages.db (SUSE), empty slots skipped', async () => {
    const { digest, layers } = await pushLayers(s, 'suse/sles', '15', [{ data: gzipSync(await tarOf([{ name: 'etc/os-release', body: SLES }, { name: 'usr/lib/sysimage/rpm/Packages.db', body: ndb(headers(), 3) }])) }])
    const inv = await buildInventory(s.app.registry, 'suse/sles', digest)
    assert.deepEqual(inv.notes, [])
    assert.deepEqual(inv.packages.map((p) => [p.name, p.version, p.purl, p.licenses, p.source, p.path, p.layer]), expected('sles', '/usr/lib/sysimage/rpm/Packages.db', layers[0]))
    assert.ok(inv.packages.every((p) => p.ecosystem === 'SUSE'))
  })

  it('notes broken databases: truncated, a broken overflow chain, a bad slot or blob', async () => {
    const good = berkeleyDb(headers())
    const chain = Buffer.from(good)
    chain[4096 * 3 + 25] = 13 // the second page of the first overflow chain is no overflow page
    const slot = ndb(headers())
    slot.write('Slop', 48, 'latin1')
    const blob = ndb(headers())
    blob.write('BlbX', 4096, 'latin1')
    const tail = ndb(headers().slice(2))
    tail.write('BlbX', tail.length - 4, 'latin1')
    const layer = await tarOf([
      { name: 'var/lib/rpm/Packages', body: good.subarray(0, good.length - 4096) },
      { name: 'usr/lib/sysimage/rpm/Packages', body: chain },
      { name: 'usr/lib/sysimage/rpm/Packages.db', body: slot },
      { name: 'var/lib/rpm/Packages.db', body: blob },
    ])
    const { digest } = await pushLayers(s, 'rocky/bad', '1', [{ data: gzipSync(layer) }])
    const inv = await buildInventory(s.app.registry, 'rocky/bad', digest)
    assert.deepEqual(inv.packages, [])
    assert.deepEqual(inv.notes, [
      'rpm database /usr/lib/sysimage/rpm/Packages is malformed: page 3 of an overflow chain is of type 13',
      'rpm database /usr/lib/sysimage/rpm/Packages.db is malformed: slot 3 has no Slot magic',
      `rpm database /var/lib/rpm/Packages is malformed: truncated: ${good.length / 4096} pages of 4096 bytes, ${good.length - 4096} bytes`,
      'rpm database /var/lib/rpm/Packages.db is malformed: package 1: no blob head at block 256',
    ])
    const { digest: other } = await pushLayers(s, 'rocky/bad', '2', [{ data: gzipSync(await tarOf([{ name: 'var/lib/rpm/Packages.db', body: tail }])) }])
    assert.deepEqual((await buildInventory(s.app.registry, 'rocky/bad', other)).notes, ['rpm database /var/lib/rpm/Packages.db is malformed: package 1: no blob tail'])
  })
})
