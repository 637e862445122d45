// The two OCI conformance suites: how each is run against a Berth, how its printed summary is
// read, and the skips expected of Berth with their reasons (used by run.ts).

import type { Counts } from './junit.js'

/** The repositories the suites push to, in one project created before they run. */
export const PROJECT = 'myorg'
const REPO1 = `${PROJECT}/myrepo`
const REPO2 = `${PROJECT}/other`

export interface Suite {
  id: string
  binary: string
  args: string[]
  env(server: { url: string; host: string }, password: string, resultsDir: string): Record<string, string>
  /** The suite's own summary in its printed output (skipped counts pending and disabled). */
  summary(output: string): Counts | undefined
  /** Checks switched off in the suite's configuration, from its printed output. */
  disabled(output: string): string[]
  /** The skips expected of Berth, each with the reason; any other skip fails the run. */
  knownSkips: { name: RegExp; reason: string }[]
}

const NO_MOUNT_WITHOUT_FROM = 'Berth does not mount without `from` (nor does Distribution): a POST with only `mount` opens an upload session (202), which the spec allows'

export const SUITES: Suite[] = [
  {
    id: 'v1.1.1',
    binary: 'oci-conformance-v1.1.1.test',
    args: ['-test.v', '-ginkgo.no-color'],
    env: (server, password, resultsDir) => ({
      OCI_ROOT_URL: server.url,
      OCI_NAMESPACE: REPO1,
      OCI_CROSSMOUNT_NAMESPACE: REPO2,
      OCI_USERNAME: 'admin',
      OCI_PASSWORD: password,
      OCI_TEST_PULL: '1',
      OCI_TEST_PUSH: '1',
      OCI_TEST_CONTENT_DISCOVERY: '1',
      OCI_TEST_CONTENT_MANAGEMENT: '1',
      OCI_HIDE_SKIPPED_WORKFLOWS: '0',
      // Berth answers a mount without `from` with 202: the case checking that runs.
      OCI_AUTOMATIC_CROSSMOUNT: 'false',
      OCI_REPORT_DIR: resultsDir,
    }),
    summary(output) {
      // Ginkgo: "SUCCESS! -- 75 Passed | 0 Failed | 0 Pending | 4 Skipped" (or FAIL!)
      const m = /(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(output)
      return m ? { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) + Number(m[4]) } : undefined
    },
    disabled: () => [],
    knownSkips: [
      { name: /Pull Setup Get tag name from environment$/, reason: 'only for a registry the suite cannot push to (OCI_TAG_NAME, OCI_MANIFEST_DIGEST given): the suite pushes its own content here' },
      { name: /Content Discovery Setup Populate registry with test tags \(no push\)$/, reason: 'only for a registry the suite cannot push to (OCI_TAG_LIST given): the suite pushes its tags here' },
      { name: /Cross-mounting of nonexistent blob should yield session id$/, reason: 'runs only when the mount before it answers 202; Berth mounts (201) and the check of the mounted blob runs instead' },
      { name: /Cross-mounting without from, and automatic content discovery enabled should return a 201$/, reason: `${NO_MOUNT_WITHOUT_FROM}; the 202 case runs` },
    ],
  },
  {
    id: 'main',
    binary: 'oci-conformance-main',
    args: [],
    env: (server, password, resultsDir) => ({
      OCI_REGISTRY: server.host,
      OCI_TLS: 'disabled',
      OCI_REPO1: REPO1,
      OCI_REPO2: REPO2,
      OCI_USERNAME: 'admin',
      OCI_PASSWORD: password,
      OCI_RESULTS_DIR: resultsDir,
      // Off in the suite's 1.1 profile, implemented by Berth: checked too.
      OCI_API_BLOBS_UPLOAD_CANCEL: 'true',
      OCI_API_BLOBS_DIGEST_HEADER: 'true',
      OCI_API_MANIFESTS_DIGEST_HEADER: 'true',
      OCI_API_MANIFESTS_TAG_PARAM: 'true',
    }),
    summary(output) {
      // "OCI Conformance Result: PASS" then "  Pass......: 1009", "  FAIL....: 0", …
      const block = output.slice(output.lastIndexOf('OCI Conformance Result:'))
      const field = (label: string) => {
        const m = new RegExp(`^\\s*${label}\\.*:\\s*(\\d+)\\s*$`, 'm').exec(block)
        return m ? Number(m[1]) : undefined
      }
      const [pass, fail, error, skip, disabled] = ['Pass', 'FAIL', 'Error', 'Skip', 'Disabled'].map(field)
      if (pass === undefined || fail === undefined || error === undefined || skip === undefined || disabled === undefined) return undefined
      return { passed: pass, failed: fail + error, skipped: skip + disabled }
    },
    disabled: (output) => [...output.matchAll(/^\s*(\S.*?)\.{2,}:\s*Disabled\s*$/gm)].map((m) => m[1] as string),
    knownSkips: [
      { name: /blobs\/mount anonymous\/blob-mount-anonymous$/, reason: `${NO_MOUNT_WITHOUT_FROM}; the suite then pushes the blob and marks the mount skipped` },
      {
        name: /^Sparse Manifests$/,
        reason: 'off in the suite\'s profile: Berth refuses an index naming a manifest the repository does not hold (MANIFEST_BLOB_UNKNOWN), so that every pull of an index can be served whole',
      },
    ],
  },
]
