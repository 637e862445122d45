import { Command } from 'commander'
import { serveCommand } from './serve.js'
import { registerProjectCommands } from './project.js'
import { registerUserCommands } from './user.js'
import { registerVulnDbCommands } from './vulndb.js'

/**
 * A command whose module is imported when it runs, so that a long-running `berth serve` does not
 * hold the one-shot commands' code and libraries (progress bars, YAML output) in memory.
 */
function lazy<A extends unknown[]>(load: () => Promise<(...args: A) => Promise<void>>): (...args: A) => Promise<void> {
  return async (...args) => (await load())(...args)
}

const program = new Command()
program.name('berth').description('Berth: a self-hosted OCI container registry in one small Node.js process').version('0.1.0')

program
  .command('serve')
  .description('run the registry server')
  .option('-c, --config <file>', 'YAML config file')
  .option('--addr <host:port>', 'listen address (config key http.addr, default 0.0.0.0:5000)')
  .option('--data-dir <dir>', 'data directory for the SQLite database and blobs (config key dataDir, default ./data)')
  .option('--workers <n>', 'processes sharing the listen address, 0 for one per core (config key server.workers, default 1)')
  .action(serveCommand)

const config = program.command('config').description('configuration tools')
config
  .command('check')
  .description('validate a config file and print the effective configuration with secrets masked')
  .argument('<file>', 'YAML config file')
  .option('--json', 'print JSON instead of YAML')
  .action(lazy(async () => (await import('./config-check.js')).configCheckCommand))
config
  .command('from-distribution')
  .description("translate a Docker Distribution config.yml into Berth's config (printed); says what to do for each key it cannot map")
  .argument('<file>', "Distribution's config.yml")
  .option('--json', 'print {config, mapped, notes} as JSON instead of commented YAML')
  .action(lazy(async () => (await import('./config-from-distribution.js')).configFromDistributionCommand))

program
  .command('migrate')
  .description('run the pending metadata migrations; --check lists them without running (exit code 10 when some are pending, 11 when the database is newer)')
  .option('-c, --config <file>', 'YAML config file')
  .option('--data-dir <dir>', 'data directory (config key dataDir)')
  .option('--check', 'list pending migrations, run nothing')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./migrate.js')).migrateCommand))

config
  .command('export')
  .description("print the effective configuration (secrets masked) and the registry's settings (users, projects, members, robots, rules, webhooks, registries, replication) as one YAML document for `berth apply`")
  .option('-c, --config <file>', 'YAML config file of the deployment')
  .option('--data-dir <dir>', 'data directory of the deployment (config key dataDir)')
  .option('--url <url>', 'or: a running Berth (http(s)://host[:port]), through its management API')
  .option('--user <user>', 'user name for --url (a system administrator); without it, the login saved for the host by skopeo, podman or docker login')
  .option('--password-stdin', 'read the password (or robot or CLI secret) of --user from standard input')
  .option('--password <password>', 'the password on the command line (visible in process lists: prefer --password-stdin)')
  .option('--json', 'print JSON instead of YAML')
  .action(lazy(async () => (await import('./config-export.js')).configExportCommand))

program
  .command('apply')
  .description('make the registry\'s settings match a document written by `berth config export` (creates and updates; deletes only with --prune)')
  .argument('<file>', 'the settings document (YAML or JSON)')
  .option('-c, --config <file>', 'YAML config file of the deployment')
  .option('--data-dir <dir>', 'data directory of the deployment (config key dataDir)')
  .option('--url <url>', 'or: a running Berth (http(s)://host[:port]), through its management API')
  .option('--user <user>', 'user name for --url (a system administrator); without it, the login saved for the host by skopeo, podman or docker login')
  .option('--password-stdin', 'read the password (or robot or CLI secret) of --user from standard input')
  .option('--password <password>', 'the password on the command line (visible in process lists: prefer --password-stdin)')
  .option('--dry-run', 'print the changes, write nothing')
  .option('--prune', 'also delete what the document does not list')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./config-apply.js')).applyCommand))

program
  .command('migrate-metadata')
  .description('copy the metadata of a SQLite deployment into an empty PostgreSQL database (blobs stay where they are)')
  .option('--from <sqlite:PATH>', 'the SQLite database to copy')
  .option('--data-dir <dir>', 'or: the data directory holding berth.db')
  .requiredOption('--to <postgres://…>', 'the PostgreSQL database to fill (migrated first; must be empty)')
  .option('--batch-size <rows>', 'rows per INSERT', '500')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./migrate-metadata.js')).migrateMetadataCommand))

program
  .command('gc')
  .description('garbage-collect unreferenced blobs, untagged manifests (per gc.untagged) and expired uploads; safe while a server runs')
  .option('-c, --config <file>', 'YAML config file')
  .option('--data-dir <dir>', 'data directory (config key dataDir)')
  .option('--dry-run', 'list what would be deleted, delete nothing')
  .option('--json', 'print the run record as JSON')
  .action(lazy(async () => (await import('./gc.js')).gcCommand))

program
  .command('scrub')
  .description('re-hash every blob and check every manifest; quarantine corrupt blobs (exit code 2 when problems are found)')
  .option('-c, --config <file>', 'YAML config file')
  .option('--data-dir <dir>', 'data directory (config key dataDir)')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./scrub.js')).scrubCommand))

program
  .command('export')
  .description('write images (with their index children and, with --referrers, signatures and SBOMs) as an OCI image layout')
  .argument('<refs...>', 'REPO, REPO:TAG or REPO@DIGEST (REPO alone: every tag)')
  .requiredOption('--to <dir|file.tar>', 'the layout directory (resumable) or tar file to write')
  .option('-c, --config <file>', 'YAML config file of the Berth to read')
  .option('--data-dir <dir>', 'data directory of the Berth to read (config key dataDir)')
  .option('--url <url>', 'or: read from this registry (http(s)://host[:port])')
  .option('--user <user>', 'user name for --url; without it, the login saved for the host by skopeo, podman or docker login')
  .option('--password-stdin', 'read the password or token of --user from standard input')
  .option('--password <password>', 'the password on the command line (visible in process lists: prefer --password-stdin)')
  .option('--platform <os/arch>', 'keep only these platforms of a multi-platform index (repeatable)', (v: string, all: string[] = []) => [...all, v])
  .option('--referrers', 'also export the referrers (signatures, SBOMs, attestations)')
  .option('--since <file>', 'index.json (or layout dir or tar) of what the other side has: leave its blobs out')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./export.js')).exportCommand))

program
  .command('import')
  .description('load an OCI image layout (directory or tar) into Berth, every digest verified first')
  .argument('<layout>', 'layout directory or tar file')
  .requiredOption('--into <project[/repo]>', 'PROJECT (images keep their repository names) or PROJECT/REPO')
  .option('-c, --config <file>', 'YAML config file of the Berth to load into')
  .option('--data-dir <dir>', 'data directory of the Berth to load into (config key dataDir)')
  .option('--url <url>', 'or: push to this registry (http(s)://host[:port])')
  .option('--user <user>', 'user name for --url; without it, the login saved for the host by skopeo, podman or docker login')
  .option('--password-stdin', 'read the password or token of --user from standard input')
  .option('--password <password>', 'the password on the command line (visible in process lists: prefer --password-stdin)')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./import.js')).importCommand))

program
  .command('adopt')
  .description('take over another registry\'s storage in place, without re-pushing')
  .command('distribution')
  .description('build Berth\'s metadata from a Docker Distribution storage tree and hard-link (or copy server-side) its blobs; incremental')
  .requiredOption('--from <dir|s3://bucket/prefix|azure://container/prefix>', 'Distribution\'s storage root (its rootdirectory, holding docker/registry/v2)')
  .option('-c, --config <file>', 'YAML config file of the Berth to fill (its storage.s3 / storage.azure settings also reach an s3:// / azure:// tree)')
  .option('--data-dir <dir>', 'data directory of the Berth to fill (config key dataDir)')
  .option('--dry-run', 'print what would be adopted and what is broken, write nothing')
  .option('--into <project>', 'every repository into this project (PROJECT/NAME) instead of its first path component')
  .option('--concurrency <n>', 'repositories adopted at once', '4')
  .option('--json', 'print the report as JSON')
  .action(lazy(async () => (await import('./adopt.js')).adoptDistributionCommand))

const backup = program
  .command('backup')
  .description('take a consistent snapshot (metadata and blobs) of a deployment into a backup directory, online; incremental')
  .option('-c, --config <file>', 'YAML config file of the deployment')
  .option('--data-dir <dir>', 'data directory of the deployment (config key dataDir)')
  .option('--to <dir>', 'the backup directory (created; earlier backups in it make this one incremental)')
  .option('--keep <n>', 'generations kept in the backup directory', '2')
  .option('--json', 'print the backup manifest as JSON')
  .action(lazy(async () => (await import('./backup.js')).backupCommand))
backup
  .command('verify')
  .description('restore a backup into a scratch directory and scrub it (exit code 2 on any problem)')
  .argument('<dir>', 'the backup directory')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./backup.js')).backupVerifyCommand))

program
  .command('restore')
  .description('restore a backup into an empty deployment (refuses one that holds data)')
  .argument('<dir>', 'the backup directory')
  .option('-c, --config <file>', 'YAML config file of the target (any storage driver and database)')
  .option('--data-dir <dir>', 'or: the target data directory (SQLite and filesystem)')
  .option('--json', 'print the result as JSON')
  .action(lazy(async () => (await import('./backup.js')).restoreCommand))

registerUserCommands(program)
registerProjectCommands(program)
registerVulnDbCommands(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`berth: ${(err as Error).message}`)
  process.exit(1)
})
