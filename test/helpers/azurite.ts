import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { ConfigInput } from '../../src/config/schema.js'

// Azurite's Blob service (npm azurite, a dev dependency) as a child process on 127.0.0.1 and
// an ephemeral port, for the Azure driver's tests and BERTH_TEST_STORAGE=azure runs. Telemetry
// off: only loopback traffic. Its well-known development account and key are public.

export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

const BIN = resolve(import.meta.dirname, '../../node_modules/.bin/azurite-blob')

export interface TestAzurite {
  /** the Blob service URL, account included: http://127.0.0.1:<port>/devstoreaccount1 */
  endpoint: string
  port: number
  /** Creates a container (a fresh name unless given); returns its name. */
  createContainer(name?: string): Promise<string>
  /** Kills the process (SIGKILL: as a crash) without removing its data. */
  kill(): Promise<void>
  /** Starts it again on the same port and data directory. */
  restart(): Promise<void>
  close(): Promise<void>
}

export interface AzuriteOptions {
  /** keep blobs on disk (survive restart) instead of in memory */
  persistent?: boolean
}

export async function startAzurite(opts: AzuriteOptions = {}): Promise<TestAzurite> {
  const location = await mkdtemp(join(tmpdir(), 'berth-azurite-'))
  let child: ChildProcess | undefined
  let port = 0
  const launch = async (): Promise<void> => {
    const args = ['--silent', '--skipApiVersionCheck', '--disableTelemetry', '--blobHost', '127.0.0.1', '--blobPort', String(port)]
    args.push(...(opts.persistent ? ['--location', location] : ['--inMemoryPersistence']))
    const proc = spawn(BIN, args, { cwd: location, stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let output = ''
    port = await new Promise<number>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`azurite did not start: ${output}`)), 30_000)
      proc.stdout?.on('data', (d: Buffer) => {
        output += d.toString()
        const m = /listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
        if (m) {
          clearTimeout(timer)
          ok(Number(m[1]))
        }
      })
      proc.stderr?.on('data', (d: Buffer) => (output += d.toString()))
      proc.once('exit', (code) => {
        clearTimeout(timer)
        fail(new Error(`azurite exited (${code}): ${output}`))
      })
    })
    // A forgotten server must not keep a test process alive, nor outlive it.
    proc.unref()
    process.once('exit', () => proc.kill('SIGKILL'))
    proc.stdout?.destroy()
    proc.stderr?.destroy()
  }
  await launch()
  const endpoint = (): string => `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`
  const stop = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null) return
    // Held by the event loop until it is gone (it was unref'd when started).
    proc.ref()
    const exited = new Promise((ok) => proc.once('exit', ok))
    proc.kill('SIGKILL')
    await exited
  }
  return {
    get endpoint() {
      return endpoint()
    },
    get port() {
      return port
    },
    createContainer: (name?: string) => createContainerAt(endpoint(), name),
    kill: stop,
    restart: launch,
    async close() {
      await stop()
      await rm(location, { recursive: true, force: true })
    },
  }
}

/** Creates a container with a fresh name (unless given) at a Blob service endpoint of Azurite. */
async function createContainerAt(endpoint: string, name = `berth-${randomBytes(6).toString('hex')}`): Promise<string> {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob')
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
  await service.getContainerClient(name).create()
  return name
}

let shared: Promise<Pick<TestAzurite, 'endpoint' | 'createContainer'>> | undefined

/**
 * The Azurite of BERTH_TEST_STORAGE=azure servers (one container each): the one at
 * BERTH_TEST_AZURITE_ENDPOINT when set (CI starts one for all test files: Azurite takes seconds
 * to start), else one per test process, started on first use.
 */
export function sharedAzurite(): Promise<Pick<TestAzurite, 'endpoint' | 'createContainer'>> {
  const endpoint = process.env.BERTH_TEST_AZURITE_ENDPOINT
  shared ??= endpoint ? Promise.resolve({ endpoint, createContainer: (name?: string) => createContainerAt(endpoint, name) }) : startAzurite()
  return shared
}

/** The storage section of a config using a container of `endpoint` with the account key. */
export function azureStorageConfig(endpoint: string, container: string, extra: Partial<NonNullable<NonNullable<ConfigInput['storage']>['azure']>> = {}): NonNullable<ConfigInput['storage']> {
  return { driver: 'azure', azure: { container, endpoint, accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, maxAttempts: 3, ...extra } }
}

/** The container of a test data directory, created on first use and kept across restarts. */
export async function containerFor(azurite: Pick<TestAzurite, 'createContainer'>, dataDir: string): Promise<string> {
  const marker = join(dataDir, '.berth-test-container')
  const known = await readFile(marker, 'utf8').catch(() => undefined)
  if (known !== undefined) return known
  const container = await azurite.createContainer()
  await writeFile(marker, container)
  return container
}
