import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { apiOk } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { assertRejected, OCI_MANIFEST, pushImage, signatureStatus, signedImage, type SignatureStatus } from './helpers.js'
import { COSE, coseEnvelope, JWS, jwsEnvelope, pushNotationSignature, type EnvelopeOptions } from './notation-envelopes.js'
import { issue, rootCa, SERVER_AUTH, type Issued } from './x509.js'

// Notation signatures (JWS and COSE envelopes from a test CA chain made here) verified inside
// Berth against a notation trust store, and each way one must be rejected.

const SIGNER = { CN: 'Berth Release Signer', O: 'Example' }
const DAY = 86400_000

describe('notation signatures verified inside Berth', () => {
  let s: TestServer
  let root: Issued
  let intermediate: Issued
  let leaf: Issued
  let n = 0
  const status = (repo: string, digest: string) => signatureStatus(s, 'notary', repo, digest)

  /** A new image signed with `envelope(digest)`; its status once verified. */
  const signed = (format: 'jws' | 'cose', opts: (digest: string) => Omit<EnvelopeOptions, 'digest'> & { digest?: string }) => {
    const repo = `app-${format}-${++n}`
    return signedImage(s, 'notary', repo, (digest) => {
      const o = { digest, ...opts(digest) }
      return pushNotationSignature(s, `notary/${repo}`, digest, format === 'jws' ? jwsEnvelope(o) : coseEnvelope(o), format === 'jws' ? JWS : COSE)
    })
  }

  const rejected = (st: SignatureStatus, reason: RegExp) => assertRejected(st, { type: 'notation' }, reason)

  before(async () => {
    s = await startServer()
    root = rootCa({ CN: 'Berth Test Root', O: 'Example' })
    intermediate = issue(root, { subject: { CN: 'Berth Test Intermediate', O: 'Example' }, ca: true })
    leaf = issue(intermediate, { subject: SIGNER })
    await apiOk(s, 'POST', '/projects/notary/trust/keys', undefined, { name: 'example', type: 'notation', certificates: root.pem, identities: ['x509.subject: CN=Berth Release Signer, O=Example'] }, 201)
  })
  after(() => s.close())

  for (const format of ['jws', 'cose'] as const) {
    describe(format === 'jws' ? 'JWS envelopes (application/jose+json)' : 'COSE envelopes (application/cose)', () => {
      it('verifies a signature chaining to the trust store, by a trusted identity', async () => {
        const { status: st } = await signed(format, () => ({ chain: [leaf, intermediate, root] }))
        assert.deepEqual(st.verified, ['notation'])
        assert.deepEqual(st.signatures[0], { ...st.signatures[0], type: 'notation', verified: true, key: 'example', keyScope: 'project', identity: 'CN=Berth Release Signer, O=Example' })
      })

      it('verifies RSA-PSS (PS384 with a 3072-bit key) and a chain without its root', async () => {
        const rsaLeaf = issue(intermediate, { subject: SIGNER }, { rsa: 3072 })
        const { status: st } = await signed(format, () => ({ chain: [rsaLeaf, intermediate] }))
        assert.deepEqual(st.verified, ['notation'], JSON.stringify(st.signatures))
      })

      it('rejects a tampered payload', async () => {
        rejected((await signed(format, () => ({ chain: [leaf, intermediate, root], tamper: true }))).status, /the signature does not verify with the key of its signing certificate/)
      })

      it('rejects a chain from another CA', async () => {
        const otherRoot = rootCa({ CN: 'Berth Test Root', O: 'Example' })
        const otherLeaf = issue(otherRoot, { subject: SIGNER })
        rejected((await signed(format, () => ({ chain: [otherLeaf, otherRoot] }))).status, /example: the chain does not lead to one of its certificates/)
      })

      it('rejects an expired signing certificate', async () => {
        const expired = issue(intermediate, { subject: SIGNER, notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) })
        rejected((await signed(format, () => ({ chain: [expired, intermediate, root], signingTime: new Date(Date.now() - 2 * DAY) }))).status, /certificate "CN=Berth Release Signer, O=Example" is not valid now or at the signing time/)
      })

      it('rejects a signature for another digest', async () => {
        const other = await pushImage(s, 'notary/elsewhere', `${format}-other`)
        const { status: st } = await signed(format, () => ({ chain: [leaf, intermediate, root], digest: other }))
        rejected(st, new RegExp(`the signed payload names ${other}, not this artifact`))
      })

      it('rejects a signer whose subject is not a trusted identity', async () => {
        const stranger = issue(intermediate, { subject: { CN: 'Someone Else', O: 'Example' } })
        const { status: st } = await signed(format, () => ({ chain: [stranger, intermediate, root] }))
        rejected(st, /example: CN=Someone Else, O=Example is not one of its trusted identities/)
        assert.equal(st.signatures[0]?.identity, 'CN=Someone Else, O=Example')
      })

      it('rejects an expired signature (io.cncf.notary.expiry)', async () => {
        rejected((await signed(format, () => ({ chain: [leaf, intermediate, root], expiry: new Date(Date.now() - 60_000) }))).status, /the signature expired at/)
      })

      it('rejects an algorithm that does not match the signing key, and unknown critical headers', async () => {
        rejected((await signed(format, () => ({ chain: [leaf, intermediate, root], alg: 'ES384' }))).status, /ES384 needs an EC secp384r1 signing key, not ec prime256v1/)
        rejected((await signed(format, () => ({ chain: [leaf, intermediate, root], extraCritical: ['io.cncf.notary.verificationPlugin'] }))).status, /critical header io\.cncf\.notary\.verificationPlugin is not supported/)
      })

      it('rejects a signing certificate made for TLS servers', async () => {
        const tls = issue(intermediate, { subject: SIGNER, extKeyUsage: [SERVER_AUTH] })
        rejected((await signed(format, () => ({ chain: [tls, intermediate, root] }))).status, /extended key usage 1\.3\.6\.1\.5\.5\.7\.3\.1 does not allow code signing/)
      })
    })
  }

  it('rejects envelopes that are not what their media type says', async () => {
    const digest = await pushImage(s, 'notary/garbage', 'v1')
    for (const bytes of [[0x01, 0x02], [0xd2, 0x84, 0x40], [0x81, 0x61, 0x78], [0x9f, 0xff]]) await pushNotationSignature(s, 'notary/garbage', digest, Buffer.from(bytes), COSE)
    await pushNotationSignature(s, 'notary/garbage', digest, Buffer.from('not json'), JWS)
    await s.app.trust.settled()
    const st = await status('garbage', digest)
    assert.deepEqual(st.verified, [])
    assert.deepEqual(st.signatures.map((sig) => sig.reason).sort(), [
      'the envelope is not CBOR (1 bytes after the CBOR data item)',
      'the envelope is not CBOR (a CBOR array or map is longer than its input)',
      'the envelope is not CBOR (indefinite-length CBOR items are not supported)',
      'the envelope is not JSON',
      'the envelope is not a COSE_Sign1_Tagged structure (CBOR tag 18)',
    ])
  })

  it('a project requiring notation pulls the image once a verified COSE signature arrives', async () => {
    const digest = await pushImage(s, 'notary/gated', 'v1')
    await apiOk(s, 'PUT', '/projects/notary/trust/policy', undefined, { require: 'notation' })
    try {
      const refused = await fetch(`${s.url}/v2/notary/gated/manifests/v1`, { headers: { accept: OCI_MANIFEST } })
      assert.equal(refused.status, 403)
      assert.match(await refused.text(), /requires a notation signature: notary\/gated@sha256:[0-9a-f]{64} has none; a signature verified by example \(notation, project notary\) is accepted/)
      await pushNotationSignature(s, 'notary/gated', digest, coseEnvelope({ chain: [leaf, intermediate, root], digest }), COSE)
      const pulled = await fetch(`${s.url}/v2/notary/gated/manifests/v1`, { headers: { accept: OCI_MANIFEST } })
      assert.equal(pulled.status, 200)
    } finally {
      await apiOk(s, 'PUT', '/projects/notary/trust/policy', undefined, { require: 'none' })
    }
  })
})
