import { parentPort, workerData } from 'node:worker_threads'
import pino from 'pino'
import { createStorage, openThreadMetadata } from './deployment.js'
import type { Config } from './config/schema.js'
import { GcRunning, GcService, gcOptionsOf, type GcProgress } from './gc/gc-service.js'
import type { FromGcThread, ToGcThread } from './gc/gc-thread.js'
import { createMetadataRepositories } from './metadata/repositories/index.js'
import { loggerOptions } from './observability/logger.js'

// The garbage collection thread (see src/gc/gc-thread.ts): opens the deployment the server
// serves, without migrating it, and runs the GC runs the server hands over.

const port = parentPort
if (!port) throw new Error('gc-thread-main runs as a worker thread of berth serve')
const { config, level } = workerData as { config: Config; level: string }
const post = (message: FromGcThread) => port.postMessage(message)

const log = pino(loggerOptions(level), { write: (line: string) => post({ type: 'log', line }) })
const storage = await createStorage(config)
const metadata = await openThreadMetadata(config, log)
const meta = createMetadataRepositories(metadata.db, metadata.changes)

// Idle upload sessions are purged by the server's upload service (its session locks).
const purges = new Map<number, { resolve: (n: number) => void; reject: (err: Error) => void }>()
let nextPurge = 0
const uploads = {
  purge: (cutoff: number) =>
    new Promise<number>((resolve, reject) => {
      const request = nextPurge++
      purges.set(request, { resolve, reject })
      post({ type: 'purge', request, cutoff })
    }),
}

const gc = new GcService({ meta, storage, uploads, log, onRunEnded: (result, bytesFreed) => post({ type: 'ended', result, bytesFreed }) }, gcOptionsOf(config))

async function run(m: Extract<ToGcThread, { type: 'run' }>): Promise<void> {
  try {
    const onProgress = m.progress ? (progress: GcProgress) => post({ type: 'progress', call: m.call, progress }) : undefined
    const { id, done } = await gc.start({ trigger: m.trigger, dryRun: m.dryRun, onProgress })
    post({ type: 'started', call: m.call, id })
    post({ type: 'done', call: m.call, record: await done })
  } catch (err) {
    post({ type: 'failed', call: m.call, message: (err as Error).message, running: err instanceof GcRunning })
  }
}

port.on('message', (m: ToGcThread) => {
  if (m.type === 'run') void run(m)
  else if (m.type === 'purged') {
    const waiting = purges.get(m.request)
    purges.delete(m.request)
    if (m.count !== undefined) waiting?.resolve(m.count)
    else waiting?.reject(new Error(m.error ?? 'the upload purge failed'))
  }
})
post({ type: 'ready' })
