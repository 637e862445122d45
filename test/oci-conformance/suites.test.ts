import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SUITES, type Suite } from './suites.js'

function suite(id: string): Suite {
  const s = SUITES.find((x) => x.id === id)
  assert.ok(s, id)
  return s
}

// Printed output of the suites (cut from real runs of test/oci-conformance/run.ts).
const GINKGO_PASS = `Will run 79 of 79 specs
•••••S•••••••••••••••••••••••••••••••••••••SS•••••••••••S••••••••••••••••••••••
Ran 75 of 79 Specs in 1.926 seconds
SUCCESS! -- 75 Passed | 0 Failed | 0 Pending | 4 Skipped
--- PASS: TestConformance (2.02s)
PASS`
const GINKGO_FAIL = `Ran 74 of 80 Specs in 2.1 seconds
FAIL! -- 72 Passed | 2 Failed | 1 Pending | 5 Skipped
--- FAIL: TestConformance (2.20s)`

const MAIN_FAIL = `    OCI Conformance Test/sha256 blobs/post cancel/blob-post-cancel: Disabled
OCI Conformance Result: FAIL
  Disabled......................:          2
  Skip..........................:          4
  Pass..........................:        842
  FAIL..........................:          2
  Error.........................:          1
  Total.........................:        851

API conformance:
  Blob upload cancel............:   Disabled
  Blob anonymous mount..........:       Skip
  Manifest put with tag params..:   Disabled

Data conformance:
  Sparse Manifests..............:   Disabled
  Tag Param.....................:       Pass
`

describe('the OCI conformance suites as run.ts reads them', () => {
  it("reads Ginkgo's summary line of the v1.1.1 suite (pending counted as skipped)", () => {
    const v111 = suite('v1.1.1')
    assert.deepEqual(v111.summary(GINKGO_PASS), { passed: 75, failed: 0, skipped: 4 })
    assert.deepEqual(v111.summary(GINKGO_FAIL), { passed: 72, failed: 2, skipped: 6 })
    assert.equal(v111.summary('panic: runtime error\n--- FAIL: TestConformance'), undefined, 'no summary is reported, not read as a pass')
  })

  it("reads the main-branch suite's result block (errors counted as failed, disabled as skipped)", () => {
    const main = suite('main')
    assert.deepEqual(main.summary(MAIN_FAIL), { passed: 842, failed: 3, skipped: 6 })
    assert.equal(main.summary(MAIN_FAIL.replace(/ {2}Error\.+: +1\n/, '')), undefined, 'a missing line makes no summary')
    assert.deepEqual(main.disabled(MAIN_FAIL), ['Blob upload cancel', 'Manifest put with tag params', 'Sparse Manifests'])
  })

  it('knows the skips expected of Berth, and no others', () => {
    const known = (s: Suite, name: string) => s.knownSkips.some((k) => k.name.test(name))
    const v111 = suite('v1.1.1')
    assert.ok(known(v111, 'OCI Distribution Conformance Tests Push Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery enabled should return a 201'))
    // a mount that stops mounting skips these: they must fail the run
    assert.ok(!known(v111, 'OCI Distribution Conformance Tests Push Cross-Repository Blob Mount GET request to test digest within cross-mount namespace should return 200'))
    assert.ok(!known(v111, 'OCI Distribution Conformance Tests Push Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery disabled should return a 202'))
    const main = suite('main')
    assert.ok(known(main, 'OCI Conformance Test/sha512 blobs/mount anonymous/blob-mount-anonymous'))
    assert.ok(known(main, 'Sparse Manifests'))
    assert.ok(!known(main, 'OCI Conformance Test/sha256 blobs/mount/blob-mount'))
    assert.ok(!known(main, 'Blob upload cancel'))
  })
})
