// The crane binary (go-containerregistry's CLI) for the end-to-end tests. Debian ships its source
// as golang-github-google-go-containerregistry-dev (bookworm-backports; .ci/install-clients.sh
// installs it with Debian's golang-go). It is built once with the Go toolchain in GOPATH mode, from
// the Debian source tree only, into .cache/crane/ at the repository root, the same place
// .ci/install-clients.sh builds it (keep CRANE_IMPORT_PATH in sync with that script).

import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findBinary, isExecutable, run } from './e2e-process.js'

export const CRANE_IMPORT_PATH = 'github.com/google/go-containerregistry/cmd/crane'
export const CRANE_GOPATH = '/usr/share/gocode'
export const CRANE_CACHE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'crane')
export const CRANE_PATH = join(CRANE_CACHE_DIR, 'crane')

/**
 * The path of a working crane binary: `.cache/crane/crane`, built first if it is not there yet.
 * Rejects with the reason when it cannot be had (no Go toolchain, no Debian source package, …).
 */
export async function ensureCrane(): Promise<string> {
  if (!(await isExecutable(CRANE_PATH))) {
    const go = findBinary('go')
    if (!go) throw new Error('go is not installed (Debian package golang-go), needed to build crane')
    if (!(await stat(join(CRANE_GOPATH, 'src', CRANE_IMPORT_PATH)).catch(() => undefined))) {
      throw new Error('the crane source is not installed (Debian package golang-github-google-go-containerregistry-dev from bookworm-backports)')
    }
    await mkdir(CRANE_CACHE_DIR, { recursive: true })
    // Keep the ~15 MB binary and the build cache out of git whatever .gitignore says.
    await writeFile(join(CRANE_CACHE_DIR, '.gitignore'), '*\n')
    // Build next to the final path, then rename: never a half-written crane.
    const staging = join(CRANE_CACHE_DIR, `.crane-${process.pid}`)
    try {
      await run(go, ['build', '-o', staging, CRANE_IMPORT_PATH], {
        env: { ...process.env, GO111MODULE: 'off', GOPATH: CRANE_GOPATH, GOCACHE: join(CRANE_CACHE_DIR, 'gocache'), GOFLAGS: '' },
        timeoutMs: 600_000,
      })
      await rename(staging, CRANE_PATH)
    } finally {
      await rm(staging, { force: true })
    }
  }
  const { stdout } = await run(CRANE_PATH, ['ls', '--help'])
  if (!/List the tags in a repo/.test(stdout)) throw new Error(`${CRANE_PATH} ls --help printed ${stdout}`)
  return CRANE_PATH
}
