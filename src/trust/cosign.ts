import { constants, verify } from 'node:crypto'
import type { CosignKey } from './material.js'

// Cosign's key-based signatures (sigstore/cosign): an OCI manifest whose layers are
// simple-signing payloads, each signed in the layer annotation `dev.cosignproject.cosign/signature`
// (base64). Cosign stores that manifest either as a referrer of the image (artifactType below,
// `--registry-referrers-mode=oci-1-1`) or under the tag `sha256-<hex>.sig` of the image's
// repository (the legacy scheme, several signatures as several layers).

export const COSIGN_SIGNATURE_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json'
export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json'
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature'
/** Keyless signatures carry their Fulcio certificate here (not verified: no Sigstore roots are configured). */
export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate'

/** The tag under which cosign's legacy scheme stores the signatures of `digest`. */
export function legacySignatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`
}

/** The subject digest a legacy signature tag names; undefined for other tags. */
export function subjectOfSignatureTag(tag: string): string | undefined {
  const m = /^(sha256|sha512)-([0-9a-f]{64,128})\.sig$/.exec(tag)
  return m ? `${m[1]}:${m[2]}` : undefined
}

export type CosignOutcome = { verified: true; key: CosignKey } | { verified: false; reason: string }

/**
 * Verifies one simple-signing layer: the signature over the exact payload bytes with one of the
 * keys, then that the payload names `subject` (`critical.image.docker-manifest-digest`), so a
 * signature copied from another image does not count.
 */
export function verifyCosign(payload: Buffer, signature: string, subject: string, keys: CosignKey[]): CosignOutcome {
  const sig = Buffer.from(signature, 'base64')
  if (sig.length === 0) return { verified: false, reason: 'the signature annotation is empty or not base64' }
  if (keys.length === 0) return { verified: false, reason: 'no cosign public key is configured for this project or the registry' }
  const key = keys.find((k) => signatureVerifies(k, payload, sig))
  if (!key) return { verified: false, reason: `no configured cosign key verifies this signature (tried ${keys.map((k) => k.name).join(', ')})` }
  const signed = signedDigest(payload)
  if (signed === undefined) return { verified: false, reason: 'the signed payload is not a cosign simple-signing document (no critical.image.docker-manifest-digest)' }
  if (signed !== subject) return { verified: false, reason: `the signed payload names ${signed}, not this artifact` }
  return { verified: true, key }
}

function signedDigest(payload: Buffer): string | undefined {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as { critical?: { image?: Record<string, unknown> } }
    const digest = doc.critical?.image?.['docker-manifest-digest']
    return typeof digest === 'string' ? digest : undefined
  } catch {
    return undefined
  }
}

/**
 * Cosign hashes with SHA-256 for every key it loads from a PEM file (ECDSA signatures in ASN.1
 * DER, RSA in PKCS #1 v1.5); sigstore's newer default for P-384 is SHA-384, accepted too.
 * Ed25519 signs the payload itself.
 */
function signatureVerifies(k: CosignKey, payload: Buffer, sig: Buffer): boolean {
  try {
    switch (k.algorithm) {
      case 'ed25519':
        return verify(null, payload, k.key, sig)
      case 'ecdsa-p256':
        return verify('sha256', payload, k.key, sig)
      case 'ecdsa-p384':
        return verify('sha384', payload, k.key, sig) || verify('sha256', payload, k.key, sig)
      case 'rsa':
        return verify('sha256', payload, { key: k.key, padding: constants.RSA_PKCS1_PADDING }, sig) || verify('sha256', payload, { key: k.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig)
    }
  } catch {
    // A malformed signature (wrong length, bad DER) verifies nothing.
    return false
  }
}
