import pino from 'pino'
import { stringify } from 'yaml'
import { buildApp } from '../app.js'
import { loadConfig, maskSecrets } from '../config/load.js'
import { exportSettings, type SettingsServices } from '../settings/settings.js'
import { requireBerthData } from './data.js'

export interface SettingsFlags {
  config?: string
  dataDir?: string
  json?: boolean
}

/**
 * Runs `work` on the services of the deployment (its config file or data directory), built as
 * `berth serve` builds them but without listening; works beside a running server.
 */
export async function withSettingsServices<T>(flags: SettingsFlags, work: (s: SettingsServices, config: unknown) => Promise<T>): Promise<T> {
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  requireBerthData(config)
  const logger = pino({ level: 'warn' }, pino.destination(2))
  const app = await buildApp(config, { logger })
  try {
    return await work(app, maskSecrets(config))
  } finally {
    await app.close()
  }
}

/** `berth config export`: the effective configuration (secrets masked) and the registry's settings as one YAML document. */
export async function configExportCommand(flags: SettingsFlags): Promise<void> {
  const doc = await withSettingsServices(flags, (s, config) => exportSettings(s, config))
  process.stdout.write(flags.json ? `${JSON.stringify(doc, null, 2)}\n` : stringify(doc, { lineWidth: 0 }))
}
