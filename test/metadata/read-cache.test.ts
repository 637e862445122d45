import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ReadCache } from '../../src/metadata/read-cache.js'

describe('read cache', () => {
  it('loads once per generation and forgets everything when the generation moves', async () => {
    let generation = 1
    let loads = 0
    const cache = new ReadCache<string>(() => generation, 10)
    const load = async () => `v${++loads}`
    assert.equal(await cache.get('a', load), 'v1')
    assert.equal(await cache.get('a', load), 'v1')
    assert.equal(cache.peek('a'), 'v1')
    generation = 2
    assert.equal(cache.peek('a'), undefined, 'a write anywhere empties it')
    assert.equal(await cache.get('a', load), 'v2')
  })

  it('keeps an offered value only if nothing was written since it was read', () => {
    let generation = 1
    const cache = new ReadCache<string>(() => generation, 10)
    const at = generation
    generation = 2
    cache.offer('k', 'stale', at)
    assert.equal(cache.peek('k'), undefined)
    cache.offer('k', 'fresh', generation)
    assert.equal(cache.peek('k'), 'fresh')
    cache.drop('k')
    assert.equal(cache.peek('k'), undefined)
  })

  it('holds nothing when reads are not cached, and drops the oldest beyond its budget', async () => {
    const off = new ReadCache<string>(() => undefined, 10)
    off.offer('k', 'v', undefined)
    assert.equal(off.peek('k'), undefined)
    let loads = 0
    assert.equal(await off.get('k', async () => `v${++loads}`), 'v1')
    assert.equal(await off.get('k', async () => `v${++loads}`), 'v2')
    const small = new ReadCache<string>(() => 7, 8)
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) small.offer(k, k, 7)
    assert.equal(small.peek('a'), undefined, 'the oldest went first')
    assert.equal(small.peek('i'), 'i')
    assert.equal(small.peek('b'), 'b')
  })
})
