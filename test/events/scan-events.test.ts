import { test } from 'node:test'
import assert from 'node:assert/strict'
import { gzipSync } from 'node:zlib'
import pino from 'pino'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import { BlockedPulls, BLOCKED_EVERY_MS } from '../../src/events/blocked.js'
import { RegistryError } from '../../src/errors/registry-error.js'
import type { BerthEvent } from '../../src/metadata/repositories/events.js'
import { artifactPath, importOsv, OSV_V1, pushAppImage, scanned, type Report } from '../scan/scan-helpers.js'
import { pushAsAdmin, Receiver } from './receiver.js'

// Scan and pull-blocked events: SCANNING_COMPLETED / SCANNING_FAILED with Harbor's scan overview
// when a real scan job ends, and PULL_BLOCKED when the scan or trust policy refuses a pull, at
// most once a minute per repository, digest and gate however often a client retries.

const REPORT = 'application/vnd.security.vulnerability.report; version=1.1'
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

interface HarborScan {
  type: string
  operator: string
  event_data: {
    resources: {
      digest: string
      tag?: string
      resource_url?: string
      scan_overview: Record<string, { report_id: string; scan_status: string; severity: string; duration: number; summary: { total: number; fixable: number; summary: Record<string, number> }; start_time: string; end_time: string; complete_percent: number; scanner: { name: string; vendor: string; version: string } }>
    }[]
    repository: { name: string; namespace: string; repo_full_name: string }
    custom_attributes?: Record<string, unknown>
  }
}

function bodies<T>(r: Receiver, type: string): T[] {
  return r.received.map((x) => JSON.parse(x.body) as T & { type: string }).filter((b) => b.type === type)
}

test('a scan job that ends sends SCANNING_COMPLETED or SCANNING_FAILED with Harbor\'s scan overview', async () => {
  const receiver = await new Receiver().up()
  const s = await startAuthServer({ events: { pollInterval: '50ms', maxBackoff: '300ms' }, scan: { rematchInterval: '0s' }, jobs: { pollInterval: '100ms' } })
  try {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'scans', url: receiver.url, eventTypes: ['scan.completed', 'scan.failed'] }, 201)
    await importOsv(s, OSV_V1)
    const image = await pushAppImage(s, 'prod/api', '1.0')
    await apiOk(s, 'POST', `${artifactPath('prod', 'api', image.digest)}/scan`, ADMIN, undefined, 202)
    const report: Report = await scanned(s, 'prod', 'api', image.digest)
    assert.equal(report.status, 'done', report.error)

    await eventually(() => bodies(receiver, 'SCANNING_COMPLETED').length === 1, 'the SCANNING_COMPLETED delivery', 10_000)
    const done = bodies<HarborScan>(receiver, 'SCANNING_COMPLETED')[0]!
    assert.equal(done.operator, 'system')
    assert.deepEqual(done.event_data.repository, { ...done.event_data.repository, name: 'api', namespace: 'prod', repo_full_name: 'prod/api' })
    const resource = done.event_data.resources[0]!
    assert.equal(resource.digest, image.digest)
    assert.equal(resource.tag, '1.0')
    const overview = resource.scan_overview[REPORT]
    assert.ok(overview, `the overview under Harbor's report type: ${JSON.stringify(resource)}`)
    assert.equal(overview.scan_status, 'Success')
    assert.equal(overview.complete_percent, 100)
    // the image has the critical openssl and the high lodash finding, both with a fix
    assert.equal(overview.severity, 'Critical')
    assert.deepEqual(overview.summary, { total: 2, fixable: 2, summary: { Critical: 1, High: 1 } })
    assert.equal(report.summary.critical, 1)
    assert.equal(report.summary.high, 1)
    assert.equal(overview.scanner.name, 'Berth')
    assert.equal(overview.scanner.version, report.database)
    assert.ok(Date.parse(overview.start_time) <= Date.parse(overview.end_time))
    assert.equal(typeof overview.report_id, 'string')
    assert.equal(overview.report_id.length > 0, true)

    // a layer that is no gzip stream: the scan fails, and says why
    const tar = await tarOf([{ name: 'etc/os-release', body: 'ID=debian\n' }])
    const broken = await pushLayers(s, 'prod/broken', 'bad', [{ data: gzipSync(tar).subarray(0, 24) }], ADMIN)
    await apiOk(s, 'POST', `${artifactPath('prod', 'broken', broken.digest)}/scan`, ADMIN, undefined, 202)
    const failedReport = await scanned(s, 'prod', 'broken', broken.digest)
    assert.equal(failedReport.status, 'failed')
    await eventually(() => bodies(receiver, 'SCANNING_FAILED').length === 1, 'the SCANNING_FAILED delivery', 10_000)
    const failed = bodies<HarborScan>(receiver, 'SCANNING_FAILED')[0]!
    assert.equal(failed.event_data.resources[0]?.digest, broken.digest)
    assert.equal(failed.event_data.resources[0]?.tag, 'bad')
    const failedOverview = failed.event_data.resources[0]?.scan_overview[REPORT]
    assert.equal(failedOverview?.scan_status, 'Error')
    assert.equal(failed.event_data.custom_attributes?.error, failedReport.error)
    assert.equal(bodies(receiver, 'SCANNING_COMPLETED').length, 1, 'one event per scan')
  } finally {
    await s.close()
    await receiver.down()
  }
})

test('a pull refused by the scan or the trust policy sends one PULL_BLOCKED however often the client retries', async () => {
  const receiver = await new Receiver().up()
  const cloud = await new Receiver().up()
  const s = await startAuthServer({ events: { pollInterval: '50ms', maxBackoff: '300ms' }, scan: { rematchInterval: '0s' }, jobs: { pollInterval: '100ms' } })
  try {
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'signed', public: false }, 201)
    await apiOk(s, 'POST', '/webhooks', ADMIN, { name: 'blocked', url: receiver.url, eventTypes: ['pull.blocked'] }, 201)
    await apiOk(s, 'POST', '/projects/prod/webhooks', ADMIN, { name: 'ce', url: cloud.url, eventTypes: ['pull.blocked'], format: 'cloudevents' }, 201)
    await importOsv(s, OSV_V1)
    const image = await pushAppImage(s, 'prod/api', '1.0')
    await apiOk(s, 'POST', `${artifactPath('prod', 'api', image.digest)}/scan`, ADMIN, undefined, 202)
    await scanned(s, 'prod', 'api', image.digest)
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high' })
    const unsigned = await pushAsAdmin(s, 'signed/app', 'v1', 'unsigned')
    await apiOk(s, 'PUT', '/projects/signed/trust/policy', ADMIN, { require: 'cosign' })

    // a client retrying refused pulls in a loop, by tag and by digest
    for (let i = 0; i < 25; i++) {
      for (const [repo, ref] of [['prod/api', i % 2 ? '1.0' : image.digest], ['signed/app', 'v1']] as const) {
        const res = await fetch(`${s.url}/v2/${repo}/manifests/${ref}`, { headers: { authorization: ADMIN, accept: MANIFEST } })
        assert.equal(res.status, 403, `${repo}:${ref}`)
        await res.arrayBuffer()
      }
    }
    await eventually(() => bodies(receiver, 'PULL_BLOCKED').length >= 2 && cloud.received.length >= 1, 'the PULL_BLOCKED deliveries', 10_000)
    // more rounds of the drainer find nothing more to send
    const outbox = async () => (await apiOk<unknown[]>(s, 'GET', '/webhooks/blocked/deliveries', ADMIN)).length
    await new Promise((r) => setTimeout(r, 1_000))
    assert.equal(await outbox(), 2, 'one event per repository, digest and gate')
    assert.equal(cloud.received.length, 1, 'the project webhook hears its own project only')

    type Blocked = { type: string; event_data: { resources: { digest: string }[]; repository: { repo_full_name: string }; custom_attributes: Record<string, unknown> } }
    const byRepo = new Map(bodies<Blocked>(receiver, 'PULL_BLOCKED').map((b) => [b.event_data.repository.repo_full_name, b]))
    const scan = byRepo.get('prod/api')
    assert.equal(scan?.event_data.resources[0]?.digest, image.digest)
    assert.equal(scan?.event_data.custom_attributes.gate, 'vulnerability-scan')
    assert.equal(scan?.event_data.custom_attributes.vulnerability, 'DSA-5621-1')
    assert.equal(scan?.event_data.custom_attributes.severity, 'critical')
    assert.match(String(scan?.event_data.custom_attributes.message), /denied by the scan policy of project prod/)
    const trust = byRepo.get('signed/app')
    assert.equal(trust?.event_data.resources[0]?.digest, unsigned)
    assert.equal(trust?.event_data.custom_attributes.gate, 'trust')
    assert.equal(trust?.event_data.custom_attributes.require, 'cosign')
    assert.match(String(trust?.event_data.custom_attributes.message), /trust policy requires/)

    const ce = JSON.parse(cloud.received[0]?.body ?? '{}') as { type: string; subject: string; data: { count: number; detail: { gate: string } } }
    assert.equal(ce.type, 'io.berth.pull.blocked')
    assert.equal(ce.subject, `prod/api@${image.digest}`)
    assert.equal(ce.data.detail.gate, 'vulnerability-scan')
    assert.equal(ce.data.count, 1)

    // a HEAD is not gated, so it is no refusal; an allowed pull sends nothing either
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'none' })
    const ok = await fetch(`${s.url}/v2/prod/api/manifests/1.0`, { headers: { authorization: ADMIN, accept: MANIFEST } })
    assert.equal(ok.status, 200)
    await ok.arrayBuffer()
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(await outbox(), 2)
  } finally {
    await s.close()
    await Promise.all([receiver.down(), cloud.down()])
  }
})

test('pull.blocked: one event per repository, digest and gate a minute; the next one counts the refusals in between', async () => {
  let now = 1_000_000
  const written: BerthEvent[] = []
  const blocked = new BlockedPulls({ append: async (events) => void written.push(...events), log: pino({ level: 'silent' }), now: () => now, written: () => {} })
  const refusal = (gate: string, digest = 'sha256:aa') => ({ gate, repository: 'prod/api', digest, mediaType: MANIFEST, error: RegistryError.denied(`refused by ${gate}`, { severity: 'high', findings: [1, 2] }) })
  for (let i = 0; i < 50; i++) blocked.record(refusal('vulnerability-scan'))
  blocked.record(refusal('trust'))
  blocked.record(refusal('trust', 'sha256:bb'))
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(written.map((e) => [e.type, e.digest, e.detail?.gate, e.count]), [
    ['pull.blocked', 'sha256:aa', 'vulnerability-scan', 1],
    ['pull.blocked', 'sha256:aa', 'trust', 1],
    ['pull.blocked', 'sha256:bb', 'trust', 1],
  ])
  assert.deepEqual(written[0]?.detail, { severity: 'high', gate: 'vulnerability-scan', message: 'refused by vulnerability-scan' }, 'plain fields of the refusal only')
  now += BLOCKED_EVERY_MS - 1
  blocked.record(refusal('vulnerability-scan'))
  await new Promise((r) => setImmediate(r))
  assert.equal(written.length, 3, 'still within the minute')
  now += 1
  blocked.record(refusal('vulnerability-scan'))
  await new Promise((r) => setImmediate(r))
  assert.equal(written.length, 4)
  assert.equal(written[3]?.count, 51, 'the 50 refusals counted since the first event, and this one')
})
