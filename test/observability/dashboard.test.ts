// The Grafana dashboard in docs/ asks only for metrics Berth exports, and the per-project,
// GC, job and sign-in metrics count what happened.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, startAuthServer } from '../helpers/auth.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'

const DASHBOARD = join(import.meta.dirname, '..', '..', 'docs', 'grafana', 'berth-dashboard.json')

interface Panel {
  type: string
  title: string
  targets?: { expr: string }[]
  panels?: Panel[]
}

/** Metric names and types from the Prometheus text format's # TYPE lines. */
function exported(text: string): Map<string, string> {
  const types = new Map<string, string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1] ?? '', m[2] ?? '')
  return types
}

/** The series a query names: a histogram's _bucket, _sum and _count belong to it. */
function isExported(name: string, types: Map<string, string>): boolean {
  if (types.has(name)) return true
  const base = name.replace(/_(bucket|sum|count)$/, '')
  return base !== name && types.get(base) === 'histogram'
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('metrics and the Grafana dashboard', () => {
  let s: TestServer
  let metrics: string
  let storedBytes = 0

  before(async () => {
    s = await startAuthServer()
    const headers = { authorization: ADMIN }
    // a push and a pull in project library, a failed sign-in, a GC run
    const config = Buffer.from('{}')
    assert.equal((await fetch(`${s.url}/v2/library/app/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', headers, body: asBody(config) })).status, 201)
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }))
    const put = await fetch(`${s.url}/v2/library/app/manifests/v1`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: asBody(manifest) })
    assert.equal(put.status, 201)
    storedBytes = config.length + manifest.length
    const get = await fetch(`${s.url}/v2/library/app/manifests/v1`, { headers: { ...headers, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(get.status, 200)
    await get.arrayBuffer()
    const bad = await fetch(`${s.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } })
    assert.equal(bad.status, 401)
    await s.app.gc.run({ trigger: 'test' })
    // a job no node handles yet (a kind from a newer version): it waits in the queue
    await s.app.jobs.enqueue('metrics-test', {}, { runAt: Date.now() + 3_600_000 })
    metrics = await (await fetch(`${s.url}/metrics`)).text()
  })
  after(() => s?.close())

  it('names in every query of the dashboard a metric Berth exports', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[] }
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row')
    assert.ok(panels.length >= 20, 'a panel for each area')
    const types = exported(metrics)
    const missing: string[] = []
    for (const panel of panels) {
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has a query`)
      for (const { expr } of panel.targets) {
        const names = [...expr.matchAll(/\bberth_[a-z0-9_]+/g)].map((m) => m[0])
        assert.ok(names.length > 0, `${panel.title}: ${expr} names a Berth metric`)
        for (const name of names) if (!isExported(name, types)) missing.push(`${panel.title}: ${name}`)
      }
    }
    assert.deepEqual(missing, [])
  })

  it('counts pushes, pulls, failed sign-ins, GC runs, jobs and stored bytes', () => {
    assert.equal(sample(metrics, 'berth_manifest_pushes_total{project="library"}'), 1)
    assert.equal(sample(metrics, 'berth_manifest_pulls_total{project="library"}'), 1)
    assert.ok((sample(metrics, 'berth_auth_failures_total') ?? 0) >= 1, 'the failed sign-in')
    assert.equal(sample(metrics, 'berth_gc_runs_total{result="succeeded"}'), 1)
    assert.equal(sample(metrics, 'berth_gc_freed_bytes_total'), 0)
    assert.equal(sample(metrics, 'berth_project_stored_bytes{project="library"}'), storedBytes)
    assert.equal(sample(metrics, 'berth_jobs{status="queued"}'), 1)
  })
})
