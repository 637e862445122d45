import { realpathSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/**
 * How to run the `berth` command from where the server was started: `berth` when the `berth` on
 * PATH is this very program (a global install), `npx berth` otherwise (a checkout, where npx runs
 * the package's own bin).
 */
export function berthCommand(script = process.argv[1], path = process.env.PATH ?? ''): string {
  const self = realpathOrUndefined(script)
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const found = realpathOrUndefined(join(dir, 'berth'))
    if (found !== undefined) return found === self ? 'berth' : 'npx berth'
  }
  return 'npx berth'
}

function realpathOrUndefined(path: string | undefined): string | undefined {
  if (!path) return undefined
  try {
    return realpathSync(path)
  } catch {
    return undefined
  }
}

/** The flags a one-shot command needs to find the same data as this server (none for the defaults). */
export function dataFlags(flags: { config?: string; dataDir?: string }, dataDir: string): string {
  if (flags.config) return ` --config ${shellWord(flags.config)}`
  const dir = flags.dataDir ?? dataDir
  if (dir !== './data') return ` --data-dir ${shellWord(dir)}`
  return ''
}

function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`
}

/**
 * The registry host clients should use: the base URL's host when configured, `localhost` for a
 * wildcard listener, the listening address otherwise.
 */
export function registryHost(listening: { address: string; port: number }, baseUrl?: string): string {
  if (baseUrl) return new URL(baseUrl).host
  const { address, port } = listening
  if (address === '0.0.0.0' || address === '::') return `localhost:${port}`
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

/** The lines printed once the server listens: how to log in, create a project and push. */
export function startBanner(o: { host: string; auth: boolean; tls: boolean; berth: string; flags: string }): string {
  const lines = [`Berth is listening on ${o.tls ? 'https' : 'http'}://${o.host} (authentication ${o.auth ? 'on' : 'off'}). To push a first image:`, '']
  if (o.auth) lines.push(`    docker login ${o.host} -u admin`, `    ${o.berth} project create team${o.flags}`)
  lines.push(`    docker tag IMAGE ${o.host}/team/app:1`, `    docker push ${o.host}/team/app:1`, '')
  lines.push('podman, skopeo, containerd, crane and helm work the same way: see "Using it" in README.md.')
  return `\n${lines.join('\n')}\n\n`
}
