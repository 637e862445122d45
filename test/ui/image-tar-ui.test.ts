import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { listTar, readTarEntry } from '../../src/transfer/layout-store.js'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, basic, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import { multiArchLayout, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, removeTempDir, run } from '../helpers/e2e-process.js'
import { containersEnv, pushFromLayout } from '../helpers/e2e-registry.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'

// Image tars in a real browser: a developer downloads a pushed multi-arch image as an OCI layout
// tar (and one platform as a docker-archive) from the artifact page, checks what is inside, and
// imports the tar into another project from the project page (upload progress, then the images
// listed); skopeo pulls the imported image back. A guest downloads but gets no import form, and
// the API refuses the import.

const skip = browserSkip()
const MANIFEST_TYPES = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** Clicks the link named `name` and saves what it downloads as `file`; the name the server gave it. */
async function download(page: Page, name: string, file: string): Promise<string> {
  const [saved] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name, exact: true }).click()])
  assert.equal(await saved.failure(), null)
  await saved.saveAs(file)
  return saved.suggestedFilename()
}

describe('image tars in the web UI: download and import', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let work: string
  let amd64: Image
  let arm64: Image
  let index: Index

  before(async () => {
    ensureUiBuilt()
    work = await makeTempDir('berth-image-tar-ui-')
    s = await startAuthServer()
    for (const project of ['team', 'other']) await apiOk(s, 'POST', '/projects', ADMIN, { name: project }, 201)
    for (const [user, role] of [
      ['dev', 'developer'],
      ['viewer', 'guest'],
    ] as const) {
      await addUser(s, user)
      for (const project of ['team', 'other']) await apiOk(s, 'POST', `/projects/${project}/members`, ADMIN, { username: user, role }, 201)
    }
    ;({ amd64, arm64, index } = await multiArchLayout(join(work, 'src')))
    await pushFromLayout(s.url, 'team/app', join(work, 'src'), index.descriptor, 'multi', { authorization: ADMIN })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
    await removeTempDir(work)
  })

  test('a developer downloads an image as an OCI tar and imports it into another project', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${index.descriptor.digest}`, 'dev', 'dev-password-1')
    await page.getByRole('heading', { level: 1 }).filter({ hasText: 'app' }).waitFor()
    // An index is no container image: no docker-archive of it, one per platform instead.
    assert.equal(await page.getByRole('link', { name: 'Download as docker-archive' }).count(), 0)
    const tar = join(work, 'downloaded.oci.tar')
    assert.match(await download(page, 'Download as OCI tar', tar), /^app_[0-9a-f]{12}\.oci\.tar$/)

    // The tar is an OCI layout naming the index by its tag, with every blob under its digest.
    const entries = await listTar(tar)
    const entry = (name: string) => {
      const e = entries.find((x) => x.name === name)
      assert.ok(e, `${name} in ${entries.map((x) => x.name).join(' ')}`)
      return readTarEntry(tar, e)
    }
    assert.deepEqual(JSON.parse((await entry('oci-layout')).toString()), { imageLayoutVersion: '1.0.0' })
    const layoutIndex = JSON.parse((await entry('index.json')).toString()) as { manifests: { digest: string; annotations?: Record<string, string> }[] }
    assert.deepEqual(
      layoutIndex.manifests.map((m) => [m.digest, m.annotations?.['org.opencontainers.image.ref.name']]),
      [[index.descriptor.digest, 'multi']],
    )
    for (const digest of [index.descriptor.digest, ...[amd64, arm64].flatMap((i) => [i.descriptor.digest, i.config.digest, ...i.layers.map((l) => l.descriptor.digest)])]) {
      assert.equal(sha256(await entry(`blobs/sha256/${digest.slice(7)}`)), digest, `the blob ${digest} holds its bytes`)
    }

    // One platform, as a docker-archive: manifest.json names its config and its layers.
    await page.getByLabel('Platform').selectOption(arm64.descriptor.digest)
    await page.waitForURL(new RegExp(`/artifacts/${arm64.descriptor.digest}$`))
    const archive = join(work, 'arm64.docker.tar')
    await download(page, 'Download as docker-archive', archive)
    const archiveEntries = await listTar(archive)
    const manifestJson = archiveEntries.find((e) => e.name === 'manifest.json')
    assert.ok(manifestJson)
    const [docker] = JSON.parse((await readTarEntry(archive, manifestJson)).toString()) as { Config: string; Layers: string[] }[]
    assert.equal(docker?.Config, `blobs/sha256/${arm64.config.digest.slice(7)}`)
    assert.equal(docker?.Layers.length, arm64.layers.length)

    // The OCI tar goes into the other project, under a new name and tag, from the project page.
    await page.goto(`${s.url}/projects/other`)
    const form = page.getByRole('form', { name: 'Import an image tar' })
    await form.getByLabel('Image tar').setInputFiles(tar)
    await form.getByLabel('Repository', { exact: true }).fill('restored/app')
    await form.getByLabel('Tag', { exact: true }).fill('v1')
    await noSeriousViolations(page, 'image tar import')
    await form.getByRole('button', { name: 'Import' }).click()
    const imported = page.getByRole('group', { name: 'Imported' })
    const row = imported.getByRole('row').filter({ hasText: 'other/restored/app' })
    await row.waitFor()
    assert.deepEqual(await row.getByRole('cell').allTextContents(), ['other/restored/app', 'v1', index.descriptor.digest.slice(7, 19)])
    // the progress bar reached the file's size
    const size = (await stat(tar)).size
    const bar = page.getByRole('progressbar', { name: 'Upload progress' })
    assert.deepEqual(await bar.evaluate((p: HTMLProgressElement) => [p.value, p.max]), [size, size])
    await page.getByRole('status').filter({ hasText: 'sent and imported' }).waitFor()
    // the repository list shows the new repository (the list was refreshed)
    await page.getByRole('region', { name: 'Repositories' }).getByRole('link', { name: 'other/restored/app' }).waitFor()
    await screenshot(page, 'image-import')

    // Berth holds the same index, both images and their blobs under the new name.
    const res = await fetch(`${s.url}/v2/other/restored/app/manifests/v1`, { headers: { authorization: ADMIN, accept: MANIFEST_TYPES } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('docker-content-digest'), index.descriptor.digest)
    for (const image of [amd64, arm64]) {
      const child = await fetch(`${s.url}/v2/other/restored/app/manifests/${image.descriptor.digest}`, { method: 'HEAD', headers: { authorization: ADMIN, accept: MANIFEST_TYPES } })
      assert.equal(child.status, 200, image.descriptor.digest)
    }
    // and a real client pulls it back, every platform, with the same digests
    const skopeo = findBinary('skopeo')
    if (skopeo) {
      const env = await containersEnv(join(work, 'containers'))
      await run(skopeo, ['copy', '--all', '--preserve-digests', '--src-tls-verify=false', '--src-creds', `admin:${ADMIN_PASSWORD}`, `docker://${s.host}/other/restored/app:v1`, `oci:${join(work, 'pulled')}:v1`], { env, cwd: work })
      const inspected = JSON.parse((await run(skopeo, ['inspect', '--raw', `oci:${join(work, 'pulled')}:v1`], { env, cwd: work })).stdout) as { manifests: { digest: string }[] }
      assert.deepEqual(inspected.manifests.map((m) => m.digest), [amd64.descriptor.digest, arm64.descriptor.digest])
    }

    // A damaged tar: the error in plain words, nothing imported.
    await page.goto(`${s.url}/repositories/other/restored%2Fapp`)
    const again = page.getByRole('form', { name: 'Import an image tar' })
    await again.getByLabel('Image tar').setInputFiles({ name: 'broken.tar', mimeType: 'application/x-tar', buffer: Buffer.from('this is not a tar file at all') })
    assert.equal(await again.getByLabel('Repository', { exact: true }).count(), 0, 'the repository page imports into itself')
    await again.getByRole('button', { name: 'Import' }).click()
    await again.getByRole('alert').filter({ hasText: /tar/i }).waitFor()
    const tags = await apiOk<{ items: { name: string }[] }>(s, 'GET', '/projects/other/repositories/restored%2Fapp/tags', ADMIN)
    assert.deepEqual(tags.items.map((t) => t.name), ['v1'])
    await context.close()
  })

  test('a guest downloads but finds no import form, and the API refuses the import', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${amd64.descriptor.digest}`, 'viewer', 'viewer-password-1')
    const file = join(work, 'guest.docker.tar')
    await download(page, 'Download as docker-archive', file)
    assert.ok((await listTar(file)).some((e) => e.name === 'manifest.json'))
    await page.goto(`${s.url}/projects/team`)
    await page.getByRole('region', { name: 'Repositories' }).getByRole('link', { name: 'team/app' }).waitFor()
    assert.equal(await page.getByRole('form', { name: 'Import an image tar' }).count(), 0)
    await page.getByRole('region', { name: 'Repositories' }).getByRole('link', { name: 'team/app' }).click()
    await page.getByRole('region', { name: 'Tags' }).getByRole('link', { name: 'multi' }).waitFor()
    assert.equal(await page.getByRole('form', { name: 'Import an image tar' }).count(), 0)
    await context.close()
    const refused = await api(s, 'POST', '/projects/team/repositories/app/import', basic('viewer', 'viewer-password-1'))
    assert.equal(refused.status, 403)
  })
})
