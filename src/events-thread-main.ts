import { parentPort, workerData } from 'node:worker_threads'
import { join, resolve } from 'node:path'
import pino from 'pino'
import { openThreadMetadata } from './deployment.js'
import type { Config } from './config/schema.js'
import { Deliverer } from './events/deliver.js'
import type { DeliveryThreadData, FromDeliveryThread, ToDeliveryThread } from './events/delivery-thread.js'
import { EventDrainer } from './events/drainer.js'
import { drainerOptions, sinksOf, WebhookPolicies } from './events/index.js'
import { NetworkGuard } from './events/ssrf.js'
import { createEventRepository } from './metadata/repositories/events.js'
import { loggerOptions } from './observability/logger.js'
import { keyFromConfig, keyFromFile, SecretBox } from './replication/secrets.js'

// The event delivery thread (see src/events/delivery-thread.ts): opens the deployment's database
// without migrating it and delivers the outbox with an ordinary EventDrainer.

const port = parentPort
if (!port) throw new Error('events-thread-main runs as a worker thread of berth serve')
const data = workerData as DeliveryThreadData
const config = data.config as Config
const post = (message: FromDeliveryThread) => port.postMessage(message)

/** how often the counts of deliveries go to the server's metrics */
const METRICS_MS = 250

const log = pino(loggerOptions(data.level), { write: (line: string) => post({ type: 'log', line }) }).child({ module: 'events' })
const metadata = await openThreadMetadata(config, log)
const repo = createEventRepository(metadata.db)
// the server made (or read) the key file before starting this thread
const key = config.secrets.key ? keyFromConfig(config.secrets.key) : (await keyFromFile(join(resolve(config.dataDir), 'secrets.key'))).key
const deliverer = new Deliverer()
const webhooks = new WebhookPolicies({ repo, box: new SecretBox(key), guard: new NetworkGuard(config.events.allowedNetworks), deliverer, now: Date.now, timeoutMs: config.events.webhookTimeout, baseUrl: config.http.baseUrl })

let fanOut = 0
let attempts: { sink: string; delivered: boolean; lagMs: number }[] = []
const flush = () => {
  if (fanOut === 0 && attempts.length === 0) return
  post({ type: 'metrics', fanOut, attempts })
  fanOut = 0
  attempts = []
}
const metrics = setInterval(flush, METRICS_MS)

const drainer = new EventDrainer(repo, sinksOf(config, data.source, webhooks), deliverer, log, {
  ...drainerOptions(config, Date.now),
  onFanOut: (n) => (fanOut += n),
  onAttempt: (sink, delivered, lagMs) => attempts.push({ sink, delivered, lagMs }),
})

async function stop(graceMs: number): Promise<void> {
  await drainer.stop(graceMs)
  await deliverer.close()
  clearInterval(metrics)
  flush()
  await metadata.close()
  post({ type: 'stopped' })
}

port.on('message', (m: ToDeliveryThread) => {
  if (m.type === 'wake') drainer.wake()
  else if (m.type === 'changed') {
    webhooks.forget()
    drainer.wake()
  } else if (m.type === 'stop') {
    stop(m.graceMs).catch((err: unknown) => {
      log.warn({ err }, 'the event delivery thread did not stop cleanly')
      post({ type: 'stopped' })
    })
  }
})
drainer.start()
