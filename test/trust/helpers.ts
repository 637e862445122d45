import assert from 'node:assert/strict'
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { apiOk } from '../helpers/auth.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'

// Signatures made here with Node's crypto, in the exact formats cosign writes (simple-signing
// payload as a layer, its base64 signature in the layer annotation; referrers mode or the
// legacy `sha256-<hex>.sig` tag).

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const COSIGN_SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json'
export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json'

export type KeyKind = 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519' | 'rsa'

export interface KeyPair {
  kind: KeyKind
  privateKey: KeyObject
  publicPem: string
}

export function keyPair(kind: KeyKind): KeyPair {
  const pair =
    kind === 'ed25519' ? generateKeyPairSync('ed25519') : kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: kind === 'ecdsa-p256' ? 'P-256' : 'P-384' })
  return { kind, privateKey: pair.privateKey, publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

/** What cosign signs: its simple-signing document naming the image digest. */
export function simpleSigningPayload(repository: string, digest: string): Buffer {
  return Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': `127.0.0.1/${repository}` }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }))
}

/** Cosign's signature of a payload: SHA-256 with ECDSA (DER) or RSA PKCS #1 v1.5, Ed25519 over the bytes. */
export function cosignSign(key: KeyPair, payload: Buffer): string {
  return sign(key.kind === 'ed25519' ? null : 'sha256', payload, key.privateKey).toString('base64')
}

export interface Client {
  url: string
  auth?: string
}

function headers(c: Client, extra: Record<string, string> = {}): Record<string, string> {
  return c.auth ? { authorization: c.auth, ...extra } : extra
}

export async function pushBlob(c: Client, repository: string, data: Buffer): Promise<string> {
  const digest = sha256(data)
  const res = await fetch(`${c.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: headers(c) })
  assert.equal(res.status, 201, `blob push failed: ${res.status} ${await res.text()}`)
  return digest
}

export async function putManifest(c: Client, repository: string, ref: string, body: Buffer, type = OCI_MANIFEST): Promise<string> {
  const res = await fetch(`${c.url}/v2/${repository}/manifests/${ref}`, { method: 'PUT', body: asBody(body), headers: headers(c, { 'content-type': type }) })
  assert.equal(res.status, 201, `manifest push failed: ${res.status} ${await res.text()}`)
  return sha256(body)
}

/** An image with one filesystem layer; returns its digest. */
export async function pushImage(c: Client, repository: string, tag: string, seed = tag): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, seed }))
  const layer = Buffer.from(`layer of ${repository}:${seed}`)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(c, repository, config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await pushBlob(c, repository, layer), size: layer.length }],
    }),
  )
  return putManifest(c, repository, tag, manifest)
}

export async function manifestSize(c: Client, repository: string, digest: string): Promise<number> {
  const res = await fetch(`${c.url}/v2/${repository}/manifests/${digest}`, { method: 'HEAD', headers: headers(c, { accept: OCI_MANIFEST }) })
  return Number(res.headers.get('content-length'))
}

export interface SignOptions {
  /** 'referrer' (cosign --registry-referrers-mode=oci-1-1) or 'tag' (the legacy sha256-<hex>.sig) */
  mode: 'referrer' | 'tag'
  /** the payload pushed (default: the one signed) */
  pushedPayload?: Buffer
  /** the digest the signed payload names (default: the subject) */
  names?: string
}

export interface Layer {
  mediaType: string
  data: Buffer
  annotations?: Record<string, string>
}

/**
 * Pushes a referrer of `subject` as cosign, notation and Sigstore clients do (an artifact
 * manifest with the empty config and one layer); returns its digest.
 */
export async function pushReferrer(c: Client, repository: string, subject: string, artifactType: string, layer: Layer, annotations: Record<string, string>): Promise<string> {
  const empty = Buffer.from('{}')
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: await pushBlob(c, repository, empty), size: 2 },
    layers: [{ mediaType: layer.mediaType, digest: await pushBlob(c, repository, layer.data), size: layer.data.length, ...(layer.annotations ? { annotations: layer.annotations } : {}) }],
    subject: { mediaType: OCI_MANIFEST, digest: subject, size: await manifestSize(c, repository, subject) },
    annotations,
  }
  const body = Buffer.from(JSON.stringify(manifest))
  return putManifest(c, repository, sha256(body), body)
}

/** Signs `subject` as cosign does and pushes the signature manifest; returns its digest. */
export async function cosignSignImage(c: Client, repository: string, subject: string, key: KeyPair, opts: SignOptions): Promise<string> {
  const payload = simpleSigningPayload(repository, opts.names ?? subject)
  const signature = cosignSign(key, payload)
  const pushed = opts.pushedPayload ?? payload
  const annotations = { 'dev.cosignproject.cosign/signature': signature }
  if (opts.mode === 'referrer') return pushReferrer(c, repository, subject, COSIGN_SIG, { mediaType: SIMPLE_SIGNING, data: pushed, annotations }, { 'org.opencontainers.image.created': new Date().toISOString() })
  const layer = { mediaType: SIMPLE_SIGNING, digest: await pushBlob(c, repository, pushed), size: pushed.length, annotations }
  const config = Buffer.from(JSON.stringify({ architecture: '', config: {}, created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] } }))
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(c, repository, config), size: config.length }, layers: [layer] }
  return putManifest(c, repository, `${subject.replace(':', '-')}.sig`, Buffer.from(JSON.stringify(manifest)))
}

// --- the verification status (GET …/artifacts/{digest}/signatures) ---------------------------

export interface SignatureResult {
  type: string
  source?: string
  bundle?: boolean
  verified: boolean
  key?: string
  keyScope?: string
  identity?: string
  reason?: string
}

export interface SignatureStatus {
  digest: string
  verified: string[]
  signatures: SignatureResult[]
  policy: { require: string; exempt: boolean; pullAllowed: boolean; denied?: string }
}

/** The status of `project/repository@digest` (`repository` inside the project). */
export function signatureStatus(s: TestServer, project: string, repository: string, digest: string, authorization?: string): Promise<SignatureStatus> {
  return apiOk<SignatureStatus>(s, 'GET', `/projects/${project}/repositories/${encodeURIComponent(repository)}/artifacts/${digest}/signatures`, authorization)
}

/** A new image `project/repository:v1` signed by `sign(digest)`; its status once Berth has verified it. */
export async function signedImage(s: TestServer, project: string, repository: string, sign: (digest: string) => Promise<unknown>): Promise<{ digest: string; status: SignatureStatus }> {
  const digest = await pushImage(s, `${project}/${repository}`, 'v1')
  await sign(digest)
  await s.app.trust.settled()
  return { digest, status: await signatureStatus(s, project, repository, digest) }
}

/** The status holds one signature, with the fields of `expected`, not verified for `reason`. */
export function assertRejected(st: SignatureStatus, expected: Partial<SignatureResult>, reason: RegExp): void {
  assert.deepEqual(st.verified, [])
  assert.equal(st.signatures.length, 1, JSON.stringify(st.signatures))
  assert.deepEqual(st.signatures[0], { ...st.signatures[0], ...expected, verified: false })
  assert.match(st.signatures[0]?.reason ?? '', reason)
}

/** Trusts `publicKey` as the cosign key `release` of `project` and, with `policy`, sets the project's trust policy. */
export async function trustCosignKey(s: TestServer, authorization: string | undefined, project: string, publicKey: string, policy?: { require: string; exemptRepositories?: string }): Promise<void> {
  await apiOk(s, 'POST', `/projects/${project}/trust/keys`, authorization, { name: 'release', type: 'cosign', publicKey }, 201)
  if (policy) await apiOk(s, 'PUT', `/projects/${project}/trust/policy`, authorization, policy)
}
