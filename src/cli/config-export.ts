import pino from 'pino'
import { stringify } from 'yaml'
import { buildApp } from '../app.js'
import { loadConfig, maskSecrets } from '../config/load.js'
import { exportSettings, type SettingsServices } from '../settings/settings.js'
import { explainRefusal, urlCredentials, type PasswordFlags } from './credentials.js'
import { requireBerthData } from './data.js'

export interface SettingsFlags extends PasswordFlags {
  config?: string
  dataDir?: string
  /** a running Berth, reached over its management API */
  url?: string
  user?: string
  json?: boolean
}

/**
 * Runs `work` on the services of the deployment (its config file or data directory), built as
 * `berth serve` builds them but without listening; works beside a running server. With `url`,
 * on a running Berth's management API instead.
 */
export async function withSettingsServices<T>(flags: SettingsFlags, work: (s: SettingsServices, config: unknown) => Promise<T>): Promise<T> {
  if (flags.url !== undefined) {
    if (flags.dataDir !== undefined || flags.config !== undefined) throw new Error('give either --url or --data-dir/--config, not both')
    const { remoteSettingsServices } = await import('../settings/remote.js')
    const url = flags.url
    const creds = await urlCredentials({ ...flags, url })
    const remote = remoteSettingsServices({ url, user: creds.user, password: creds.password })
    try {
      return await work(remote.services, await remote.config())
    } catch (err) {
      throw explainRefusal(err, url, creds)
    }
  }
  if (flags.user !== undefined || flags.password !== undefined || flags.passwordStdin) throw new Error('--user, --password and --password-stdin go with --url')
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
