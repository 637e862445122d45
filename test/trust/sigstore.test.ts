import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { api, apiOk } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { assertRejected, OCI_MANIFEST, pushImage, signedImage, type SignatureStatus } from './helpers.js'
import { keylessBundle, pushBundle, testSigstore, type BundleOptions, type TestSigstore } from './sigstore-bundles.js'

// Sigstore bundles (cosign keyless: a test Fulcio CA and Rekor log made here) verified offline
// inside Berth with @sigstore/verify against a trusted root uploaded as registry-wide material.

const IDENTITY = { issuer: 'https://accounts.berth.test', subject: 'release@berth.test' }

describe('Sigstore bundles verified inside Berth', () => {
  let s: TestServer
  let sg: TestSigstore
  let n = 0

  /** A new image of `project` with a bundle made by `opts(digest)`; its status once verified. */
  const bundled = (project: string, opts: (digest: string) => Partial<BundleOptions>, sigstore = () => sg) => {
    const repo = `app-${++n}`
    return signedImage(s, project, repo, (digest) => pushBundle(s, `${project}/${repo}`, digest, keylessBundle(sigstore(), { digest, ...opts(digest) })))
  }

  const rejected = (st: SignatureStatus, reason: RegExp) => assertRejected(st, { type: 'cosign', bundle: true }, reason)

  before(async () => {
    s = await startServer()
    sg = testSigstore()
    await apiOk(s, 'POST', '/trust/keys', undefined, { name: 'test-sigstore', type: 'sigstore', trustedRoot: sg.trustedRoot, identities: [IDENTITY] }, 201)
  })
  after(() => s.close())

  it('lists the root as registry-wide material, and refuses unusable roots and identities with 400', async () => {
    const listed = await apiOk<{ name: string; type: string; scope: string; requireTlog: boolean; identities: unknown }[]>(s, 'GET', '/trust/keys', undefined)
    assert.deepEqual(listed.map((m) => ({ name: m.name, type: m.type, scope: m.scope, requireTlog: m.requireTlog, identities: m.identities })), [{ name: 'test-sigstore', type: 'sigstore', scope: 'system', requireTlog: true, identities: [IDENTITY] }])
    const bad = async (body: Record<string, unknown>, field: RegExp) => {
      const res = await api(s, 'POST', '/trust/keys', undefined, { name: 'bad', type: 'sigstore', ...body })
      assert.equal(res.status, 400)
      assert.match(await res.text(), field)
    }
    await bad({ trustedRoot: { ...sg.trustedRoot, certificateAuthorities: [] }, identities: [IDENTITY] }, /trustedRoot.*certificateAuthorities lists no CA/)
    await bad({ trustedRoot: { ...sg.trustedRoot, certificateAuthorities: [{ certChain: { certificates: [{ rawBytes: 'bm90IGEgY2VydA==' }] } }] }, identities: [IDENTITY] }, /trustedRoot.*not a usable Sigstore trusted root/)
    await bad({ trustedRoot: sg.trustedRoot, identities: [] }, /identities/)
    await bad({ trustedRoot: sg.trustedRoot, identities: [{ issuer: 'https://x' }] }, /identities/)
    await bad({ trustedRoot: sg.trustedRoot, identities: [IDENTITY], requireTlog: 'yes' }, /requireTlog/)
  })

  it('verifies a keyless bundle: certificate chain, signature, inclusion promise and proof, identity', async () => {
    const { status: st } = await bundled('sig', () => ({}))
    assert.deepEqual(st.verified, ['cosign'])
    assert.deepEqual(st.signatures, [{ ...st.signatures[0], type: 'cosign', bundle: true, verified: true, key: 'test-sigstore', keyScope: 'system', identity: 'release@berth.test (issuer https://accounts.berth.test)' }])
  })

  it('rejects a bundle with a broken inclusion proof', async () => {
    rejected((await bundled('sig', () => ({ brokenProof: true }))).status, /test-sigstore: TLOG_INCLUSION_PROOF_ERROR: calculated root hash does not match inclusion proof/)
  })

  it('rejects a tampered payload', async () => {
    rejected((await bundled('sig', () => ({ tamper: true }))).status, /test-sigstore: TLOG_BODY_ERROR: DSSE payload hash mismatch/)
  })

  it('rejects a certificate from another CA and a log entry from another log', async () => {
    const other = testSigstore()
    rejected((await bundled('sig', () => ({}), () => other)).status, /test-sigstore: CERTIFICATE_ERROR: Failed to verify certificate chain/)
  })

  it('rejects a signer that is not a trusted identity', async () => {
    const { status: st } = await bundled('sig', () => ({ subject: 'mallory@berth.test' }))
    rejected(st, /test-sigstore: mallory@berth\.test \(issuer https:\/\/accounts\.berth\.test\) is not one of its trusted identities/)
    const issuer = await bundled('sig', () => ({ issuer: 'https://other-issuer.test' }))
    rejected(issuer.status, /release@berth\.test \(issuer https:\/\/other-issuer\.test\) is not one of its trusted identities/)
  })

  it('rejects a bundle for another digest', async () => {
    const other = await pushImage(s, 'sig/elsewhere', 'v1')
    rejected((await bundled('sig', () => ({ digest: other }))).status, new RegExp(`the in-toto statement's subjects are ${other}, not this artifact`))
  })

  it('requires a transparency-log entry unless the operator says otherwise; entries present are checked either way', async () => {
    rejected((await bundled('lax', () => ({ noTlog: true }))).status, /^test-sigstore: requires a transparency-log entry and the bundle has none$/)
    await apiOk(s, 'POST', '/projects/lax/trust/keys', undefined, { name: 'no-tlog', type: 'sigstore', trustedRoot: sg.trustedRoot, identities: [IDENTITY], requireTlog: false }, 201)
    await s.app.trust.settled()
    // Not required, but a keyless certificate needs a verified time: a timestamp authority's.
    rejected((await bundled('lax', () => ({ noTlog: true }))).status, /no-tlog: no verified timestamp \(a transparency-log entry with an inclusion promise, or an RFC 3161 timestamp/)
    rejected((await bundled('lax', () => ({ brokenProof: true }))).status, /no-tlog: TLOG_INCLUSION_PROOF_ERROR: calculated root hash does not match inclusion proof/)
    assert.deepEqual((await bundled('lax', () => ({}))).status.verified, ['cosign'])
  })

  it('a project requiring cosign pulls an image with a verified bundle and refuses the others', async () => {
    const { digest } = await bundled('gated', () => ({}))
    const unsigned = await pushImage(s, 'gated/unsigned', 'v1')
    await apiOk(s, 'PUT', '/projects/gated/trust/policy', undefined, { require: 'cosign' })
    const pulled = await fetch(`${s.url}/v2/gated/app-${n}/manifests/${digest}`, { headers: { accept: OCI_MANIFEST } })
    assert.equal(pulled.status, 200)
    const refused = await fetch(`${s.url}/v2/gated/unsigned/manifests/${unsigned}`, { headers: { accept: OCI_MANIFEST } })
    assert.equal(refused.status, 403)
    assert.match(await refused.text(), /requires a cosign signature: gated\/unsigned@sha256:[0-9a-f]{64} has none; a signature verified by test-sigstore \(sigstore, registry-wide\) is accepted/)
  })
})
