import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { browserSkip, launchBrowser, noSeriousViolations, screenshot, signedInPage } from '../helpers/browser.js'
import type { TestServer } from '../helpers/server.js'
import { ensureUiBuilt } from '../helpers/ui.js'
import { cosignSignImage, keyPair, pushImage, type KeyPair } from '../trust/helpers.js'
import { keylessBundle, pushBundle, testSigstore } from '../trust/sigstore-bundles.js'

// Signatures in a real browser: an image signed the way cosign signs (a referrer), its badges
// before and after a project administrator trusts the key in the project's settings, the
// signature policy (require cosign, an exempt pattern) and what it does to an unsigned image,
// deleting the key, the registry-wide keys of the administration (a cosign key, and a Sigstore
// trusted root under which a keyless bundle verifies), and a guest who sees the badges but no
// settings.

const skip = browserSkip()
const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12)

describe('signatures in the web UI', { skip }, () => {
  let s: TestServer
  let browser: Browser
  let signed: string
  let unsigned: string
  let signature: string
  let key: KeyPair

  before(async () => {
    ensureUiBuilt()
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    for (const [user, role] of [
      ['pat', 'projectAdmin'],
      ['viewer', 'guest'],
    ] as const) {
      await addUser(s, user)
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: user, role }, 201)
    }
    const c = { url: s.url, auth: ADMIN }
    signed = await pushImage(c, 'team/app', 'v1')
    unsigned = await pushImage(c, 'team/app', 'v2')
    key = keyPair('ecdsa-p256')
    signature = await cosignSignImage(c, 'team/app', signed, key, { mode: 'referrer' })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await s?.close()
  })

  test('a project administrator trusts a key, sets the policy, and the badges follow', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${signed}`, 'pat', 'pat-password-1')
    const section = page.getByRole('region', { name: 'Signatures' })
    const badges = section.getByTestId('signature-badges')
    await badges.filter({ hasText: '1 signature not verified' }).waitFor()
    const row = section.getByRole('row').filter({ hasText: short(signature) })
    assert.deepEqual((await row.getByRole('cell').allTextContents()).slice(0, 3), ['cosign', 'referrer', short(signature)])
    assert.match((await row.getByRole('cell').nth(3).textContent()) ?? '', /^no: /)

    // the project's settings: trust the key
    await page.goto(`${s.url}/projects/team/security`)
    const keys = page.getByRole('region', { name: 'Trust keys' })
    await keys.getByText('No trusted keys.').waitFor()
    const form = page.getByRole('form', { name: 'Add a trusted key' })
    await form.getByLabel('Key name').fill('ci')
    await form.getByLabel('Public key (PEM)').fill(key.publicPem)
    await form.getByRole('button', { name: 'Add key' }).click()
    await keys.getByRole('row').filter({ hasText: 'ci' }).getByRole('cell', { name: 'ecdsa-p256' }).waitFor()
    const listed = await apiOk<{ name: string; type: string; algorithm: string; scope: string }[]>(s, 'GET', '/projects/team/trust/keys', ADMIN)
    assert.deepEqual(
      listed.map((k) => [k.name, k.type, k.algorithm, k.scope]),
      [['ci', 'cosign', 'ecdsa-p256', 'project']],
    )
    // a key that is no PEM: the server's words, nothing added
    await form.getByLabel('Key name').fill('bad')
    await form.getByLabel('Public key (PEM)').fill('not a key')
    await form.getByRole('button', { name: 'Add key' }).click()
    await form.getByRole('alert').filter({ hasText: /PEM public key/ }).waitFor()
    assert.equal((await apiOk<unknown[]>(s, 'GET', '/projects/team/trust/keys', ADMIN)).length, 1)

    // the policy: cosign required, sandbox/** exempt
    const policy = page.getByRole('form', { name: 'Signature policy' })
    await policy.getByLabel('Pulls require a verified signature').selectOption('cosign')
    await policy.getByLabel('Exempt repositories').fill('sandbox/**')
    await noSeriousViolations(page, 'project trust settings')
    await policy.getByRole('button', { name: 'Save signature policy' }).click()
    await policy.getByRole('status').filter({ hasText: 'Signature policy saved.' }).waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/trust/policy', ADMIN), { require: 'cosign', exemptRepositories: 'sandbox/**' })
    await screenshot(page, 'project-signatures')

    // back on the signed image: verified with the project's key, pulls allowed
    await page.goto(`${s.url}/repositories/team/app/artifacts/${signed}`)
    await badges.filter({ hasText: 'cosign signature verified' }).waitFor()
    assert.equal(await badges.textContent(), 'cosign signature verified')
    assert.equal(await section.getByTestId('trust-policy').textContent(), 'The project requires cosign signatures: pulls are allowed.')
    assert.deepEqual((await row.getByRole('cell').allTextContents()).slice(3), ['yes', 'ci (project)'])
    await noSeriousViolations(page, 'artifact signatures')
    await screenshot(page, 'artifact-signatures')

    // the unsigned image: refused, and said so
    await page.goto(`${s.url}/repositories/team/app/artifacts/${unsigned}`)
    await badges.filter({ hasText: 'unsigned' }).waitFor()
    assert.match((await section.getByTestId('trust-policy').textContent()) ?? '', /^The project requires cosign signatures: pulls are refused \(.+\)\.$/)
    const pull = await fetch(`${s.url}/v2/team/app/manifests/v2`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(pull.status, 403)

    // deleting the key (the confirmation is accepted): the signature no longer verifies
    await page.goto(`${s.url}/projects/team/security`)
    await keys.getByRole('button', { name: 'Delete key ci' }).click()
    await keys.getByText('No trusted keys.').waitFor()
    assert.deepEqual(await apiOk(s, 'GET', '/projects/team/trust/keys', ADMIN), [])
    await page.goto(`${s.url}/repositories/team/app/artifacts/${signed}`)
    await badges.filter({ hasText: '1 signature not verified' }).waitFor()
    await context.close()
  })

  test('a system administrator trusts a key in every project', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/admin/trust`, 'admin', ADMIN_PASSWORD)
    const keys = page.getByRole('region', { name: 'System trust keys' })
    await keys.getByText('No trusted keys.').waitFor()
    const form = page.getByRole('form', { name: 'Add a trusted key' })
    await form.getByLabel('Key name').fill('release')
    await form.getByLabel('Public key (PEM)').fill(key.publicPem)
    await form.getByRole('button', { name: 'Add key' }).click()
    await keys.getByRole('row').filter({ hasText: 'release' }).waitFor()
    const listed = await apiOk<{ name: string; scope: string }[]>(s, 'GET', '/trust/keys', ADMIN)
    assert.deepEqual(
      listed.map((k) => [k.name, k.scope]),
      [['release', 'system']],
    )
    // a Sigstore trusted root, added with the form, is listed with the keyless signers it trusts
    const sg = testSigstore()
    const identity = { issuer: 'https://accounts.berth.test', subject: 'release@berth.test' }
    await form.getByLabel('Kind').selectOption('sigstore')
    await form.getByLabel('Key name').fill('keyless')
    await form.getByLabel('Trusted root (trusted_root.json)').fill('{"certificateAuthorities": []}')
    await form.getByLabel('Keyless signers').fill(`${identity.issuer} ${identity.subject}`)
    assert.ok(await form.getByLabel('Require a transparency log (Rekor) entry').isChecked(), 'a log entry is required by default')
    await noSeriousViolations(page, 'sigstore trusted root form')
    await form.getByRole('button', { name: 'Add key' }).click()
    // a root without a CA: the server's words, nothing added
    await form.getByRole('alert').filter({ hasText: /certificateAuthorities lists no CA/i }).waitFor()
    await form.getByLabel('Trusted root (trusted_root.json)').fill(JSON.stringify(sg.trustedRoot, null, 2))
    await form.getByRole('button', { name: 'Add key' }).click()
    await keys
      .getByRole('row')
      .filter({ hasText: 'keyless' })
      .getByRole('cell', { name: `keyless signers ${identity.subject} (${identity.issuer}) · transparency log required` })
      .waitFor()
    const roots = await apiOk<{ name: string; type: string; scope: string; identities: unknown; requireTlog: boolean }[]>(s, 'GET', '/trust/keys', ADMIN)
    assert.deepEqual(
      roots.filter((k) => k.type === 'sigstore').map((k) => [k.name, k.scope, k.identities, k.requireTlog]),
      [['keyless', 'system', [identity], true]],
    )
    await noSeriousViolations(page, 'system trust keys')
    // a keyless bundle of that signer now verifies under the root
    const keylessImage = await pushImage({ url: s.url, auth: ADMIN }, 'team/app', 'v3')
    await pushBundle({ url: s.url, auth: ADMIN }, 'team/app', keylessImage, keylessBundle(sg, { digest: keylessImage }))
    await s.app.trust.settled()
    await page.goto(`${s.url}/repositories/team/app/artifacts/${keylessImage}`)
    const keylessRow = page.getByRole('region', { name: 'Signatures' }).getByRole('row').filter({ hasText: 'yes' })
    await keylessRow.waitFor()
    assert.match((await keylessRow.getByRole('cell').last().textContent()) ?? '', /^keyless \(system\)/)
    await page.goto(`${s.url}/repositories/team/app/artifacts/${signed}`)
    const section = page.getByRole('region', { name: 'Signatures' })
    await section.getByTestId('signature-badges').filter({ hasText: 'cosign signature verified' }).waitFor()
    const row = section.getByRole('row').filter({ hasText: short(signature) })
    assert.deepEqual((await row.getByRole('cell').allTextContents()).slice(3), ['yes', 'release (system)'])
    await context.close()
  })

  test('a guest sees the badges and no trust settings; the API refuses a key from a guest', async () => {
    const { context, page } = await signedInPage(browser, `${s.url}/repositories/team/app/artifacts/${signed}`, 'viewer', 'viewer-password-1')
    await page.getByRole('region', { name: 'Signatures' }).getByTestId('signature-badges').filter({ hasText: 'cosign signature verified' }).waitFor()
    await page.getByRole('link', { name: 'team', exact: true }).click()
    await page.getByRole('link', { name: 'Members' }).waitFor()
    assert.equal(await page.getByRole('link', { name: 'Scanning and signatures' }).count(), 0)
    await context.close()
    const refused = await api(s, 'POST', '/projects/team/trust/keys', 'Basic ' + Buffer.from('viewer:viewer-password-1').toString('base64'), { name: 'x', type: 'cosign', publicKey: key.publicPem })
    assert.equal(refused.status, 403)
  })
})
