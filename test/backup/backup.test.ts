import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pushBlob } from '../helpers/oci.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'
import { allTags, backupBlobFiles, berth, pullAndCheck, pushImage, spawnBerth, sqliteServer, writeConfig, type Pushed } from './helpers.js'

const dirs: string[] = []
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

describe('berth backup and restore', () => {
  it('takes a consistent backup while pushes, deletes and GC run; the restore pulls every tag with the same digests', async () => {
    const dataDir = await tempDir('berth-src-')
    const backupDir = await tempDir('berth-bak-')
    // Grace period zero: GC collects what the deletes free at once, while the backup runs.
    const source = await sqliteServer(dataDir, { gc: { gracePeriod: '0s' } })
    const pushed = new Map<string, Pushed>()
    try {
      for (let i = 0; i < 20; i++) {
        const p = await pushImage(source.url, `team/app${i % 4}`, `v${i}`)
        pushed.set(`${p.repo}:${p.tag}`, p)
      }
      const before = new Set(pushed.keys())
      let stop = false
      let n = 100
      const deleted = new Set<string>()
      const writers = (async () => {
        while (!stop) {
          const p = await pushImage(source.url, `team/app${n % 4}`, `v${n}`)
          pushed.set(`${p.repo}:${p.tag}`, p)
          // Delete an earlier image (manifest and so its tag) and let GC collect its blobs.
          const victim = `team/app${n % 4}:v${n - 100}`
          const gone = pushed.get(victim)
          if (gone && n % 3 === 0) {
            const res = await fetch(`${source.url}/v2/${gone.repo}/manifests/${gone.digest}`, { method: 'DELETE' })
            assert.equal(res.status, 202)
            deleted.add(victim)
            await source.app.gc.run({ trigger: 'test' }).catch((err: unknown) => assert.match((err as Error).message, /already in progress/))
          }
          n++
        }
      })()
      const result = await berth(['backup', '--data-dir', dataDir, '--to', backupDir, '--json'])
      stop = true
      await writers
      assert.equal(result.code, 0, result.stderr)
      assert.ok(n > 101, `pushes ran during the backup (${n - 100})`)
      const manifest = JSON.parse(result.stdout) as { generation: string; tables: { name: string; rows: number }[]; blobs: { count: number } }
      assert.ok(manifest.blobs.count > 0)

      const target = await tempDir('berth-dst-')
      const restored = await berth(['restore', backupDir, '--data-dir', target])
      assert.equal(restored.code, 0, restored.stderr)
      const server = await sqliteServer(target)
      try {
        const tags = await allTags(server.url)
        // Everything pushed before the backup began is there, unless deleted meanwhile.
        for (const key of before) if (!deleted.has(key)) assert.ok(tags.has(key), `${key} is in the backup`)
        for (const [key, digest] of tags) {
          const p = pushed.get(key)
          assert.ok(p, `${key} was pushed`)
          assert.equal(digest, p.digest, `${key} has its digest`)
          const [repo, tag] = key.split(':') as [string, string]
          assert.equal(await pullAndCheck(server.url, repo, tag), p.digest)
        }
      } finally {
        await server.close()
      }
      const verified = await berth(['backup', 'verify', backupDir])
      assert.equal(verified.code, 0, verified.stdout + verified.stderr)
      assert.match(verified.stdout, /backup verified/)
    } finally {
      await source.close()
    }
  })

  it('is incremental: a second backup copies only the new blobs', async () => {
    const dataDir = await tempDir('berth-src-')
    const backupDir = await tempDir('berth-bak-')
    const source = await sqliteServer(dataDir)
    try {
      for (let i = 0; i < 5; i++) await pushImage(source.url, 'inc/app', `v${i}`)
      const first = await berth(['backup', '--data-dir', dataDir, '--to', backupDir, '--json'])
      assert.equal(first.code, 0, first.stderr)
      const m1 = JSON.parse(first.stdout) as { copied: { count: number }; blobs: { count: number } }
      assert.equal(m1.copied.count, 10)
      const held = await backupBlobFiles(backupDir)
      assert.equal(held.length, 10)

      const fresh = [await pushImage(source.url, 'inc/app', 'v5'), await pushImage(source.url, 'inc/other', 'v1')]
      const second = await berth(['backup', '--data-dir', dataDir, '--to', backupDir, '--json'])
      assert.equal(second.code, 0, second.stderr)
      const m2 = JSON.parse(second.stdout) as { copied: { count: number; bytes: number }; blobs: { count: number } }
      assert.equal(m2.blobs.count, 14)
      assert.equal(m2.copied.count, 4, 'only the four new blobs are copied')
      const now = await backupBlobFiles(backupDir)
      assert.deepEqual(now.filter((d) => !held.includes(d)).sort(), fresh.flatMap((p) => p.blobs).sort())
      // Nothing new: nothing copied.
      const third = await berth(['backup', '--data-dir', dataDir, '--to', backupDir, '--json'])
      assert.equal((JSON.parse(third.stdout) as { copied: { count: number } }).copied.count, 0)
    } finally {
      await source.close()
    }
  })

  it('a backup killed by SIGKILL leaves the previous one usable, and the next run finishes', async () => {
    const dataDir = await tempDir('berth-src-')
    const backupDir = await tempDir('berth-bak-')
    const source = await sqliteServer(dataDir)
    try {
      const early = await pushImage(source.url, 'kill/app', 'early')
      const first = await berth(['backup', '--data-dir', dataDir, '--to', backupDir, '--json'])
      assert.equal(first.code, 0, first.stderr)
      const gen1 = (JSON.parse(first.stdout) as { generation: string }).generation
      // Many blobs, each copied with an fsync: the second backup takes long enough to be killed mid-copy.
      for (let i = 0; i < 400; i++) await pushBlob(source.url, 'kill/app', Buffer.alloc(32 * 1024, `blob ${i}`))
      const late = await pushImage(source.url, 'kill/app', 'late')

      const child = spawnBerth(['backup', '--data-dir', dataDir, '--to', backupDir])
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
      for (;;) {
        if ((await backupBlobFiles(backupDir)).length >= 2 + 20) break
        await new Promise((r) => setTimeout(r, 2))
      }
      child.kill('SIGKILL')
      assert.equal(await exited, 'SIGKILL')
      const pointer = JSON.parse(await readFile(join(backupDir, 'current.json'), 'utf8')) as { generation: string }
      assert.equal(pointer.generation, gen1, 'the killed run did not switch the backup')

      // The previous backup restores and verifies.
      const verified = await berth(['backup', 'verify', backupDir])
      assert.equal(verified.code, 0, verified.stdout + verified.stderr)
      const target = await tempDir('berth-dst-')
      assert.equal((await berth(['restore', backupDir, '--data-dir', target])).code, 0)
      const server = await sqliteServer(target)
      try {
        assert.deepEqual([...(await allTags(server.url)).entries()], [['kill/app:early', early.digest]])
      } finally {
        await server.close()
      }

      // The next run finishes, reusing what the killed one had copied.
      const next = await berth(['backup', '--data-dir', dataDir, '--to', backupDir, '--json'])
      assert.equal(next.code, 0, next.stderr)
      const m = JSON.parse(next.stdout) as { generation: string; copied: { count: number }; blobs: { count: number } }
      assert.equal(m.blobs.count, 2 + 400 + 2)
      assert.ok(m.copied.count < 402, `blobs the killed run copied are not copied again (${m.copied.count})`)
      assert.equal((await backupBlobFiles(backupDir)).length, 404)
      const again = await tempDir('berth-dst-')
      assert.equal((await berth(['restore', backupDir, '--data-dir', again])).code, 0)
      const server2 = await sqliteServer(again)
      try {
        assert.equal(await pullAndCheck(server2.url, 'kill/app', 'late'), late.digest)
      } finally {
        await server2.close()
      }
    } finally {
      await source.close()
    }
  })

  it('refuses to restore into a target that is not empty', async () => {
    const dataDir = await tempDir('berth-src-')
    const backupDir = await tempDir('berth-bak-')
    const source = await sqliteServer(dataDir)
    try {
      await pushImage(source.url, 'x/app', 'v1')
      assert.equal((await berth(['backup', '--data-dir', dataDir, '--to', backupDir])).code, 0)
      const into = await berth(['restore', backupDir, '--data-dir', dataDir])
      assert.equal(into.code, 1)
      assert.match(into.stderr, /^berth: the target is not empty: its storage \(filesystem\) holds blobs/m)
      // Metadata alone (a deployment whose blobs live elsewhere) is refused as well.
      const other = await tempDir('berth-dst-')
      const cfg = await writeConfig(join(other, 'berth.yaml'), other, `sqlite:${join(dataDir, 'berth.db')}`)
      const meta = await berth(['restore', backupDir, '--config', cfg])
      assert.equal(meta.code, 1)
      assert.match(meta.stderr, /the target is not empty: table \w+ of its sqlite database has \d+ row/)
      const missing = await berth(['restore', backupDir])
      assert.equal(missing.code, 1)
      assert.match(missing.stderr, /give the target as --data-dir DIR or --config FILE/)
    } finally {
      await source.close()
    }
  })

  it('backup verify exits 2 and names the blob when a blob of the backup is corrupt', async () => {
    const dataDir = await tempDir('berth-src-')
    const backupDir = await tempDir('berth-bak-')
    const source = await sqliteServer(dataDir)
    let pushed: Pushed
    try {
      pushed = await pushImage(source.url, 'y/app', 'v1')
    } finally {
      await source.close()
    }
    assert.equal((await berth(['backup', '--data-dir', dataDir, '--to', backupDir])).code, 0)
    assert.equal((await berth(['backup', 'verify', backupDir])).code, 0)
    const layer = pushed.blobs[1]!
    const hex = layer.slice('sha256:'.length)
    const file = join(backupDir, 'blobs', 'sha256', hex.slice(0, 2), hex)
    const bytes = await readFile(file)
    bytes[0] = bytes[0]! ^ 0xff
    await writeFile(file, bytes)
    const verify = await berth(['backup', 'verify', backupDir])
    assert.equal(verify.code, 2, verify.stdout + verify.stderr)
    assert.match(verify.stdout, new RegExp(`problem: blob ${layer} is damaged`))
    assert.match(verify.stdout, new RegExp(`breaks y/app@${pushed.digest}`))
    // A restore refuses it outright.
    const target = await tempDir('berth-dst-')
    const restore = await berth(['restore', backupDir, '--data-dir', target])
    assert.equal(restore.code, 1)
    assert.match(restore.stderr, new RegExp(`blob ${layer} in the backup is damaged`))
    // A damaged metadata file is found before anything is written.
    await writeFile(join(backupDir, 'generations', JSON.parse(await readFile(join(backupDir, 'current.json'), 'utf8')).generation as string, 'metadata', 'tags.jsonl'), '[]\n')
    const verify2 = await berth(['backup', 'verify', backupDir])
    assert.equal(verify2.code, 2)
    assert.match(verify2.stdout, /metadata\/tags\.jsonl is damaged/)
  })

  it('restores a SQLite backup into PostgreSQL', { skip: postgresSkip() }, async () => {
    const dataDir = await tempDir('berth-src-')
    const backupDir = await tempDir('berth-bak-')
    const source = await sqliteServer(dataDir)
    const pushed: Pushed[] = []
    try {
      for (const repo of ['pg/a', 'pg/b']) for (const tag of ['v1', 'v2']) pushed.push(await pushImage(source.url, repo, tag))
    } finally {
      await source.close()
    }
    assert.equal((await berth(['backup', '--data-dir', dataDir, '--to', backupDir])).code, 0)
    const url = await createTestDatabase()
    try {
      const target = await tempDir('berth-dst-')
      const cfg = await writeConfig(join(target, 'berth.yaml'), target, url)
      const restored = await berth(['restore', backupDir, '--config', cfg, '--json'])
      assert.equal(restored.code, 0, restored.stderr)
      const server = await sqliteServer(target, { database: { url } })
      try {
        assert.equal(server.app.metadata.caps.dialect, 'postgres')
        for (const p of pushed) assert.equal(await pullAndCheck(server.url, p.repo, p.tag), p.digest)
        // Sequences moved past the restored ids: a new repository gets a fresh one.
        const p = await pushImage(server.url, 'pg/new', 'v1')
        assert.equal(await pullAndCheck(server.url, p.repo, p.tag), p.digest)
        const ids = await server.app.metadata.db.selectFrom('repositories').select('id').execute()
        assert.equal(new Set(ids.map((r) => r.id)).size, 3)
      } finally {
        await server.close()
      }
      // And a PostgreSQL backup restores into SQLite.
      const pgBackup = await tempDir('berth-bak-')
      const back = await berth(['backup', '--config', cfg, '--to', pgBackup])
      assert.equal(back.code, 0, back.stderr)
      const sqliteTarget = await tempDir('berth-dst-')
      assert.equal((await berth(['restore', pgBackup, '--data-dir', sqliteTarget])).code, 0)
      const server3 = await sqliteServer(sqliteTarget)
      try {
        assert.equal((await allTags(server3.url)).size, 5)
        for (const p of pushed) assert.equal(await pullAndCheck(server3.url, p.repo, p.tag), p.digest)
      } finally {
        await server3.close()
      }
    } finally {
      await dropTestDatabase(url)
    }
  })
})
