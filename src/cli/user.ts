import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { UserService } from '../auth/users.js'
import { loadConfig } from '../config/load.js'
import { createMetadataRepositories, type MetadataRepositories } from '../metadata/repositories/index.js'
import { passwordFromFlags, type PasswordFlags } from './credentials.js'
import { openDeploymentMetadata } from './data.js'

/** The options every command working on the database takes. */
export interface Common {
  config?: string
  dataDir?: string
  json?: boolean
}

/** Runs `work` on the configured metadata database (which must exist) and closes it afterwards. */
export async function withMetadata<T>(opts: Common, work: (meta: MetadataRepositories) => Promise<T>): Promise<T> {
  const { config } = await loadConfig({ file: opts.config, env: process.env, flags: { dataDir: opts.dataDir } })
  const metadata = await openDeploymentMetadata(config)
  try {
    return await work(createMetadataRepositories(metadata.db))
  } finally {
    await metadata.close()
  }
}

function withUsers<T>(opts: Common, work: (users: UserService) => Promise<T>): Promise<T> {
  return withMetadata(opts, (meta) => work(new UserService(meta, Date.now)))
}

/** The `--config`, `--data-dir` and `--json` options of the commands working on the database. */
export function commonOptions(c: Command): Command {
  return c.option('-c, --config <file>', 'YAML config file').option('--data-dir <dir>', 'data directory (config key dataDir)').option('--json', 'print JSON')
}

async function readPassword(opts: PasswordFlags): Promise<string> {
  const password = await passwordFromFlags(opts)
  if (password === undefined) throw new Error('give the password with --password-stdin (or --password)')
  return password
}

/** `berth user add|passwd|list|import-htpasswd`: local accounts, straight in the metadata database. */
export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('manage local users (works on the database directly; the server may be running)')
  const common = commonOptions

  common(user.command('add').description('create a user').argument('<username>'))
    .option('--password <password>', 'the password (visible in process lists: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--email <email>', 'email address')
    .option('--admin', 'make the user a system administrator')
    .action(async (username: string, opts: Common & { password?: string; passwordStdin?: boolean; email?: string; admin?: boolean }) => {
      const password = await readPassword(opts)
      const created = await withUsers(opts, (users) => users.create({ username, password, email: opts.email, admin: opts.admin === true }))
      console.log(opts.json ? JSON.stringify(created) : `created user ${created.username}${created.admin ? ' (admin)' : ''}`)
    })

  common(user.command('passwd').description("change a user's password").argument('<username>'))
    .option('--password <password>', 'the new password (visible in process lists: prefer --password-stdin)')
    .option('--password-stdin', 'read the new password from standard input')
    .action(async (username: string, opts: Common & { password?: string; passwordStdin?: boolean }) => {
      const password = await readPassword(opts)
      await withUsers(opts, (users) => users.update(username, { password }))
      console.log(opts.json ? JSON.stringify({ username, changed: true }) : `password of ${username} changed`)
    })

  common(user.command('list').description('list users')).action(async (opts: Common) => {
    const list = await withUsers(opts, (users) => users.list(1000, 0))
    if (opts.json) console.log(JSON.stringify(list))
    else for (const u of list) console.log(`${u.username}\t${u.admin ? 'admin' : 'user'}\t${u.disabled ? 'disabled' : 'active'}\t${u.source}`)
  })

  common(user.command('import-htpasswd').description("import the bcrypt users of an htpasswd file (Distribution's auth.htpasswd)").argument('<file>')).action(
    async (file: string, opts: Common) => {
      const text = await readFile(file, 'utf8')
      const result = await withUsers(opts, (users) => users.importHtpasswd(text))
      if (opts.json) console.log(JSON.stringify(result))
      else {
        console.log(`imported ${result.imported.length} user(s)${result.imported.length ? `: ${result.imported.join(', ')}` : ''}`)
        for (const s of result.skipped) console.log(`skipped ${s.username}: ${s.reason}`)
      }
    },
  )
}
