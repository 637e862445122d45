import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { api, apiOk } from '../helpers/auth.js'
import { cosignSignImage, keyPair, pushImage, signatureStatus, simpleSigningPayload, type KeyKind, type KeyPair } from './helpers.js'

const status = (s: TestServer, repo: string, digest: string) => signatureStatus(s, 'signed', repo, digest)

describe('cosign key signatures verified inside Berth', () => {
  let s: TestServer
  const keys = {} as Record<KeyKind, KeyPair>
  before(async () => {
    s = await startServer()
    for (const kind of ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa'] as const) {
      keys[kind] = keyPair(kind)
      await apiOk(s, 'POST', '/projects/signed/trust/keys', undefined, { name: kind, type: 'cosign', publicKey: keys[kind].publicPem }, 201)
    }
  })
  after(() => s.close())

  for (const kind of ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa'] as const) {
    for (const mode of ['referrer', 'tag'] as const) {
      it(`verifies a ${kind} signature found as a ${mode}`, async () => {
        const repo = `signed/${kind}/${mode}`
        const digest = await pushImage(s, repo, 'v1')
        const before = await status(s, `${kind}/${mode}`, digest)
        assert.deepEqual(before.verified, [], 'unsigned at first')
        assert.deepEqual(before.signatures, [])
        await cosignSignImage(s, repo, digest, keys[kind], { mode })
        await s.app.trust.settled()
        const after = await status(s, `${kind}/${mode}`, digest)
        assert.deepEqual(after.verified, ['cosign'])
        assert.equal(after.signatures.length, 1)
        assert.deepEqual(after.signatures[0], { ...after.signatures[0], type: 'cosign', source: mode, verified: true, key: kind, keyScope: 'project' })
      })
    }
  }

  it('rejects a tampered payload, a wrong key and a signature for another digest, each with its reason', async () => {
    const repo = 'signed/rejects'
    const digest = await pushImage(s, repo, 'v1')
    const other = await pushImage(s, repo, 'v2')
    const key = keys['ecdsa-p256']
    const tampered = Buffer.from(simpleSigningPayload(repo, digest).toString().replace('cosign container image signature', 'cosign container image signaturE'))
    await cosignSignImage(s, repo, digest, key, { mode: 'referrer', pushedPayload: tampered })
    await cosignSignImage(s, repo, digest, keyPair('ecdsa-p256'), { mode: 'referrer' })
    await cosignSignImage(s, repo, digest, key, { mode: 'tag', names: other })
    await s.app.trust.settled()
    const st = await status(s, 'rejects', digest)
    assert.deepEqual(st.verified, [])
    assert.equal(st.signatures.length, 3)
    assert.ok(st.signatures.every((sig) => !sig.verified))
    const reasons = st.signatures.map((sig) => sig.reason ?? '')
    assert.equal(reasons.filter((r) => r.startsWith('no configured cosign key verifies this signature')).length, 2, reasons.join('\n'))
    assert.ok(reasons.some((r) => r === `the signed payload names ${other}, not this artifact`), reasons.join('\n'))
    // The same payload, untampered and signed by the right key, verifies.
    await cosignSignImage(s, repo, digest, key, { mode: 'referrer' })
    await s.app.trust.settled()
    assert.deepEqual((await status(s, 'rejects', digest)).verified, ['cosign'])
  })

  it('verifies again when trust material changes', async () => {
    const repo = 'signed/rotate'
    const digest = await pushImage(s, repo, 'v1')
    const late = keyPair('ed25519')
    await cosignSignImage(s, repo, digest, late, { mode: 'tag' })
    await s.app.trust.settled()
    assert.deepEqual((await status(s, 'rotate', digest)).verified, [])
    await apiOk(s, 'POST', '/trust/keys', undefined, { name: 'late', type: 'cosign', publicKey: late.publicPem }, 201)
    await s.app.trust.settled()
    const st = await status(s, 'rotate', digest)
    assert.deepEqual(st.verified, ['cosign'])
    assert.equal(st.signatures[0]?.keyScope, 'system')
    assert.equal((await api(s, 'DELETE', '/trust/keys/late')).status, 204)
    await s.app.trust.settled()
    assert.deepEqual((await status(s, 'rotate', digest)).verified, [])
  })

  it('answers 404 for an artifact that does not exist and 400 for a malformed digest', async () => {
    assert.equal((await api(s, 'GET', `/projects/signed/repositories/rejects/artifacts/sha256:${'0'.repeat(64)}/signatures`)).status, 404)
    assert.equal((await api(s, 'GET', '/projects/signed/repositories/rejects/artifacts/sha256:nothex/signatures')).status, 400)
    assert.equal((await api(s, 'GET', `/projects/signed/repositories/nothere/artifacts/sha256:${'0'.repeat(64)}/signatures`)).status, 404)
  })
})
