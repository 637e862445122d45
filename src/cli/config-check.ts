import { stringify } from 'yaml'
import { loadConfig, maskSecrets } from '../config/load.js'

export async function configCheckCommand(file: string, opts: { json?: boolean }): Promise<void> {
  const { config, unknownEnv } = await loadConfig({ file, env: process.env })
  const masked = maskSecrets(config)
  process.stdout.write(opts.json ? JSON.stringify(masked, null, 2) + '\n' : stringify(masked))
  for (const name of unknownEnv) console.error(`berth: warning: ${name} names no config key and is ignored`)
}
