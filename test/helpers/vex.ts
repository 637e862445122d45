import assert from 'node:assert/strict'
import { ADMIN } from './auth.js'
import { pushBlobAs } from './layers.js'
import { asBody, sha256 } from './oci.js'
import type { TestServer } from './server.js'

// VEX documents for the scanning tests (test/scan/vex.test.ts, test/scan/scanner-adapters.test.ts,
// test/ui/scanners-vex-ui.test.ts): an OpenVEX document, and a document pushed as an OCI 1.1
// referrer of an image.

export const OPENVEX_TYPE = 'application/openvex+json'
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

/** An OpenVEX v0.2.0 document of `statements`, by the tests' security team; `id` tells documents apart. */
export function vexDocument(statements: object[], id = 'https://example.com/vex/1'): object {
  return { '@context': 'https://openvex.dev/ns/v0.2.0', '@id': id, author: 'Security team', timestamp: '2026-11-20T00:00:00Z', version: 1, statements }
}

/** Pushes `doc` as an OCI 1.1 referrer of `subject` (artifactType, empty config, the document as its one layer); answers its digest. */
export async function pushReferrer(s: TestServer, repo: string, subject: { digest: string; manifest: Buffer }, doc: object, artifactType = OPENVEX_TYPE): Promise<string> {
  const data = Buffer.from(JSON.stringify(doc))
  const layer = await pushBlobAs(s, repo, data, ADMIN)
  const empty = await pushBlobAs(s, repo, Buffer.from('{}'), ADMIN)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
      layers: [{ mediaType: artifactType, digest: layer, size: data.length }],
      subject: { mediaType: MANIFEST, digest: subject.digest, size: subject.manifest.length },
    }),
  )
  const digest = sha256(manifest)
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${digest}`, { method: 'PUT', body: asBody(manifest), headers: { 'content-type': MANIFEST, authorization: ADMIN } })
  assert.equal(res.status, 201, await res.text())
  return digest
}
