// Starting the daemons the end-to-end tests talk to: Docker Distribution (the reference registry),
// containerd and dockerd. Each runs entirely under a temp directory of the test, on loopback or a
// unix socket, and is stopped by PID.

import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { findBinary, freePort, isStaticElf, needBinary, needRoot, requireClients, run, startDaemon, waitFor, waitForPort, waitForSocket, type Daemon } from './e2e-process.js'

// ---------------------------------------------------------------------------------------------
// Docker Distribution 2.8 (Debian's docker-registry)

export interface Distribution {
  daemon: Daemon
  host: string
  url: string
  /** the access log's request lines so far (the daemon writes them to its log file as they are served) */
  requests(): Promise<AccessLogEntry[]>
  /** how many requests of `method` on exactly `path` (no query) the registry has served so far */
  countRequests(method: string, path: string): Promise<number>
  stop(): Promise<void>
}

export interface AccessLogEntry {
  method: string
  /** the request target as sent, query included */
  target: string
  /** the target without its query */
  path: string
  status: number
  /** the client's User-Agent */
  userAgent: string
}

export interface DistributionOptions {
  /** docker-registry by default; any Distribution binary (v3 too) */
  binary?: string
  /** its storage.filesystem.rootdirectory (default `<dir>/storage`) */
  root?: string
  proxyRemoteUrl?: string
  /** Basic auth (htpasswd, bcrypt via `htpasswd -Bbn`) with this one user */
  htpasswd?: { username: string; password: string }
}

// gorilla's combined log format: HOST - USER [DATE] "METHOD TARGET HTTP/x" STATUS SIZE "REFERER" "UA"
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"/

/** The access log lines of a Distribution log file. */
export async function readAccessLog(logFile: string): Promise<AccessLogEntry[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '')
  const entries: AccessLogEntry[] = []
  for (const line of text.split('\n')) {
    const m = ACCESS_LINE.exec(line)
    if (!m) continue
    const target = m[2]!
    entries.push({ method: m[1]!, target, path: target.split('?')[0]!, status: Number(m[3]), userAgent: m[4]! })
  }
  return entries
}

/**
 * Starts `docker-registry serve` with filesystem storage under `dir` and deletes enabled; with
 * `proxyRemoteUrl`, as a pull-through cache of that registry.
 */
const MARKER = '/v2/berth-access-log-marker/'

export async function startDistribution(dir: string, opts: DistributionOptions = {}): Promise<Distribution> {
  const root = opts.root ?? join(dir, 'storage')
  await mkdir(dir, { recursive: true })
  await mkdir(root, { recursive: true })
  const htpasswdFile = join(dir, 'htpasswd')
  if (opts.htpasswd) {
    const { stdout } = await run('htpasswd', ['-Bbn', opts.htpasswd.username, opts.htpasswd.password])
    await writeFile(htpasswdFile, stdout)
  }
  let lastError: unknown
  // The free port can be taken between probing and binding: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const config = join(dir, `config-${port}.yml`)
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog:',
        '    disabled: false',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${root}`,
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '  secret: berth-e2e-not-a-secret',
        ...(opts.proxyRemoteUrl ? ['proxy:', `  remoteurl: ${opts.proxyRemoteUrl}`] : []),
        ...(opts.htpasswd ? ['auth:', '  htpasswd:', '    realm: berth-e2e', `    path: ${htpasswdFile}`] : []),
        '',
      ].join('\n'),
    )
    const logFile = join(dir, `registry-${port}.log`)
    const daemon = startDaemon('docker-registry', opts.binary ?? 'docker-registry', ['serve', config], { logFile })
    try {
      await waitForPort('127.0.0.1', port, { daemon, timeoutMs: 20_000 })
      // The port answers; make sure it is this registry answering.
      const ready = opts.htpasswd ? 401 : 200
      await waitFor('docker-registry /v2/', async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === ready, { daemon, timeoutMs: 10_000 })
      const host = `127.0.0.1:${port}`
      let marks = 0
      // Distribution writes a request's access-log line after answering it, so a count read
      // right after a response can miss it: a marker request is made first, and once its line
      // is in the log, so are the lines of everything answered before it.
      const requests = async (): Promise<AccessLogEntry[]> => {
        const marker = `${MARKER}${marks++}/tags/list`
        const answered = await fetch(`http://${host}${marker}`).then(
          (res) => res.arrayBuffer().then(() => true),
          () => false, // stopped: the log is complete
        )
        const deadline = Date.now() + 5_000
        for (;;) {
          const entries = await readAccessLog(logFile)
          if (!answered || entries.some((e) => e.path === marker) || Date.now() > deadline) return entries.filter((e) => !e.path.startsWith(MARKER))
          await new Promise((r) => setTimeout(r, 10))
        }
      }
      return {
        daemon,
        host,
        url: `http://${host}`,
        requests,
        countRequests: async (method, path) => (await requests()).filter((e) => e.method === method && e.path === path).length,
        stop: () => daemon.stop(),
      }
    } catch (err) {
      lastError = err
      await daemon.stop()
    }
  }
  throw lastError
}

// ---------------------------------------------------------------------------------------------
// containerd

export interface Containerd {
  daemon: Daemon
  /** The gRPC socket (`ctr -a`, `dockerd --containerd`). */
  address: string
  /** Runs `ctr -a ADDRESS -n NAMESPACE ...args`. */
  ctr(namespace: string, ...args: string[]): Promise<{ stdout: string; stderr: string }>
  stop(): Promise<void>
}

/** Starts containerd with root, state, sockets and plugin dirs under `dir`; no CRI plugin. */
export async function startContainerd(dir: string, binaries: { containerd?: string; ctr?: string } = {}): Promise<Containerd> {
  await mkdir(dir, { recursive: true })
  const address = join(dir, 'containerd.sock')
  const config = join(dir, 'config.toml')
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      `  address = "${join(dir, 'debug.sock')}"`,
      '  level = "info"',
      '[plugins]',
      '  [plugins."io.containerd.internal.v1.opt"]',
      `    path = "${join(dir, 'opt')}"`,
      '',
    ].join('\n'),
  )
  const daemon = startDaemon('containerd', binaries.containerd ?? 'containerd', ['--config', config], { logFile: join(dir, 'containerd.log') })
  try {
    await waitForSocket(address, { daemon, timeoutMs: 30_000 })
  } catch (err) {
    await daemon.stop()
    throw err
  }
  const ctrBin = binaries.ctr ?? 'ctr'
  return {
    daemon,
    address,
    ctr: (namespace, ...args) => run(ctrBin, ['-a', address, '-n', namespace, ...args], { timeoutMs: 120_000 }),
    stop: () => daemon.stop(),
  }
}

// ---------------------------------------------------------------------------------------------
// dockerd

export interface Dockerd {
  daemon: Daemon
  /** The environment for the docker CLI: DOCKER_HOST and a private DOCKER_CONFIG. */
  env: NodeJS.ProcessEnv
  docker(...args: string[]): Promise<{ stdout: string; stderr: string }>
  stop(): Promise<void>
}

/**
 * Starts dockerd with its data, exec root and socket under `dir`, no bridge and no iptables,
 * using an already running containerd. 127.0.0.0/8 is an insecure registry by default.
 * `daemonConfig` is written to its daemon.json (e.g. `registry-mirrors`).
 */
export async function startDockerd(
  dir: string,
  containerdAddress: string,
  binaries: { dockerd?: string; docker?: string } = {},
  daemonConfig: Record<string, unknown> = {},
): Promise<Dockerd> {
  await mkdir(join(dir, 'cfg'), { recursive: true })
  const socket = join(dir, 'docker.sock')
  const daemonJson = join(dir, 'daemon.json')
  await writeFile(daemonJson, `${JSON.stringify(daemonConfig)}\n`)
  const args = [
    '--config-file',
    daemonJson,
    '--data-root',
    join(dir, 'root'),
    '--exec-root',
    join(dir, 'exec'),
    '--pidfile',
    join(dir, 'dockerd.pid'),
    '-H',
    `unix://${socket}`,
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--containerd',
    containerdAddress,
  ]
  const daemon = startDaemon('dockerd', binaries.dockerd ?? 'dockerd', args, { logFile: join(dir, 'dockerd.log') })
  // DOCKER_BUILDKIT=0: the classic builder, which needs no buildkit image or network.
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'cfg'), DOCKER_BUILDKIT: '0' }
  const dockerBin = binaries.docker ?? 'docker'
  const docker = (...a: string[]): Promise<{ stdout: string; stderr: string }> => run(dockerBin, a, { env, timeoutMs: 120_000 })
  try {
    await waitForSocket(socket, { daemon, timeoutMs: 60_000 })
    // The socket can accept before the API is ready.
    await waitFor('docker version', async () => (await docker('version', '--format', '{{.Server.Version}}')).stdout.trim(), { daemon, timeoutMs: 30_000, intervalMs: 200 })
  } catch (err) {
    await daemon.stop()
    throw err
  }
  return { daemon, env, docker, stop: () => daemon.stop(30_000) }
}

/** `ctr images ls` in namespace `ns` as {ref → digest}. */
export async function ctrImages(containerd: Containerd, ns: string): Promise<Map<string, string>> {
  const { stdout } = await containerd.ctr(ns, 'images', 'ls')
  const images = new Map<string, string>()
  for (const line of stdout.trim().split('\n').slice(1)) {
    const [ref, , digest] = line.split(/\s+/)
    if (ref && digest) images.set(ref, digest)
  }
  return images
}

/** Digests in the content store of namespace `ns` (`ctr content ls -q`). */
export async function ctrContentDigests(containerd: Containerd, ns: string): Promise<Set<string>> {
  const { stdout } = await containerd.ctr(ns, 'content', 'ls', '-q')
  return new Set(stdout.trim().split('\n').filter(Boolean))
}

/** Debian's docker CLI, which matches Debian's dockerd, before any other docker on PATH. */
export const DOCKER_CANDIDATES = ['/usr/bin/docker']

/** Why a dockerd suite cannot run here (false: it can): the daemons, root, and a static busybox for `docker run`. */
export function dockerSkip(suite: string, busybox: string): string | false {
  return requireClients(suite, [
    needBinary('dockerd'),
    needBinary('docker', DOCKER_CANDIDATES),
    needBinary('containerd'),
    needBinary('runc'),
    needRoot('dockerd'),
    isStaticElf(busybox) ? undefined : `${busybox} is not a static binary (Debian package busybox-static)`,
  ])
}

/** containerd and dockerd under `dir`, docker logged in to `registry` (host:port); stop() ends both. */
export async function startLoggedInDocker(dir: string, registry: string, username: string, password: string): Promise<{ dockerd: Dockerd; stop(): Promise<void> }> {
  const containerd = await startContainerd(join(dir, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
  let dockerd: Dockerd | undefined
  const stop = async () => {
    await dockerd?.stop()
    await containerd.stop()
  }
  try {
    dockerd = await startDockerd(join(dir, 'docker'), containerd.address, { dockerd: findBinary('dockerd'), docker: findBinary('docker', DOCKER_CANDIDATES) })
    await dockerd.docker('login', '-u', username, '-p', password, registry)
    return { dockerd, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** The digest docker prints after `push` ("TAG: digest: sha256:… size: N") or `pull` ("Digest: sha256:…"). */
export function dockerPrintedDigest(output: string): string {
  const match = /digest: (sha256:[0-9a-f]{64})/i.exec(output)
  if (!match?.[1]) throw new Error(`no digest in docker output:\n${output}`)
  return match[1]
}
