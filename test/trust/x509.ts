import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto'

// X.509 certificates made here with Node's crypto (which signs but cannot issue certificates): a
// small DER encoder builds the TBSCertificate, the issuer's key signs it. Enough for test CA
// chains: names, validity, basicConstraints, keyUsage, extendedKeyUsage, subjectAltName and raw
// extensions (Fulcio's issuer OID).

// --- DER ---------------------------------------------------------------------------------------

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content])
}

export const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items))
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items))
const explicit = (n: number, content: Buffer) => tlv(0xa0 + n, content)
const octets = (b: Buffer) => tlv(0x04, b)
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'))
const bool = (b: boolean) => tlv(0x01, Buffer.from([b ? 0xff : 0]))
const NULL = Buffer.from([0x05, 0x00])

export function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number)
  const bytes = [a * 40 + b]
  for (const n of rest) {
    const group: number[] = [n & 0x7f]
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) group.unshift((v & 0x7f) | 0x80)
    bytes.push(...group)
  }
  return tlv(0x06, Buffer.from(bytes))
}

/** A non-negative INTEGER in DER's minimal form (OpenSSL refuses a redundant leading zero byte). */
function integer(b: Buffer): Buffer {
  let value = b
  while (value.length > 1 && value[0] === 0 && !((value[1] as number) & 0x80)) value = value.subarray(1)
  const trimmed = value[0] !== undefined && value[0] & 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value
  return tlv(0x02, trimmed)
}

function bitString(b: Buffer, unused = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unused]), b]))
}

/** UTCTime before 2050, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14)
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`))
}

const ATTRIBUTES: Record<string, string> = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11', C: '2.5.4.6', ST: '2.5.4.8', L: '2.5.4.7' }

/** `{ CN: 'x', O: 'y' }` as a Name (one attribute per RDN, in order). */
function name(attrs: Record<string, string>): Buffer {
  return seq(...Object.entries(attrs).map(([k, v]) => set(seq(oid(ATTRIBUTES[k] ?? k), utf8(v)))))
}

// --- certificates ------------------------------------------------------------------------------

export interface Extension {
  oid: string
  critical?: boolean
  /** the DER of extnValue's content */
  value: Buffer
}

export interface CertSpec {
  subject: Record<string, string>
  /** the subject's public key */
  publicKey: KeyObject
  issuer?: Issued
  ca?: boolean
  notBefore?: Date
  notAfter?: Date
  /** extended key usages (OIDs); code signing by default for leaves */
  extKeyUsage?: string[]
  /** subjectAltName: email addresses and URIs */
  emails?: string[]
  uris?: string[]
  extensions?: Extension[]
}

export interface Issued {
  cert: X509Certificate
  der: Buffer
  pem: string
  subject: Record<string, string>
  key: KeyObject
  publicKey: KeyObject
}

export const CODE_SIGNING = '1.3.6.1.5.5.7.3.3'
export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'

function signatureAlgorithm(key: KeyObject): { alg: Buffer; hash: string } {
  if (key.asymmetricKeyType === 'rsa') return { alg: seq(oid('1.2.840.113549.1.1.11'), NULL), hash: 'sha256' }
  const curve = key.asymmetricKeyDetails?.namedCurve
  if (curve === 'secp384r1') return { alg: seq(oid('1.2.840.10045.4.3.3')), hash: 'sha384' }
  if (curve === 'secp521r1') return { alg: seq(oid('1.2.840.10045.4.3.4')), hash: 'sha512' }
  return { alg: seq(oid('1.2.840.10045.4.3.2')), hash: 'sha256' }
}

function extension(e: Extension): Buffer {
  return seq(oid(e.oid), ...(e.critical ? [bool(true)] : []), octets(e.value))
}

/** A certificate for `spec.publicKey`, signed by `spec.issuer` (or self-signed with `selfKey`). */
export function certificate(spec: CertSpec, selfKey?: KeyObject): Issued {
  const signer = spec.issuer?.key ?? selfKey
  if (!signer) throw new Error('a certificate needs an issuer or a self-signing key')
  const { alg, hash } = signatureAlgorithm(signer)
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' })
  const keyId = createHash('sha1').update(spki).digest()
  const exts: Extension[] = [{ oid: '2.5.29.14', value: octets(keyId) }]
  if (spec.issuer) exts.push({ oid: '2.5.29.35', value: seq(tlv(0x80, createHash('sha1').update(spec.issuer.publicKey.export({ type: 'spki', format: 'der' })).digest())) })
  if (spec.ca) {
    exts.push({ oid: '2.5.29.19', critical: true, value: seq(bool(true)) })
    exts.push({ oid: '2.5.29.15', critical: true, value: bitString(Buffer.from([0x06]), 1) }) // keyCertSign, cRLSign
  } else {
    exts.push({ oid: '2.5.29.19', critical: true, value: seq() })
    exts.push({ oid: '2.5.29.15', critical: true, value: bitString(Buffer.from([0x80]), 7) }) // digitalSignature
    exts.push({ oid: '2.5.29.37', value: seq(...(spec.extKeyUsage ?? [CODE_SIGNING]).map(oid)) })
  }
  const sans = [...(spec.emails ?? []).map((e) => tlv(0x81, Buffer.from(e))), ...(spec.uris ?? []).map((u) => tlv(0x86, Buffer.from(u)))]
  if (sans.length > 0) exts.push({ oid: '2.5.29.17', critical: true, value: seq(...sans) })
  exts.push(...(spec.extensions ?? []))
  const notBefore = spec.notBefore ?? new Date(Date.now() - 3600_000)
  const notAfter = spec.notAfter ?? new Date(Date.now() + 86400_000)
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(randomBytes(12)),
    alg,
    name(spec.issuer?.subject ?? spec.subject),
    seq(time(notBefore), time(notAfter)),
    name(spec.subject),
    spki,
    explicit(3, seq(...exts.map(extension))),
  )
  const signature = sign(hash, tbs, signer)
  const der = seq(tbs, alg, bitString(signature))
  const cert = new X509Certificate(der)
  return { cert, der, pem: cert.toString(), subject: spec.subject, key: undefined as unknown as KeyObject, publicKey: spec.publicKey }
}

export type KeySpec = { ec: 'P-256' | 'P-384' | 'P-521' } | { rsa: 2048 | 3072 | 4096 }

export function keys(spec: KeySpec = { ec: 'P-256' }): { privateKey: KeyObject; publicKey: KeyObject } {
  return 'ec' in spec ? generateKeyPairSync('ec', { namedCurve: spec.ec }) : generateKeyPairSync('rsa', { modulusLength: spec.rsa })
}

/** A self-signed root CA with its private key. */
export function rootCa(subject: Record<string, string>, opts: { notBefore?: Date; notAfter?: Date } = {}): Issued {
  const k = keys()
  return { ...certificate({ subject, publicKey: k.publicKey, ca: true, ...opts }, k.privateKey), key: k.privateKey }
}

/** A CA or leaf certificate issued by `issuer`, with its private key. */
export function issue(issuer: Issued, spec: Omit<CertSpec, 'publicKey' | 'issuer'>, keySpec?: KeySpec): Issued {
  const k = keys(keySpec)
  return { ...certificate({ ...spec, publicKey: k.publicKey, issuer }), key: k.privateKey }
}
