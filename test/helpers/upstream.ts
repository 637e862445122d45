// Upstream registries for the proxy-cache end-to-end tests, seeded with real images: Docker
// Distribution 2.8 (Debian's docker-registry, whose access log tells exactly what the proxy asked
// it for) and a second Berth with token auth playing a Docker-Hub-like upstream. Also the calls
// that make a Berth a proxy of them (an endpoint, a proxy project).

import { readFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { ADMIN, ADMIN_PASSWORD, apiOk, basic, startAuthServer } from './auth.js'
import { startDistribution, type AccessLogEntry, type Distribution, type DistributionOptions } from './e2e-daemons.js'
import { addBusyboxImage, multiArchLayout, OciLayout, type Image, type Index } from './e2e-layout.js'
import { findBinary } from './e2e-process.js'
import { pushFromLayout } from './e2e-registry.js'
import type { TestServer } from './server.js'

export const BUSYBOX = '/bin/busybox'

export interface Upstream {
  /** http://host:port */
  url: string
  /** host:port */
  host: string
  /** what a Berth endpoint needs to log in, if the upstream wants credentials */
  username?: string
  password?: string
  /** Pushes a manifest or index of an OCI layout under `name:tag`, with what it references. */
  push(name: string, layoutDir: string, image: { descriptor: Image['descriptor'] }, tag: string): Promise<void>
  /** Requests served so far (only Distribution keeps an access log; a Berth upstream throws). */
  requests(): Promise<AccessLogEntry[]>
  stop(): Promise<void>
}

/**
 * Docker Distribution 2.8 on an ephemeral loopback port, its storage under `dir`; with `htpasswd`,
 * it wants those Basic credentials (and pushes made here send them).
 */
export async function distributionUpstream(dir: string, opts: Pick<DistributionOptions, 'htpasswd'> = {}): Promise<Upstream & { distribution: Distribution; blobFile(digest: string): string }> {
  const distribution = await startDistribution(dir, { binary: findBinary('docker-registry'), ...opts })
  const headers: Record<string, string> = opts.htpasswd ? { authorization: basic(opts.htpasswd.username, opts.htpasswd.password) } : {}
  return {
    distribution,
    username: opts.htpasswd?.username,
    password: opts.htpasswd?.password,
    // Distribution's filesystem layout (it serves these bytes as they are, never re-checking them).
    blobFile: (digest) => {
      const hex = digest.replace(/^sha256:/, '')
      return join(dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data')
    },
    url: distribution.url,
    host: distribution.host,
    push: (name, layoutDir, image, tag) => pushFromLayout(distribution.url, name, layoutDir, image.descriptor, tag, headers),
    requests: () => distribution.requests(),
    stop: () => distribution.stop(),
  }
}

/**
 * A second Berth with token auth, as Docker Hub is for an account: its `library` project is made
 * private, so every request is challenged (`WWW-Authenticate: Bearer realm=…/token`) and a client
 * gets a token from the realm with the admin's credentials (`username`, `password`).
 */
export async function berthUpstream(): Promise<Upstream & { server: TestServer }> {
  const server = await startAuthServer()
  await apiOk(server, 'PATCH', '/projects/library', ADMIN, { public: false })
  return {
    server,
    url: server.url,
    host: server.host,
    username: 'admin',
    password: ADMIN_PASSWORD,
    push: (name, layoutDir, image, tag) => pushFromLayout(server.url, name, layoutDir, image.descriptor, tag, { authorization: ADMIN }),
    requests: () => Promise.reject(new Error('a Berth upstream keeps no access log')),
    stop: () => server.close(),
  }
}

// ---------------------------------------------------------------------------------------------
// Seeding

/** A runnable image (static busybox, `echo hello from berth` by default) pushed as `name:tag`. */
export async function seedBusybox(upstream: Upstream, layoutDir: string, name: string, tag: string): Promise<Image> {
  const layout = await new OciLayout(layoutDir).init()
  const image = await addBusyboxImage(layout, await readFile(BUSYBOX))
  await upstream.push(name, layoutDir, image, tag)
  return image
}

/** A linux/amd64 + linux/arm64 index pushed as `name:tag` (`prefix` makes its layers unique). */
export async function seedMultiPlatform(upstream: Upstream, layoutDir: string, name: string, tag: string, prefix = 'multi'): Promise<{ index: Index; amd64: Image; arm64: Image }> {
  const { amd64, arm64, index } = await multiArchLayout(layoutDir, prefix)
  await upstream.push(name, layoutDir, index, tag)
  return { index, amd64, arm64 }
}

/** An image whose one layer holds a file of `bytes` random bytes (the gzipped layer is as large: random data does not shrink). */
export async function seedLargeImage(upstream: Upstream, layoutDir: string, name: string, tag: string, bytes: number): Promise<Image> {
  const layout = await new OciLayout(layoutDir).init()
  const image = await layout.addImage({ layers: [[{ path: 'large.bin', data: randomBytes(bytes) }]] })
  await upstream.push(name, layoutDir, image, tag)
  return image
}

// ---------------------------------------------------------------------------------------------
// Making a Berth (auth on, admin's password ADMIN_PASSWORD) proxy an upstream

export interface ProxySettings {
  /** the endpoint's name */
  registry: string
  ttl?: string
  namespaces?: string[]
  default?: boolean
  prefetchPlatforms?: boolean
}

/** `POST /api/v1/registries`: an endpoint named `name` for `upstream`, with its credentials if any. */
export async function addEndpoint(berth: TestServer, name: string, upstream: Pick<Upstream, 'url' | 'username' | 'password'>): Promise<void> {
  const body: Record<string, unknown> = { name, url: upstream.url }
  if (upstream.username) Object.assign(body, { username: upstream.username, password: upstream.password })
  await apiOk(berth, 'POST', '/registries', ADMIN, body, 201)
}

/** `POST /api/v1/projects`: a public proxy project (anonymous clients pull through it, as from Docker Hub). */
export async function addProxyProject(berth: TestServer, name: string, proxy: ProxySettings): Promise<void> {
  await apiOk(berth, 'POST', '/projects', ADMIN, { name, public: true, proxy }, 201)
}
