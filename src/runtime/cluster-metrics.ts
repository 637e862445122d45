import cluster, { type Worker } from 'node:cluster'
import type { Registry } from 'prom-client'

// /metrics of `berth serve --workers N`: a scrape reaches one worker, which asks the primary for
// the figures of every worker; the primary collects each one's metrics as JSON and merges them
// with prom-client's AggregatorRegistry (counters and histograms summed, and each metric's own
// `aggregator` otherwise: the store-wide gauges take the first worker's value). So a scrape
// says the same, whichever worker answers it.

/** worker → primary: render the registry-wide metrics for me */
const RENDER = 'berth:metrics-render'
/** primary → worker: the rendered text, or why not */
const RENDERED = 'berth:metrics-rendered'
/** primary → worker: your metrics as JSON */
const COLLECT = 'berth:metrics-collect'
/** worker → primary: mine */
const COLLECTED = 'berth:metrics-collected'

/** How long the primary waits for a worker's figures; a worker that is late is left out. */
const COLLECT_TIMEOUT_MS = 5_000
/** How long a worker waits for the primary's answer. */
const RENDER_TIMEOUT_MS = COLLECT_TIMEOUT_MS + 2_000

interface Message {
  type?: unknown
  id?: unknown
}

type Rendered = { contentType: string; body: string }

/**
 * In a worker of `berth serve --workers`: answers the primary's collection requests with
 * `registry`'s metrics, and returns the render of /metrics (the sum over every worker). Outside
 * a cluster: undefined (the registry renders itself).
 */
export function clusterMetricsRender(registry: Registry): (() => Promise<Rendered>) | undefined {
  if (!cluster.isWorker) return undefined
  const waiting = new Map<number, { resolve: (r: Rendered) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>()
  let next = 0
  process.on('message', (message: Message & { body?: string; error?: string }) => {
    if (message?.type === COLLECT) {
      registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: COLLECTED, id: message.id, metrics }),
        (err: unknown) => process.send?.({ type: COLLECTED, id: message.id, error: (err as Error).message }),
      )
    } else if (message?.type === RENDERED) {
      const request = waiting.get(Number(message.id))
      if (!request) return
      waiting.delete(Number(message.id))
      clearTimeout(request.timer)
      if (typeof message.body === 'string') request.resolve({ contentType: registry.contentType, body: message.body })
      else request.reject(new Error(`the primary could not collect the workers' metrics: ${message.error ?? 'no answer'}`))
    }
  })
  return () =>
    new Promise<Rendered>((resolve, reject) => {
      const id = next++
      const timer = setTimeout(() => {
        waiting.delete(id)
        reject(new Error('the primary did not answer with the metrics of the workers'))
      }, RENDER_TIMEOUT_MS)
      timer.unref()
      waiting.set(id, { resolve, reject, timer })
      process.send?.({ type: RENDER, id })
    })
}

/**
 * In the primary: answers the workers' render requests by collecting every worker in `ready()`.
 * prom-client is loaded on the first request only (the primary stays small).
 */
export function serveClusterMetrics(ready: () => Worker[], warn: (msg: string, fields: object) => void): void {
  let next = 0
  const collecting = new Map<number, (reply: { metrics?: unknown[]; error?: string } | undefined) => void>()
  cluster.on('message', (worker: Worker, message: Message & { metrics?: unknown[]; error?: string }) => {
    if (message?.type === COLLECTED) {
      collecting.get(Number(message.id))?.(message)
    } else if (message?.type === RENDER) {
      render(worker, message.id).catch((err: unknown) => {
        if (worker.isConnected()) worker.send({ type: RENDERED, id: message.id, error: (err as Error).message })
      })
    }
  })

  /** One worker's metrics as JSON, or undefined when it did not answer in time. */
  const collect = (worker: Worker): Promise<unknown[] | undefined> =>
    new Promise((resolve) => {
      const id = next++
      const timer = setTimeout(() => done(undefined), COLLECT_TIMEOUT_MS)
      const done = (reply: { metrics?: unknown[]; error?: string } | undefined) => {
        clearTimeout(timer)
        collecting.delete(id)
        if (!reply?.metrics) warn('a worker left out of /metrics', { pid: worker.process.pid, error: reply?.error ?? 'no answer in time' })
        resolve(reply?.metrics)
      }
      collecting.set(id, done)
      worker.send({ type: COLLECT, id })
    })

  const render = async (asking: Worker, id: unknown) => {
    const { AggregatorRegistry } = await import('prom-client')
    const parts = await Promise.all(ready().filter((w) => w.isConnected()).map(collect))
    const merged = AggregatorRegistry.aggregate(parts.filter((p): p is unknown[] => p !== undefined) as Parameters<typeof AggregatorRegistry.aggregate>[0])
    const body = await merged.metrics()
    if (asking.isConnected()) asking.send({ type: RENDERED, id, body })
  }
}
