import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { semverSlice, sortBySemver } from './semver-order.js'

describe('semantic-version order of tags', () => {
  it('orders versions by precedence, pre-releases before their release, others last by name', () => {
    const order = sortBySemver(['latest', '1.10.0', '1.2.0', 'v1.2.1', '1.2.0-rc.1', '1.2.0-rc.10', '1.2.0-rc.2', '2', '1.3', 'stable', '1.2.0-alpha', '3.19-alpine', '1.2.0+build.5'])
    assert.deepEqual(order.versions, ['2', '1.10.0', '1.3', 'v1.2.1', '1.2.0', '1.2.0+build.5', '1.2.0-rc.10', '1.2.0-rc.2', '1.2.0-rc.1', '1.2.0-alpha'])
    assert.deepEqual(order.others, ['3.19-alpine', 'latest', 'stable'])
  })

  it('pages both directions with the other tags after the versions', () => {
    const order = sortBySemver(['b', '1.0.0', '2.0.0', 'a', '3.0.0'])
    assert.deepEqual(semverSlice(order, true, 0, 10), ['3.0.0', '2.0.0', '1.0.0', 'a', 'b'])
    assert.deepEqual(semverSlice(order, false, 0, 10), ['1.0.0', '2.0.0', '3.0.0', 'a', 'b'])
    assert.deepEqual(semverSlice(order, false, 2, 2), ['3.0.0', 'a'])
    assert.deepEqual(semverSlice(order, true, 5, 2), [])
  })
})
