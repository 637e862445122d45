import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseDigest } from './digest.js'
import { isValidName, isValidTag } from './reference.js'

describe('references', () => {
  for (const name of ['a', 'library/ubuntu', 'a/b/c', 'a.b', 'a_b', 'a__b', 'a---b', 'x1/y2']) {
    it(`accepts name ${name}`, () => assert.ok(isValidName(name)))
  }
  for (const name of ['', 'A', 'a/', '/a', 'a//b', 'a/../b', '..', 'a..b', 'a___b', '_a', 'a b', 'a'.repeat(256)]) {
    it(`refuses name ${JSON.stringify(name.slice(0, 12))}`, () => assert.ok(!isValidName(name)))
  }
  for (const tag of ['latest', 'v1.0.0', '_x', 'A-b_c.d', 'a'.repeat(128)]) {
    it(`accepts tag ${tag.slice(0, 12)}`, () => assert.ok(isValidTag(tag)))
  }
  for (const tag of ['', '.a', '-a', 'a'.repeat(129), 'a/b', 'a:b']) {
    it(`refuses tag ${JSON.stringify(tag.slice(0, 12))}`, () => assert.ok(!isValidTag(tag)))
  }
  it('parses digests', () => {
    const hex = 'a'.repeat(64)
    assert.deepEqual(parseDigest(`sha256:${hex}`), { algorithm: 'sha256', hex, value: `sha256:${hex}` })
    assert.equal(parseDigest(`sha256:${hex.slice(1)}`), 'malformed')
    assert.equal(parseDigest(`md5:${'a'.repeat(32)}`), 'unsupported')
    assert.equal(parseDigest('nocolon'), 'malformed')
    assert.equal(parseDigest(`sha512:${'b'.repeat(128)}`).toString() === 'malformed', false)
  })
})
