import { constants, verify, X509Certificate, type KeyObject } from 'node:crypto'
import { subjectOfCertificate, subjectOfIdentity, type NotationStore } from './material.js'

// Notation (notaryproject) signatures: a referrer of artifactType below whose one layer is a JWS
// envelope in JSON serialization. Its protected header names the algorithm, the signing scheme
// and time (and maybe an expiry); its unprotected header carries the signing certificate chain
// (x5c, leaf first); its payload names the signed artifact (`targetArtifact`). Checked: the
// signature with the leaf's key, the chain up to a CA of a trust store, every certificate valid
// now and at the signing time, the expiry, and the leaf's subject against the store's identities.
// Revocation (OCSP/CRL) is not checked: verification runs offline.

export const NOTATION_SIGNATURE_ARTIFACT = 'application/vnd.cncf.notary.signature'
export const JWS_MEDIA_TYPE = 'application/jose+json'

export type NotationOutcome = { verified: true; store: NotationStore; identity: string } | { verified: false; reason: string; identity?: string }

interface Envelope {
  payload?: unknown
  protected?: unknown
  header?: { x5c?: unknown }
  signature?: unknown
}

interface ProtectedHeader {
  alg?: string
  crit?: string[]
  'io.cncf.notary.signingScheme'?: string
  'io.cncf.notary.signingTime'?: string
  'io.cncf.notary.expiry'?: string
}

const ALGORITHMS: Record<string, { hash: string; rsa: boolean }> = {
  PS256: { hash: 'sha256', rsa: true },
  PS384: { hash: 'sha384', rsa: true },
  PS512: { hash: 'sha512', rsa: true },
  ES256: { hash: 'sha256', rsa: false },
  ES384: { hash: 'sha384', rsa: false },
  ES512: { hash: 'sha512', rsa: false },
}

const fail = (reason: string, identity?: string): NotationOutcome => ({ verified: false, reason, identity })

export function verifyNotation(body: Buffer, subject: string, stores: NotationStore[], now: number): NotationOutcome {
  let env: Envelope
  try {
    env = JSON.parse(body.toString('utf8')) as Envelope
  } catch {
    return fail('the envelope is not JSON')
  }
  if (typeof env.payload !== 'string' || typeof env.protected !== 'string' || typeof env.signature !== 'string') return fail('the envelope is not a JWS in JSON serialization (payload, protected, signature)')
  const header = decodeJson<ProtectedHeader>(env.protected)
  const payload = decodeJson<{ targetArtifact?: { digest?: unknown } }>(env.payload)
  if (!header || !payload) return fail('the protected header or the payload is not base64url JSON')
  const alg = header.alg === undefined ? undefined : ALGORITHMS[header.alg]
  if (!alg) return fail(`unsupported JWS algorithm ${String(header.alg)}`)
  if (header['io.cncf.notary.signingScheme'] !== 'notary.x509') return fail(`signing scheme ${String(header['io.cncf.notary.signingScheme'])} is not supported (notary.x509)`)
  const chain = certificates(env.header?.x5c)
  if (typeof chain === 'string') return fail(chain)
  const [leaf] = chain as [X509Certificate, ...X509Certificate[]]
  const identity = leaf.subject.split('\n').join(', ')
  if (!signatureVerifies(leaf.publicKey, alg, `${env.protected}.${env.payload}`, Buffer.from(env.signature, 'base64url'))) return fail('the signature does not verify with the key of its signing certificate', identity)
  if (payload.targetArtifact?.digest !== subject) return fail(`the signed payload names ${String(payload.targetArtifact?.digest)}, not this artifact`, identity)
  const signingTime = Date.parse(header['io.cncf.notary.signingTime'] ?? '')
  if (Number.isNaN(signingTime)) return fail('the protected header has no io.cncf.notary.signingTime', identity)
  const expiry = header['io.cncf.notary.expiry'] === undefined ? undefined : Date.parse(header['io.cncf.notary.expiry'])
  if (expiry !== undefined && (Number.isNaN(expiry) || expiry <= now)) return fail(`the signature expired at ${header['io.cncf.notary.expiry']}`, identity)
  if (stores.length === 0) return fail('no notation trust store is configured for this project or the registry', identity)
  const brokenChain = chainProblem(chain)
  if (brokenChain) return fail(brokenChain, identity)
  const reasons: string[] = []
  for (const store of stores) {
    const anchor = anchorOf(chain[chain.length - 1] as X509Certificate, store)
    if (!anchor) {
      reasons.push(`${store.name}: the chain does not lead to one of its certificates`)
      continue
    }
    const expired = [...chain, anchor].find((c) => !validAt(c, now) || !validAt(c, signingTime))
    if (expired) {
      reasons.push(`${store.name}: certificate "${expired.subject.split('\n').join(', ')}" is not valid now or at the signing time (valid ${expired.validFrom} to ${expired.validTo})`)
      continue
    }
    if (!identityTrusted(leaf, store.identities)) {
      reasons.push(`${store.name}: ${identity} is not one of its trusted identities`)
      continue
    }
    return { verified: true, store, identity }
  }
  return fail(reasons.join('; '), identity)
}

function decodeJson<T>(b64url: string): T | undefined {
  try {
    const value = JSON.parse(Buffer.from(b64url, 'base64url').toString('utf8')) as unknown
    return typeof value === 'object' && value !== null ? (value as T) : undefined
  } catch {
    return undefined
  }
}

function certificates(x5c: unknown): X509Certificate[] | string {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10) return 'the envelope carries no certificate chain (header x5c)'
  try {
    return x5c.map((c) => new X509Certificate(Buffer.from(String(c), 'base64')))
  } catch (err) {
    return `a certificate of the chain is unreadable (${(err as Error).message})`
  }
}

function signatureVerifies(key: KeyObject, alg: { hash: string; rsa: boolean }, signingInput: string, sig: Buffer): boolean {
  try {
    const data = Buffer.from(signingInput, 'ascii')
    if (alg.rsa) return verify(alg.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig)
    return verify(alg.hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig)
  } catch {
    return false
  }
}

/** Each certificate of the chain is issued and signed by the next one. */
function chainProblem(chain: X509Certificate[]): string | undefined {
  if (chain[0]?.ca) return 'the signing certificate is a CA certificate'
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i] as X509Certificate
    const issuer = chain[i + 1] as X509Certificate
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return `certificate ${i + 1} of the chain is not issued by certificate ${i + 2}`
  }
  return undefined
}

/** The store certificate that is, or issued, the chain's last certificate. */
function anchorOf(last: X509Certificate, store: NotationStore): X509Certificate | undefined {
  return store.certificates.find((c) => c.fingerprint256 === last.fingerprint256 || (c.ca && last.checkIssued(c) && last.verify(c.publicKey)))
}

function validAt(cert: X509Certificate, at: number): boolean {
  return Date.parse(cert.validFrom) <= at && at <= Date.parse(cert.validTo)
}

/** `*`, or every attribute an identity names is in the leaf's subject. */
function identityTrusted(leaf: X509Certificate, identities: string[]): boolean {
  const subject = subjectOfCertificate(leaf)
  return identities.some((id) => {
    if (id === '*') return true
    const wanted = subjectOfIdentity(id)
    return wanted !== undefined && [...wanted].every((a) => subject.has(a))
  })
}
