import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LookupFunction } from 'node:net'

// One HTTP POST of a delivery: cut at its timeout (connect to last byte), the response body read
// up to a small bound and then dropped (a 10 MB answer is not read), never a redirect followed.

/** bytes of a response body kept (for the delivery's last error) */
const BODY_LIMIT = 1024

export interface PostResult {
  statusCode: number | null
  latencyMs: number
  /** undefined on a 2xx answer */
  error?: string
}

export function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number, lookup?: LookupFunction): Promise<PostResult> {
  const started = performance.now()
  const u = new URL(url)
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise((resolve) => {
    let done = false
    const finish = (r: Omit<PostResult, 'latencyMs'>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      req.destroy()
      resolve({ ...r, latencyMs: Math.round(performance.now() - started) })
    }
    const req = send(u, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, agent: false, ...(lookup ? { lookup } : {}) }, (res) => {
      const status = res.statusCode ?? 0
      const chunks: Buffer[] = []
      let kept = 0
      const settle = () => {
        const text = Buffer.concat(chunks).toString('utf8').slice(0, BODY_LIMIT)
        finish(status >= 200 && status < 300 ? { statusCode: status } : { statusCode: status, error: `HTTP ${status}${text ? `: ${text}` : ''}` })
      }
      res.on('data', (c: Buffer) => {
        chunks.push(c)
        kept += c.length
        if (kept >= BODY_LIMIT) settle()
      })
      res.on('end', settle)
      res.on('error', settle)
    })
    const timer = setTimeout(() => finish({ statusCode: null, error: `no answer within ${timeoutMs} ms` }), timeoutMs)
    req.on('error', (err) => finish({ statusCode: null, error: err.message }))
    req.end(body)
  })
}
