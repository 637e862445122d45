import { sign, type KeyObject } from 'node:crypto'
import { CborTag, encodeCbor, type CborValue } from '../../src/trust/cbor.js'
import { OCI_MANIFEST, pushReferrer, type Client } from './helpers.js'
import type { Issued } from './x509.js'

// Notation signatures made here with Node's crypto, in the exact envelope formats of the Notary
// Project specifications (signature-envelope-jws.md, signature-envelope-cose.md), pushed as
// notation pushes them: a referrer of artifactType application/vnd.cncf.notary.signature whose
// one layer is the envelope.

export const NOTATION_SIG = 'application/vnd.cncf.notary.signature'
export const JWS = 'application/jose+json'
export const COSE = 'application/cose'
const PAYLOAD_TYPE = 'application/vnd.cncf.notary.payload.v1+json'

export interface EnvelopeOptions {
  /** leaf first */
  chain: Issued[]
  /** the digest the payload names */
  digest: string
  /** JWS alg name; derived from the leaf's key by default */
  alg?: string
  signingTime?: Date
  expiry?: Date
  /** extra critical headers (each also set in the protected header) */
  extraCritical?: string[]
  /** changes the payload after signing */
  tamper?: boolean
}

/** The JWS algorithm the spec pairs with a key. */
export function algorithmOf(key: KeyObject): string {
  const d = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'rsa') return { 2048: 'PS256', 3072: 'PS384', 4096: 'PS512' }[d.modulusLength ?? 0] ?? 'PS256'
  return { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }[d.namedCurve ?? ''] ?? 'ES256'
}

function signWith(alg: string, key: KeyObject, data: Buffer): Buffer {
  const hash = `sha${alg.slice(2)}`
  if (alg.startsWith('PS')) return sign(hash, data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: -1 /* RSA_PSS_SALTLEN_DIGEST */ })
  return sign(hash, data, { key, dsaEncoding: 'ieee-p1363' })
}

function payloadOf(digest: string, size = 1234): Buffer {
  return Buffer.from(JSON.stringify({ targetArtifact: { mediaType: OCI_MANIFEST, digest, size, annotations: { 'io.example.build': '42' } } }))
}

function tampered(payload: Buffer): Buffer {
  return Buffer.from(payload.toString().replace('"42"', '"43"'))
}

/** A JWS envelope in JSON serialization, as notation writes it. */
export function jwsEnvelope(o: EnvelopeOptions): Buffer {
  const leaf = o.chain[0] as Issued
  const alg = o.alg ?? algorithmOf(leaf.publicKey)
  const header: Record<string, unknown> = {
    alg,
    cty: PAYLOAD_TYPE,
    'io.cncf.notary.signingScheme': 'notary.x509',
    'io.cncf.notary.signingTime': (o.signingTime ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z'),
    crit: ['io.cncf.notary.signingScheme', ...(o.expiry ? ['io.cncf.notary.expiry'] : []), ...(o.extraCritical ?? [])],
  }
  if (o.expiry) header['io.cncf.notary.expiry'] = o.expiry.toISOString().replace(/\.\d+Z$/, 'Z')
  for (const c of o.extraCritical ?? []) header[c] = 'x'
  const protectedB64 = Buffer.from(JSON.stringify(header)).toString('base64url')
  const payload = payloadOf(o.digest)
  const signature = signWith(alg, leaf.key, Buffer.from(`${protectedB64}.${payload.toString('base64url')}`))
  return Buffer.from(
    JSON.stringify({
      payload: (o.tamper ? tampered(payload) : payload).toString('base64url'),
      protected: protectedB64,
      header: { x5c: o.chain.map((c) => c.der.toString('base64')), 'io.cncf.notary.signingAgent': 'notation-go/1.3.0' },
      signature: signature.toString('base64url'),
    }),
  )
}

const COSE_ALG: Record<string, number> = { PS256: -37, PS384: -38, PS512: -39, ES256: -7, ES384: -35, ES512: -36 }

/** A COSE_Sign1_Tagged envelope, as notation writes it (x5chain in the unprotected header). */
export function coseEnvelope(o: EnvelopeOptions): Buffer {
  const leaf = o.chain[0] as Issued
  const alg = o.alg ?? algorithmOf(leaf.publicKey)
  const epoch = (d: Date) => new CborTag(1, Math.floor(d.getTime() / 1000))
  const header = new Map<number | string, CborValue>([
    [1, COSE_ALG[alg] ?? 0],
    [2, ['io.cncf.notary.signingScheme', ...(o.expiry ? ['io.cncf.notary.expiry'] : []), ...(o.extraCritical ?? [])]],
    [3, PAYLOAD_TYPE],
    ['io.cncf.notary.signingScheme', 'notary.x509'],
    ['io.cncf.notary.signingTime', epoch(o.signingTime ?? new Date())],
  ])
  if (o.expiry) header.set('io.cncf.notary.expiry', epoch(o.expiry))
  for (const c of o.extraCritical ?? []) header.set(c, 'x')
  const protectedBytes = encodeCbor(header)
  const payload = payloadOf(o.digest)
  const toBeSigned = encodeCbor(['Signature1', protectedBytes, new Uint8Array(0), payload])
  const signature = signWith(alg, leaf.key, toBeSigned)
  const unprotected = new Map<number | string, CborValue>([
    [33, o.chain.map((c) => new Uint8Array(c.der))],
    ['io.cncf.notary.signingAgent', 'notation-go/1.3.0'],
  ])
  return encodeCbor(new CborTag(18, [protectedBytes, unprotected, o.tamper ? tampered(payload) : payload, signature]))
}

/** Pushes an envelope as a notation signature (a referrer of `subject`); returns the signature manifest's digest. */
export function pushNotationSignature(c: Client, repository: string, subject: string, envelope: Buffer, mediaType: string): Promise<string> {
  return pushReferrer(c, repository, subject, NOTATION_SIG, { mediaType, data: envelope }, { 'io.cncf.notary.x509chain.thumbprint#S256': '[]' })
}
