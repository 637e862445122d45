// Starting the daemons the end-to-end tests talk to: Docker Distribution (the reference registry),
// containerd and dockerd. Each runs entirely under a temp directory of the test, on loopback or a
// unix socket, and is stopped by PID.

import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort, run, startDaemon, waitFor, waitForPort, waitForSocket, type Daemon } from './e2e-process.js'

// ---------------------------------------------------------------------------------------------
// Docker Distribution 2.8 (Debian's docker-registry)

export interface Distribution {
  daemon: Daemon
  host: string
  url: string
  stop(): Promise<void>
}

/**
 * Starts `docker-registry serve` with filesystem storage under `dir` and deletes enabled; with
 * `proxyRemoteUrl`, as a pull-through cache of that registry.
 */
export async function startDistribution(dir: string, opts: { binary?: string; proxyRemoteUrl?: string } = {}): Promise<Distribution> {
  await mkdir(join(dir, 'storage'), { recursive: true })
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
        `    rootdirectory: ${join(dir, 'storage')}`,
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '  secret: berth-e2e-not-a-secret',
        ...(opts.proxyRemoteUrl ? ['proxy:', `  remoteurl: ${opts.proxyRemoteUrl}`] : []),
        '',
      ].join('\n'),
    )
    const daemon = startDaemon('docker-registry', opts.binary ?? 'docker-registry', ['serve', config], { logFile: join(dir, `registry-${port}.log`) })
    try {
      await waitForPort('127.0.0.1', port, { daemon, timeoutMs: 20_000 })
      // The port answers; make sure it is this registry answering.
      await waitFor('docker-registry /v2/', async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200, { daemon, timeoutMs: 10_000 })
      const host = `127.0.0.1:${port}`
      return { daemon, host, url: `http://${host}`, stop: () => daemon.stop() }
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
