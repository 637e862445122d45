import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { buildImage, putManifest, sha256 } from '../helpers/oci.js'
import { startServer, type StartOptions, type TestServer } from '../helpers/server.js'
import type { ConfigInput } from '../../src/config/schema.js'

const run = promisify(execFile)
export const ROOT = join(import.meta.dirname, '..', '..')
const MAIN = join(ROOT, 'src', 'cli', 'main.ts')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the `berth` CLI from the sources, with BERTH_* test variables kept out of its config. */
export async function berth(args: string[]): Promise<CliResult> {
  return run(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: cliEnv(), maxBuffer: 64 << 20 }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )
}

/** Starts the CLI as a child process (to kill it). */
export function spawnBerth(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
}

function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('BERTH_')) delete env[k]
  return env
}

/** A server whose metadata is a SQLite file in its data directory, whatever the test run's dialect. */
export async function sqliteServer(dataDir: string, overrides: ConfigInput = {}, opts: StartOptions = {}): Promise<TestServer> {
  return startServer({ dataDir, database: { url: `sqlite:${join(dataDir, 'berth.db')}` }, ...overrides }, { keepData: true, ...opts })
}

export interface Pushed {
  repo: string
  tag: string
  digest: string
  blobs: string[]
}

/** Pushes one small image (config + one layer) under `repo:tag` through the HTTP API. */
export async function pushImage(base: string, repo: string, tag: string, seed = `${repo}:${tag}`): Promise<Pushed> {
  const img = await buildImage(base, repo, seed)
  const res = await putManifest(base, repo, tag, img.manifest)
  assert.equal(res.status, 201, `push of ${repo}:${tag}: ${res.status}`)
  return { repo, tag, digest: img.digest, blobs: [img.config, ...img.layers] }
}

/** Every repo:tag of a registry with the digest it resolves to. */
export async function allTags(base: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const catalog = (await (await fetch(`${base}/v2/_catalog?n=10000`)).json()) as { repositories: string[] }
  for (const repo of catalog.repositories) {
    const { tags } = (await (await fetch(`${base}/v2/${repo}/tags/list`)).json()) as { tags: string[] | null }
    for (const tag of tags ?? []) {
      const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
      assert.equal(res.status, 200, `HEAD ${repo}:${tag}`)
      out.set(`${repo}:${tag}`, res.headers.get('docker-content-digest') ?? '')
    }
  }
  return out
}

/** Pulls a manifest and every blob it names, checking each digest. */
export async function pullAndCheck(base: string, repo: string, ref: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
  assert.equal(res.status, 200, `pull ${repo}:${ref}`)
  const body = Buffer.from(await res.arrayBuffer())
  const manifest = JSON.parse(body.toString()) as { config: { digest: string }; layers: { digest: string }[] }
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    const b = await fetch(`${base}/v2/${repo}/blobs/${d}`)
    assert.equal(b.status, 200, `blob ${d} of ${repo}:${ref}`)
    assert.equal(sha256(Buffer.from(await b.arrayBuffer())), d)
  }
  return sha256(body)
}

/** Files under a backup directory's blobs/ (the blobs it holds). */
export async function backupBlobFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const alg of await readdir(join(dir, 'blobs')).catch(() => [] as string[])) {
    for (const prefix of await readdir(join(dir, 'blobs', alg))) for (const hex of await readdir(join(dir, 'blobs', alg, prefix))) out.push(`${alg}:${hex}`)
  }
  return out.sort()
}

/** A config file for a deployment on the given database and blob folder. */
export async function writeConfig(path: string, dataDir: string, databaseUrl: string): Promise<string> {
  await writeFile(path, `dataDir: ${dataDir}\ndatabase:\n  url: ${databaseUrl}\n`)
  return path
}
