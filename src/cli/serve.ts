import cluster from 'node:cluster'
import { createServer } from 'node:net'
import { splitAddr } from '../config/addr.js'
import { berthCommand, dataFlags, registryHost, startBanner } from './banner.js'
import { loadConfig, maskSecrets, releaseConfigModules } from '../config/load.js'
import { announceReady, isFirstWorker, workerCount } from '../runtime/workers.js'

interface ServeFlags {
  config?: string
  addr?: string
  dataDir?: string
  workers?: string
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const { config, unknownEnv, adminPassword } = await loadConfig({
    file: flags.config,
    env: process.env,
    flags: { 'http.addr': flags.addr, dataDir: flags.dataDir, 'server.workers': flags.workers },
  })
  const { host, port } = splitAddr(config.http.addr)
  const workers = workerCount(config.server.workers)
  // Before anything is created or logged: an address in use is one line and exit code 1.
  if (cluster.isPrimary) await probeListen(config.http.addr, host, port)
  // The config is read once: the validator and YAML parser need not stay in memory.
  releaseConfigModules()
  if (workers > 1 && cluster.isPrimary) {
    // The primary only starts and watches the workers: it never loads the registry's code.
    const { createLogger } = await import('../observability/logger.js')
    const { runPrimary } = await import('../runtime/workers.js')
    return runPrimary({ workers, shutdownTimeoutMs: config.http.shutdownTimeout, log: createLogger(config.log).child({ process: 'primary' }) })
  }
  const first = isFirstWorker()
  const { buildApp } = await import('../app.js')
  const app = await buildApp(config, { adminPassword })
  const { log } = app
  const berth = berthCommand()
  const cliFlags = dataFlags(flags, config.dataDir)
  const passwd = `${berth} user passwd admin --password-stdin${cliFlags}`
  if (app.generatedAdminPassword) {
    // Printed once, straight to the terminal, never through the logger.
    process.stderr.write(`\nBerth created the user "admin" with the password:\n\n    ${app.generatedAdminPassword}\n\nIt is not shown again. Change it with: ${passwd}\n\n`)
  }
  if (app.adminPasswordIgnored) log.warn(`BERTH_ADMIN_PASSWORD differs from the password of the existing user admin and is ignored (it only sets the first password); change it with: ${passwd}`)
  log.info({ enabled: config.auth.enabled }, config.auth.enabled ? 'authentication enabled: token auth at /token, management API at /api/v1' : 'authentication disabled by config: open registry')
  for (const name of unknownEnv) log.warn({ variable: name }, 'environment variable names no config key; ignored')
  log.info({ config: maskSecrets(config) }, 'configuration loaded')
  log.info({ driver: app.storage.name }, 'storage ready')
  log.info({ dialect: app.metadata.caps.dialect }, 'metadata ready')
  log.info({ enabled: config.metrics.enabled, addr: config.metrics.addr }, config.metrics.enabled ? `metrics enabled at ${config.metrics.addr ? `http://${config.metrics.addr}` : ''}/metrics` : 'metrics disabled by config')
  log.info({ enabled: Boolean(config.http.tls.certificate) }, config.http.tls.certificate ? 'TLS enabled' : 'TLS disabled: serving plain HTTP')

  await app.http.listen({ host, port }).catch((err: unknown) => {
    throw listenError(config.http.addr, err)
  })
  announceReady()
  const listening = app.http.server.address()
  // With workers, the first one speaks for all: one banner, one purge of expired uploads at start.
  if (first && listening && typeof listening === 'object') {
    const registry = registryHost(listening, config.http.baseUrl)
    process.stderr.write(startBanner({ host: registry, auth: config.auth.enabled, tls: Boolean(config.http.tls.certificate), berth, flags: cliFlags }))
  }
  if (first) void app.scheduler.runNow('purge-uploads').catch(() => undefined)

  const timeout = config.http.shutdownTimeout
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal, timeoutMs: timeout }, 'shutting down: no new connections, finishing in-flight requests')
    const force = setTimeout(() => {
      log.warn('shutdown timeout reached: closing remaining connections')
      app.http.server.closeAllConnections()
    }, timeout)
    force.unref()
    app
      .close()
      .then(() => {
        log.info('stopped')
        process.exit(0)
      })
      .catch((err: unknown) => {
        log.error({ err }, 'error during shutdown')
        process.exit(1)
      })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

/** Binds the listen address for a moment and lets it go: fails as the server's listen would. */
async function probeListen(addr: string, host: string, port: number): Promise<void> {
  const probe = createServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen({ host, port, exclusive: true }, resolve)
  }).catch((err: unknown) => {
    throw listenError(addr, err)
  })
  await new Promise((resolve) => probe.close(resolve))
}

/** A listen failure as one line that says what to do; other errors unchanged. */
function listenError(addr: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code
  const choose = 'stop it or choose another address with --addr (config key http.addr, BERTH_HTTP_ADDR)'
  if (code === 'EADDRINUSE') return new Error(`cannot listen on ${addr}: the address is already in use by another process; ${choose}`)
  if (code === 'EACCES') return new Error(`cannot listen on ${addr}: permission denied (ports below 1024 need privileges); ${choose.replace('stop it or ', '')}`)
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') return new Error(`cannot listen on ${addr}: no such address on this machine; ${choose.replace('stop it or ', '')}`)
  return err
}

