import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import type { Inventory, ScannedPackage } from '../../src/scan/types.js'
import { VulnDb } from '../../src/scan/vulndb/index.js'
import { cvss3BaseScore } from '../../src/scan/vulndb/severity.js'
import { basic } from '../helpers/auth.js'
import { pushBlob, putManifest } from '../helpers/oci.js'
import { createTestDatabase, dropTestDatabase, initDataDir, startServer, TEST_DATABASE_URL } from '../helpers/server.js'
import { writeZip } from '../helpers/zip.js'

const run = promisify(execFile)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.js')

const CRITICAL = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'
const ECO = (ecosystem: string, name: string, events: Record<string, string>[], extra: object = {}) => ({ package: { ecosystem, name }, ranges: [{ type: 'ECOSYSTEM', events }], ...extra })

/** The fixture database: one OSV document per advisory, as osv.dev exports them. */
const ADVISORIES: Record<string, unknown>[] = [
  // fixed in a later version than installed (npm, SemVer), CVSS v3 vector → critical
  { id: 'GHSA-aaaa-0001', modified: '2024-05-01T00:00:00Z', aliases: ['CVE-2021-23337'], summary: 'Command injection in lodash', severity: [{ type: 'CVSS_V3', score: CRITICAL }], affected: [ECO('npm', 'lodash', [{ introduced: '0' }, { fixed: '4.17.21' }])] },
  // not affected: installed 1.2.8 is past the fix
  { id: 'GHSA-aaaa-0002', modified: '2024-05-02T00:00:00Z', aliases: ['CVE-2021-44906'], affected: [ECO('npm', 'minimist', [{ introduced: '0' }, { fixed: '1.2.6' }])], database_specific: { severity: 'CRITICAL' } },
  // withdrawn: ignored although the version is in range
  { id: 'GHSA-aaaa-0003', modified: '2024-05-03T00:00:00Z', withdrawn: '2024-06-01T00:00:00Z', affected: [ECO('npm', 'express', [{ introduced: '0' }, { fixed: '9.0.0' }])] },
  // Debian names the SOURCE package; Debian:11's advisory does not apply to a Debian:12 package
  { id: 'DEBIAN-CVE-2023-0464', modified: '2024-04-01T00:00:00Z', aliases: ['CVE-2023-0464'], affected: [ECO('Debian:12', 'openssl', [{ introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }]), ECO('Debian:11', 'openssl', [{ introduced: '0' }, { fixed: '1.1.1w-0+deb11u1' }])] },
  // a dpkg `~` edge: 3.0.11-1~deb12u2 is older than the fix 3.0.11-1
  { id: 'DEBIAN-CVE-2024-0001', modified: '2024-04-02T00:00:00Z', affected: [ECO('Debian:12', 'glibc', [{ introduced: '0' }, { fixed: '2.36-9+deb12u4' }], { ecosystem_specific: { urgency: 'low' } })], severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N' }] },
  // Alpine (apk order, -rN), a database severity label
  { id: 'ALPINE-CVE-2023-42363', modified: '2024-03-01T00:00:00Z', affected: [ECO('Alpine:v3.20', 'busybox', [{ introduced: '0' }, { fixed: '1.36.1-r29' }])], database_specific: { severity: 'MODERATE' } },
  // PyPI: the advisory spells the name differently (PEP 503 normalisation), two ranges, last_affected
  { id: 'PYSEC-2021-0001', modified: '2024-02-01T00:00:00Z', affected: [ECO('PyPI', 'Django', [{ introduced: '3.0' }, { fixed: '3.1.13' }, { introduced: '3.2' }, { fixed: '3.2.5' }])], severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N' }] },
  { id: 'PYSEC-2021-0002', modified: '2024-02-02T00:00:00Z', affected: [ECO('PyPI', 'jinja2', [{ introduced: '0' }, { last_affected: '2.11.2' }])] },
  // Maven qualifiers: 2.15.0-rc1 is before 2.15.0
  { id: 'GHSA-jfh8-c2jp-5v3q', modified: '2024-01-01T00:00:00Z', aliases: ['CVE-2021-44228'], affected: [ECO('Maven', 'org.apache.logging.log4j:log4j-core', [{ introduced: '2.0-beta9' }, { fixed: '2.15.0' }])], database_specific: { severity: 'CRITICAL' } },
  // Go: a versions list only (the GIT range names commits and is left out)
  { id: 'GO-2022-0001', modified: '2024-01-02T00:00:00Z', affected: [{ package: { ecosystem: 'Go', name: 'golang.org/x/text' }, ranges: [{ type: 'GIT', repo: 'https://go.googlesource.com/text', events: [{ introduced: '0' }, { fixed: 'abcdef' }] }], versions: ['v0.3.6'] }] },
  // GIT ranges only: nothing to match against versions
  { id: 'OSV-2020-0001', modified: '2024-01-03T00:00:00Z', affected: [{ package: { ecosystem: 'OSS-Fuzz', name: 'libfoo' }, ranges: [{ type: 'GIT', repo: 'https://example.invalid/libfoo', events: [{ introduced: 'aaaa' }] }] }] },
  // a CVSS v4 vector only
  { id: 'GHSA-aaaa-0004', modified: '2024-05-04T00:00:00Z', severity: [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' }], affected: [{ package: { ecosystem: 'npm', name: 'left-pad' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { fixed: '1.3.1' }] }] }] },
]

function pkg(ecosystem: string, name: string, version: string, extra: Partial<ScannedPackage> = {}): ScannedPackage {
  return { name, version, ecosystem, purl: `pkg:generic/${name}@${version}`, licenses: [], layer: 'sha256:' + 'a'.repeat(64), path: '/x', ...extra }
}

const INVENTORY: Inventory = {
  os: { id: 'debian', versionId: '12' },
  notes: [],
  packages: [
    pkg('npm', 'lodash', '4.17.20'),
    pkg('npm', 'minimist', '1.2.8'),
    pkg('npm', 'express', '4.18.2'),
    pkg('npm', 'left-pad', '1.3.0'),
    pkg('Debian:12', 'libssl3', '3.0.11-1~deb12u1', { source: { name: 'openssl' } }),
    pkg('Debian:12', 'openssl', '3.0.11-1~deb12u1'),
    pkg('Debian:12', 'libc6', '2.36-9+deb12u3', { source: { name: 'glibc' } }),
    pkg('Alpine:v3.20', 'busybox', '1.36.1-r28', { source: { name: 'busybox' } }),
    pkg('PyPI', 'django', '3.2.1'),
    pkg('PyPI', 'jinja2', '2.11.3'),
    pkg('Maven', 'org.apache.logging.log4j:log4j-core', '2.15.0-rc1'),
    pkg('Go', 'golang.org/x/text', 'v0.3.6'),
  ],
}

/** What the fixture inventory must give: id, package, installed, fixed, severity. */
const EXPECTED = [
  ['GHSA-aaaa-0004', 'left-pad', '1.3.0', '1.3.1', 'critical'],
  ['GHSA-aaaa-0001', 'lodash', '4.17.20', '4.17.21', 'critical'],
  ['GHSA-jfh8-c2jp-5v3q', 'org.apache.logging.log4j:log4j-core', '2.15.0-rc1', '2.15.0', 'critical'],
  ['ALPINE-CVE-2023-42363', 'busybox', '1.36.1-r28', '1.36.1-r29', 'medium'],
  // CVSS 5.3 (C:L only)
  ['PYSEC-2021-0001', 'django', '3.2.1', '3.2.5', 'medium'],
  // CVSS 5.5; Debian's urgency is no severity
  ['DEBIAN-CVE-2024-0001', 'libc6', '2.36-9+deb12u3', '2.36-9+deb12u4', 'medium'],
  ['GO-2022-0001', 'golang.org/x/text', 'v0.3.6', null, 'unknown'],
  ['DEBIAN-CVE-2023-0464', 'libssl3', '3.0.11-1~deb12u1', '3.0.11-1~deb12u2', 'unknown'],
  ['DEBIAN-CVE-2023-0464', 'openssl', '3.0.11-1~deb12u1', '3.0.11-1~deb12u2', 'unknown'],
]

async function writeFixture(dir: string, advisories = ADVISORIES): Promise<void> {
  await mkdir(dir, { recursive: true })
  for (const a of advisories) await writeFile(join(dir, `${a.id as string}.json`), JSON.stringify(a))
}

function summarize(findings: Awaited<ReturnType<VulnDb['match']>>) {
  return findings.map((f) => [f.id, f.package, f.version, f.fixedVersion, f.severity])
}

const dialects: ['sqlite' | 'postgres', string | false][] = [
  ['sqlite', false],
  ['postgres', TEST_DATABASE_URL ? false : 'skipped: set BERTH_TEST_DATABASE_URL'],
]

for (const [dialect, skip] of dialects) {
  describe(`the vulnerability database (${dialect})`, { skip }, () => {
    let dir: string
    let metadata: MetadataDb
    let pgUrl: string | undefined
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'berth-vulndb-'))
      if (dialect === 'postgres') pgUrl = await createTestDatabase()
      metadata = await openMetadata(pgUrl ?? `sqlite:${join(dir, 'berth.db')}`)
      await writeFixture(join(dir, 'osv'))
    })
    after(async () => {
      await metadata.close()
      if (pgUrl) await dropTestDatabase(pgUrl)
      await rm(dir, { recursive: true, force: true })
    })

    it('before any import: no version, no findings', async () => {
      const db = new VulnDb(metadata)
      assert.equal(await db.version(), null)
      assert.deepEqual(await db.match(INVENTORY), [])
      assert.equal((await db.status()).advisories, 0)
    })

    it('imports a directory and matches: fixed later, not affected, withdrawn, Debian source packages', async () => {
      const db = new VulnDb(metadata)
      const progress: number[] = []
      const result = await db.import([{ path: join(dir, 'osv') }], { onProgress: (p) => progress.push(p.done) })
      assert.equal(result.advisories, ADVISORIES.length - 1, 'the withdrawn one is left out')
      assert.equal(result.withdrawn, 1)
      assert.ok(progress.includes(ADVISORIES.length))
      assert.ok(result.notes.some((n) => /GIT \(commit\) ranges/.test(n)), result.notes.join('; '))
      const findings = await db.match(INVENTORY)
      assert.deepEqual(summarize(findings), EXPECTED)
      const lodash = findings.find((f) => f.package === 'lodash')!
      assert.deepEqual(lodash.aliases, ['CVE-2021-23337'])
      assert.equal(lodash.summary, 'Command injection in lodash')
      assert.equal(lodash.layer, INVENTORY.packages[0]!.layer)
      assert.equal(lodash.ecosystem, 'npm')
      assert.equal(lodash.purl, 'pkg:generic/lodash@4.17.20')

      const status = await db.status()
      assert.equal(status.version, await db.version())
      assert.equal(status.advisories, ADVISORIES.length - 1)
      const debian = status.sources.find((s) => s.ecosystem === 'Debian:12')
      assert.deepEqual(debian, { ecosystem: 'Debian:12', advisories: 2, modified: '2024-04-02T00:00:00Z' })
      assert.deepEqual(status.sources.find((s) => s.ecosystem === 'npm'), { ecosystem: 'npm', advisories: 3, modified: '2024-05-04T00:00:00Z' })
    })

    it('a package past every fix, or of another release, has no findings', async () => {
      const db = new VulnDb(metadata)
      const findings = await db.match({
        notes: [],
        packages: [pkg('npm', 'lodash', '4.17.21'), pkg('Debian:11', 'openssl', '1.1.1w-0+deb11u1'), pkg('Debian:12', 'libssl3', '3.0.11-1', { source: { name: 'openssl' } }), pkg('PyPI', 'Django', '3.1.13'), pkg('Alpine:v3.19', 'busybox', '1.36.1-r0')],
      })
      assert.deepEqual(summarize(findings), [])
    })

    it('a broken OSV file fails the import by name and the previous database stays', async () => {
      const db = new VulnDb(metadata)
      const before = await db.version()
      assert.ok(before)
      const broken = join(dir, 'broken')
      await writeFixture(broken, [{ id: 'GHSA-new-0001', modified: '2024-07-01T00:00:00Z', affected: [ECO('npm', 'lodash', [{ introduced: '0' }, { fixed: '5.0.0' }])] }])
      await writeFile(join(broken, 'zz-bad.json'), '{"id": "GHSA-bad", "modified": ')
      await assert.rejects(db.import([{ path: join(dir, 'osv') }, { path: broken }]), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'UNPROCESSABLE')
        assert.match(err.message, /broken\/zz-bad\.json: not JSON/)
        return true
      })
      const invalid = join(dir, 'invalid')
      await writeFixture(invalid, [{ id: 'GHSA-bad-0002', modified: '2024-07-01T00:00:00Z', affected: [{ package: { ecosystem: 'npm', name: 'x' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0', fixed: '1' }] }] }] }])
      await assert.rejects(db.import([{ path: invalid }]), /GHSA-bad-0002\.json: GHSA-bad-0002: affected\[0\]: an event needs exactly one of/)
      assert.equal(await db.version(), before, 'the database in use did not change')
      assert.deepEqual(summarize(await db.match(INVENTORY)), EXPECTED)
      const stray = await metadata.db.selectFrom('vulndb_entries').select((eb) => eb.fn.countAll<number>().as('n')).where('generation', '!=', Number(before.split('.')[0])).executeTakeFirstOrThrow()
      assert.equal(Number(stray.n), 0, 'the failed imports left no rows')
    })

    it('imports osv.dev-style ZIP exports (deflated and stored), swaps generations and drops the old rows', async () => {
      const db = new VulnDb(metadata)
      const before = await db.version()
      const zip = join(dir, 'all.zip')
      const half = ADVISORIES.length / 2
      await writeZip(zip, ADVISORIES.slice(0, half).map((a) => ({ name: `${a.id as string}.json`, data: JSON.stringify(a) })))
      const stored = join(dir, 'stored.zip')
      await writeZip(stored, ADVISORIES.slice(half).map((a) => ({ name: `${a.id as string}.json`, data: JSON.stringify(a) })), { store: true })
      const result = await db.import([{ path: zip }, { path: stored }])
      assert.notEqual(result.version, before)
      assert.equal(await db.version(), result.version)
      assert.deepEqual(summarize(await db.match(INVENTORY)), EXPECTED)
      const generations = await metadata.db.selectFrom('vulndb_entries').select('generation').distinct().execute()
      assert.deepEqual(generations.map((g) => Number(g.generation)), [Number(result.version.split('.')[0])])

      const corrupt = join(dir, 'corrupt.zip')
      await writeFile(corrupt, await readFile(zip))
      await truncate(corrupt, 200)
      await assert.rejects(db.import([{ path: corrupt }]), /corrupt\.zip: not a ZIP file/)
      const flipped = join(dir, 'flipped.zip')
      const bytes = await readFile(stored)
      bytes[60] = bytes[60]! ^ 0xff
      await writeFile(flipped, bytes)
      await assert.rejects(db.import([{ path: flipped }]), /flipped\.zip:.*\.json: CRC or size mismatch/)
      assert.equal(await db.version(), result.version)
    })

    it('reads a ZIP made by Info-ZIP zip', { skip: existsSync('/usr/bin/zip') ? false : 'skipped: zip is not installed' }, async () => {
      const db = new VulnDb(metadata)
      const src = join(dir, 'zipsrc')
      await writeFixture(src)
      await run('zip', ['-q', '-r', join(dir, 'infozip.zip'), '.'], { cwd: src })
      const result = await db.import([{ path: join(dir, 'infozip.zip') }])
      assert.equal(result.advisories, ADVISORIES.length - 1)
      assert.deepEqual(summarize(await db.match(INVENTORY)), EXPECTED)
    })
  })
}

describe('CVSS v3 base scores (FIRST CVSS v3.1 calculator values)', () => {
  for (const [vector, score] of [
    [CRITICAL, 9.8],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1],
    ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
    ['CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N', 5.9],
    ['CVSS:3.0/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N', 1.6],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0],
  ] as const) {
    it(`${vector} = ${score}`, () => assert.equal(cvss3BaseScore(vector), score))
  }
})

describe('berth vulndb (CLI) and GET /api/v1/vulndb', () => {
  it('imports a ZIP with `berth vulndb import`, shows it in `status` and the API; a broken import keeps it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-vulndb-cli-'))
    await initDataDir(dir)
    try {
      const zip = join(dir, 'all.zip')
      await writeZip(zip, ADVISORIES.map((a) => ({ name: `${a.id as string}.json`, data: JSON.stringify(a) })))
      const imported = await run(process.execPath, [BIN, 'vulndb', 'import', zip, '--data-dir', dir])
      assert.match(imported.stdout, new RegExp(`imported ${ADVISORIES.length - 1} advisories from .*all\\.zip`))
      assert.match(imported.stdout, /Debian:12: 2 \(newest 2024-04-02T00:00:00Z\)/)
      assert.match(imported.stderr, /importing: \d+\/12 documents read/, 'plain progress lines off a terminal')
      const status = JSON.parse((await run(process.execPath, [BIN, 'vulndb', 'status', '--json', '--data-dir', dir])).stdout) as { version: string; advisories: number; files: string[] }
      assert.equal(status.advisories, ADVISORIES.length - 1)
      assert.deepEqual(status.files, [zip])

      await writeFile(join(dir, 'bad.json'), '[]')
      const failed = await run(process.execPath, [BIN, 'vulndb', 'import', join(dir, 'bad.json'), '--data-dir', dir]).catch((e: { code: number; stderr: string }) => e)
      assert.equal((failed as { code: number }).code, 1)
      assert.match((failed as { stderr: string }).stderr, /^berth: .*bad\.json: an OSV advisory is a JSON object/)
      const still = JSON.parse((await run(process.execPath, [BIN, 'vulndb', 'status', '--json', '--data-dir', dir])).stdout) as { version: string }
      assert.equal(still.version, status.version)

      const s = await startServer({ dataDir: dir, auth: { enabled: true } }, { keepData: true, adminPassword: 'admin-password-xyz' })
      try {
        assert.equal((await fetch(`${s.url}/api/v1/vulndb`)).status, 401)
        const res = await fetch(`${s.url}/api/v1/vulndb`, { headers: { authorization: basic('admin', 'admin-password-xyz') } })
        assert.equal(res.status, 200)
        const body = (await res.json()) as { version: string; advisories: number; ageSeconds: number; sources: { ecosystem: string }[] }
        assert.equal(body.version, status.version)
        assert.equal(body.advisories, ADVISORIES.length - 1)
        assert.ok(body.ageSeconds >= 0)
        assert.ok(body.sources.some((x) => x.ecosystem === 'Alpine:v3.20'))
      } finally {
        await s.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('imports a database pushed into Berth as an OCI artifact (--from-registry)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-vulndb-oci-'))
    await initDataDir(dir)
    try {
      const zip = join(dir, 'all.zip')
      await writeZip(zip, ADVISORIES.map((a) => ({ name: `${a.id as string}.json`, data: JSON.stringify(a) })))
      const s = await startServer({ dataDir: dir }, { keepData: true })
      try {
        // what `oras push host/system/vulndb:2026-12-01 all.zip` sends
        const bytes = await readFile(zip)
        const layer = await pushBlob(s.url, 'system/vulndb', bytes)
        const config = await pushBlob(s.url, 'system/vulndb', '{}')
        const manifest = {
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType: 'application/vnd.unknown.artifact.v1',
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: 2 },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: bytes.length, annotations: { 'org.opencontainers.image.title': 'all.zip' } }],
        }
        assert.equal((await putManifest(s.url, 'system/vulndb', '2026-12-01', Buffer.from(JSON.stringify(manifest)))).status, 201)
        const imported = await run(process.execPath, [BIN, 'vulndb', 'import', '--from-registry', 'system/vulndb:2026-12-01', '--json', '--data-dir', dir])
        const result = JSON.parse(imported.stdout) as { advisories: number; files: string[] }
        assert.equal(result.advisories, ADVISORIES.length - 1)
        assert.deepEqual(result.files, ['system/vulndb:2026-12-01/all.zip'])
        const body = (await (await fetch(`${s.url}/api/v1/vulndb`)).json()) as { advisories: number; files: string[] }
        assert.equal(body.advisories, ADVISORIES.length - 1, 'the running server sees the import (auth off: anyone may look)')
        assert.deepEqual(summarize(await s.app.vulndb.match(INVENTORY)), EXPECTED)
        const missing = await run(process.execPath, [BIN, 'vulndb', 'import', '--from-registry', 'system/vulndb:nope', '--data-dir', dir]).catch((e: { stderr: string }) => e)
        assert.match((missing as { stderr: string }).stderr, /^berth: .*nope/)
      } finally {
        await s.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
