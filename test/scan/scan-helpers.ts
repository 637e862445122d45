import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { ADMIN, api } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { asBody, sha256 } from '../helpers/oci.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import type { TestServer } from '../helpers/server.js'

// Images with generated package databases and a small OSV database, for the scan tests.

export const DEBIAN_OS = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
const para = (fields: Record<string, string>) => Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n'

/** A dpkg status of libssl3 (source openssl) at `openssl` and zlib1g. */
export function dpkgStatus(openssl: string): string {
  return [
    para({ Package: 'base-files', Status: 'install ok installed', Architecture: 'amd64', Version: '12.4+deb12u5' }),
    para({ Package: 'libssl3', Status: 'install ok installed', Architecture: 'amd64', Source: 'openssl', Version: openssl }),
    para({ Package: 'zlib1g', Status: 'install ok installed', Architecture: 'amd64', Source: 'zlib (1:1.2.13.dfsg-1)', Version: '1:1.2.13.dfsg-1+b1' }),
  ].join('\n')
}

export function packageLock(lodash: string): string {
  return JSON.stringify({
    name: 'app',
    lockfileVersion: 3,
    packages: {
      '': { name: 'app', version: '1.0.0', dependencies: { express: '^4.18.2', lodash: `^${lodash}` } },
      'node_modules/express': { version: '4.18.2', license: 'MIT' },
      'node_modules/lodash': { version: lodash, license: 'MIT' },
    },
  })
}

/** A Debian 12 image with an npm application: two gzip layers. */
export async function pushAppImage(s: TestServer, repo: string, tag: string, opts: { openssl?: string; lodash?: string; authorization?: string } = {}) {
  const base = gzipSync(await tarOf([{ name: 'etc/os-release', body: DEBIAN_OS }, { name: 'var/lib/dpkg/status', body: dpkgStatus(opts.openssl ?? '3.0.11-1~deb12u2') }]))
  const app = gzipSync(await tarOf([{ name: 'app/package-lock.json', body: packageLock(opts.lodash ?? '4.17.20') }]))
  return pushLayers(s, repo, tag, [{ data: base }, { data: app }], opts.authorization ?? ADMIN)
}

const CRITICAL = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'
const HIGH = 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H'
const MEDIUM = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N'

function advisory(id: string, aliases: string[], ecosystem: string, name: string, fixed: string, vector: string, extra: Record<string, unknown> = {}) {
  return {
    schema_version: '1.6.0',
    id,
    modified: '2026-11-01T00:00:00Z',
    published: '2026-10-01T00:00:00Z',
    aliases,
    summary: `${name} issue ${id}`,
    severity: [{ type: 'CVSS_V3', score: vector }],
    affected: [{ package: { ecosystem, name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed }] }] }],
    ...extra,
  }
}

/** The first database: openssl (critical) and lodash (high) affect the app image; express is fixed already; a withdrawn zlib advisory. */
export const OSV_V1 = [
  advisory('DSA-5621-1', ['CVE-2024-0727'], 'Debian:12', 'openssl', '3.0.13-1~deb12u1', CRITICAL),
  advisory('GHSA-35jh-r3h4-6jhm', ['CVE-2021-23337'], 'npm', 'lodash', '4.17.21', HIGH),
  advisory('GHSA-rv95-896h-c2vc', ['CVE-2022-24999'], 'npm', 'express', '4.17.3', HIGH),
  advisory('DSA-5000-1', ['CVE-2022-37434'], 'Debian:12', 'zlib', '1:1.2.13.dfsg-2', CRITICAL, { withdrawn: '2026-11-02T00:00:00Z' }),
]
/** The next database adds a medium zlib advisory. */
export const OSV_V2 = [...OSV_V1, advisory('DSA-5700-1', ['CVE-2023-45853'], 'Debian:12', 'zlib', '1:1.2.13.dfsg-2', MEDIUM)]

/** Imports these OSV documents (a directory of .json files) through the vulnerability database's import. */
export async function importOsv(s: TestServer, docs: object[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-osv-'))
  for (const d of docs) await writeFile(join(dir, `${(d as { id: string }).id}.json`), JSON.stringify(d))
  const result = await s.app.vulndb.import([{ path: dir }])
  return result.version
}

export interface Report {
  status: string
  scannedAt: string | null
  database: string | null
  summary: Record<string, number>
  findings: { id: string; aliases: string[]; package: string; version: string; fixedVersion: string | null; severity: string; layer: string; platform?: string; purl: string }[]
  error?: string
}

export const artifactPath = (project: string, repo: string, digest: string) => `/projects/${project}/repositories/${encodeURIComponent(repo)}/artifacts/${digest}`

/** The report once the artifact's scan is finished (done or failed). */
export async function scanned(s: TestServer, project: string, repo: string, digest: string, authorization = ADMIN): Promise<Report> {
  let report: Report | undefined
  await eventually(async () => {
    const res = await api(s, 'GET', `${artifactPath(project, repo, digest)}/vulnerabilities`, authorization)
    if (res.status === 404) return false
    report = (await res.json()) as Report
    return report.status === 'done' || report.status === 'failed'
  }, `the scan of ${repo}@${digest}`, 20_000)
  return report as Report
}

/** Pushes an index of these image manifests (each with a platform). */
export async function pushIndex(s: TestServer, repo: string, tag: string, images: { digest: string; manifest: Buffer; architecture: string }[]) {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: images.map((i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: i.digest, size: i.manifest.length, platform: { os: 'linux', architecture: i.architecture } })),
    }),
  )
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: asBody(index), headers: { 'content-type': 'application/vnd.oci.image.index.v1+json', authorization: ADMIN } })
  assert.equal(res.status, 201, await res.text())
  return { digest: sha256(index), manifest: index }
}

/** The CycloneDX 1.6 JSON schema (shipped with @cyclonedx/cyclonedx-library), compiled. */
export function cyclonedxValidator() {
  const dir = new URL('../../node_modules/@cyclonedx/cyclonedx-library/res/schema/', import.meta.url)
  const load = (f: string) => JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as object
  const ajv = new Ajv({ strict: false, allErrors: true })
  ;(addFormats as unknown as (a: Ajv) => void)(ajv)
  ajv.addFormat('iri-reference', true).addFormat('idn-email', true)
  ajv.addSchema(load('spdx.SNAPSHOT.schema.json'), 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json')
  ajv.addSchema(load('jsf-0.82.SNAPSHOT.schema.json'), 'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json')
  return ajv.compile(load('bom-1.6.SNAPSHOT.schema.json'))
}
