// Starting and stopping the two registries under test, each in its own child process with its
// data under one temp dir, and making sure they die (and the temp dir goes) however the run ends.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

// ---------------------------------------------------------------------------------------------
// Everything to undo at the end

const children = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let shuttingDown = false

export function trackDir(dir: string): void {
  tempDirs.add(dir)
}

const cleanups: (() => Promise<void>)[] = []

/** Something to undo after the children have stopped (a database to drop), once. */
export function atCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn)
}

/** Stops every child (SIGTERM, then SIGKILL after `graceMs`) and removes the temp dirs. */
export async function cleanupAll(graceMs = 5_000): Promise<void> {
  shuttingDown = true
  await Promise.all([...children].map((c) => stopChild(c, graceMs)))
  for (const fn of cleanups.splice(0)) await fn().catch((err: unknown) => console.error(`cleanup failed: ${String(err)}`))
  for (const dir of tempDirs) {
    await rm(dir, { recursive: true, force: true }).catch((err: unknown) => console.error(`could not remove ${dir}: ${String(err)}`))
    tempDirs.delete(dir)
  }
}

// Last resort (process.exit from anywhere, an uncaught error): synchronous kill and removal.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child)
    return
  }
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
  children.delete(child)
}

// ---------------------------------------------------------------------------------------------
// Servers

export interface Server {
  name: 'Berth' | 'Distribution' | 'S3'
  /** http://127.0.0.1:PORT */
  url: string
  pid: number
  dataDir: string
  logFile: string
  /** set when the process ended before stop() */
  exited(): string | undefined
  stop(): Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer()
    srv.once('error', fail)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => ok(port))
    })
  })
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

function launch(name: Server['name'], command: string, args: string[], env: NodeJS.ProcessEnv, dataDir: string, logFile: string, port: number): Server {
  const fd = openSync(logFile, 'a')
  const child = spawn(command, args, { env, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  children.add(child)
  let exit: string | undefined
  let stopping = false
  child.once('exit', (code, signal) => {
    exit = `${name} exited (${signal ?? `code ${String(code)}`})`
    if (!stopping && !shuttingDown) console.error(`${exit} unexpectedly; last lines of ${logFile}:\n${tail(logFile)}`)
  })
  child.once('error', (err) => {
    exit = `${name} could not start: ${err.message}`
  })
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    dataDir,
    logFile,
    exited: () => exit,
    stop: async () => {
      stopping = true
      await stopChild(child, 10_000)
    },
  }
}

async function waitReady(server: Server, timeoutMs: number, readyStatuses = [200]): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    const exit = server.exited()
    if (exit) throw new Error(`${exit}; last lines of ${server.logFile}:\n${tail(server.logFile)}`)
    try {
      const res = await fetch(`${server.url}/v2/`, { signal: AbortSignal.timeout(2_000) })
      await res.arrayBuffer()
      if (readyStatuses.includes(res.status)) return
      last = `GET /v2/ answered ${res.status}`
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(100)
  }
  throw new Error(`${server.name} not ready after ${timeoutMs} ms (${last}); last lines of ${server.logFile}:\n${tail(server.logFile)}`)
}

/** Builds dist/ when it is missing; returns a warning when it looks older than src/. */
export function ensureBuilt(berthDir: string): string | undefined {
  const entry = join(berthDir, 'dist', 'cli', 'main.js')
  if (!existsSync(join(berthDir, 'bin', 'berth.js'))) throw new Error(`${berthDir}/bin/berth.js not found (BENCH_BERTH_DIR?)`)
  if (!existsSync(entry)) {
    console.error(`# ${entry} is missing: npm run build`)
    const r = spawnSync('npm', ['run', 'build'], { cwd: berthDir, stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 })
    if (!existsSync(entry)) throw new Error(`npm run build did not produce ${entry} (status ${String(r.status)})`)
    return undefined
  }
  const built = statSync(entry).mtimeMs
  let newest = 0
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
    }
  }
  if (existsSync(join(berthDir, 'src'))) walk(join(berthDir, 'src'))
  return newest > built ? `dist/ is older than some file in src/ of ${berthDir}: run npm run build for current figures` : undefined
}

/**
 * The Node.js flags `npm start` gives Berth: the bench measures Berth as users start it. The start
 * script is `exec sh bin/serve.sh`, whose last line execs `node FLAGS "$bin/berth.js" serve`
 * (older commits: `exec node FLAGS bin/berth.js serve` in package.json itself).
 */
function startFlags(berthDir: string): string[] {
  const pkg = JSON.parse(readFileSync(join(berthDir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  const start = pkg.scripts?.start ?? ''
  const launcher = /^exec\s+sh\s+(\S+)$/.exec(start.trim())
  const source = launcher?.[1] ? readFileSync(join(berthDir, launcher[1]), 'utf8') : start
  const flags = [...source.matchAll(/^(?:exec\s+)?node((?:\s+--[\w-]+(?:=\S+)?)*)\s+"?(?:\$bin\/|bin\/)berth\.js"?\s/gm)].at(-1)
  if (!flags) throw new Error(`npm start runs no "node [FLAGS] bin/berth.js serve": ${start}`)
  return (flags[1] ?? '').split(/\s+/).filter(Boolean)
}

/** The Node.js flags Berth runs with: npm start's, then BENCH_BERTH_NODE_OPTIONS (later flags win). */
export function berthNodeFlags(berthDir: string): string[] {
  return [...startFlags(berthDir), ...(process.env.BENCH_BERTH_NODE_OPTIONS ?? '').split(' ').filter(Boolean)]
}

/** `--workers N` when BENCH_BERTH_WORKERS is set (memory is then the primary's and workers' sum). */
export function berthWorkerArgs(): string[] {
  const n = process.env.BENCH_BERTH_WORKERS
  return n ? ['--workers', n] : []
}

/** `opts.env` adds BERTH_* settings (auth, PostgreSQL, S3); `opts.name` names its data dir and log. */
export interface BerthOptions {
  /** the data dir and log file under root: <name>, <name>.log (default berth, berth.log) */
  name?: string
  /** BERTH_* settings on top of the benchmark's defaults (which they replace) */
  env?: Record<string, string>
  /** statuses of GET /v2/ that mean ready (401 with auth on) */
  readyStatuses?: number[]
}

export async function startBerth(berthDir: string, root: string, opts: BerthOptions = {}): Promise<Server> {
  const dataDir = join(root, opts.name ?? 'berth')
  await mkdir(dataDir, { recursive: true })
  const logFile = join(root, `${opts.name ?? 'berth'}.log`)
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      BERTH_LOG_LEVEL: 'warn',
      BERTH_LOG_ACCESS_LOG: 'false',
      // Distribution runs without auth: compare like with like.
      BERTH_AUTH_ENABLED: 'false',
      BERTH_ADMIN_PASSWORD: randomBytes(18).toString('base64url'),
    }
    for (const key of Object.keys(env)) if (key.startsWith('BENCH_')) delete env[key]
    Object.assign(env, opts.env)
    const args = [...berthNodeFlags(berthDir), join(berthDir, 'bin', 'berth.js'), 'serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, ...berthWorkerArgs()]
    const server = launch('Berth', process.execPath, args, env, dataDir, logFile, port)
    try {
      await waitReady(server, 60_000, opts.readyStatuses)
      return server
    } catch (err) {
      lastError = err
      await server.stop()
    }
  }
  throw lastError
}

/**
 * s3rver (the devDependency the tests use) in a child process of its own (bench/s3rver.ts), so
 * that it does not share the load generator's event loop; objects under `root`/s3.
 */
export async function startS3rver(root: string, buckets: string[]): Promise<{ endpoint: string; pid: number; stop(): Promise<void> }> {
  const directory = join(root, 's3')
  await mkdir(directory, { recursive: true })
  const logFile = join(root, 's3rver.log')
  const port = await freePort()
  const script = join(import.meta.dirname, 's3rver.ts')
  const server = launch('S3', process.execPath, ['--import', 'tsx', script, directory, String(port), ...buckets], { PATH: process.env.PATH, HOME: process.env.HOME }, directory, logFile, port)
  const deadline = Date.now() + 30_000
  for (;;) {
    const exit = server.exited()
    if (exit) throw new Error(`${exit}; last lines of ${logFile}:\n${tail(logFile)}`)
    if (/^ready$/m.test(readLog(logFile))) break
    if (Date.now() > deadline) throw new Error(`s3rver not ready after 30 s; last lines of ${logFile}:\n${tail(logFile)}`)
    await sleep(100)
  }
  return { endpoint: server.url, pid: server.pid, stop: () => server.stop() }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

export interface DistributionOptions {
  /** the data dir, config and log file under root: <name>, <name>.yml, <name>.log (default distribution) */
  name?: string
  /** keep the access log (one line per request, in the log file): the proxy mode counts upstream requests */
  accessLog?: boolean
}

export async function startDistribution(binary: string, root: string, opts: DistributionOptions = {}): Promise<Server> {
  const name = opts.name ?? 'distribution'
  const dataDir = join(root, name)
  await mkdir(dataDir, { recursive: true })
  const logFile = join(root, `${name}.log`)
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const config = join(root, `${name}.yml`)
    // Debian's stock config minus auth and health checks: filesystem storage with the in-memory
    // blob descriptor cache, deletes enabled; logs at error, no access log (Berth's is off too)
    // unless asked for.
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        '  accesslog:',
        `    disabled: ${opts.accessLog ? 'false' : 'true'}`,
        'storage:',
        '  cache:',
        '    blobdescriptor: inmemory',
        '  filesystem:',
        `    rootdirectory: ${dataDir}`,
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        '',
      ].join('\n'),
    )
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME }
    const server = launch('Distribution', binary, ['serve', config], env, dataDir, logFile, port)
    try {
      await waitReady(server, 30_000)
      return server
    } catch (err) {
      lastError = err
      await server.stop()
    }
  }
  throw lastError
}

export function distributionVersion(binary: string): string {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 })
  return (r.stdout || r.stderr || '').trim().split(/\s+/).slice(-1)[0] ?? 'unknown'
}
