import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { pushReferrer, type Client } from './helpers.js'
import { issue, rootCa, type Issued } from './x509.js'

// Sigstore bundles made here with Node's crypto, as cosign and GitHub attestations write them: a
// test "Fulcio" CA issues a short-lived certificate (SAN and OIDC issuer extension), the
// certificate's key signs a DSSE envelope of an in-toto statement about the image, and a test
// "Rekor" log key signs the entry's inclusion promise and the checkpoint of an RFC 6962 inclusion
// proof. The matching trusted_root.json names the CA and the log.

export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json'
const IN_TOTO = 'application/vnd.in-toto+json'
const FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1'
const LOG_URL = 'https://rekor.berth.test'

export interface TestSigstore {
  fulcio: Issued
  logKey: KeyObject
  logSpki: Buffer
  logId: Buffer
  trustedRoot: Record<string, unknown>
}

/** A test Fulcio CA and Rekor log, and the trusted root naming them. */
export function testSigstore(): TestSigstore {
  const fulcio = rootCa({ O: 'Berth tests', CN: 'Berth test Fulcio' })
  const log = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const logSpki = log.publicKey.export({ type: 'spki', format: 'der' })
  const logId = createHash('sha256').update(logSpki).digest()
  const start = '2020-01-01T00:00:00Z'
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{ baseUrl: LOG_URL, hashAlgorithm: 'SHA2_256', publicKey: { rawBytes: logSpki.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } }, logId: { keyId: logId.toString('base64') } }],
    certificateAuthorities: [{ subject: { organization: 'Berth tests', commonName: 'Berth test Fulcio' }, uri: 'https://fulcio.berth.test', certChain: { certificates: [{ rawBytes: fulcio.der.toString('base64') }] }, validFor: { start } }],
    ctlogs: [],
    timestampAuthorities: [],
  }
  return { fulcio, logKey: log.privateKey, logSpki, logId, trustedRoot }
}

export interface BundleOptions {
  /** the digest the in-toto statement names */
  digest: string
  subject?: string
  issuer?: string
  /** no transparency-log entry at all */
  noTlog?: boolean
  /** a wrong sibling hash in the inclusion proof */
  brokenProof?: boolean
  /** the payload changed after signing */
  tamper?: boolean
}

const leafHash = (b: Buffer) => createHash('sha256').update(Buffer.from([0])).update(b).digest()
const nodeHash = (l: Buffer, r: Buffer) => createHash('sha256').update(Buffer.from([1])).update(l).update(r).digest()

/** DSSE's pre-authentication encoding (what the signature covers). */
function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload])
}

/** A keyless bundle of an in-toto statement about `digest`, signed at "now" and logged. */
export function keylessBundle(sg: TestSigstore, o: BundleOptions): Buffer {
  const now = Date.now()
  const leaf = issue(sg.fulcio, {
    subject: {},
    emails: [o.subject ?? 'release@berth.test'],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * 60_000),
    extensions: [{ oid: FULCIO_ISSUER_V1, value: Buffer.from(o.issuer ?? 'https://accounts.berth.test') }],
  })
  const [alg, hex] = o.digest.split(':')
  const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'berth.test/app', digest: { [alg ?? 'sha256']: hex } }], predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {} }))
  const sig = sign('sha256', pae(IN_TOTO, statement), leaf.key)
  const payload = o.tamper ? Buffer.from(statement.toString().replace('berth.test/app', 'berth.test/other')) : statement
  const tlogEntries = o.noTlog ? [] : [logEntry(sg, leaf, statement, sig, Math.floor(now / 1000), o.brokenProof === true)]
  return Buffer.from(
    JSON.stringify({
      mediaType: BUNDLE_MEDIA_TYPE,
      verificationMaterial: { certificate: { rawBytes: leaf.der.toString('base64') }, tlogEntries, timestampVerificationData: {} },
      dsseEnvelope: { payload: payload.toString('base64'), payloadType: IN_TOTO, signatures: [{ sig: sig.toString('base64'), keyid: '' }] },
    }),
  )
}

/** A Rekor dsse v0.0.1 entry at index 2 of a 4-entry log, with its SET and inclusion proof. */
function logEntry(sg: TestSigstore, leaf: Issued, statement: Buffer, sig: Buffer, integratedTime: number, broken: boolean) {
  const body = Buffer.from(
    JSON.stringify({
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: {
        envelopeHash: { algorithm: 'sha256', value: createHash('sha256').update(statement).digest('hex') },
        payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(statement).digest('hex') },
        signatures: [{ signature: sig.toString('base64'), verifier: Buffer.from(leaf.pem).toString('base64') }],
      },
    }),
  )
  const logIndex = 2
  // RFC 6962: root = H(H(l0, l1), H(l2, l3)); the proof of l2 is [l3, H(l0, l1)].
  const others = [0, 1, 3].map((i) => leafHash(Buffer.from(`entry ${i}`)))
  const [l0, l1, l3] = others as [Buffer, Buffer, Buffer]
  const left = nodeHash(l0, l1)
  const rootHash = nodeHash(left, nodeHash(leafHash(body), l3))
  const hashes = [broken ? leafHash(Buffer.from('not entry 3')) : l3, left]
  const note = `rekor.berth.test - 1\n4\n${rootHash.toString('base64')}\n`
  const noteSig = Buffer.concat([sg.logId.subarray(0, 4), sign('sha256', Buffer.from(note), sg.logKey)])
  const set = JSON.stringify({ body: body.toString('base64'), integratedTime, logID: sg.logId.toString('hex'), logIndex })
  return {
    logIndex: String(logIndex),
    logId: { keyId: sg.logId.toString('base64') },
    kindVersion: { kind: 'dsse', version: '0.0.1' },
    integratedTime: String(integratedTime),
    inclusionPromise: { signedEntryTimestamp: sign('sha256', Buffer.from(set), sg.logKey).toString('base64') },
    inclusionProof: { logIndex: String(logIndex), rootHash: rootHash.toString('base64'), treeSize: '4', hashes: hashes.map((h) => h.toString('base64')), checkpoint: { envelope: `${note}\n\u2014 rekor.berth.test ${noteSig.toString('base64')}\n` } },
    canonicalizedBody: body.toString('base64'),
  }
}

/** Pushes a bundle as cosign does (a referrer of artifactType and layer type the bundle's media type). */
export function pushBundle(c: Client, repository: string, subject: string, bundle: Buffer): Promise<string> {
  return pushReferrer(c, repository, subject, BUNDLE_MEDIA_TYPE, { mediaType: BUNDLE_MEDIA_TYPE, data: bundle }, { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' })
}
