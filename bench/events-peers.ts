// The other hosts of the events bench (bench/events.ts), each in a process of its own so that
// their work does not run on the load generator's event loop (only on the machine's cores, as
// any receiver sharing this 2-core machine would):
//
//   receivers N   N webhook receivers on loopback; each records the lag of every artifact.pushed
//                 CloudEvent (arrival minus the event's time). IPC: 'lags' → { lags: number[][] },
//                 'reset' clears them. Sends { urls } once listening.
//   sender        the bare ceiling: for every 'push' message it makes the signed POSTs Berth
//                 makes for a push (artifact.pushed and tag.created to each receiver, one request
//                 in flight per receiver, keep-alive), and nothing else: no outbox, no database.
//                 Started with { urls }; answers 'idle' → { pending } (POSTs still queued).

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import { Agent, request } from 'undici'
import { cloudEvent } from '../src/events/formats.js'
import { newWebhookSecret, signatureHeaders } from '../src/events/signing.js'
import type { BerthEvent } from '../src/metadata/repositories/events.js'

const role = process.argv[2]
if (role === 'receivers') await receivers(Number(process.argv[3] ?? 3))
else if (role === 'sender') sender(JSON.parse(process.argv[3] ?? '[]') as string[])
else throw new Error(`events-peers: unknown role ${role}`)

async function receivers(count: number): Promise<void> {
  const lags: number[][] = Array.from({ length: count }, () => [])
  const urls = await Promise.all(
    lags.map(async (own) => {
      const server = createServer((req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
          const arrived = Date.now()
          try {
            const e = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type?: string; time?: string }
            if (e.type === 'io.berth.artifact.pushed' && e.time) own.push(arrived - Date.parse(e.time))
          } catch {
            // not an event: ignored
          }
          res.writeHead(204).end()
        })
      })
      server.keepAliveTimeout = 30_000
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    }),
  )
  process.on('message', (m) => {
    if (m === 'reset') for (const l of lags) l.length = 0
    if (m === 'lags') process.send?.({ lags })
  })
  process.send?.({ urls })
}

function sender(urls: string[]): void {
  const secret = newWebhookSecret()
  const agent = new Agent({ connections: 8, keepAliveTimeout: 30_000 })
  const queues = urls.map(() => [] as BerthEvent[])
  const busy = urls.map(() => false)
  let seq = 0
  const drain = async (i: number): Promise<void> => {
    if (busy[i]) return
    busy[i] = true
    const queue = queues[i] as BerthEvent[]
    for (let e = queue.shift(); e; e = queue.shift()) {
      const r = cloudEvent(e, undefined)
      const headers = { 'content-type': r.contentType, ...signatureHeaders(secret, e.id, Math.floor(Date.now() / 1000), r.body) }
      const res = await request(urls[i] as string, { method: 'POST', headers, body: r.body, dispatcher: agent })
      await res.body.dump()
    }
    busy[i] = false
  }
  process.on('message', (m) => {
    if (m === 'idle') return process.send?.({ pending: queues.reduce((n, q) => n + q.length, 0) + busy.filter(Boolean).length })
    if (m !== 'push') return
    const n = seq++
    const base = { time: Date.now(), actor: { name: 'admin', kind: 'user' as const, addr: '127.0.0.1' }, project: 'bench', repository: 'bench/events', digest: `sha256:${n.toString(16).padStart(64, '0')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 528 }
    for (const [i, q] of queues.entries()) {
      q.push({ ...base, id: randomUUID(), type: 'artifact.pushed' }, { ...base, id: randomUUID(), type: 'tag.created', tag: `t${n}` })
      void drain(i)
    }
  })
  process.send?.({ ready: true })
}
