import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import Database from 'better-sqlite3'
import { buildInventory } from '../../src/scan/inventory/index.js'
import { parseHeader } from '../../src/scan/inventory/rpmdb.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { importOsv, scanned, artifactPath } from './scan-helpers.js'
import { apiOk } from '../helpers/auth.js'
import { pkg, ROCKY } from './rpm-headers.js'

// RPM's SQLite database (rpmdb.sqlite), built here as rpm builds it: a `Packages` table of
// header blobs in rpm's header format (il, dl, 16-byte index entries, the data store), in WAL
// mode. The inventory reads name, epoch, version, release, arch, licence and source RPM; the
// gpg-pubkey pseudo-packages are left out; the matcher finds RPM advisories by binary name.

/** An rpmdb.sqlite as rpm 4.16+ makes it (WAL mode, Packages(hnum, blob)). */
async function rpmdb(blobs: Buffer[]): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-rpmdb-test-'))
  try {
    const file = join(dir, 'rpmdb.sqlite')
    const db = new Database(file)
    db.pragma('journal_mode = WAL')
    db.exec("CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    db.exec("CREATE TABLE IF NOT EXISTS 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))")
    const insert = db.prepare('INSERT INTO Packages (blob) VALUES (?)')
    for (const b of blobs) insert.run(b)
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.close()
    const bytes = await readFile(file)
    assert.equal(bytes[18], 2, 'the database is in WAL mode, as rpm leaves it')
    return bytes
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

describe('rpmdb.sqlite', () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ scan: { rematchInterval: '0s' } })
  })
  after(() => s.close())

  it('reads name, epoch, version, release, arch, licence and source RPM of each header; leaves gpg-pubkey out', async () => {
    const db = await rpmdb([
      pkg('openssl-libs', '3.0.7', '27.el9', { epoch: 1, license: 'Apache-2.0', source: 'openssl-3.0.7-27.el9.src.rpm' }),
      pkg('bash', '5.1.8', '9.el9', { license: 'GPLv3+', source: 'bash-5.1.8-9.el9.src.rpm' }),
      pkg('gpg-pubkey', '350d275d', '6395c9b5', { arch: '(none)' }),
      pkg('tzdata', '2024a', '1.el9', { arch: 'noarch', license: 'Public Domain' }),
    ])
    const tmpBefore = (await readdir(tmpdir())).filter((n) => n.startsWith('berth-rpmdb-')).length
    const { digest, layers } = await pushLayers(s, 'rocky/base', '9', [{ data: gzipSync(await tarOf([{ name: 'etc/os-release', body: ROCKY }, { name: 'usr/lib/sysimage/rpm/rpmdb.sqlite', body: db }])) }])
    const inv = await buildInventory(s.app.registry, 'rocky/base', digest)
    assert.deepEqual(inv.notes, [])
    assert.deepEqual(
      inv.packages.map((p) => [p.name, p.version, p.ecosystem, p.purl, p.licenses, p.source, p.path, p.layer]),
      [
        ['openssl-libs', '1:3.0.7-27.el9', 'Rocky Linux:9', 'pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1', ['Apache-2.0'], { name: 'openssl', version: '1:3.0.7-27.el9' }, '/usr/lib/sysimage/rpm/rpmdb.sqlite', layers[0]],
        ['bash', '5.1.8-9.el9', 'Rocky Linux:9', 'pkg:rpm/rocky/bash@5.1.8-9.el9?arch=x86_64&distro=rocky-9.3', ['GPLv3+'], { name: 'bash', version: '5.1.8-9.el9' }, '/usr/lib/sysimage/rpm/rpmdb.sqlite', layers[0]],
        ['tzdata', '2024a-1.el9', 'Rocky Linux:9', 'pkg:rpm/rocky/tzdata@2024a-1.el9?arch=noarch&distro=rocky-9.3', ['Public Domain'], undefined, '/usr/lib/sysimage/rpm/rpmdb.sqlite', layers[0]],
      ],
    )
    assert.equal((await readdir(tmpdir())).filter((n) => n.startsWith('berth-rpmdb-')).length, tmpBefore, 'the temporary copy is removed')
  })

  it('matches RPM advisories by binary package name and rpmvercmp, /var/lib/rpm too', async () => {
    const db = await rpmdb([pkg('openssl-libs', '3.0.7', '27.el9', { epoch: 1, source: 'openssl-3.0.7-27.el9.src.rpm' }), pkg('bash', '5.1.8', '9.el9')])
    const { digest } = await pushLayers(s, 'rocky/app', '1', [{ data: gzipSync(await tarOf([{ name: 'etc/os-release', body: ROCKY }, { name: 'var/lib/rpm/rpmdb.sqlite', body: db }])) }])
    await importOsv(s, [
      { schema_version: '1.6.0', id: 'RLSA-2024:0001', modified: '2026-11-01T00:00:00Z', aliases: ['CVE-2024-0727'], affected: [{ package: { ecosystem: 'Rocky Linux:9', name: 'openssl-libs' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:3.0.7-28.el9' }] }] }] },
      { schema_version: '1.6.0', id: 'RLSA-2024:0002', modified: '2026-11-01T00:00:00Z', affected: [{ package: { ecosystem: 'Rocky Linux:9', name: 'bash' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '5.1.8-6.el9' }] }] }] },
    ])
    await apiOk(s, 'POST', `${artifactPath('rocky', 'app', digest)}/scan`, undefined, undefined, 202)
    const report = await scanned(s, 'rocky', 'app', digest, '')
    assert.equal(report.status, 'done', report.error)
    assert.deepEqual(report.findings.map((f) => [f.id, f.package, f.version, f.fixedVersion]), [['RLSA-2024:0001', 'openssl-libs', '1:3.0.7-27.el9', '1:3.0.7-28.el9']])
  })

  it('a malformed header or database is a note, not a failure; a bad header blob is refused by the parser', async () => {
    const truncated = pkg('zlib', '1.2.11', '40.el9').subarray(0, 30)
    assert.throws(() => parseHeader(truncated), /truncated/)
    const wild = pkg('zlib', '1.2.11', '40.el9')
    wild.writeUInt32BE(0x7fffffff, 8 + 8) // the first entry's offset, far outside the data
    assert.throws(() => parseHeader(wild), /outside its data/)
    const db = await rpmdb([pkg('bash', '5.1.8', '9.el9'), truncated])
    const { digest } = await pushLayers(s, 'rocky/bad', '1', [{ data: gzipSync(await tarOf([{ name: 'etc/os-release', body: ROCKY }, { name: 'usr/lib/sysimage/rpm/rpmdb.sqlite', body: db }])) }])
    const inv = await buildInventory(s.app.registry, 'rocky/bad', digest)
    assert.deepEqual(inv.packages, [])
    assert.equal(inv.notes.length, 1)
    assert.match(inv.notes[0] ?? '', /^rpm database \/usr\/lib\/sysimage\/rpm\/rpmdb\.sqlite is malformed: rpm header truncated/)
    const { digest: notSqlite } = await pushLayers(s, 'rocky/bad', '2', [{ data: gzipSync(await tarOf([{ name: 'var/lib/rpm/rpmdb.sqlite', body: Buffer.alloc(5000, 7) }])) }])
    const inv2 = await buildInventory(s.app.registry, 'rocky/bad', notSqlite)
    assert.match(inv2.notes[0] ?? '', /is malformed: not an SQLite database/)
  })
})
