// For the end-to-end tests: HTTP look-ups against a registry (Berth or a peer), pushing an OCI
// layout over plain HTTP for setup, and isolated configuration for the containers/image clients
// (skopeo, podman).

import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { layoutBlob, MT, sha256Digest, type Descriptor } from './e2e-layout.js'

const ACCEPT = [MT.index, MT.manifest, MT.dockerList, MT.dockerManifest].join(', ')

export interface FetchedManifest {
  status: number
  mediaType: string | null
  /** Docker-Content-Digest header */
  digestHeader: string | null
  body: Buffer
  /** sha256 of the body */
  digest: string
}

/** GETs a manifest (accepting OCI and Docker v2 types) from `base` (http://host:port). */
export async function getManifest(base: string, name: string, ref: string): Promise<FetchedManifest> {
  const res = await fetch(`${base}/v2/${name}/manifests/${ref}`, { headers: { accept: ACCEPT } })
  const body = Buffer.from(await res.arrayBuffer())
  return {
    status: res.status,
    mediaType: res.headers.get('content-type'),
    digestHeader: res.headers.get('docker-content-digest'),
    body,
    digest: sha256Digest(body),
  }
}

/** GETs a blob and returns its bytes (throws unless 200). */
export async function getBlob(base: string, name: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${base}/v2/${name}/blobs/${digest}`)
  if (res.status !== 200) throw new Error(`GET ${name} blob ${digest}: HTTP ${res.status} ${await res.text()}`)
  return Buffer.from(await res.arrayBuffer())
}

export async function listTags(base: string, name: string, headers: Record<string, string> = {}): Promise<string[]> {
  const res = await fetch(`${base}/v2/${name}/tags/list`, { headers })
  if (res.status !== 200) throw new Error(`GET ${name} tags: HTTP ${res.status} ${await res.text()}`)
  const body = (await res.json()) as { tags: string[] | null }
  return body.tags ?? []
}

/**
 * Config files for containers/image and containers/storage clients, all under `dir`, so they use
 * nothing from /etc/containers or ~/.config and leave nothing behind. Returns the environment to
 * run skopeo, podman or buildah with.
 */
export async function containersEnv(dir: string): Promise<NodeJS.ProcessEnv> {
  const userConfig = join(dir, 'home', '.config', 'containers')
  await mkdir(userConfig, { recursive: true })
  await mkdir(join(dir, 'xdg-run'), { recursive: true, mode: 0o700 })
  // containers/image looks for $HOME/.config/containers/policy.json before /etc/containers.
  const policy = join(userConfig, 'policy.json')
  const registries = join(dir, 'registries.conf')
  const storage = join(dir, 'storage.conf')
  const containers = join(dir, 'containers.conf')
  await writeFile(join(dir, 'auth.json'), JSON.stringify({ auths: {} })) // podman wants it to exist
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }))
  await writeFile(registries, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
  await writeFile(storage, `[storage]\ndriver = "overlay"\nrunroot = "${join(dir, 'run')}"\ngraphroot = "${join(dir, 'graph')}"\n`)
  await writeFile(
    containers,
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      'netns = "none"',
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(dir, 'events.log')}"`,
      `tmp_dir = "${join(dir, 'libpod-tmp')}"`,
      '',
    ].join('\n'),
  )
  return {
    ...process.env,
    HOME: join(dir, 'home'),
    XDG_CONFIG_HOME: join(dir, 'home', '.config'),
    XDG_RUNTIME_DIR: join(dir, 'xdg-run'),
    REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
    CONTAINERS_REGISTRIES_CONF: registries,
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_CONF: containers,
  }
}

/**
 * Pushes a manifest or index from an OCI layout, with everything it references, straight over
 * the distribution API (monolithic blob uploads, manifest PUTs). For test setup where the client
 * under test only pulls. `headers` go with every request (e.g. Basic credentials).
 */
export async function pushFromLayout(base: string, name: string, layoutDir: string, descriptor: Descriptor, tag?: string, headers: Record<string, string> = {}): Promise<void> {
  const body = await layoutBlob(layoutDir, descriptor.digest)
  const parsed = JSON.parse(body.toString()) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }
  for (const child of parsed.manifests ?? []) await pushFromLayout(base, name, layoutDir, child, undefined, headers)
  for (const blob of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) {
    const head = await fetch(`${base}/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD', headers })
    if (head.status === 200) continue
    await pushBlob(base, name, blob.digest, await layoutBlob(layoutDir, blob.digest), headers)
  }
  const res = await fetch(`${base}/v2/${name}/manifests/${tag ?? descriptor.digest}`, {
    method: 'PUT',
    body: body as unknown as BodyInit,
    headers: { ...headers, 'content-type': descriptor.mediaType },
  })
  if (res.status !== 201) throw new Error(`pushing manifest ${descriptor.digest} to ${name}: HTTP ${res.status} ${await res.text()}`)
}

/**
 * One blob in a single POST with `?digest=`; a registry that answers that with an open upload
 * (Distribution 2.8 does) gets the bytes in one PUT to the upload's Location.
 */
async function pushBlob(base: string, name: string, digest: string, data: Buffer, headers: Record<string, string>): Promise<void> {
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data as unknown as BodyInit, headers })
  if (res.status === 201) return
  const location = res.headers.get('location')
  if (res.status !== 202 || !location) throw new Error(`pushing blob ${digest} to ${name}: HTTP ${res.status} ${await res.text()}`)
  await res.arrayBuffer()
  const url = new URL(location, base)
  url.searchParams.set('digest', digest)
  const put = await fetch(url, { method: 'PUT', body: data as unknown as BodyInit, headers: { ...headers, 'content-type': 'application/octet-stream' } })
  if (put.status !== 201) throw new Error(`pushing blob ${digest} to ${name}: PUT HTTP ${put.status} ${await put.text()}`)
}
