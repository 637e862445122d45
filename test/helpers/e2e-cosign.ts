// The real cosign and oras CLIs (Debian trixie's cosign 2.5 and oras 1.2, installed by
// .ci/install-clients.sh) run against a Berth on plain HTTP: each gets its own HOME and
// DOCKER_CONFIG under the test's temp directory, so credentials and keys never leave it.

import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ADMIN_PASSWORD } from './auth.js'
import { run, type RunResult } from './e2e-process.js'

/** cosign's flags for a registry on plain HTTP (127.0.0.1 with no TLS). */
export const COSIGN_HTTP = ['--allow-http-registry', '--allow-insecure-registry']

/** Passphrase of the generated key pair (cosign reads it from COSIGN_PASSWORD). */
const COSIGN_PASSWORD = 'berth-e2e-key-passphrase'

export interface CosignCli {
  /** Runs cosign with the given arguments in the working directory. */
  (...args: string[]): Promise<RunResult>
  /** The environment it runs with (HOME, DOCKER_CONFIG, COSIGN_PASSWORD). */
  env: NodeJS.ProcessEnv
  /** The working directory, where `cosign.key` / `cosign.pub` are generated. */
  dir: string
}

/** A cosign whose HOME, DOCKER_CONFIG and key files live in `dir`. */
export async function cosignIn(dir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<CosignCli> {
  const home = join(dir, 'home')
  await mkdir(home, { recursive: true })
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker'), COSIGN_PASSWORD, COSIGN_YES: 'true', ...extraEnv }
  const cli = ((...args: string[]) => run('cosign', args, { env, cwd: dir, timeoutMs: 90_000 })) as CosignCli
  cli.env = env
  cli.dir = dir
  return cli
}

/** `cosign generate-key-pair` in the cosign's directory; returns the PEM public key. */
export async function cosignKeyPair(cosign: CosignCli): Promise<string> {
  await cosign('generate-key-pair')
  return readFile(join(cosign.dir, 'cosign.pub'), 'utf8')
}

/**
 * A cosign in `dir` with a generated key pair (its PEM public key in `publicKey`), logged in to
 * each registry as `username` (the test servers' admin by default).
 */
export async function cosignSigner(dir: string, registries: { host: string }[] = [], username = 'admin', password = ADMIN_PASSWORD): Promise<CosignCli & { publicKey: string }> {
  const cosign = await cosignIn(dir)
  const publicKey = await cosignKeyPair(cosign)
  for (const r of registries) await cosign('login', r.host, '-u', username, '-p', password)
  return Object.assign(cosign, { publicKey })
}

/** `cosign sign --key cosign.key --tlog-upload=false` of `ref`, by tag scheme or OCI 1.1 referrers. */
export function cosignSign(cosign: CosignCli, ref: string, mode: 'legacy' | 'oci-1-1' = 'legacy'): Promise<RunResult> {
  const base = ['sign', '--yes', '--key', 'cosign.key', '--tlog-upload=false', ...COSIGN_HTTP]
  if (mode === 'legacy') return cosign(...base, ref)
  // cosign 2.5 keeps the referrers mode behind COSIGN_EXPERIMENTAL.
  return run('cosign', [...base, '--registry-referrers-mode=oci-1-1', ref], { env: { ...cosign.env, COSIGN_EXPERIMENTAL: '1' }, cwd: cosign.dir, timeoutMs: 90_000 })
}

/** `cosign verify --key cosign.pub` of `ref` (offline: no transparency log); the verified payloads. */
export async function cosignVerify(cosign: CosignCli, ref: string, mode: 'legacy' | 'oci-1-1' = 'legacy'): Promise<{ critical: { image: { 'docker-manifest-digest': string }; identity: { 'docker-reference': string } } }[]> {
  const args = ['verify', '--key', 'cosign.pub', '--insecure-ignore-tlog=true', ...COSIGN_HTTP, ...(mode === 'oci-1-1' ? ['--experimental-oci11'] : []), '--output', 'json', ref]
  const { stdout } = await cosign(...args)
  // One JSON array on its own line (cosign prints its notes to stderr).
  const line = stdout.split('\n').find((l) => l.startsWith('['))
  if (!line) throw new Error(`cosign verify printed no payloads:\n${stdout}`)
  return JSON.parse(line) as never
}

/** `oras` with its own HOME and docker config (credentials) in `dir`. */
export async function orasIn(dir: string): Promise<((...args: string[]) => Promise<RunResult>) & { dir: string }> {
  const home = join(dir, 'home')
  await mkdir(home, { recursive: true })
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker') }
  const cli = ((...args: string[]) => run('oras', args, { env, cwd: dir, timeoutMs: 90_000 })) as ((...args: string[]) => Promise<RunResult>) & { dir: string }
  cli.dir = dir
  return cli
}

/** The cosign legacy tag of an attachment of `digest` (`sha256-<hex>.sig`, `.att`, `.sbom`). */
export function cosignTag(digest: string, suffix: 'sig' | 'att' | 'sbom'): string {
  return `${digest.replace(':', '-')}.${suffix}`
}
