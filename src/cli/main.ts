import { Command } from 'commander'
import { serveCommand } from './serve.js'
import { registerProjectCommands } from './project.js'
import { registerUserCommands } from './user.js'

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
  .action(serveCommand)

const config = program.command('config').description('configuration tools')
config
  .command('check')
  .description('validate a config file and print the effective configuration with secrets masked')
  .argument('<file>', 'YAML config file')
  .option('--json', 'print JSON instead of YAML')
  .action(lazy(async () => (await import('./config-check.js')).configCheckCommand))

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

registerUserCommands(program)
registerProjectCommands(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`berth: ${(err as Error).message}`)
  process.exit(1)
})
