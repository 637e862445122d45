import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { asBody, sha256 } from '../helpers/oci.js'
import { pushFromLayout } from '../helpers/e2e-registry.js'
import { multiArchLayout, type Image, type Index } from '../helpers/e2e-layout.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')

/**
 * Runs the `berth` CLI from the sources (as `npm start` would, without a build). `env` is added
 * to the test's environment (a key set to undefined removes it); `input` is its standard input.
 */
export async function berth(args: string[], env: NodeJS.ProcessEnv = {}, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const running = run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 })
  running.child.stdin?.end(input)
  return running.then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )
}

export interface Pushed {
  amd64: Image
  arm64: Image
  index: Index
  /** a signature-like referrer of the index */
  referrer: string
}

/** Pushes a two-platform index as `repo:tag` and an artifact whose subject is the index. */
export async function pushMultiArch(base: string, repo: string, tag: string, dir: string, prefix = 'multi'): Promise<Pushed> {
  const { amd64, arm64, index } = await multiArchLayout(dir, prefix)
  await pushFromLayout(base, repo, dir, index.descriptor, tag)
  const empty = Buffer.from('{}')
  const blob = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(empty)}`, { method: 'POST', body: asBody(empty) })
  if (blob.status !== 201) throw new Error(`empty blob: ${blob.status}`)
  const sig = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 }],
      subject: { mediaType: index.descriptor.mediaType, digest: index.descriptor.digest, size: index.descriptor.size },
      annotations: { 'org.example.signed-by': prefix },
    }),
  )
  const res = await fetch(`${base}/v2/${repo}/manifests/${sha256(sig)}`, { method: 'PUT', body: asBody(sig), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
  if (res.status !== 201) throw new Error(`referrer: ${res.status} ${await res.text()}`)
  return { amd64, arm64, index, referrer: sha256(sig) }
}

/** The digest a registry gives for repo:ref (null when absent); `authorization` for a registry with auth on. */
export async function digestOf(base: string, repo: string, ref: string, authorization?: string): Promise<string | null> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json', ...(authorization ? { authorization } : {}) } })
  return res.status === 200 ? res.headers.get('docker-content-digest') : null
}

export async function tagsOf(base: string, repo: string): Promise<string[]> {
  const res = await fetch(`${base}/v2/${repo}/tags/list`)
  if (res.status === 404) return []
  return ((await res.json()) as { tags: string[] | null }).tags ?? []
}
