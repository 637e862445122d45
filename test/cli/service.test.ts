// Berth run as a service: `npm start` stops with its server, a port in use fails at once, and
// the package npm builds holds what `berth` needs to run without the checkout.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { canConnect, findBinary, freePort, waitFor, waitHealthy } from '../helpers/e2e-process.js'
import { orphanBlob, pushImage } from '../gc/helpers.js'
import { startServer } from '../helpers/server.js'

const exec = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
const BIN = join(ROOT, 'bin', 'berth.js')

function exited(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)))
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

describe('npm start', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops the server when npm gets ${signal}`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'berth-start-'))
      const port = await freePort()
      const npm = spawn('npm', ['start'], {
        cwd: ROOT,
        env: { ...process.env, BERTH_HTTP_ADDR: `127.0.0.1:${port}`, BERTH_DATA_DIR: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      // The server's pid, from its log lines: to clean up after it if the test fails.
      let serverPid: number | undefined
      npm.stdout.on('data', (d: Buffer) => (serverPid ??= Number(/"pid":(\d+)/.exec(d.toString())?.[1]) || undefined))
      npm.stderr.resume()
      const done = exited(npm)
      try {
        await waitHealthy(`http://127.0.0.1:${port}`, { timeoutMs: 30_000 })
        npm.kill(signal)
        await done
        // No orphaned server behind npm: the port stops answering.
        await waitFor(`port ${port} closed`, async () => !(await canConnect({ host: '127.0.0.1', port })), { timeoutMs: 10_000 })
      } finally {
        npm.kill('SIGKILL')
        if (serverPid) killQuietly(serverPid)
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

describe('berth serve on an address in use', () => {
  it('fails with one line and exit code 1 before creating anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-inuse-'))
    const holder = createServer()
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
    const { port } = holder.address() as { port: number }
    try {
      const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', join(dir, 'data'), '--addr', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      assert.equal(await exited(child), 1)
      assert.equal(stdout, '', 'no start-up log lines')
      assert.equal(stderr, `berth: cannot listen on 127.0.0.1:${port}: the address is already in use by another process; stop it or choose another address with --addr (config key http.addr, BERTH_HTTP_ADDR)\n`)
      assert.deepEqual(await readdir(dir), [], 'no data directory, no database, no admin user created')
    } finally {
      holder.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('the npm package', () => {
  it('is berth-registry with the berth command, and ships the built CLI without sources or tests', async () => {
    const { stdout } = await exec('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT })
    const [pack] = JSON.parse(stdout) as { name: string; files: { path: string }[] }[]
    assert.equal(pack!.name, 'berth-registry')
    const files = pack!.files.map((f) => f.path)
    for (const needed of ['package.json', 'bin/berth.js', 'dist/cli/main.js', 'dist/app.js', 'dist/metadata/migrations/0001-init.js', 'README.md', 'LICENSE']) {
      assert.ok(files.includes(needed), `${needed} is in the package`)
    }
    const stray = files.filter((f) => /^(src|test|bench|\.ci)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts'))
    assert.deepEqual(stray, [])
    const { stdout: bin } = await exec('npm', ['pkg', 'get', 'bin'], { cwd: ROOT })
    assert.deepEqual(JSON.parse(bin), { berth: 'bin/berth.js' })
  })

  it('prepare builds nothing and does not fail without TypeScript when dist/ is built; runs from src/ when it is not', async () => {
    // A copy of the checkout without node_modules: what `npm install --omit=dev` leaves prepare.
    const dir = await mkdtemp(join(tmpdir(), 'berth-prepare-'))
    try {
      for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts', 'src']) await cp(join(ROOT, f), join(dir, f), { recursive: true })
      const prepare = () => exec(process.execPath, [join(dir, 'scripts', 'prepare.js')]).then(
        (r) => ({ code: 0, stderr: r.stderr }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      )
      // Not a failure: bin/berth.js runs src/ through tsx (test/deploy/omit-dev.test.ts).
      const unbuilt = await prepare()
      assert.equal(unbuilt.code, 0)
      assert.match(unbuilt.stderr, /TypeScript is not installed \(npm install --omit=dev\): dist\/ is not built, `berth` runs src\/ through tsx/)

      await mkdir(join(dir, 'dist', 'cli'), { recursive: true })
      await writeFile(join(dir, 'dist', 'cli', 'main.js'), '// built\n')
      assert.deepEqual(await prepare(), { code: 0, stderr: '' })

      const later = new Date(Date.now() + 60_000)
      await utimes(join(dir, 'src', 'app.ts'), later, later)
      const stale = await prepare()
      assert.equal(stale.code, 0)
      assert.match(stale.stderr, /TypeScript is not installed .*keeping dist\/ as built/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('berth says how to build when dist/ is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-nodist-'))
    try {
      await cp(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true })
      await writeFile(join(dir, 'package.json'), '{"type":"module"}\n')
      const r = await exec(process.execPath, [join(dir, 'bin', 'berth.js'), '--help']).catch((e: { code: number; stderr: string }) => e)
      assert.equal((r as { code: number }).code, 1)
      assert.equal((r as { stderr: string }).stderr, `berth: ${join(dir, 'dist')}/ is not built: run \`npm install\` (or \`npm run build\`) in the checkout\n`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('one-shot commands on a directory without Berth data', () => {
  it('refuse with one line and create nothing', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'berth-nodata-'))
    try {
      const env = { ...process.env }
      for (const name of Object.keys(env)) if (name.startsWith('BERTH_')) delete env[name]
      const commands = [['gc'], ['gc', '--dry-run', '--json'], ['scrub'], ['user', 'list'], ['user', 'import-htpasswd', '/dev/null'], ['project', 'list']]
      for (const args of commands) {
        const r = await exec(process.execPath, [BIN, ...args], { cwd, env }).catch((e: { code: number; stdout: string; stderr: string }) => e)
        assert.equal((r as { code?: number }).code, 1, `berth ${args.join(' ')} fails`)
        assert.equal(r.stderr, 'berth: no Berth data in ./data: pass --data-dir or --config\n', `berth ${args.join(' ')}`)
        assert.equal(r.stdout, '')
      }
      const other = join(cwd, 'elsewhere')
      const named = await exec(process.execPath, [BIN, 'user', 'list', '--data-dir', other], { cwd, env }).catch((e: { stderr: string }) => e)
      assert.equal(named.stderr, `berth: no Berth data in ${other}: pass --data-dir or --config\n`)
      const migrate = await exec(process.execPath, [BIN, 'migrate-metadata', '--data-dir', other, '--to', 'postgres://u:p@127.0.0.1:1/db'], { cwd, env }).catch((e: { stderr: string }) => e)
      assert.equal(migrate.stderr, `berth: no Berth data in ${other}: pass --data-dir or --config\n`)
      assert.deepEqual(await readdir(cwd), [], 'no ./data, no berth.db')
    } finally {
      await rm(cwd, { recursive: true, force: true })
    }
  })
})

describe('berth gc right after a delete', () => {
  it('says what gc.gracePeriod kept, in its line and in --json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-grace-'))
    // SQLite and files in dir, whatever the test pass: the CLI reads the same data directory.
    const srv = await startServer({ dataDir: dir, database: { url: `sqlite:${join(dir, 'berth.db')}` }, storage: { driver: 'filesystem' } }, { keepData: true })
    try {
      const img = await pushImage(srv.url, 'app/grace', 'v1', 'grace-cli')
      assert.equal((await fetch(`${srv.url}/v2/app/grace/manifests/${img.digest}`, { method: 'DELETE' })).status, 202)
      const loose = await orphanBlob(srv.url, 'app/grace')
      const digests = [...img.blobs, loose]
      let bytes = 0
      for (const d of digests) bytes += Number((await fetch(`${srv.url}/v2/app/grace/blobs/${d}`, { method: 'HEAD' })).headers.get('content-length'))

      const json = JSON.parse((await exec(process.execPath, [BIN, 'gc', '--data-dir', dir, '--json'])).stdout) as { blobsDeleted: number; keptByGracePeriod: unknown }
      assert.equal(json.blobsDeleted, 0)
      assert.deepEqual(json.keptByGracePeriod, { blobs: digests.length, bytes, gracePeriodMs: 3_600_000 })
      const human = await exec(process.execPath, [BIN, 'gc', '--data-dir', dir])
      const size = bytes < 1000 ? `${bytes} bytes` : `${(bytes / 1000).toFixed(1)} kB`
      assert.match(human.stdout, new RegExp(`^${digests.length} blobs \\(${size.replace('.', '\\.')}\\) younger than gc.gracePeriod 1h kept$`, 'm'))
      // With no grace period the same blobs go, and nothing is reported kept.
      const none = JSON.parse((await exec(process.execPath, [BIN, 'gc', '--data-dir', dir, '--json'], { env: { ...process.env, BERTH_GC_GRACE_PERIOD: '0s' } })).stdout) as { blobsDeleted: number; keptByGracePeriod: { blobs: number } }
      assert.equal(none.blobsDeleted, digests.length)
      assert.equal(none.keptByGracePeriod.blobs, 0)
    } finally {
      await srv.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/** What `berth serve` writes on stdout from start to SIGTERM (under `script`, stdout is a terminal). */
async function serveStdout(env: Record<string, string>, opts: { terminal?: string } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-log-'))
  const port = await freePort()
  const argv = [BIN, 'serve', '--data-dir', dir, '--addr', `127.0.0.1:${port}`]
  // Under script, the shell names the server's pid: the one to stop.
  const shell = `${[process.execPath, ...argv].map((a) => `'${a}'`).join(' ')} & echo berth-pid=$!; wait`
  const child = opts.terminal
    ? spawn(opts.terminal, ['-qec', shell, '/dev/null'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] })
    : spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const done = exited(child)
  try {
    await waitHealthy(`http://127.0.0.1:${port}`)
    await fetch(`http://127.0.0.1:${port}/v2/`)
    await waitFor('the request line', async () => out.includes('url=/v2/') || out.includes('"url":"/v2/"'))
    process.kill(opts.terminal ? Number(/berth-pid=(\d+)/.exec(out)?.[1]) : child.pid!, 'SIGTERM')
    await done
    return out.replace(/\r\n/g, '\n')
  } finally {
    child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const PRETTY = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO |WARN |ERROR|DEBUG) \S/

describe('server logs', () => {
  it('are JSON lines with ISO times when stdout is not a terminal', async () => {
    const lines = (await serveStdout({})).trim().split('\n')
    assert.ok(lines.length > 5, lines.join('\n'))
    for (const line of lines) {
      const entry = JSON.parse(line) as { time: string }
      assert.match(entry.time, ISO, line)
    }
    assert.ok(lines.some((l) => l.includes('"url":"/v2/"')), 'the request line is there')
  })

  it('are readable lines with ISO times with log.format: pretty', async () => {
    const lines = (await serveStdout({ BERTH_LOG_FORMAT: 'pretty' })).trim().split('\n')
    for (const line of lines) assert.match(line, PRETTY)
    assert.ok(lines.some((l) => / INFO {2}request .*method=GET url=\/v2\/ status=401/.test(l)), lines.join('\n'))
    assert.ok(lines.some((l) => / INFO {2}stopped$/.test(l)), lines.join('\n'))
  })

  const script = findBinary('script')
  it('are readable lines on a terminal by default, JSON there with log.format: json', { skip: script ? false : 'needs script(1) from util-linux for a terminal' }, async () => {
    const lines = (await serveStdout({}, { terminal: script })).trim().split('\n')
    const logLines = lines.filter((l) => /^\d{4}-/.test(l))
    assert.ok(logLines.length > 5 && logLines.every((l) => PRETTY.test(l)), lines.join('\n'))
    const json = (await serveStdout({ BERTH_LOG_FORMAT: 'json' }, { terminal: script })).trim().split('\n').filter((l) => l.startsWith('{'))
    assert.ok(json.length > 5, json.join('\n'))
    for (const line of json) assert.match((JSON.parse(line) as { time: string }).time, ISO)
  })
})
