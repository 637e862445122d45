import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { listTar, readTarEntry } from '../../src/transfer/layout-store.js'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'
import { exportedLayout, MOTD, type ExportedLayout } from '../browse/layout-fixture.js'

// A layout-backed project in a real browser: the system administrator (who may delete anything
// elsewhere) browses a project served from an OCI image layout written by `berth export`, from
// the project page to a tag, its artifact page and a file inside a layer, and downloads the image
// as an OCI tar; every page says the project is read-only and offers no delete, tag or import.

const skip = browserSkip()
const BADGE = 'read-only: served from an OCI layout directory'
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe('a layout-backed project in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let fx: ExportedLayout

  before(async () => {
    ensureUiBuilt()
    fx = await exportedLayout('berth-layout-ui-')
    s = await startAuthServer({ layouts: { allowedRoots: [fx.roots] } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'offline', layout: { path: fx.dir } }, 201)
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
    if (fx) await rm(fx.work, { recursive: true, force: true })
  })

  test('browses to a file inside a layer and downloads the image, with no delete, tag or import control', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/projects/offline`, 'admin', ADMIN_PASSWORD)
    await page.getByText(BADGE, { exact: true }).waitFor()
    const repos = page.getByRole('region', { name: 'Repositories' })
    const row = repos.getByRole('row').filter({ hasText: 'offline/app' })
    await row.waitFor()
    // pulls and last push do not exist for a layout: shown as absent
    const cells = await row.getByRole('cell').allTextContents()
    assert.equal(cells[1], '2', JSON.stringify(cells))
    assert.deepEqual(cells.slice(3), ['—', '—'])
    assert.equal(await page.getByRole('form', { name: 'Import an image tar' }).count(), 0)
    await noSeriousViolations(page, 'layout project')

    await repos.getByRole('link', { name: 'offline/app' }).click()
    const tags = page.getByRole('region', { name: 'Tags' })
    await tags.getByRole('link', { name: 'v1', exact: true }).waitFor()
    await page.getByText(BADGE, { exact: true }).waitFor()
    assert.equal(await page.getByRole('button', { name: 'Delete repository' }).count(), 0)
    assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0)
    assert.equal(await tags.getByRole('checkbox').count(), 0, 'no tag can be selected for deletion')
    // no push or pull times exist for a layout's tags: no such sort is offered
    assert.deepEqual(await tags.getByLabel('Sort by').locator('option').allTextContents(), ['name', 'semantic version'])
    assert.equal(await page.getByRole('form', { name: 'Import an image tar' }).count(), 0)
    await noSeriousViolations(page, 'layout repository')
    await screenshot(page, 'layout-repository')

    await tags.getByRole('link', { name: 'v1', exact: true }).click()
    await page.waitForURL(new RegExp(`/artifacts/${fx.v1.descriptor.digest}$`))
    await page.getByText(BADGE, { exact: true }).waitFor()
    await page.getByText('berth e2e layer 1').waitFor()
    assert.equal(await page.getByRole('form', { name: 'Add a tag' }).count(), 0)
    assert.equal(await page.getByRole('button', { name: /delete/i }).count(), 0)

    await page.getByRole('tab', { name: 'Files' }).click()
    await page.getByRole('button', { name: 'etc/', exact: true }).click()
    await page.getByRole('button', { name: 'motd', exact: true }).click()
    await page.getByTestId('file-content').getByText(MOTD.trim()).waitFor()
    await noSeriousViolations(page, 'layout file browser')
    await screenshot(page, 'layout-files')

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download as OCI tar', exact: true }).click()])
    assert.equal(await download.failure(), null)
    const file = join(fx.work, 'ui.oci.tar')
    await download.saveAs(file)
    const entries = await listTar(file)
    const manifest = entries.find((e) => e.name === `blobs/sha256/${fx.v1.descriptor.digest.slice(7)}`)
    assert.ok(manifest, entries.map((e) => e.name).join(' '))
    assert.equal(sha256(await readTarEntry(file, manifest)), fx.v1.descriptor.digest)
    await context.close()
  })
})
