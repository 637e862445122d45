import type { Logger } from 'pino'
import { readSmallBlob } from '../browse/blob-reader.js'
import { RegistryError } from '../errors/registry-error.js'
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js'
import type { Registry } from '../registry/registry.js'
import { COSIGN_SIGNATURE_ARTIFACT, legacySignatureTag, SIGNATURE_ANNOTATION, SIMPLE_SIGNING, verifyCosign } from './cosign.js'
import { COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, NOTATION_SIGNATURE_ARTIFACT, verifyNotation } from './notation.js'
import { SYSTEM_SCOPE, type CosignKey, type NotationStore, type TrustMaterial } from './material.js'
import { isBundleMediaType, SIGSTORE_BUNDLE_ARTIFACT, verifyBundle, type SigstoreRoot } from './sigstore.js'

// The verification status of one artifact: every signature found for it (as referrers and under
// cosign's legacy tag), each verified against the trust material of its project and of the
// registry, or the reason it is not. Sigstore bundles are cosign's keyless format: a verified
// bundle counts as a cosign signature.

export type SignatureType = 'cosign' | 'notation'

/** The kind of signature a piece of trust material verifies. */
export function signatureTypeOf(m: TrustMaterial): SignatureType {
  return m.type === 'notation' ? 'notation' : 'cosign'
}

export interface SignatureResult {
  type: SignatureType
  /** how it was found: a referrer of the artifact, or cosign's `sha256-<hex>.sig` tag */
  source: 'referrer' | 'tag'
  /** the digest of the manifest holding the signature */
  manifest: string
  verified: boolean
  /** the key or trust store that verified it */
  key?: string
  keyScope?: 'project' | 'system'
  /** notation: the signing certificate's subject; Sigstore bundles: its SAN and OIDC issuer */
  identity?: string
  /** a Sigstore bundle (cosign keyless) rather than a key signature */
  bundle?: true
  reason?: string
}

export interface TrustStatus {
  repository: string
  digest: string
  computedAt: string
  /** the signature types with at least one verified signature */
  verified: SignatureType[]
  signatures: SignatureResult[]
}

/** Signature payloads are a few hundred bytes; a notation envelope carries its certificate chain. */
const MAX_SIGNATURE_BLOB = 256 * 1024
/** Bounds the work of one computation (a legacy .sig manifest gains a layer per signature). */
const MAX_SIGNATURES = 64

export interface StatusDeps {
  registry: Registry
  log: Logger
  now: () => number
}

/** Finds and verifies the signatures of `digest` in `repository` with `material` (its project's and the registry's). */
export async function computeStatus(deps: StatusDeps, repository: string, digest: string, material: TrustMaterial[]): Promise<TrustStatus> {
  const cosignKeys = material.filter((m): m is CosignKey => m.type === 'cosign')
  const stores = material.filter((m): m is NotationStore => m.type === 'notation')
  const roots = material.filter((m): m is SigstoreRoot => m.type === 'sigstore')
  const signatures: SignatureResult[] = []
  for (const found of await signatureManifests(deps.registry, repository, digest)) {
    if (signatures.length >= MAX_SIGNATURES) break
    const layers = found.manifest.blobs.slice(1)
    if (found.bundle) {
      const layer = layers.find((l) => isBundleMediaType(l.mediaType))
      if (layer) signatures.push(await bundleLayer(deps, repository, digest, found, layer, roots))
      else signatures.push({ type: 'cosign', bundle: true, source: found.source, manifest: found.digest, verified: false, reason: 'no Sigstore bundle layer' })
    } else if (found.type === 'cosign') {
      for (const layer of layers.filter((l) => l.mediaType === SIMPLE_SIGNING).slice(0, MAX_SIGNATURES - signatures.length)) {
        signatures.push(await cosignLayer(deps, repository, digest, found, layer, cosignKeys))
      }
    } else {
      const layer = layers.find((l) => l.mediaType === JWS_MEDIA_TYPE || l.mediaType === COSE_MEDIA_TYPE)
      if (layer) signatures.push(await notationLayer(deps, repository, digest, found, layer, stores))
      else signatures.push({ type: 'notation', source: found.source, manifest: found.digest, verified: false, reason: `no ${JWS_MEDIA_TYPE} or ${COSE_MEDIA_TYPE} envelope layer` })
    }
  }
  const verified = (['cosign', 'notation'] as const).filter((t) => signatures.some((s) => s.type === t && s.verified))
  return { repository, digest, computedAt: new Date(deps.now()).toISOString(), verified, signatures }
}

interface FoundManifest {
  type: SignatureType
  /** a Sigstore bundle referrer */
  bundle?: true
  source: 'referrer' | 'tag'
  digest: string
  manifest: ParsedManifest
}

/** The signature manifests of a subject: referrers of the two signature artifact types, then the legacy tag. */
async function signatureManifests(registry: Registry, repository: string, digest: string): Promise<FoundManifest[]> {
  const found: FoundManifest[] = []
  const index = (await registry.manifests.referrers(repository, digest, undefined)) as { manifests: Descriptor[] }
  for (const d of index.manifests) {
    const bundle = d.artifactType === SIGSTORE_BUNDLE_ARTIFACT
    const type = d.artifactType === COSIGN_SIGNATURE_ARTIFACT || bundle ? 'cosign' : d.artifactType === NOTATION_SIGNATURE_ARTIFACT ? 'notation' : undefined
    if (!type) continue
    const manifest = await readManifest(registry, repository, d.digest)
    if (manifest) found.push({ type, ...(bundle ? { bundle } : {}), source: 'referrer', digest: d.digest, manifest: manifest.parsed })
  }
  const legacy = await readManifest(registry, repository, legacySignatureTag(digest))
  if (legacy) found.push({ type: 'cosign', source: 'tag', digest: legacy.digest, manifest: legacy.parsed })
  return found
}

async function readManifest(registry: Registry, repository: string, reference: string): Promise<{ digest: string; parsed: ParsedManifest } | undefined> {
  let row
  try {
    row = await registry.manifests.get(repository, reference)
  } catch (err) {
    if (err instanceof RegistryError && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'NAME_UNKNOWN')) return undefined
    throw err
  }
  if (!row.content) return undefined
  try {
    const parsed = parseManifest(row.content, row.mediaType)
    return parsed.kind === 'image' ? { digest: row.digest, parsed } : undefined
  } catch {
    return undefined
  }
}

async function cosignLayer(deps: StatusDeps, repository: string, subject: string, found: FoundManifest, layer: Descriptor, keys: CosignKey[]): Promise<SignatureResult> {
  const base = { type: 'cosign' as const, source: found.source, manifest: found.digest }
  const signature = layer.annotations?.[SIGNATURE_ANNOTATION]
  if (!signature) return { ...base, verified: false, reason: `the layer has no ${SIGNATURE_ANNOTATION} annotation (keyless and bundle signatures are not verified)` }
  const payload = await signatureBlob(deps, repository, layer)
  if (typeof payload === 'string') return { ...base, verified: false, reason: payload }
  const outcome = verifyCosign(payload, signature, subject, keys)
  if (!outcome.verified) return { ...base, verified: false, reason: outcome.reason }
  return { ...base, verified: true, key: outcome.key.name, keyScope: scopeName(outcome.key.scope) }
}

async function notationLayer(deps: StatusDeps, repository: string, subject: string, found: FoundManifest, layer: Descriptor, stores: NotationStore[]): Promise<SignatureResult> {
  const base = { type: 'notation' as const, source: found.source, manifest: found.digest }
  const envelope = await signatureBlob(deps, repository, layer)
  if (typeof envelope === 'string') return { ...base, verified: false, reason: envelope }
  const outcome = verifyNotation(envelope, layer.mediaType, subject, stores, deps.now())
  if (!outcome.verified) return { ...base, verified: false, identity: outcome.identity, reason: outcome.reason }
  return { ...base, verified: true, key: outcome.store.name, keyScope: scopeName(outcome.store.scope), identity: outcome.identity }
}

async function bundleLayer(deps: StatusDeps, repository: string, subject: string, found: FoundManifest, layer: Descriptor, roots: SigstoreRoot[]): Promise<SignatureResult> {
  const base = { type: 'cosign' as const, bundle: true as const, source: found.source, manifest: found.digest }
  const body = await signatureBlob(deps, repository, layer)
  if (typeof body === 'string') return { ...base, verified: false, reason: body }
  // A message signature signs the subject's manifest bytes.
  const manifest = (await deps.registry.manifests.get(repository, subject)).content
  if (!manifest) return { ...base, verified: false, reason: 'the signed manifest is not stored here' }
  const outcome = await verifyBundle(body, subject, Buffer.from(manifest), roots)
  if (!outcome.verified) return { ...base, verified: false, identity: outcome.identity, reason: outcome.reason }
  return { ...base, verified: true, key: outcome.root.name, keyScope: scopeName(outcome.root.scope), identity: outcome.identity }
}

/** The blob of a signature layer, or why it cannot be read. */
async function signatureBlob(deps: StatusDeps, repository: string, layer: Descriptor): Promise<Buffer | string> {
  try {
    return await readSmallBlob(deps.registry, repository, layer.digest, MAX_SIGNATURE_BLOB)
  } catch (err) {
    if (err instanceof RegistryError) return `the signature blob ${layer.digest} cannot be read: ${err.message}`
    throw err
  }
}

function scopeName(scope: string): 'project' | 'system' {
  return scope === SYSTEM_SCOPE ? 'system' : 'project'
}
