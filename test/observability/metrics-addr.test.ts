import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { startServer } from '../helpers/server.js'

describe('/metrics: on the main port by default, on metrics.addr when set', () => {
  it('serves /metrics on http.addr when metrics.addr is unset', async () => {
    const s = await startServer()
    try {
      assert.equal((await fetch(`${s.url}/v2/`)).status, 200)
      const res = await fetch(`${s.url}/metrics`)
      assert.equal(res.status, 200)
      assert.match(await res.text(), /^berth_http_requests_total\{.*route="base".*\} [1-9]/m)
      assert.equal(s.app.http.metricsListener, undefined)
    } finally {
      await s.close()
    }
  })

  it('serves /metrics only on metrics.addr when it is set, and closes that listener with the server', async () => {
    const s = await startServer({ metrics: { addr: '127.0.0.1:0' } })
    let metricsUrl = ''
    try {
      const listener = s.app.http.metricsListener
      assert.ok(listener, 'a metrics listener')
      const { port } = listener.address() as { port: number }
      assert.notEqual(String(port), new URL(s.url).port)
      metricsUrl = `http://127.0.0.1:${port}`
      assert.equal((await fetch(`${s.url}/v2/`)).status, 200)
      // Not on the public port any more.
      assert.equal((await fetch(`${s.url}/metrics`)).status, 404)
      const res = await fetch(`${metricsUrl}/metrics`)
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
      assert.match(await res.text(), /^berth_http_requests_total\{.*route="base".*\} [1-9]/m, 'the main port’s requests are counted there')
      assert.equal((await fetch(`${metricsUrl}/v2/`)).status, 404, 'the metrics listener serves nothing else')
      assert.equal((await fetch(`${metricsUrl}/metrics`, { method: 'POST' })).status, 405)
    } finally {
      await s.close()
    }
    await assert.rejects(fetch(`${metricsUrl}/metrics`), 'closed with the server')
  })

  it('fails to start when metrics.addr is taken', async () => {
    const first = await startServer({ metrics: { addr: '127.0.0.1:0' } })
    try {
      const { port } = first.app.http.metricsListener?.address() as { port: number }
      await assert.rejects(startServer({ metrics: { addr: `127.0.0.1:${port}` } }), /metrics\.addr 127\.0\.0\.1:\d+: .*EADDRINUSE/)
    } finally {
      await first.close()
    }
  })
})
