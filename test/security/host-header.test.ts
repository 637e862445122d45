// Header injection into the Bearer challenge: the realm is built only from configured or
// validated values (Host, a trusted proxy's X-Forwarded-Host/-Proto), and every parameter is a
// properly escaped quoted-string.

import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { startAuthServer } from '../helpers/auth.js'

/** A raw GET with headers fetch() would refuse to send (Host); returns the challenge. */
function challenge(s: TestServer, path: string, headers: Record<string, string>): Promise<{ status: number; header: string }> {
  const { hostname, port } = new URL(s.url)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET', headers, setHost: false }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, header: String(res.headers['www-authenticate'] ?? '') }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The parameters of a Bearer challenge, parsed as RFC 7235 auth-params (quoted-strings unescaped). */
function params(header: string): [string, string][] {
  assert.match(header, /^Bearer /)
  const out: [string, string][] = []
  const re = /\s*([a-z_]+)="((?:[^"\\]|\\.)*)"\s*(,|$)/gy
  re.lastIndex = 'Bearer '.length
  let m: RegExpExecArray | null
  while ((m = re.exec(header)) !== null && m[0] !== '') {
    out.push([m[1] as string, (m[2] as string).replace(/\\(.)/g, '$1')])
    if (re.lastIndex >= header.length) break
  }
  assert.equal(re.lastIndex, header.length, `the whole challenge parses: ${header}`)
  return out
}

const ATTACKS = [
  'x",service="evil",realm="http://attacker.example/token',
  'attacker.example/token?x="',
  'a b',
  'evil.example\\',
  'attacker.example:99999999',
  '',
]

describe('the Bearer challenge cannot be written into by the request', () => {
  let s: TestServer
  let proxied: TestServer
  before(async () => {
    s = await startAuthServer()
    proxied = await startAuthServer({ http: { trustProxy: '*' } })
  })
  after(async () => {
    await s?.close()
    await proxied?.close()
  })

  it('a hostile Host header gets the realm of the address the request came in on', async () => {
    const local = new URL(s.url).host
    for (const host of ATTACKS) {
      for (const path of ['/v2/', '/v2/team/app/manifests/latest']) {
        const { status, header } = await challenge(s, path, { host })
        assert.equal(status, 401)
        const p = params(header)
        assert.deepEqual(p.slice(0, 2), [['realm', `http://${local}/token`], ['service', 'berth']], `Host: ${host}`)
        assert.equal(p.filter(([k]) => k === 'realm').length, 1)
      }
    }
  })

  it('a well-formed Host header is kept', async () => {
    const { header } = await challenge(s, '/v2/', { host: 'registry.example.com:5000' })
    assert.equal(header, 'Bearer realm="http://registry.example.com:5000/token",service="berth"')
  })

  it('a trusted proxy’s hostile X-Forwarded-Host and -Proto are not believed', async () => {
    const local = new URL(proxied.url).host
    for (const host of ATTACKS.filter(Boolean)) {
      const { header } = await challenge(proxied, '/v2/', { host: local, 'x-forwarded-host': host, 'x-forwarded-proto': 'https' })
      assert.deepEqual(params(header), [['realm', `https://${local}/token`], ['service', 'berth']], `X-Forwarded-Host: ${host}`)
    }
    for (const proto of ['javascript', 'http://attacker.example/#', 'https"']) {
      const { header } = await challenge(proxied, '/v2/', { host: 'registry.example.com', 'x-forwarded-proto': proto })
      assert.deepEqual(params(header), [['realm', 'http://registry.example.com/token'], ['service', 'berth']], `X-Forwarded-Proto: ${proto}`)
    }
    const good = await challenge(proxied, '/v2/', { host: local, 'x-forwarded-host': 'registry.example.com', 'x-forwarded-proto': 'https' })
    assert.equal(good.header, 'Bearer realm="https://registry.example.com/token",service="berth"')
  })
})

describe('configured challenge values are quote-escaped', () => {
  it('a service name with quotes and backslashes stays one parameter', async () => {
    const s = await startAuthServer({ auth: { service: 'my "reg\\istry"' } })
    try {
      const { header } = await challenge(s, '/v2/team/app/tags/list', { host: new URL(s.url).host })
      assert.deepEqual(params(header), [
        ['realm', `${s.url}/token`],
        ['service', 'my "reg\\istry"'],
        ['scope', 'repository:team/app:pull'],
      ])
    } finally {
      await s.close()
    }
  })
})
