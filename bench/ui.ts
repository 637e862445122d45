// Web UI benchmark: `node --import tsx bench/ui.ts` (UI_TAGS to resize; needs /usr/bin/chromium).
// Measures the UI's JavaScript (gzipped: first load and every chunk, from the build in dist/ui),
// then pushes one image and gives it UI_TAGS tags (100,000 by default) in one repository of a
// Berth with auth on (SQLite), and times, in headless chromium, from navigation to the repository page
// until its first tag row is on screen (a full page load each time: HTML, JS, /me, the project,
// the repository, the first page of tags), and the first page of tags from the API alone.
// Prints a markdown section for BENCHMARKS.md.

import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { bundleSizes } from '../scripts/build-ui.js'
import { openMetadata } from '../src/metadata/db.js'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer, token } from '../test/helpers/auth.js'
import { launchBrowser } from '../test/helpers/browser.js'
import { asBody, sha256 } from '../test/helpers/oci.js'
import { ensureUiBuilt } from '../test/helpers/ui.js'

const TAGS = Number(process.env.UI_TAGS ?? 100_000)
const RUNS = 5
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

ensureUiBuilt()
const sizes = bundleSizes()
const s = await startAuthServer()
try {
  // A bearer token (Basic credentials would cost a password hash per request).
  const granted = await token(s, ADMIN, 'repository:library/many:pull,push')
  const headers = { authorization: `Bearer ${granted.token}` }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
  const configDigest = sha256(config)
  const up = await fetch(`${s.url}/v2/library/many/blobs/uploads/?digest=${configDigest}`, { method: 'POST', body: asBody(config), headers })
  if (up.status !== 201) throw new Error(`config push: HTTP ${up.status}`)
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers: [] }),
  )
  // One tag through the registry API (repository, manifest and tag rows as a push makes them),
  // then the other tags as rows of the same manifest: pushing 100,000 tags one by one would
  // measure manifest PUTs, not the UI.
  const started = performance.now()
  const res = await fetch(`${s.url}/v2/library/many/manifests/v0.0.0`, {
    method: 'PUT',
    body: asBody(manifest),
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  })
  if (res.status !== 201) throw new Error(`manifest push: HTTP ${res.status} ${await res.text()}`)
  const metadata = await openMetadata(`sqlite:${join(s.dataDir, 'berth.db')}`)
  try {
    const { db } = metadata
    const row = await db.selectFrom('tags').select(['repository_id', 'manifest_digest', 'updated_at']).where('name', '=', 'v0.0.0').executeTakeFirstOrThrow()
    for (let i = 1; i < TAGS; i += 1000) {
      const values = []
      for (let j = i; j < Math.min(i + 1000, TAGS); j++) values.push({ repository_id: row.repository_id, name: `v${Math.floor(j / 1000)}.${j % 1000}.0`, manifest_digest: row.manifest_digest, updated_at: row.updated_at + j })
      await db.insertInto('tags').values(values).execute()
    }
  } finally {
    await metadata.close()
  }
  const pushSeconds = (performance.now() - started) / 1000
  const apiTimes: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now()
    const page = await apiOk<{ total: number }>(s, 'GET', '/projects/library/repositories/many/tags?sort=pushed&limit=100', ADMIN)
    apiTimes.push(performance.now() - t)
    if (page.total !== TAGS) throw new Error(`expected ${TAGS} tags, the API says ${page.total}`)
  }

  const browser = await launchBrowser()
  const uiTimes: number[] = []
  try {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${s.url}/sign-in`)
    await page.getByLabel('Username').fill('admin')
    await page.getByLabel('Password').fill(ADMIN_PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${s.url}/`)
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now()
      const seen: string[] = []
      const log = (r: { url(): string }) => seen.push(`${Math.round(performance.now() - t)}ms ${r.url().replace(s.url, '')}`)
      if (process.env.UI_TRACE) page.on('requestfinished', log)
      await page.goto(`${s.url}/repositories/library/many`)
      await page.locator('tbody tr td a').first().waitFor()
      uiTimes.push(performance.now() - t)
      page.off('requestfinished', log)
      if (process.env.UI_TRACE) console.error(seen.join('\n'), `\nrow: ${Math.round(performance.now() - t)}ms`)
    }
  } finally {
    await browser.close()
  }

  console.log(`## Web UI (\`bench/ui.ts\`)

${new Date().toISOString().slice(0, 10)}, \`node --import tsx bench/ui.ts\` (UI_TAGS=${TAGS}), headless Debian chromium, SQLite + filesystem:

| measure | value |
| --- | --- |
| JavaScript on first load, gzipped (entry chunk and its static imports) | ${kib(sizes.firstLoad)} |
| JavaScript of every chunk, gzipped (${sizes.chunks} chunks, routes code-split) | ${kib(sizes.total)} |
| tags in the repository | ${TAGS.toLocaleString('en')} (one pushed, the others written as rows, in ${pushSeconds.toFixed(0)} s) |
| first page of tags from the API (100, by push time), median of ${RUNS} | ${median(apiTimes).toFixed(0)} ms |
| repository page: navigation to the first tag row on screen, median of ${RUNS} (min–max) | ${median(uiTimes).toFixed(0)} ms (${Math.min(...uiTimes).toFixed(0)}–${Math.max(...uiTimes).toFixed(0)}) |
`)
} finally {
  await s.close()
}
