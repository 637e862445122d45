import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { access, chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'

const ROOT = join(import.meta.dirname, '..', '..')
const SCRIPT = join(ROOT, '.ci', 'install-clients.sh')

/**
 * Runs .ci/install-clients.sh with stand-ins for apt-get and dpkg-query first on PATH: every
 * package is reported missing, and apt-get refuses docker.io as a conflicting package would.
 * Nothing is installed.
 */
function runWithConflict(dir: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT], { env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('exit', (code) => resolve({ code, stderr }))
  })
}

describe('.ci/install-clients.sh', { skip: process.getuid?.() === 0 ? false : 'the script refuses to run without root' }, () => {
  it('stops on an apt conflict with a message naming the package and what to do, and points at a file that exists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-install-'))
    try {
      await writeFile(join(dir, 'dpkg-query'), '#!/bin/sh\nexit 1\n')
      await writeFile(
        join(dir, 'apt-get'),
        '#!/bin/sh\ncase "$*" in *update*) exit 0 ;; esac\ncase " $* " in *" docker.io "*) echo "E: Unable to correct problems, you have held broken packages." >&2; exit 100 ;; esac\nexit 0\n',
      )
      await chmod(join(dir, 'dpkg-query'), 0o755)
      await chmod(join(dir, 'apt-get'), 0o755)
      const { code, stderr } = await runWithConflict(dir)
      assert.equal(code, 1)
      assert.match(stderr, /install-clients\.sh: apt-get could not install: docker\.io\n/)
      assert.match(stderr, /apt-get remove docker-ce docker-ce-cli containerd\.io/)
      const pointer = /(docs\/[\w.-]+\.md)/.exec(stderr)?.[1]
      assert.ok(pointer, stderr)
      await access(join(ROOT, pointer))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
