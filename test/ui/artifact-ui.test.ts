import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'
import { pushAsAdmin } from '../events/receiver.js'

// The artifact page in a real browser: its referrers as a tree (a signature and an SBOM of the
// image, and a signature of the SBOM below it), and adding a tag for a developer (push right);
// a guest gets no such form.

const skip = browserSkip()
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

async function putBlob(s: TestServer, repo: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data)
  const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { authorization: ADMIN } })
  assert.equal(res.status, 201)
  return { digest, size: data.length }
}

/** Pushes an OCI artifact (empty config, one blob) that refers to `subject`; returns its descriptor. */
async function pushReferrer(s: TestServer, repo: string, artifactType: string, subject: { digest: string; size: number }, content: string): Promise<{ digest: string; size: number }> {
  const config = await putBlob(s, repo, Buffer.from('{}'))
  const blob = await putBlob(s, repo, Buffer.from(content))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', ...config },
      layers: [{ mediaType: 'application/octet-stream', ...blob }],
      subject: { mediaType: MANIFEST, ...subject },
    }),
  )
  const digest = sha256(manifest)
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${digest}`, { method: 'PUT', body: asBody(manifest), headers: { authorization: ADMIN, 'content-type': MANIFEST } })
  assert.equal(res.status, 201, await res.text())
  return { digest, size: manifest.length }
}

const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12)

describe('the artifact page in the web UI: referrers tree and adding a tag', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let image: { digest: string; size: number }
  let signature: { digest: string; size: number }
  let sbom: { digest: string; size: number }
  let sbomSignature: { digest: string; size: number }

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    for (const [user, role] of [['dev', 'developer'], ['viewer', 'guest']]) {
      await addUser(s, user ?? '')
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: user, role }, 201)
    }
    const digest = await pushAsAdmin(s, 'team/app', 'v1', 'artifact-ui')
    const bytes = await (await fetch(`${s.url}/v2/team/app/manifests/v1`, { headers: { authorization: ADMIN, accept: MANIFEST } })).arrayBuffer()
    image = { digest, size: bytes.byteLength }
    signature = await pushReferrer(s, 'team/app', 'application/vnd.dev.cosign.artifact.sig.v1+json', image, 'a signature')
    sbom = await pushReferrer(s, 'team/app', 'application/spdx+json', image, '{"spdxVersion":"SPDX-2.3"}')
    sbomSignature = await pushReferrer(s, 'team/app', 'application/vnd.dev.cosign.artifact.sig.v1+json', sbom, 'a signature of the SBOM')
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
  })

  test('a developer sees the referrers as a tree and adds a tag', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${image.digest}`, 'dev', 'dev-password-1')
    const tree = page.getByRole('list', { name: 'Referrers', exact: true })
    const top = tree.locator(':scope > li')
    await top.filter({ hasText: short(sbom.digest) }).waitFor()
    assert.equal(await top.count(), 2, 'the signature and the SBOM refer to the image')
    const sig = top.filter({ hasText: short(signature.digest) })
    assert.match((await sig.textContent()) ?? '', /^signature/)
    const sbomItem = top.filter({ hasText: short(sbom.digest) })
    assert.match((await sbomItem.textContent()) ?? '', /^SBOM/)
    // below the SBOM: its own signature, one level down
    const below = sbomItem.getByRole('list', { name: `Referrers of ${short(sbom.digest)}` })
    await below.getByRole('link', { name: short(sbomSignature.digest) }).waitFor()
    assert.match((await below.locator(':scope > li').textContent()) ?? '', /^signature/)
    assert.equal(await sig.getByRole('list').count(), 0, 'nothing refers to the image signature')
    await noSeriousViolations(page, 'artifact referrers')
    await screenshot(page, 'artifact-referrers')

    // a tag added in the page names the same digest
    const form = page.getByRole('form', { name: 'Add a tag' })
    await form.getByLabel('New tag').fill('stable')
    await form.getByRole('button', { name: 'Add tag' }).click()
    await form.getByRole('status').filter({ hasText: 'Tag added.' }).waitFor()
    await page.getByRole('definition').filter({ hasText: 'stable' }).waitFor()
    const tags = await apiOk<{ items: { name: string; digest: string }[] }>(s, 'GET', '/projects/team/repositories/app/tags?sort=name', ADMIN)
    assert.deepEqual(
      tags.items.map((t) => [t.name, t.digest]),
      [
        ['stable', image.digest],
        ['v1', image.digest],
      ],
    )
    // the referrer's link leads to its page, whose subject links back
    await sbomItem.getByRole('link', { name: short(sbom.digest), exact: true }).click()
    await page.waitForURL(new RegExp(`/artifacts/${sbom.digest}$`))
    await page.getByRole('link', { name: short(image.digest) }).waitFor()
    await context.close()
  })

  test('a guest sees the tree and no form to add a tag', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${image.digest}`, 'viewer', 'viewer-password-1')
    await page.getByRole('list', { name: 'Referrers', exact: true }).getByRole('link', { name: short(sbomSignature.digest) }).waitFor()
    assert.equal(await page.getByRole('form', { name: 'Add a tag' }).count(), 0)
    assert.equal(await page.getByLabel('New tag').count(), 0)
    await context.close()
  })
})
