import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import bcrypt from 'bcryptjs'
import { initDataDir, startServer } from '../helpers/server.js'
import { basic } from '../helpers/auth.js'

const run = promisify(execFile)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.js')

function withStdin(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input)
  })
}

describe('berth user', () => {
  it('adds, lists, changes passwords and imports htpasswd users that then log in', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-user-'))
    await initDataDir(dir)
    try {
      const add = await withStdin(['user', 'add', 'ops', '--admin', '--password-stdin', '--data-dir', dir], 'ops-password-1\n')
      assert.equal(add.code, 0, add.stderr)
      assert.match(add.stdout, /created user ops \(admin\)/)
      const dup = await withStdin(['user', 'add', 'ops', '--password-stdin', '--data-dir', dir], 'ops-password-2\n')
      assert.equal(dup.code, 1)
      assert.match(dup.stderr, /^berth: user ops already exists/)
      const short = await withStdin(['user', 'add', 'tiny', '--password-stdin', '--data-dir', dir], 'short\n')
      assert.equal(short.code, 1)
      assert.match(short.stderr, /password: at least 8 characters/)
      const passwd = await withStdin(['user', 'passwd', 'ops', '--password-stdin', '--data-dir', dir], 'ops-password-new\n')
      assert.equal(passwd.code, 0, passwd.stderr)
      const htpasswd = join(dir, 'htpasswd')
      await writeFile(htpasswd, `legacy:${bcrypt.hashSync('legacy-password', 10)}\nmd5user:$apr1$abc$def\n`)
      const imported = await run(process.execPath, [BIN, 'user', 'import-htpasswd', htpasswd, '--data-dir', dir, '--json'])
      const result = JSON.parse(imported.stdout) as { imported: string[]; skipped: { username: string }[] }
      assert.deepEqual(result.imported, ['legacy'])
      assert.deepEqual(result.skipped.map((s) => s.username), ['md5user'])
      const list = await run(process.execPath, [BIN, 'user', 'list', '--json', '--data-dir', dir])
      const users = (JSON.parse(list.stdout) as { username: string; admin: boolean }[]).map((u) => `${u.username}:${u.admin}`)
      assert.deepEqual(users.sort(), ['legacy:false', 'ops:true'])

      const s = await startServer({ dataDir: dir, auth: { enabled: true } }, { keepData: true, adminPassword: 'admin-password-xyz' })
      try {
        assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: basic('ops', 'ops-password-new') } })).status, 200)
        assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: basic('ops', 'ops-password-1') } })).status, 401)
        assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: basic('legacy', 'legacy-password') } })).status, 200)
        const row = await s.app.metadata.db.selectFrom('users').select('password_hash').where('username', '=', 'legacy').executeTakeFirstOrThrow()
        assert.match(row.password_hash ?? '', /^\$argon2id\$/, 'the bcrypt hash was upgraded at login')
      } finally {
        await s.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
