// Makes test/fixtures/upgrade/<commit>.tar.gz: the data directory of a Berth of an older commit
// (its SQLite schema, users, a project, a robot and pushed images). Run from a checkout of
// that commit, with this file copied into it:
//
//   git archive a4c2b9c | tar -x -C /tmp/berth-old && ln -s "$PWD/node_modules" /tmp/berth-old/
//   cp test/upgrade/make-fixture.ts /tmp/berth-old/test/upgrade/
//   (cd /tmp/berth-old && node --import tsx test/upgrade/make-fixture.ts "$OLDPWD/test/fixtures/upgrade/a4c2b9c.tar.gz")
import { execFileSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { buildImage, putManifest } from '../helpers/oci.js'

const out = process.argv[2]
if (!out) throw new Error('usage: make-fixture.ts OUT.tar.gz')
const s = await startAuthServer({}, { keepData: true })
const authorized = (init: RequestInit = {}) => ({ ...init, headers: { ...(init.headers as Record<string, string>), authorization: ADMIN } })
// The helpers push without credentials: wrap fetch so that every request carries the admin's.
const plain = globalThis.fetch
globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => plain(input, authorized(init))) as typeof fetch
await apiOk(s, 'POST', '/users', ADMIN, { username: 'dev', password: 'dev-password-1' }, 201)
await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
await apiOk(s, 'POST', '/robots', ADMIN, { name: 'ci', project: 'team', permissions: ['pull', 'push'] }, 201)
for (let i = 0; i < 4; i++) {
  const image = await buildImage(s.url, 'team/app', `fixture-${i}`)
  const res = await putManifest(s.url, 'team/app', `v${i}`, image.manifest)
  if (res.status !== 201) throw new Error(`push failed: ${res.status} ${await res.text()}`)
}
globalThis.fetch = plain
await s.close()
// The WAL folded into the database file, so the archive is one consistent file.
execFileSync('sqlite3', [`${s.dataDir}/berth.db`, 'pragma wal_checkpoint(truncate)'])
execFileSync('tar', ['-czf', out, '-C', s.dataDir, '.'])
await rm(s.dataDir, { recursive: true, force: true })
console.log(`wrote ${out}`)
