// npm run conformance: the OCI distribution-spec conformance suites against a fresh Berth.
//
// Runs the v1.1.1 suite (oci-conformance-v1.1.1.test) and the main-branch suite
// (oci-conformance-main), each against its own freshly started Berth with authentication on
// (the suites log in as admin and follow the token flow), prints each suite's passed / failed /
// skipped counts, the failed cases and the skipped ones with the suite's reason, and a
// Markdown table of the figures (the one in docs/api.md). Exits 1 on any failure.
//
//   npm run conformance                                   # embedded default: filesystem + SQLite
//   npm run conformance -- --config postgres-s3           # PostgreSQL metadata + S3 blobs (s3rver)
//   npm run conformance -- --config all                   # both
//
// --config (or BERTH_TEST_CONFORMANCE_CONFIG): embedded | postgres-s3 | all.
// postgres-s3 needs BERTH_TEST_DATABASE_URL (a PostgreSQL server where databases may be created).
// The suites are looked for in ../shared/bin beside the checkout, or in BERTH_TEST_CONFORMANCE_BIN.
// When they are absent the command says so in one line and exits 0, unless --require (CI) is
// given: then it fails. BERTH_ADMIN_PASSWORD sets the admin password (else a random one).
// Everything a run leaves (suite output, junit.xml, the server's log) is in .conformance/.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants, createWriteStream } from 'node:fs'
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ConfigInput } from '../../src/config/schema.js'
import { startS3, s3StorageConfig } from '../helpers/s3.js'
import { createTestDatabase, dropTestDatabase, startServer, TEST_DATABASE_URL, type TestServer } from '../helpers/server.js'
import { count, parseJunit, type CaseResult, type Counts } from './junit.js'
import { PROJECT, SUITES, type Suite } from './suites.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const BIN_DIR = process.env.BERTH_TEST_CONFORMANCE_BIN || resolve(ROOT, '../shared/bin')
const RESULTS_DIR = join(ROOT, '.conformance')
/** A suite that hangs is stopped and counted as failed. */
const SUITE_TIMEOUT_MS = 20 * 60_000

interface Running {
  server: TestServer
  stop(): Promise<void>
}

interface Configuration {
  id: string
  label: string
  /** why it cannot run here, or undefined */
  unavailable(): string | undefined
  start(adminPassword: string, log: NodeJS.WritableStream): Promise<Running>
}

const CONFIGURATIONS: Configuration[] = [
  {
    id: 'embedded',
    label: 'filesystem + SQLite',
    unavailable: () => undefined,
    async start(adminPassword, log) {
      // Named explicitly, so that BERTH_TEST_DATABASE_URL / BERTH_TEST_STORAGE cannot move it elsewhere.
      const dataDir = await mkdtemp(join(tmpdir(), 'berth-conformance-'))
      const server = await startBerth({ dataDir, database: { url: `sqlite:${join(dataDir, 'berth.db')}` }, storage: { driver: 'filesystem' } }, adminPassword, log)
      return { server, stop: () => server.close() }
    },
  },
  {
    id: 'postgres-s3',
    label: 'PostgreSQL + S3 (s3rver)',
    unavailable: () => (TEST_DATABASE_URL ? undefined : 'BERTH_TEST_DATABASE_URL is not set (a PostgreSQL server where databases may be created)'),
    async start(adminPassword, log) {
      const s3 = await startS3()
      let databaseUrl: string | undefined
      try {
        const bucket = await s3.createBucket()
        databaseUrl = await createTestDatabase()
        const server = await startBerth({ database: { url: databaseUrl }, storage: s3StorageConfig(s3.endpoint, bucket) }, adminPassword, log)
        const url = databaseUrl
        return {
          server,
          async stop() {
            await server.close()
            await dropTestDatabase(url)
            await s3.close()
          },
        }
      } catch (err) {
        if (databaseUrl) await dropTestDatabase(databaseUrl)
        await s3.close()
        throw err
      }
    },
  },
]

/** A Berth as a user runs it: authentication on, the admin's password given at first start. */
async function startBerth(overrides: ConfigInput, adminPassword: string, log: NodeJS.WritableStream): Promise<TestServer> {
  const server = await startServer({ ...overrides, auth: { enabled: true }, log: { level: 'info' } }, { adminPassword, logStream: log })
  try {
    // The project the suites push to, created through the management API as an admin would.
    const res = await fetch(`${server.url}/api/v1/projects`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: PROJECT, public: false }),
    })
    if (res.status !== 201) throw new Error(`creating project ${PROJECT}: ${res.status} ${await res.text()}`)
    return server
  } catch (err) {
    await server.close()
    throw err
  }
}

interface Skip {
  name: string
  /** the suite's own message */
  message: string
  /** why Berth expects it, or undefined: an unexpected skip, which fails the run */
  known?: string
}

interface SuiteResult {
  suite: string
  configuration: Configuration
  /** the suite's own summary */
  counts: Counts
  failed: CaseResult[]
  skips: Skip[]
  /** failures outside the cases: the suite crashed, timed out, wrote no report, or skipped unexpectedly */
  problems: string[]
  logFile: string
}

async function runSuite(suite: Suite, configuration: Configuration, adminPassword: string): Promise<SuiteResult> {
  const dir = join(RESULTS_DIR, configuration.id, suite.id)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const logFile = join(dir, 'output.txt')
  const serverLog = createWriteStream(join(dir, 'berth.log'))
  const running = await configuration.start(adminPassword, serverLog)
  let exit: { code: number | null; signal: string | null; timedOut: boolean }
  try {
    exit = await spawnSuite(join(BIN_DIR, suite.binary), suite.args, suite.env(running.server, adminPassword, dir), dir, logFile)
  } finally {
    await running.stop()
    serverLog.end()
  }
  const output = await readFile(logFile, 'utf8')
  const junit = await readFile(join(dir, 'junit.xml'), 'utf8').catch(() => undefined)
  const cases = junit === undefined ? [] : parseJunit(junit)
  const summary = suite.summary(output)
  const known = (name: string) => suite.knownSkips.find((k) => k.name.test(name))?.reason
  const skips: Skip[] = [
    ...cases.filter((c) => c.outcome === 'skipped').map((c) => ({ name: c.name, message: c.message, known: known(c.name) })),
    ...suite.disabled(output).map((name) => ({ name, message: 'disabled in the suite\'s configuration', known: known(name) })),
  ]
  const problems: string[] = []
  if (exit.timedOut) problems.push(`stopped after ${SUITE_TIMEOUT_MS / 60_000} minutes`)
  if (summary === undefined) problems.push('no summary in its output')
  if (junit === undefined) problems.push('no junit.xml written')
  else if (cases.length === 0) problems.push('junit.xml lists no test case')
  if (exit.code !== 0) problems.push(`exit code ${exit.code ?? exit.signal}`)
  for (const s of skips) if (s.known === undefined) problems.push(`unexpected skip: ${s.name}`)
  return { suite: suite.id, configuration, counts: summary ?? count(cases), failed: cases.filter((c) => c.outcome === 'failed'), skips, problems, logFile }
}

/** Runs a suite binary with only its own OCI_* variables, its output into `logFile`. */
function spawnSuite(binary: string, args: string[], env: Record<string, string>, cwd: string, logFile: string): Promise<{ code: number | null; signal: string | null; timedOut: boolean }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OCI_')))
  const out = createWriteStream(logFile)
  return new Promise((resolvePromise, reject) => {
    const child = spawn(binary, args, { cwd, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.pipe(out, { end: false })
    child.stderr.pipe(out, { end: false })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, SUITE_TIMEOUT_MS)
    child.on('error', (err) => {
      clearTimeout(timer)
      out.end()
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      out.end(() => resolvePromise({ code, signal, timedOut }))
    })
  })
}

function failed(r: SuiteResult): boolean {
  return r.counts.failed > 0 || r.failed.length > 0 || r.problems.length > 0
}

function report(r: SuiteResult): void {
  const { passed, failed: failures, skipped } = r.counts
  console.log(`${r.suite} suite on ${r.configuration.id} (${r.configuration.label}): ${passed} passed, ${failures} failed, ${skipped} skipped`)
  for (const c of r.failed) console.log(`  FAILED   ${c.name}${c.message ? `: ${c.message}` : ''}`)
  for (const s of r.skips) {
    console.log(`  skipped  ${s.name}${s.message ? ` (suite: ${s.message})` : ''}`)
    console.log(`           ${s.known ? `why: ${s.known}` : 'UNEXPECTED: no known reason for Berth to skip it'}`)
  }
  for (const p of r.problems) console.log(`  FAILED   ${p}`)
  console.log(`  output: ${relative(process.cwd(), r.logFile)} (junit.xml and berth.log beside it)\n`)
}

function markdownTable(results: SuiteResult[]): string {
  const rows = results.map((r) => `| ${r.suite} | ${r.configuration.label} | ${r.counts.passed} | ${r.counts.failed} | ${r.counts.skipped} |`)
  return ['| suite | configuration | passed | failed | skipped |', '| --- | --- | --- | --- | --- |', ...rows].join('\n')
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  )
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { config: { type: 'string', default: process.env.BERTH_TEST_CONFORMANCE_CONFIG || 'embedded' }, require: { type: 'boolean', default: false } },
  })
  const wanted = values.config === 'all' ? CONFIGURATIONS : CONFIGURATIONS.filter((c) => c.id === values.config)
  if (wanted.length === 0) {
    console.error(`conformance: unknown --config ${values.config} (embedded, postgres-s3 or all)`)
    return 2
  }
  const missing = []
  for (const s of SUITES) if (!(await isExecutable(join(BIN_DIR, s.binary)))) missing.push(s.binary)
  if (missing.length > 0) {
    console.log(`conformance: ${missing.join(' and ')} not found in ${BIN_DIR} (set BERTH_TEST_CONFORMANCE_BIN); ${values.require ? 'required here: failing' : 'nothing run'}`)
    return values.require ? 1 : 0
  }
  for (const c of wanted) {
    const why = c.unavailable()
    if (why) {
      console.error(`conformance: configuration ${c.id} cannot run: ${why}`)
      return 1
    }
  }
  const adminPassword = process.env.BERTH_ADMIN_PASSWORD || randomBytes(18).toString('base64url')
  const results: SuiteResult[] = []
  for (const configuration of wanted) {
    for (const suite of SUITES) {
      console.log(`== ${suite.id} suite on ${configuration.id} (${configuration.label}), auth on`)
      const r = await runSuite(suite, configuration, adminPassword)
      report(r)
      results.push(r)
    }
  }
  console.log(markdownTable(results))
  const failing = results.filter(failed)
  console.log(failing.length === 0 ? '\nconformance: every suite passed' : `\nconformance: FAILED (${failing.map((r) => `${r.suite} on ${r.configuration.id}`).join(', ')})`)
  return failing.length === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('conformance:', err)
    process.exit(1)
  },
)
