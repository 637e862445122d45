// Rate limits under `berth serve --workers 2` on the embedded database: the workers share their
// counters (a SQLite file of their own), so a limit holds whichever worker a connection reaches.
// In memory each worker allowed the whole rate: 2 workers let twice the limit through.

import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'

const LIMIT = 10

/** GET /v2/ on a connection of its own (so that the primary hands it to the next worker). */
function getOnNewConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v2/`, { agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('rate limits with berth serve --workers 2 (SQLite)', { skip: process.platform !== 'linux' && 'workers are tested on Linux' }, () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ limits: { requests: { perAddress: `${LIMIT}/m` } } }, { workers: 2 })
  })
  after(async () => s?.close())

  it(`lets exactly ${LIMIT} requests a minute through from one address, over both workers`, async () => {
    const statuses: number[] = []
    for (let i = 0; i < 3 * LIMIT; i++) statuses.push(await getOnNewConnection(s.url))
    const accepted = statuses.filter((c) => c === 200).length
    assert.equal(accepted, LIMIT, `statuses: ${statuses.join(' ')}`)
    assert.ok(statuses.slice(LIMIT).every((c) => c === 429), `statuses: ${statuses.join(' ')}`)
  })
})
