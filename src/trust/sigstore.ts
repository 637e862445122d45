import type * as SigstoreBundle from '@sigstore/bundle'
import type * as SigstoreSpecs from '@sigstore/protobuf-specs'
import type * as SigstoreVerify from '@sigstore/verify'
import { RegistryError } from '../errors/registry-error.js'

// Sigstore bundles (cosign's keyless signatures and attestations, GitHub artifact attestations):
// a referrer whose layer is a bundle (application/vnd.dev.sigstore.bundle.v0.3+json) with a
// Fulcio-style certificate, the signature (a DSSE envelope of an in-toto statement, or a message
// signature over the image manifest) and transparency-log entries. Verified offline with
// @sigstore/verify against a trusted root the operator uploads (trusted_root.json: the CAs, the
// transparency logs, the timestamp authorities): the certificate chain at the verified timestamp,
// the signature, every transparency-log entry present (inclusion promise and inclusion proof
// against the log's key), whether one is required, the signer's identity (certificate SAN and
// OIDC issuer) against the identities trusted with the root, and that the bundle signs this
// artifact. The @sigstore packages load on the first bundle or root, never at startup.

export const SIGSTORE_BUNDLE_ARTIFACT = 'application/vnd.dev.sigstore.bundle.v0.3+json'

/** Bundle media types: v0.1 to v0.3 (`…bundle+json;version=0.x` and `…bundle.v0.3+json`). */
export function isBundleMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.3)?\+json(;\s*version=0\.[123])?$/.test(mediaType)
}

/** An identity trusted under a root: the certificate's SAN (email or URI) and its OIDC issuer. */
export interface SigstoreIdentity {
  issuer: string
  subject: string
}

/** A Sigstore trusted root and the signer identities it is trusted for. */
export interface SigstoreRoot {
  type: 'sigstore'
  name: string
  scope: string
  createdAt: number
  /** trusted_root.json as uploaded */
  trustedRoot: Record<string, unknown>
  identities: SigstoreIdentity[]
  /** whether a bundle needs a transparency-log entry (entries present are always checked) */
  requireTlog: boolean
}

const MAX_ROOT = 256 * 1024

/** The body fields of a sigstore trust material, checked for shape (the root's content is checked by checkTrustedRoot). */
export function sigstoreRoot(trustedRoot: unknown, identities: unknown, requireTlog: unknown): Omit<SigstoreRoot, 'name' | 'scope' | 'createdAt'> {
  const root = typeof trustedRoot === 'string' ? parseJson(trustedRoot) : trustedRoot
  if (typeof root !== 'object' || root === null || Array.isArray(root)) throw RegistryError.invalidField('trustedRoot', 'a Sigstore trusted root (trusted_root.json) as a JSON object or its text')
  if (JSON.stringify(root).length > MAX_ROOT) throw RegistryError.invalidField('trustedRoot', `at most ${MAX_ROOT} characters`)
  const r = root as Record<string, unknown>
  if (!Array.isArray(r.certificateAuthorities) || r.certificateAuthorities.length === 0) throw RegistryError.invalidField('trustedRoot', 'certificateAuthorities lists no CA (keyless bundles chain to one)')
  if (!Array.isArray(identities) || identities.length === 0 || identities.length > 100) throw RegistryError.invalidField('identities', 'a list of 1 to 100 signer identities {"issuer","subject"}')
  for (const id of identities as unknown[]) {
    const ok = typeof id === 'object' && id !== null && typeof (id as SigstoreIdentity).issuer === 'string' && typeof (id as SigstoreIdentity).subject === 'string' && (id as SigstoreIdentity).issuer !== '' && (id as SigstoreIdentity).subject !== ''
    if (!ok) throw RegistryError.invalidField('identities', `${JSON.stringify(id)} is not {"issuer":"<OIDC issuer URL>","subject":"<certificate email or URI>"}`)
  }
  if (requireTlog !== undefined && typeof requireTlog !== 'boolean') throw RegistryError.invalidField('requireTlog', 'true or false')
  return {
    type: 'sigstore',
    trustedRoot: r,
    identities: (identities as SigstoreIdentity[]).map((i) => ({ issuer: i.issuer, subject: i.subject })),
    requireTlog: requireTlog !== false,
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw RegistryError.invalidField('trustedRoot', 'not JSON')
  }
}

// Type-only imports above: the modules themselves load on first use.
interface SigstoreModules {
  verify: typeof SigstoreVerify
  bundle: typeof SigstoreBundle
  specs: typeof SigstoreSpecs
}

let modules: Promise<SigstoreModules> | undefined

function sigstore(): Promise<SigstoreModules> {
  modules ??= Promise.all([import('@sigstore/verify'), import('@sigstore/bundle'), import('@sigstore/protobuf-specs')]).then(([verify, bundle, specs]) => ({ verify, bundle, specs }))
  return modules
}

type TrustMaterial = SigstoreVerify.TrustMaterial

/** Parsed trust material per root object (material is immutable once added). */
const compiled = new WeakMap<SigstoreRoot, TrustMaterial>()

async function trustMaterialOf(root: SigstoreRoot): Promise<TrustMaterial> {
  const known = compiled.get(root)
  if (known) return known
  const { verify, specs } = await sigstore()
  const material = verify.toTrustMaterial(specs.TrustedRoot.fromJSON(root.trustedRoot))
  compiled.set(root, material)
  return material
}

/** Reads the root as @sigstore/verify will: an unusable root is refused when it is added. */
export async function checkTrustedRoot(root: Omit<SigstoreRoot, 'name' | 'scope' | 'createdAt'>): Promise<void> {
  try {
    await trustMaterialOf(root as SigstoreRoot)
  } catch (err) {
    throw RegistryError.invalidField('trustedRoot', `not a usable Sigstore trusted root (${(err as Error).message})`)
  }
}

export type BundleOutcome = { verified: true; root: SigstoreRoot; identity: string } | { verified: false; reason: string; identity?: string }

/**
 * Verifies a bundle for `subject`, whose manifest bytes are `manifest` (what a message signature
 * signs), with each root in turn; the first that accepts it wins.
 */
export async function verifyBundle(body: Buffer, subject: string, manifest: Buffer, roots: SigstoreRoot[]): Promise<BundleOutcome> {
  const { verify, bundle: bundles } = await sigstore()
  let bundle: ReturnType<typeof bundles.bundleFromJSON>
  try {
    bundle = bundles.bundleFromJSON(JSON.parse(body.toString('utf8')))
  } catch (err) {
    return { verified: false, reason: `not a Sigstore bundle (${(err as Error).message})` }
  }
  const target = signedTarget(bundle, subject)
  if (target) return { verified: false, reason: target }
  if (bundle.verificationMaterial.content.$case === 'publicKey') return { verified: false, reason: 'bundles signed with a public key (not a certificate) are not verified; use a cosign key signature' }
  if (roots.length === 0) return { verified: false, reason: 'no Sigstore trusted root is configured for this project or the registry' }
  let entity
  try {
    entity = verify.toSignedEntity(bundle, manifest)
  } catch (err) {
    return { verified: false, reason: `the bundle cannot be read (${(err as Error).message})` }
  }
  const reasons: string[] = []
  let identity: string | undefined
  const logged = bundle.verificationMaterial.tlogEntries.length > 0
  for (const root of roots) {
    if (root.requireTlog && !logged) {
      reasons.push(`${root.name}: requires a transparency-log entry and the bundle has none`)
      continue
    }
    try {
      const verifier = new verify.Verifier(await trustMaterialOf(root), { tlogThreshold: root.requireTlog ? 1 : 0, ctlogThreshold: 0, timestampThreshold: 1 })
      const signer = verifier.verify(entity)
      const san = signer.identity?.subjectAlternativeName
      const issuer = signer.identity?.extensions?.issuer
      identity = `${san ?? 'no subject'} (issuer ${issuer ?? 'unknown'})`
      if (!root.identities.some((i) => i.subject === san && i.issuer === issuer)) {
        reasons.push(`${root.name}: ${identity} is not one of its trusted identities`)
        continue
      }
      return { verified: true, root, identity }
    } catch (err) {
      reasons.push(`${root.name}: ${describe(err)}`)
    }
  }
  return { verified: false, reason: reasons.join('; '), identity }
}

/** Why the bundle does not sign `subject` (undefined when it does). */
function signedTarget(bundle: SigstoreBundle.Bundle, subject: string): string | undefined {
  const [algorithm, hex] = subject.split(':')
  if (bundle.content.$case === 'messageSignature') {
    const digest = bundle.content.messageSignature.messageDigest
    // The message is the artifact's manifest: its digest is the artifact's digest.
    const named = digest ? `${digest.algorithm === 1 ? 'sha256' : `hash algorithm ${digest.algorithm}`}:${Buffer.from(digest.digest).toString('hex')}` : 'nothing'
    return named === subject ? undefined : `the bundle's message signature is over ${named}, not this artifact`
  }
  const envelope = bundle.content.dsseEnvelope
  if (envelope.payloadType !== 'application/vnd.in-toto+json') return `the bundle's DSSE payload is ${envelope.payloadType}, not an in-toto statement`
  let statement: { subject?: { digest?: Record<string, unknown> }[] }
  try {
    statement = JSON.parse(Buffer.from(envelope.payload).toString('utf8')) as typeof statement
  } catch {
    return 'the in-toto statement is not JSON'
  }
  const subjects = Array.isArray(statement.subject) ? statement.subject : []
  if (subjects.some((s) => s.digest?.[algorithm ?? ''] === hex)) return undefined
  const named = subjects.flatMap((s) => Object.entries(s.digest ?? {}).map(([a, h]) => `${a}:${String(h)}`))
  return `the in-toto statement's subjects are ${named.join(', ') || 'none'}, not this artifact`
}

/** A verification error with the cause that explains it (certificate errors wrap the real one). */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { message?: string } }
  // Keyless certificates live minutes: they are checked at a verified time, never at "now".
  if (e.code === 'TIMESTAMP_ERROR' && /got 0/.test(e.message ?? '')) return 'no verified timestamp (a transparency-log entry with an inclusion promise, or an RFC 3161 timestamp of a timestamp authority of the root)'
  const cause = e.cause?.message ? ` (${e.cause.message})` : ''
  return `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}${cause}`
}
