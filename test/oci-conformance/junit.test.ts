import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { count, parseJunit } from './junit.js'

// Shapes written by the two suites (cut from real reports of test/oci-conformance/run.ts).
const GINKGO = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" disabled="0" errors="0" failures="1">
  <testsuite name="conformance tests" tests="4" skipped="1" failures="1">
    <testcase name="OCI Distribution Conformance Tests Pull Setup Populate registry" classname="conformance tests" status="passed" time="0.01">
      <system-err>&gt; Enter [It] Populate registry</system-err>
    </testcase>
    <testcase name="OCI Distribution Conformance Tests Pull Setup Get tag name from environment" classname="conformance tests" status="skipped" time="0.0002">
      <skipped message="skipped - you have skipped this test."></skipped>
    </testcase>
    <testcase name="OCI Distribution Conformance Tests Pull Pull manifests GET nonexistent manifest should return 404" classname="conformance tests" status="failed" time="0.003">
      <failure message="Expected&#xA;    &lt;int&gt;: 400&#xA;to equal&#xA;    &lt;int&gt;: 404" type="failed">[FAILED] Expected</failure>
    </testcase>
    <testcase name="html custom reporter" classname="conformance tests" status="passed"></testcase>
  </testsuite>
</testsuites>`

const MAIN = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="OCI Conformance Test">
    <testcase name="OCI Conformance Test/sha256 blobs/mount/blob-mount" classname="" time="0.03" status="skipped">
      <system-out>registry returned status 202, fell back to blob POST+PUT</system-out>
      <system-err>~~~ REQUEST ~~~&#xA;Method: POST</system-err>
    </testcase>
    <testcase name="OCI Conformance Test/sha256 blobs/chunked out-of-order and put chunk/blob-patch-chunked" classname="" time="0.01" status="failure">
      <system-out>blob out of order chunk: unexpected status code, expected one of [416], received 400</system-out>
      <system-err>~~~ REQUEST ~~~</system-err>
    </testcase>
    <testcase name="OCI Conformance Test/ping" classname="" time="0.001" status="passed"></testcase>
    <testcase name="OCI Conformance Test/image/pull/blob-get" classname="" time="0.001" status="error"/>
    <testcase name="OCI Conformance Test/sha256 blobs/post cancel/blob-post-cancel" classname="" time="0" status="skipped">
      <system-err>skipping test:&#xA;  api Blob upload cancel is disabled in the configuration&#xA;</system-err>
    </testcase>
  </testsuite>
</testsuites>`

describe('junit reports of the OCI conformance suites', () => {
  it('reads Ginkgo reports: status attribute and the message of <failure>/<skipped>', () => {
    const cases = parseJunit(GINKGO)
    assert.deepEqual(count(cases), { passed: 2, failed: 1, skipped: 1 })
    assert.deepEqual(cases[1], { name: 'OCI Distribution Conformance Tests Pull Setup Get tag name from environment', outcome: 'skipped', message: 'skipped - you have skipped this test.' })
    assert.equal(cases[2]?.outcome, 'failed')
    assert.equal(cases[2]?.message, 'Expected <int>: 400 to equal <int>: 404')
  })

  it('reads the main-branch suite: results only in status, messages in <system-out>', () => {
    const cases = parseJunit(MAIN)
    assert.deepEqual(count(cases), { passed: 1, failed: 2, skipped: 2 })
    assert.equal(cases[0]?.message, 'registry returned status 202, fell back to blob POST+PUT')
    assert.equal(cases[1]?.outcome, 'failed')
    assert.equal(cases[1]?.message, 'blob out of order chunk: unexpected status code, expected one of [416], received 400')
    assert.equal(cases[3]?.outcome, 'failed', 'status="error" is a failure')
  })

  it('counts an unknown status as a failure, never as a pass', () => {
    const cases = parseJunit('<testcase name="a" status="panicked"></testcase><testcase name="b" status="timedout"/>')
    assert.deepEqual(count(cases), { passed: 0, failed: 2, skipped: 0 })
  })
})
