import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseContentRange, parseRangeHeader } from './range.js'

describe('ranges', () => {
  const cases: [string | undefined, number, ReturnType<typeof parseRangeHeader>][] = [
    [undefined, 10, undefined],
    ['bytes=0-4', 10, { start: 0, end: 4 }],
    ['bytes=5-', 10, { start: 5, end: 9 }],
    ['bytes=-3', 10, { start: 7, end: 9 }],
    ['bytes=8-100', 10, { start: 8, end: 9 }],
    ['bytes=10-', 10, 'unsatisfiable'],
    ['bytes=5-2', 10, 'unsatisfiable'],
    ['bytes=0-1,3-4', 10, undefined],
    ['items=0-1', 10, undefined],
  ]
  for (const [header, size, expected] of cases) {
    it(`Range ${header} of ${size} bytes`, () => assert.deepEqual(parseRangeHeader(header, size), expected))
  }
  it('parses both Content-Range forms', () => {
    assert.deepEqual(parseContentRange('0-99'), { start: 0, end: 99 })
    assert.deepEqual(parseContentRange('bytes 100-199/*'), { start: 100, end: 199 })
    assert.equal(parseContentRange('5-2'), undefined)
    assert.equal(parseContentRange('x-y'), undefined)
    assert.deepEqual(parseContentRange('bytes 4-7/8'), { start: 4, end: 7 })
    assert.deepEqual(parseContentRange('4-7/8'), { start: 4, end: 7 })
    // a range that ends beyond the stated total
    assert.equal(parseContentRange('4-7/2'), undefined)
    assert.equal(parseContentRange('bytes 4-7/7'), undefined)
  })
})
