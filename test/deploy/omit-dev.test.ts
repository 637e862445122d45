// A checkout installed for production (`npm install --omit=dev`) has no TypeScript to build
// dist/: scripts/prepare.js then succeeds without building, and bin/berth.js runs src/ through
// tsx (a dependency). Here: a copy of the checkout without dist/, whose node_modules is this
// one's, runs `berth --help` and `berth serve` answering /healthz. The real production install
// from the npm registry is run by .ci/deploy-check.sh (minutes).
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { cp, mkdir, symlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { freePort, makeTempDir, removeTempDir, waitHealthy } from '../helpers/e2e-process.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const exec = promisify(execFile)

describe('a production install of the checkout (no dist/, no TypeScript)', () => {
  it('prepare succeeds, and berth runs from src/ through tsx: --help and serve', async () => {
    const dir = await makeTempDir('berth-omit-dev-')
    try {
      for (const f of ['package.json', 'tsconfig.json', 'bin', 'scripts', 'src']) await cp(join(ROOT, f), join(dir, f), { recursive: true })
      await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
      // (prepare's branch without TypeScript is tested in test/cli/service.test.ts.)
      const help = await exec(process.execPath, [join(dir, 'bin', 'berth.js'), '--help'], { cwd: dir })
      assert.match(help.stdout, /^ {2}serve/m)

      const port = await freePort()
      const data = join(dir, 'data')
      await mkdir(data)
      const env: NodeJS.ProcessEnv = { ...process.env, BERTH_AUTH_ENABLED: 'false', BERTH_LOG_LEVEL: 'warn' }
      for (const name of Object.keys(env)) if (name.startsWith('BERTH_TEST_')) delete env[name]
      const child = spawn('sh', [join(dir, 'bin', 'serve.sh'), '--data-dir', data, '--addr', `127.0.0.1:${port}`], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
      const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)))
      try {
        await waitHealthy(`http://127.0.0.1:${port}`, { timeoutMs: 120_000 }).catch((err: Error) => assert.fail(`${err.message}\n${stderr}`))
        const res = await fetch(`http://127.0.0.1:${port}/v2/`)
        assert.equal(res.status, 200)
      } finally {
        child.kill('SIGTERM')
      }
      assert.equal(await exited, 0, stderr)
    } finally {
      await removeTempDir(dir)
    }
  })
})
