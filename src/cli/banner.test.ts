import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { berthCommand, dataFlags, registryHost } from './banner.js'

describe('start-up banner', () => {
  it('names the address clients should use', () => {
    assert.equal(registryHost({ address: '0.0.0.0', port: 5000 }), 'localhost:5000')
    assert.equal(registryHost({ address: '::', port: 5000 }), 'localhost:5000')
    assert.equal(registryHost({ address: '127.0.0.1', port: 41234 }), '127.0.0.1:41234')
    assert.equal(registryHost({ address: '::1', port: 5000 }), '[::1]:5000')
    assert.equal(registryHost({ address: '0.0.0.0', port: 5000 }, 'https://registry.example.com'), 'registry.example.com')
  })

  it('gives the one-shot commands the flags that find the same data', () => {
    assert.equal(dataFlags({}, './data'), '')
    assert.equal(dataFlags({ dataDir: '/srv/berth' }, '/srv/berth'), ' --data-dir /srv/berth')
    assert.equal(dataFlags({}, '/var/lib/my berth'), " --data-dir '/var/lib/my berth'")
    assert.equal(dataFlags({ config: '/etc/berth.yml', dataDir: '/x' }, '/x'), ' --config /etc/berth.yml')
  })

  it('says `berth` only when the berth on PATH is this program, `npx berth` otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-banner-'))
    try {
      const script = join(dir, 'pkg', 'bin', 'berth.js')
      await mkdir(join(dir, 'pkg', 'bin'), { recursive: true })
      await writeFile(script, '')
      await chmod(script, 0o755)
      const globalBin = join(dir, 'global')
      await mkdir(globalBin)
      await symlink(script, join(globalBin, 'berth'))
      const otherBin = join(dir, 'other')
      await mkdir(otherBin)
      await writeFile(join(otherBin, 'berth'), '')
      assert.equal(berthCommand(script, `/nonexistent:${globalBin}`), 'berth')
      assert.equal(berthCommand(script, '/usr/bin:/bin'), 'npx berth')
      assert.equal(berthCommand(script, `${otherBin}:${globalBin}`), 'npx berth', 'another program named berth comes first on PATH')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
