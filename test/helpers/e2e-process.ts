// Process, daemon and temp-dir helpers for the end-to-end tests with real clients (test/e2e/).
//
// Everything here is asynchronous on purpose: the Berth server under test runs in the same Node
// process as the tests, so a synchronous child-process call would freeze the server the client is
// talking to.

import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, constants, closeSync, openSync, readFileSync } from 'node:fs'
import { access, mkdir, readFile, rm, stat } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { test } from 'node:test'

// ---------------------------------------------------------------------------------------------
// Finding clients

/** The absolute path of an executable, looked up in `candidates` first and then on PATH. */
export function findBinary(name: string, candidates: string[] = []): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const path of [...candidates, ...dirs.map((d) => join(d, name))]) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not here
    }
  }
  return undefined
}

/** Whether `path` exists and may be executed (a client binary fetched or built into .cache/). */
export async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  )
}

/** Whether this process runs as root (daemons such as containerd and dockerd need it). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/**
 * Decides whether a client suite can run. Returns `false` when it can, or the reason to skip it.
 * When a requirement is missing and `CI` is set, a failing test is registered instead (CI must not
 * pass by skipping), and the suite itself is skipped so that its failure is the clear one.
 */
export function requireClients(suite: string, problems: (string | undefined | false)[]): string | false {
  const missing = problems.filter((p): p is string => typeof p === 'string' && p.length > 0)
  if (missing.length === 0) return false
  const reason = `${suite}: ${missing.join('; ')} (install with: sudo bash .ci/install-clients.sh)`
  if (process.env.CI) {
    test(`${suite}: required clients are installed`, () => {
      assert.fail(`CI is set and ${reason}`)
    })
  } else {
    console.log(`skipping ${reason}`)
  }
  return reason
}

/** A requirement check for requireClients: undefined when `name` is an executable on PATH. */
export function needBinary(name: string, candidates: string[] = []): string | undefined {
  return findBinary(name, candidates) === undefined ? `${name} is not installed` : undefined
}

/** A requirement check for requireClients: undefined when running as root. */
export function needRoot(what: string): string | undefined {
  return isRoot() ? undefined : `${what} needs root`
}

/** Whether an ELF file is statically linked (has no PT_INTERP program header). */
export function isStaticElf(path: string): boolean {
  let buf: Buffer
  try {
    buf = readFileSync(path)
  } catch {
    return false
  }
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) return false
  const is64 = buf[4] === 2
  const le = buf[5] === 1
  const u16 = (o: number): number => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o))
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o))
  const phoff = is64 ? Number(le ? buf.readBigUInt64LE(0x20) : buf.readBigUInt64BE(0x20)) : u32(0x1c)
  const phentsize = u16(is64 ? 0x36 : 0x2a)
  const phnum = u16(is64 ? 0x38 : 0x2c)
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize
    if (off + 4 > buf.length) return false
    if (u32(off) === 3 /* PT_INTERP */) return false
  }
  return true
}

// ---------------------------------------------------------------------------------------------
// Running commands

export interface RunResult {
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Kills the command after this long (default 120 s). */
  timeoutMs?: number
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) {
          const how = err.killed ? `was killed (timeout ${opts.timeoutMs ?? 120_000} ms)` : `exited with ${String(err.code)}`
          reject(new Error(`\`${cmd} ${args.join(' ')}\` ${how}\n--- stdout ---\n${tail(stdout)}\n--- stderr ---\n${tail(stderr)}`))
          return
        }
        resolve({ stdout, stderr })
      },
    )
  })
}

function tail(text: string, max = 4000): string {
  return text.length > max ? `…${text.slice(-max)}` : text
}

// ---------------------------------------------------------------------------------------------
// Daemons

export interface Daemon {
  name: string
  pid: number
  logFile: string
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  /** The last part of the daemon's log, for failure messages. */
  logTail(): Promise<string>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>
}

const running = new Set<ChildProcess>()

// Last resort if a test run dies without its after hooks: never leave daemons behind.
process.on('exit', () => {
  for (const child of running) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
})

/** Starts a long-running process with its stdout and stderr going to `logFile`. */
export function startDaemon(name: string, cmd: string, args: string[], opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): Daemon {
  const fd = openSync(opts.logFile, 'a')
  let child: ChildProcess
  try {
    child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', fd, fd] })
  } finally {
    closeSync(fd)
  }
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`)
  running.add(child)
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      daemon.exit = { code, signal }
      running.delete(child)
      resolve()
    })
    child.once('error', () => {
      daemon.exit ??= { code: null, signal: null }
      running.delete(child)
      resolve()
    })
  })
  const daemon: Daemon = {
    name,
    pid: child.pid,
    logFile: opts.logFile,
    exit: undefined,
    async logTail() {
      try {
        return tail(await readFile(opts.logFile, 'utf8'), 6000)
      } catch {
        return '(no log)'
      }
    },
    async stop(graceMs = 15_000) {
      if (daemon.exit) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => {
        if (!daemon.exit) child.kill('SIGKILL')
      }, graceMs)
      await exited
      clearTimeout(timer)
    },
  }
  return daemon
}

export interface WaitOptions {
  /** Gives up after this long (default 30 s). */
  timeoutMs?: number
  /** Between attempts (default 50 ms). */
  intervalMs?: number
  /** Fails at once, with its log, when this daemon exits while we wait. */
  daemon?: Daemon
}

/** Polls `probe` until it returns a value other than undefined/false, within a bounded deadline. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, opts: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000)
  let lastError: unknown
  for (;;) {
    if (opts.daemon?.exit) {
      throw new Error(`${opts.daemon.name} exited (${JSON.stringify(opts.daemon.exit)}) while waiting for ${what}\n${await opts.daemon.logTail()}`)
    }
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      const log = opts.daemon ? `\n--- ${opts.daemon.name} log ---\n${await opts.daemon.logTail()}` : ''
      throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}${log}`)
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50))
  }
}

/** Resolves once a connection to `target` (a unix socket path or {host, port}) succeeds. */
export function canConnect(target: string | { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = typeof target === 'string' ? connect(target) : connect(target.port, target.host)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => {
      socket.destroy()
      resolve(false)
    })
  })
}

/** Waits until a unix socket exists and accepts connections. */
export async function waitForSocket(path: string, opts: WaitOptions = {}): Promise<void> {
  await waitFor(
    `socket ${path}`,
    async () => {
      const s = await stat(path).catch(() => undefined)
      return s?.isSocket() === true && (await canConnect(path))
    },
    opts,
  )
}

/** Waits until a TCP port accepts connections. */
export async function waitForPort(host: string, port: number, opts: WaitOptions = {}): Promise<void> {
  await waitFor(`${host}:${port}`, () => canConnect({ host, port }), opts)
}

/** Waits until a Berth server at `base` answers its /healthz with 200. */
export async function waitHealthy(base: string, opts: WaitOptions = {}): Promise<void> {
  await waitFor(`${base}/healthz`, async () => (await fetch(`${base}/healthz`)).status === 200, { timeoutMs: 10_000, ...opts })
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))))
    })
  })
}

// ---------------------------------------------------------------------------------------------
// Temp directories

/**
 * A fresh temp directory with a short, lowercase path: unix socket paths are limited to 107 bytes,
 * and podman names images pulled from `oci:DIR` after DIR, which must then be lowercase.
 */
export async function makeTempDir(prefix: string): Promise<string> {
  for (;;) {
    const dir = join(tmpdir(), `${prefix}${randomBytes(5).toString('hex')}`)
    try {
      await mkdir(dir, { mode: 0o700 })
      return dir
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
}

/** Mount points at or under `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  const points = info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
  return [...new Set(points)].sort((a, b) => b.length - a.length)
}

/**
 * Removes a temp directory that daemons have used: first unmounts whatever they left mounted
 * under it (overlay snapshots, shm, private bind mounts), so that `rm` never crosses a mount.
 */
export async function removeTempDir(dir: string | undefined): Promise<void> {
  if (!dir) return
  for (const point of await mountsUnder(dir)) {
    await run('umount', ['-l', point]).catch(() => undefined)
  }
  const left = await mountsUnder(dir)
  if (left.length > 0) {
    console.log(`# not removing ${dir}: still mounted: ${left.join(', ')}`)
    return
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}
