import { buildApp } from '../app.js'
import { berthCommand, dataFlags, registryHost, startBanner } from './banner.js'
import { parseDuration } from '../config/duration.js'
import { loadConfig, maskSecrets, releaseConfigModules } from '../config/load.js'

interface ServeFlags {
  config?: string
  addr?: string
  dataDir?: string
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const { config, unknownEnv, adminPassword } = await loadConfig({
    file: flags.config,
    env: process.env,
    flags: { 'http.addr': flags.addr, dataDir: flags.dataDir },
  })
  // The config is read once: the validator and YAML parser need not stay in memory.
  releaseConfigModules()
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
  log.info({ enabled: config.metrics.enabled }, config.metrics.enabled ? 'metrics enabled at /metrics' : 'metrics disabled by config')
  log.info({ enabled: Boolean(config.http.tls.certificate) }, config.http.tls.certificate ? 'TLS enabled' : 'TLS disabled: serving plain HTTP')

  const { host, port } = splitAddr(config.http.addr)
  await app.http.listen({ host, port })
  const listening = app.http.server.address()
  if (listening && typeof listening === 'object') {
    const registry = registryHost(listening, config.http.baseUrl)
    process.stderr.write(startBanner({ host: registry, auth: config.auth.enabled, tls: Boolean(config.http.tls.certificate), berth, flags: cliFlags }))
  }
  void app.scheduler.runNow('purge-uploads').catch(() => undefined)

  const timeout = parseDuration(config.http.shutdownTimeout) ?? 30_000
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

export function splitAddr(addr: string): { host: string; port: number } {
  const idx = addr.lastIndexOf(':')
  const host = addr.slice(0, idx).replace(/^\[(.*)\]$/, '$1')
  return { host, port: Number(addr.slice(idx + 1)) }
}
