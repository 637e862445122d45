// The proxy mode's ceiling (bench/proxy.ts): a bare pull-through forwarder doing only the work no
// proxy cache can avoid — receive the upstream's bytes, hash them, write them to a file made
// durable (fsync) and send them on to the client, with backpressure from both sides. No auth,
// no metadata, no coalescing, no verification against the digest asked for.
//
//   node --import tsx bench/proxy-ceiling.ts UPSTREAM_URL PORT DIR   (prints "ready")

import { createHash, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { open } from 'node:fs/promises'
import { createServer, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { Agent, request } from 'undici'

const [upstream, port, dir] = process.argv.slice(2) as [string, string, string]
const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 })

const server = createServer((req, res) => {
  forward(req.url ?? '/', req.method ?? 'GET', req.headers.accept, res).catch(() => res.destroy())
})

async function forward(url: string, method: string, accept: string | undefined, res: ServerResponse): Promise<void> {
  const up = await request(`${upstream}${url}`, { method: method as 'GET', headers: accept ? { accept } : {}, dispatcher: agent })
  const headers: Record<string, string> = {}
  for (const name of ['content-type', 'content-length', 'docker-content-digest']) {
    const v = up.headers[name]
    if (typeof v === 'string') headers[name] = v
  }
  res.writeHead(up.statusCode, headers)
  if (method === 'HEAD' || up.statusCode !== 200) {
    await up.body.dump()
    res.end()
    return
  }
  const file = await open(join(dir, randomUUID()), 'w')
  const hash = createHash('sha256')
  try {
    for await (const chunk of up.body as AsyncIterable<Buffer>) {
      hash.update(chunk)
      const written = file.write(chunk)
      if (!res.write(chunk)) await once(res, 'drain')
      await written
    }
    await file.sync()
  } finally {
    await file.close()
  }
  hash.digest('hex')
  res.end()
}

server.listen(Number(port), '127.0.0.1', () => console.log('ready'))
