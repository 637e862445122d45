import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto'
import { RegistryError } from '../errors/registry-error.js'
import { sigstoreRoot, type SigstoreRoot } from './sigstore.js'

// Trust material as the API takes it: cosign public keys (PEM SubjectPublicKeyInfo), notation
// trust stores (a PEM chain of CA certificates and the signer identities trusted under them) and
// Sigstore trusted roots (for keyless bundles, with the signer identities trusted under them).
// Each is checked when added, so a verification never meets unreadable material.

export type MaterialType = 'cosign' | 'notation' | 'sigstore'

/** A cosign public key; `algorithm` says which signatures it can verify. */
export interface CosignKey {
  type: 'cosign'
  name: string
  scope: string
  createdAt: number
  algorithm: 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519' | 'rsa'
  key: KeyObject
  publicKey: string
}

/** A notation trust store: CA certificates and the leaf identities accepted under them. */
export interface NotationStore {
  type: 'notation'
  name: string
  scope: string
  createdAt: number
  certificates: X509Certificate[]
  pem: string
  /** `*` or `x509.subject: CN=…, O=…` */
  identities: string[]
}

export type TrustMaterial = CosignKey | NotationStore | SigstoreRoot

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/
const MAX_PEM = 64 * 1024
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The body of POST …/trust/keys, checked: a clear INVALID_FIELD for anything unusable. */
export function parseMaterial(input: unknown, scope: string, createdAt: number): TrustMaterial {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw RegistryError.invalidField('body', 'a JSON object')
  const body = input as Record<string, unknown>
  if (typeof body.name !== 'string' || !NAME.test(body.name)) throw RegistryError.invalidField('name', 'lower-case letters, digits, ".", "_" and "-", at most 64 characters')
  if (body.type === 'cosign') return { ...cosignKey(body.publicKey), name: body.name, scope, createdAt }
  if (body.type === 'notation') return { ...notationStore(body.certificates, body.identities), name: body.name, scope, createdAt }
  if (body.type === 'sigstore') return { ...sigstoreRoot(body.trustedRoot, body.identities, body.requireTlog), name: body.name, scope, createdAt }
  throw RegistryError.invalidField('type', 'cosign, notation or sigstore')
}

function pemText(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw RegistryError.invalidField(field, 'a PEM text')
  if (value.length > MAX_PEM) throw RegistryError.invalidField(field, `at most ${MAX_PEM} characters`)
  return value
}

/** A PEM public key of a kind cosign signs with. */
export function cosignKey(value: unknown): Omit<CosignKey, 'name' | 'scope' | 'createdAt'> {
  const pem = pemText('publicKey', value)
  if (!/-----BEGIN PUBLIC KEY-----/.test(pem)) throw RegistryError.invalidField('publicKey', 'a PEM public key (-----BEGIN PUBLIC KEY-----), as `cosign generate-key-pair` writes to cosign.pub')
  let key: KeyObject
  try {
    key = createPublicKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw RegistryError.invalidField('publicKey', `not a readable PEM public key (${(err as Error).message})`)
  }
  return { type: 'cosign', algorithm: algorithmOf(key), key, publicKey: key.export({ type: 'spki', format: 'pem' }).toString() }
}

function algorithmOf(key: KeyObject): CosignKey['algorithm'] {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return 'ecdsa-p256'
      if (details.namedCurve === 'secp384r1') return 'ecdsa-p384'
      throw RegistryError.invalidField('publicKey', `ECDSA curve ${details.namedCurve ?? 'unknown'} is not supported (P-256 or P-384)`)
    case 'ed25519':
      return 'ed25519'
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048) throw RegistryError.invalidField('publicKey', 'RSA keys need at least 2048 bits')
      return 'rsa'
    default:
      throw RegistryError.invalidField('publicKey', `${key.asymmetricKeyType ?? 'this'} keys are not supported (ECDSA P-256/P-384, Ed25519 or RSA)`)
  }
}

/** A PEM chain of CA certificates and the identities trusted under it. */
export function notationStore(certificates: unknown, identities: unknown): Omit<NotationStore, 'name' | 'scope' | 'createdAt'> {
  const pem = pemText('certificates', certificates)
  const blocks = pem.match(PEM_CERT) ?? []
  if (blocks.length === 0) throw RegistryError.invalidField('certificates', 'a PEM chain of X.509 certificates (-----BEGIN CERTIFICATE-----)')
  const certs = blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch (err) {
      throw RegistryError.invalidField('certificates', `certificate ${i + 1} is not a readable X.509 certificate (${(err as Error).message})`)
    }
  })
  if (!certs.some((c) => c.ca)) throw RegistryError.invalidField('certificates', 'no CA certificate (basicConstraints CA:TRUE): a trust store holds the roots signers chain to')
  if (!Array.isArray(identities) || identities.length === 0 || identities.length > 100) throw RegistryError.invalidField('identities', 'a list of 1 to 100 identities ("*" or "x509.subject: CN=…")')
  for (const id of identities) {
    if (typeof id !== 'string' || (id !== '*' && subjectOfIdentity(id) === undefined)) throw RegistryError.invalidField('identities', `"${String(id)}" is neither "*" nor "x509.subject: <distinguished name>"`)
  }
  return { type: 'notation', certificates: certs, pem: blocks.join('\n'), identities: identities as string[] }
}

/** The attributes of `x509.subject: CN=a, O=b` as a normalised set; undefined when not that form. */
export function subjectOfIdentity(identity: string): Set<string> | undefined {
  const m = /^x509\.subject:\s*(.+)$/.exec(identity)
  if (!m) return undefined
  const parts = (m[1] ?? '').split(/\s*,\s*/).filter(Boolean)
  if (parts.length === 0 || parts.some((p) => !/^[A-Za-z.0-9]+=.+$/.test(p))) return undefined
  return normalisedDn(parts)
}

/** A certificate's subject (Node prints one attribute a line) as the same normalised set. */
export function subjectOfCertificate(cert: X509Certificate): Set<string> {
  return normalisedDn(cert.subject.split('\n'))
}

function normalisedDn(parts: string[]): Set<string> {
  return new Set(
    parts.map((p) => {
      const eq = p.indexOf('=')
      return `${p.slice(0, eq).trim().toUpperCase()}=${p.slice(eq + 1).trim()}`
    }),
  )
}

/** What the API shows of material (public keys and certificates are no secrets). */
export function materialView(m: TrustMaterial) {
  const base = { name: m.name, type: m.type, scope: m.scope === SYSTEM_SCOPE ? 'system' : 'project', createdAt: new Date(m.createdAt).toISOString() }
  if (m.type === 'cosign') return { ...base, algorithm: m.algorithm, publicKey: m.publicKey }
  if (m.type === 'sigstore') return { ...base, trustedRoot: m.trustedRoot, identities: m.identities, requireTlog: m.requireTlog }
  return {
    ...base,
    certificates: m.pem,
    identities: m.identities,
    subjects: m.certificates.map((c) => c.subject.split('\n').join(', ')),
    notAfter: m.certificates.map((c) => new Date(c.validTo).toISOString()),
  }
}

/** The scope of registry-wide material (a project name cannot contain a colon). */
export const SYSTEM_SCOPE = ':system'

/** Stored JSON of material. */
export function materialJson(m: TrustMaterial): string {
  if (m.type === 'cosign') return JSON.stringify({ publicKey: m.publicKey })
  if (m.type === 'sigstore') return JSON.stringify({ trustedRoot: m.trustedRoot, identities: m.identities, requireTlog: m.requireTlog })
  return JSON.stringify({ certificates: m.pem, identities: m.identities })
}

/** Material read back from its stored row (checked when it was added). */
export function materialFromRow(row: { scope: string; name: string; type: string; material: string; createdAt: number }): TrustMaterial {
  const stored = JSON.parse(row.material) as Record<string, unknown>
  const { scope, name, createdAt } = row
  if (row.type === 'cosign') return { ...cosignKey(stored.publicKey), name, scope, createdAt }
  if (row.type === 'sigstore') return { ...sigstoreRoot(stored.trustedRoot, stored.identities, stored.requireTlog), name, scope, createdAt }
  return { ...notationStore(stored.certificates, stored.identities), name, scope, createdAt }
}
