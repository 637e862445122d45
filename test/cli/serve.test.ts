import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { freePort, waitHealthy } from '../helpers/e2e-process.js'

const run = promisify(execFile)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.js')

describe('berth CLI', () => {
  it('prints help', async () => {
    const { stdout } = await run(process.execPath, [BIN, '--help'])
    assert.match(stdout, /serve/)
    assert.match(stdout, /config/)
    const serve = await run(process.execPath, [BIN, 'serve', '--help'])
    assert.match(serve.stdout, /--addr <host:port>/)
    assert.match(serve.stdout, /--data-dir <dir>/)
  })

  it('checks a config file and fails with a one-line reason naming an unknown key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'))
    try {
      await writeFile(join(dir, 'ok.yml'), 'http:\n  addr: 127.0.0.1:5001\n')
      const ok = await run(process.execPath, [BIN, 'config', 'check', join(dir, 'ok.yml')])
      assert.match(ok.stdout, /addr: 127\.0\.0\.1:5001/)
      await writeFile(join(dir, 'bad.yml'), 'storage:\n  drivr: s3\n')
      const bad = await run(process.execPath, [BIN, 'config', 'check', join(dir, 'bad.yml')]).catch((err: { code: number; stderr: string }) => err)
      assert.equal((bad as { code: number }).code, 1)
      assert.equal((bad as { stderr: string }).stderr.trim(), 'berth: unknown config key storage.drivr')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('serves on BERTH_HTTP_ADDR and stops cleanly on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'))
    const port = await freePort()
    const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', dir], {
      env: { ...process.env, BERTH_HTTP_ADDR: `127.0.0.1:${port}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    let errors = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (errors += d.toString()))
    try {
      await waitHealthy(`http://127.0.0.1:${port}`)
      // Auth is on by default: /v2/ challenges, and the first start printed the admin password once.
      const v2 = await fetch(`http://127.0.0.1:${port}/v2/`)
      assert.equal(v2.status, 401)
      assert.match(v2.headers.get('www-authenticate') ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="berth"$/)
      const password = /password:\s+(\S+)/.exec(errors)?.[1]
      assert.ok(password, 'the generated admin password is printed')
      const basic = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`
      assert.equal((await fetch(`http://127.0.0.1:${port}/v2/`, { headers: { authorization: basic } })).status, 200)
      const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      child.kill('SIGTERM')
      assert.equal(await exit, 0)
      assert.match(output, /"msg":"stopped"/)
      assert.ok(!output.includes(password), 'the password never reaches the log')
      for (const line of output.trim().split('\n')) assert.doesNotThrow(() => JSON.parse(line), `log line is JSON: ${line}`)
    } finally {
      child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('lets go of the config validator and YAML parser once it runs', async () => {
    // zod and yaml are used once, to read the config. A preload script in the child keeps a weak
    // reference to the zod it loads and reports when the garbage collector has taken it.
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'))
    const port = await freePort()
    const preload = join(dir, 'watch-zod.cjs')
    await writeFile(
      preload,
      `const Module = require('node:module'); const load = Module._load; let ref
      Module._load = function (request) { const m = load.apply(this, arguments); if (request === 'zod' && !ref) ref = new WeakRef(m); return m }
      const timer = setInterval(() => { globalThis.gc(); if (ref && ref.deref() === undefined) { process.stderr.write('zod collected\\n'); clearInterval(timer) } }, 200)
      timer.unref()`,
    )
    const child = spawn(process.execPath, ['--expose-gc', '--require', preload, BIN, 'serve', '--data-dir', join(dir, 'data'), '--addr', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let errors = ''
    child.stderr.on('data', (d: Buffer) => (errors += d.toString()))
    try {
      await waitHealthy(`http://127.0.0.1:${port}`)
      for (let i = 0; i < 50 && !errors.includes('zod collected'); i++) await new Promise((ok) => setTimeout(ok, 200))
      assert.match(errors, /zod collected/)
      // and the server still answers
      assert.equal((await fetch(`http://127.0.0.1:${port}/v2/`)).status, 401)
    } finally {
      child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('does not load the client libraries of backends it is not configured for', async () => {
    // The default registry (SQLite, filesystem, local users) keeps the PostgreSQL driver, the S3
    // SDK and the LDAP/OIDC/outbound-HTTP clients out of memory: each is imported when its
    // configuration asks for it; the one-shot commands' libraries (progress bars) when they run.
    // A module hook in the child names every package it resolves.
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'))
    const port = await freePort()
    const hooks = `export async function resolve(s, c, next) { const r = await next(s, c); const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url); if (m) process.stderr.write('package ' + m[1] + '\\n'); return r }`
    const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}))`
    const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, BIN, 'serve', '--data-dir', dir, '--addr', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let errors = ''
    child.stderr.on('data', (d: Buffer) => (errors += d.toString()))
    try {
      await waitHealthy(`http://127.0.0.1:${port}`)
      const loaded = new Set([...errors.matchAll(/^package (\S+)$/gm)].map((m) => m[1]))
      assert.ok(loaded.has('fastify') && loaded.has('better-sqlite3'), `the hook saw the packages in use: ${[...loaded].join(', ')}`)
      for (const unused of ['pg', '@aws-sdk/client-s3', '@azure/storage-blob', 'ldapts', 'openid-client', 'undici', 'cli-progress', 'rate-limiter-flexible', '@opentelemetry/api', '@opentelemetry/sdk-trace-node', '@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-http', '@opentelemetry/resources']) assert.ok(!loaded.has(unused), `${unused} is not loaded`)
    } finally {
      child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })
})
