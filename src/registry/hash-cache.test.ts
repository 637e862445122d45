import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { HashCache } from './hash-cache.js'

describe('HashCache', () => {
  const entry = (size: number, version?: string) => ({ hash: createHash('sha256'), algorithm: 'sha256' as const, size, version })

  it('keeps at most `max` hashes, dropping the least recently used', () => {
    const cache = new HashCache(3)
    // A node behind a round-robin balancer sees chunks of sessions that others finish.
    for (let i = 0; i < 1000; i++) cache.set(`s${i}`, entry(i))
    assert.equal(cache.size, 3)
    assert.ok(cache.get('s999', 'sha256', 999))
    cache.get('s997', 'sha256', 997)
    cache.set('new', entry(1))
    assert.equal(cache.get('s998', 'sha256', 998), undefined, 'the least recently used went first')
    assert.ok(cache.get('s997', 'sha256', 997))
  })

  it('serves a hash only for the same size, algorithm and (when asked) stored version, and drops a stale one', () => {
    const cache = new HashCache()
    cache.set('a', entry(10, 'v1'))
    assert.equal(cache.get('a', 'sha512', 10), undefined)
    cache.set('a', entry(10, 'v1'))
    assert.equal(cache.get('a', 'sha256', 10, { version: 'v2' }), undefined)
    assert.equal(cache.size, 0)
    cache.set('a', entry(10, 'v1'))
    assert.ok(cache.get('a', 'sha256', 10, { version: 'v1' }))
    assert.equal(cache.get('a', 'sha256', 11), undefined)
    assert.equal(cache.size, 0)
  })
})
