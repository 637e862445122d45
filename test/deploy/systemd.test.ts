// deploy/systemd/berth.service: `systemd-analyze verify` with no warning (on a copy whose
// ExecStart names this checkout's bin/berth.js, since /usr/local/bin/berth need not exist here),
// the hardening options present, `systemd-analyze security` rating it, and the settings it
// gives Berth real config keys.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../src/config/load.js'
import { findBinary, makeTempDir, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const UNIT = join(ROOT, 'deploy', 'systemd', 'berth.service')
const analyze = findBinary('systemd-analyze')
const skip = requireClients('systemd unit', [analyze ? undefined : 'systemd-analyze is not installed (Debian package systemd)'])

/** Key=value lines of the unit, every value of a repeated key kept. */
function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!])
  }
  return map
}

describe('the systemd unit', { skip }, () => {
  let dir: string
  let unit: string
  let testCopy: string

  before(async () => {
    dir = await makeTempDir('berth-systemd-')
    unit = await readFile(UNIT, 'utf8')
    testCopy = join(dir, 'berth.service')
    const exec = unit.replace(/^ExecStart=\/usr\/local\/bin\/berth /m, `ExecStart=${join(ROOT, 'bin', 'berth.js')} `)
    assert.notEqual(exec, unit, 'ExecStart names /usr/local/bin/berth')
    await writeFile(testCopy, exec)
  })
  after(() => removeTempDir(dir))

  it('passes systemd-analyze verify without a warning', async () => {
    const { stdout, stderr } = await run(analyze!, ['verify', testCopy])
    assert.equal(`${stdout}${stderr}`.trim(), '')
  })

  it('systemd-analyze verify reports a broken option (the check can fail)', async () => {
    const broken = join(dir, 'broken.service')
    await writeFile(broken, (await readFile(testCopy, 'utf8')).replace('NoNewPrivileges=yes', 'NoNewPrivileges=perhaps'))
    const { stdout, stderr } = await run(analyze!, ['verify', broken]).catch((err: Error) => ({ stdout: '', stderr: err.message }))
    assert.match(`${stdout}${stderr}`, /NoNewPrivileges|perhaps/)
  })

  it('is hardened: no privileges, read-only system except the data directory, private /tmp', async () => {
    const d = directives(unit)
    const expect: Record<string, string> = {
      User: 'berth',
      NoNewPrivileges: 'yes',
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ReadWritePaths: '/var/lib/berth',
      StateDirectory: 'berth',
      RestrictSUIDSGID: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectControlGroups: 'yes',
    }
    for (const [key, value] of Object.entries(expect)) assert.deepEqual(d.get(key), [value], key)
    const { stdout } = await run(analyze!, ['security', '--offline=true', testCopy])
    const level = /Overall exposure level for berth\.service: ([\d.]+)/.exec(stdout)
    assert.ok(level, stdout)
    // 0 is fully locked down, 10 unprotected; "OK" starts below 4.
    assert.ok(Number(level[1]) < 2, `exposure ${level[1]}`)
  })

  it('gives Berth real settings: its data directory and the runtime flags', async () => {
    const d = directives(unit)
    const env: Record<string, string> = {}
    for (const e of d.get('Environment') ?? []) {
      const m = /^"?([A-Z_]+)=(.*?)"?$/.exec(e)
      assert.ok(m, e)
      env[m[1]!] = m[2]!
    }
    assert.equal(env.NODE_OPTIONS, '--v8-pool-size=2 --max-semi-space-size=8')
    const { config, unknownEnv } = await loadConfig({ env })
    assert.deepEqual(unknownEnv, [])
    assert.equal(config.dataDir, d.get('ReadWritePaths')![0])
    assert.deepEqual(d.get('ExecStart'), ['/usr/local/bin/berth serve'])
  })
})
