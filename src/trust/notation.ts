import { constants, verify, X509Certificate, type KeyObject } from 'node:crypto'
import { CborError, CborTag, decodeCbor, encodeCbor, type CborValue } from './cbor.js'
import { subjectOfCertificate, subjectOfIdentity, type NotationStore } from './material.js'

// Notation (notaryproject) signatures: a referrer of artifactType below whose one layer is an
// envelope, JWS in JSON serialization (application/jose+json) or COSE_Sign1_Tagged
// (application/cose). Its protected header names the algorithm, the signing scheme and time (and
// maybe an expiry); its unprotected header carries the signing certificate chain (leaf first);
// its payload names the signed artifact (`targetArtifact`). Checked, for both formats: the
// algorithm against the leaf's key, the critical headers, the signature with the leaf's key, the
// chain up to a CA of a trust store, every certificate valid now and at the signing time, the
// expiry, and the leaf's subject against the store's identities. Revocation (OCSP/CRL) and
// RFC 3161 countersignatures are not checked: verification runs offline.

export const NOTATION_SIGNATURE_ARTIFACT = 'application/vnd.cncf.notary.signature'
export const JWS_MEDIA_TYPE = 'application/jose+json'
export const COSE_MEDIA_TYPE = 'application/cose'
export const NOTATION_PAYLOAD = 'application/vnd.cncf.notary.payload.v1+json'

export type NotationOutcome = { verified: true; store: NotationStore; identity: string } | { verified: false; reason: string; identity?: string }

const SCHEME = 'io.cncf.notary.signingScheme'
const SIGNING_TIME = 'io.cncf.notary.signingTime'
const EXPIRY = 'io.cncf.notary.expiry'
/** Critical headers this verifier processes (the scheme is required, the expiry optional). */
const UNDERSTOOD_CRITICAL = new Set([SCHEME, EXPIRY])

interface Algorithm {
  name: string
  hash: string
  /** the key the spec pairs with the algorithm: an RSA modulus size or an EC curve */
  rsaBits?: number
  curve?: string
}

const ALGORITHMS: Algorithm[] = [
  { name: 'PS256', hash: 'sha256', rsaBits: 2048 },
  { name: 'PS384', hash: 'sha384', rsaBits: 3072 },
  { name: 'PS512', hash: 'sha512', rsaBits: 4096 },
  { name: 'ES256', hash: 'sha256', curve: 'prime256v1' },
  { name: 'ES384', hash: 'sha384', curve: 'secp384r1' },
  { name: 'ES512', hash: 'sha512', curve: 'secp521r1' },
]

/** COSE `alg` labels (signature-envelope-cose.md) by JWS name. */
const COSE_ALGORITHMS = new Map<number, string>([
  [-37, 'PS256'],
  [-38, 'PS384'],
  [-39, 'PS512'],
  [-7, 'ES256'],
  [-35, 'ES384'],
  [-36, 'ES512'],
])

/** Extended key usages a code-signing certificate must not have (serverAuth, clientAuth, emailProtection, timeStamping, any). */
const FORBIDDEN_EKU = new Set(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.4', '1.3.6.1.5.5.7.3.8', '2.5.29.37.0'])

/** What both envelope formats come down to. */
interface Envelope {
  alg: string | undefined
  scheme: unknown
  contentType: unknown
  critical: unknown
  /** ms since the epoch; NaN when absent or malformed */
  signingTime: number
  /** undefined when absent; NaN when malformed */
  expiry: number | undefined
  expiryText: string | undefined
  chain: X509Certificate[] | string
  payload: Buffer
  verifySignature(key: KeyObject, alg: Algorithm): boolean
}

const fail = (reason: string, identity?: string): NotationOutcome => ({ verified: false, reason, identity })

/** Verifies a notation envelope of `mediaType` (JWS or COSE) for `subject` against the trust stores. */
export function verifyNotation(body: Buffer, mediaType: string, subject: string, stores: NotationStore[], now: number): NotationOutcome {
  const env = mediaType === COSE_MEDIA_TYPE ? parseCose(body) : parseJws(body)
  if (typeof env === 'string') return fail(env)
  const alg = ALGORITHMS.find((a) => a.name === env.alg)
  if (!alg) return fail(`unsupported signature algorithm ${String(env.alg)}`)
  if (env.scheme !== 'notary.x509') return fail(`signing scheme ${String(env.scheme)} is not supported (notary.x509)`)
  const critical = criticalProblem(env.critical, env.expiry !== undefined)
  if (critical) return fail(critical)
  if (env.contentType !== NOTATION_PAYLOAD) return fail(`the payload content type is ${String(env.contentType)}, not ${NOTATION_PAYLOAD}`)
  if (typeof env.chain === 'string') return fail(env.chain)
  const chain = env.chain
  const [leaf] = chain as [X509Certificate, ...X509Certificate[]]
  const identity = leaf.subject.split('\n').join(', ')
  const keyProblem = algorithmMismatch(leaf.publicKey, alg)
  if (keyProblem) return fail(keyProblem, identity)
  if (!env.verifySignature(leaf.publicKey, alg)) return fail('the signature does not verify with the key of its signing certificate', identity)
  const target = targetDigest(env.payload)
  if (target !== subject) return fail(`the signed payload names ${String(target)}, not this artifact`, identity)
  if (Number.isNaN(env.signingTime)) return fail(`the protected header has no valid ${SIGNING_TIME}`, identity)
  if (env.expiry !== undefined && (Number.isNaN(env.expiry) || env.expiry <= now)) return fail(`the signature expired at ${String(env.expiryText)}`, identity)
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
    const expired = [...chain, anchor].find((c) => !validAt(c, now) || !validAt(c, env.signingTime))
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

// --- JWS (signature-envelope-jws.md) -----------------------------------------------------------

interface JwsJson {
  payload?: unknown
  protected?: unknown
  header?: { x5c?: unknown }
  signature?: unknown
}

function parseJws(body: Buffer): Envelope | string {
  let env: JwsJson
  try {
    env = JSON.parse(body.toString('utf8')) as JwsJson
  } catch {
    return 'the envelope is not JSON'
  }
  if (typeof env.payload !== 'string' || typeof env.protected !== 'string' || typeof env.signature !== 'string') return 'the envelope is not a JWS in JSON serialization (payload, protected, signature)'
  const header = decodeJson(env.protected)
  if (!header) return 'the protected header is not base64url JSON'
  const signingInput = Buffer.from(`${env.protected}.${env.payload}`, 'ascii')
  const signature = Buffer.from(env.signature, 'base64url')
  const expiryText = header[EXPIRY]
  return {
    alg: typeof header.alg === 'string' ? header.alg : undefined,
    scheme: header[SCHEME],
    contentType: header.cty,
    critical: header.crit,
    signingTime: typeof header[SIGNING_TIME] === 'string' ? Date.parse(header[SIGNING_TIME]) : NaN,
    expiry: expiryText === undefined ? undefined : typeof expiryText === 'string' ? Date.parse(expiryText) : NaN,
    expiryText: expiryText === undefined ? undefined : String(expiryText),
    chain: certificates(env.header?.x5c, (c) => (typeof c === 'string' ? Buffer.from(c, 'base64') : undefined)),
    payload: Buffer.from(env.payload, 'base64url'),
    verifySignature: (key, alg) => signatureVerifies(key, alg, signingInput, signature),
  }
}

function decodeJson(b64url: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(Buffer.from(b64url, 'base64url').toString('utf8')) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

// --- COSE (signature-envelope-cose.md, RFC 9052) -----------------------------------------------

const COSE_SIGN1_TAG = 18
const EPOCH_TAG = 1
const LABEL_ALG = 1
const LABEL_CRIT = 2
const LABEL_CTY = 3
const LABEL_X5CHAIN = 33

function parseCose(body: Buffer): Envelope | string {
  let item: CborValue
  try {
    item = decodeCbor(body)
  } catch (err) {
    if (err instanceof CborError) return `the envelope is not CBOR (${err.message})`
    throw err
  }
  if (!(item instanceof CborTag) || item.tag !== COSE_SIGN1_TAG) return 'the envelope is not a COSE_Sign1_Tagged structure (CBOR tag 18)'
  const parts = item.value
  if (!Array.isArray(parts) || parts.length !== 4) return 'COSE_Sign1 is not an array of 4 items'
  const [protectedBytes, unprotected, payload, signature] = parts
  if (!(protectedBytes instanceof Uint8Array) || !(unprotected instanceof Map) || !(signature instanceof Uint8Array)) return 'COSE_Sign1 has no protected header, unprotected header or signature'
  if (!(payload instanceof Uint8Array)) return 'the COSE payload is detached or not a byte string'
  let header: CborValue
  try {
    header = decodeCbor(protectedBytes)
  } catch (err) {
    return `the COSE protected header is not CBOR (${(err as Error).message})`
  }
  if (!(header instanceof Map)) return 'the COSE protected header is not a map'
  const algLabel = header.get(LABEL_ALG)
  const expiry = header.get(EXPIRY)
  // Notary puts x5chain in the unprotected header; the protected one is allowed too.
  const x5chain = header.get(LABEL_X5CHAIN) ?? unprotected.get(LABEL_X5CHAIN)
  // RFC 9052 §4.4: Sig_structure = ["Signature1", body_protected, external_aad, payload]
  const toBeSigned = encodeCbor(['Signature1', protectedBytes, new Uint8Array(0), payload])
  return {
    alg: typeof algLabel === 'number' ? (COSE_ALGORITHMS.get(algLabel) ?? `COSE ${algLabel}`) : undefined,
    scheme: header.get(SCHEME),
    contentType: header.get(LABEL_CTY),
    critical: header.get(LABEL_CRIT),
    signingTime: epochTime(header.get(SIGNING_TIME)),
    expiry: expiry === undefined ? undefined : epochTime(expiry),
    expiryText: expiry === undefined ? undefined : Number.isNaN(epochTime(expiry)) ? 'an unreadable time' : new Date(epochTime(expiry)).toISOString(),
    chain: certificates(x5chain instanceof Uint8Array ? [x5chain] : x5chain, (c) => (c instanceof Uint8Array ? Buffer.from(c) : undefined)),
    payload: Buffer.from(payload),
    verifySignature: (key, alg) => signatureVerifies(key, alg, toBeSigned, Buffer.from(signature)),
  }
}

/** An RFC 8949 epoch date/time (tag 1 of an integer or float of seconds) in ms; NaN otherwise. */
function epochTime(value: CborValue | undefined): number {
  if (!(value instanceof CborTag) || value.tag !== EPOCH_TAG) return NaN
  const seconds = value.value
  if (typeof seconds === 'number' && Number.isFinite(seconds)) return seconds * 1000
  return NaN
}

// --- the checks both formats share -------------------------------------------------------------

/** The critical headers: an array naming the signing scheme (and the expiry when present), nothing this verifier does not process. */
function criticalProblem(crit: unknown, hasExpiry: boolean): string | undefined {
  if (!Array.isArray(crit) || !crit.includes(SCHEME)) return `the critical headers (crit) do not name ${SCHEME}`
  const unknown = crit.filter((c) => !UNDERSTOOD_CRITICAL.has(String(c)))
  if (unknown.length > 0) return `critical header ${unknown.map(String).join(', ')} is not supported`
  if (hasExpiry && !crit.includes(EXPIRY)) return `${EXPIRY} is present but not marked critical`
  return undefined
}

/** The spec pairs each algorithm with one key type and size (no algorithm substitution). */
function algorithmMismatch(key: KeyObject, alg: Algorithm): string | undefined {
  const details = key.asymmetricKeyDetails ?? {}
  if (alg.rsaBits !== undefined) {
    if (key.asymmetricKeyType !== 'rsa' || details.modulusLength !== alg.rsaBits) return `${alg.name} needs an RSA ${alg.rsaBits}-bit signing key, not ${describeKey(key)}`
  } else if (key.asymmetricKeyType !== 'ec' || details.namedCurve !== alg.curve) {
    return `${alg.name} needs an EC ${alg.curve ?? ''} signing key, not ${describeKey(key)}`
  }
  return undefined
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails ?? {}
  return `${key.asymmetricKeyType ?? 'unknown'} ${d.namedCurve ?? (d.modulusLength ? `${d.modulusLength}-bit` : '')}`.trim()
}

function targetDigest(payload: Buffer): unknown {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as { targetArtifact?: { digest?: unknown } }
    return doc.targetArtifact?.digest
  } catch {
    return undefined
  }
}

function certificates(list: unknown, der: (c: unknown) => Buffer | undefined): X509Certificate[] | string {
  if (!Array.isArray(list) || list.length === 0 || list.length > 10) return 'the envelope carries no certificate chain (x5c / x5chain)'
  try {
    return list.map((c) => {
      const bytes = der(c)
      if (!bytes) throw new Error('not a DER certificate')
      return new X509Certificate(bytes)
    })
  } catch (err) {
    return `a certificate of the chain is unreadable (${(err as Error).message})`
  }
}

/** RSASSA-PSS with a salt as long as the hash, or ECDSA with the raw r||s signature (JWS and COSE both). */
function signatureVerifies(key: KeyObject, alg: Algorithm, data: Buffer, sig: Buffer): boolean {
  try {
    if (alg.rsaBits !== undefined) return verify(alg.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig)
    return verify(alg.hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig)
  } catch {
    return false
  }
}

/** Each certificate of the chain is issued and signed by the next one; the leaf signs code, the others are CAs. */
function chainProblem(chain: X509Certificate[]): string | undefined {
  const leaf = chain[0] as X509Certificate
  if (leaf.ca) return 'the signing certificate is a CA certificate'
  const forbidden = (leaf.keyUsage ?? []).filter((oid) => FORBIDDEN_EKU.has(oid))
  if (forbidden.length > 0) return `the signing certificate's extended key usage ${forbidden.join(', ')} does not allow code signing`
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i] as X509Certificate
    const issuer = chain[i + 1] as X509Certificate
    if (!issuer.ca) return `certificate ${i + 2} of the chain is not a CA certificate`
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

