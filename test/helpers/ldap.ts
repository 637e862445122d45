import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Attribute, Change, Client } from 'ldapts'
import { freePort } from './oidc.js'

/** Debian's slapd (package slapd); openssl makes the TLS certificates. */
export const SLAPD = '/usr/sbin/slapd'
const SCHEMA_DIR = '/etc/ldap/schema'
const MODULE_DIR = '/usr/lib/ldap'

/** The reason to skip the LDAP tests, or false; with CI=true a missing slapd is an error. */
export function ldapSkip(): string | false {
  const missing = [SLAPD, `${SCHEMA_DIR}/inetorgperson.schema`, `${MODULE_DIR}/back_mdb.la`].filter((f) => !existsSync(f))
  if (spawnSync('openssl', ['version']).status !== 0) missing.push('openssl')
  if (missing.length === 0) return false
  const reason = `slapd not usable (missing ${missing.join(', ')}); run .ci/install-clients.sh (Debian packages slapd, ldap-utils, openssl)`
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}: the LDAP tests must run in CI`)
  console.log(`# skipping the LDAP tests: ${reason}`)
  return `skipped: ${reason}`
}

export interface LdapUser {
  /** the RDN's parent, under the base DN (default ou=people) */
  ou?: string
  password: string
  /** store the password as {SSHA} (default) or in clear */
  hashed?: boolean
  mail?: string
}

export interface LdapGroup {
  /** user names (uid) of the members */
  members: string[]
}

export interface TestSlapd {
  /** ldap://127.0.0.1:PORT (plain and StartTLS) */
  url: string
  /** ldaps://127.0.0.1:PORT */
  ldapsUrl: string
  baseDN: string
  /** a read-only search account */
  readerDN: string
  readerPassword: string
  /** PEM of the CA that signed the server certificate (IP SAN 127.0.0.1) */
  caFile: string
  /** a CA that signed nothing the server has */
  otherCaFile: string
  userDN(uid: string): string
  groupDN(cn: string): string
  addMember(group: string, uid: string): Promise<void>
  removeMember(group: string, uid: string): Promise<void>
  /** replaces the user's userPassword ({SSHA}) */
  setPassword(uid: string, password: string): Promise<void>
  close(): Promise<void>
}

const BASE = 'dc=example,dc=org'
const ROOT_DN = `cn=admin,${BASE}`

/** `\,` etc. for an RDN value (RFC 4514). */
function dnValue(v: string): string {
  return v.replace(/[,+"\\<>;=]/g, (c) => `\\${c}`).replace(/^[ #]/, (c) => `\\${c}`)
}

function ssha(password: string): string {
  const salt = randomBytes(8)
  return `{SSHA}${Buffer.concat([createHash('sha1').update(password).update(salt).digest(), salt]).toString('base64')}`
}

function openssl(dir: string, ...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
}

/**
 * A private slapd: generated slapd.conf (mdb database, memberof overlay, TLS with a generated
 * CA) in a temp dir, listening on 127.0.0.1 with ephemeral ports, started as a child process.
 * Users and groups (groupOfNames with `member`) are added online, so the overlay maintains
 * `memberOf`. Debian's own slapd instance, if any, is not touched.
 */
export async function startSlapd(users: Record<string, LdapUser>, groups: Record<string, LdapGroup>): Promise<TestSlapd> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-slapd-'))
  let child: ChildProcess | undefined
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child?.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await mkdir(join(dir, 'db'))
    // Certificates: a CA, a server certificate for 127.0.0.1, and an unrelated CA.
    openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Berth LDAP test CA')
    openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'other-key.pem', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=Some other CA')
    openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
    await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n')
    openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext')
    const rootPassword = randomBytes(12).toString('hex')
    const readerPassword = randomBytes(12).toString('hex')
    const conf = [
      ...['core', 'cosine', 'nis', 'inetorgperson'].map((s) => `include ${SCHEMA_DIR}/${s}.schema`),
      `modulepath ${MODULE_DIR}`,
      'moduleload back_mdb',
      'moduleload memberof',
      `pidfile ${join(dir, 'slapd.pid')}`,
      `argsfile ${join(dir, 'slapd.args')}`,
      // Like servers that accept a DN with an empty password as an anonymous bind (RFC 4513
      // 5.1.2 "unauthenticated"): Berth must never send one as a password check.
      'allow bind_anon_cred',
      `TLSCACertificateFile ${join(dir, 'ca.pem')}`,
      `TLSCertificateFile ${join(dir, 'server.pem')}`,
      `TLSCertificateKeyFile ${join(dir, 'server-key.pem')}`,
      'database mdb',
      'maxsize 16777216',
      `suffix "${BASE}"`,
      `rootdn "${ROOT_DN}"`,
      `rootpw ${ssha(rootPassword)}`,
      `directory ${join(dir, 'db')}`,
      'overlay memberof',
      'access to attrs=userPassword by anonymous auth by * none',
      'access to * by * read',
      '',
    ].join('\n')
    await writeFile(join(dir, 'slapd.conf'), conf)
    const [port, tlsPort] = [await freePort(), await freePort()]
    const url = `ldap://127.0.0.1:${port}`
    const ldapsUrl = `ldaps://127.0.0.1:${tlsPort}`
    let stderr = ''
    // -d keeps slapd in the foreground (a child we can kill); level 0 logs only errors.
    child = spawn(SLAPD, ['-d', '0', '-f', join(dir, 'slapd.conf'), '-h', `${url}/ ${ldapsUrl}/`], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.on('data', (b: Buffer) => void (stderr = (stderr + b.toString()).slice(-4000)))
    const exited = new Promise<never>((_, reject) => child?.once('exit', (code, signal) => reject(new Error(`slapd exited (${code ?? signal}) before it was ready: ${stderr}`))))
    exited.catch(() => undefined)

    // Ready when the root DN can bind; poll with a deadline.
    const root = new Client({ url, timeout: 2_000, connectTimeout: 2_000 })
    const deadline = Date.now() + 15_000
    for (;;) {
      const attempt = root.bind(ROOT_DN, rootPassword).then(() => true as const, (err: unknown) => err as Error)
      const result = await Promise.race([attempt, exited])
      if (result === true) break
      if (Date.now() > deadline) throw new Error(`slapd not ready after 15s: ${result.message}; ${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }

    const userDN = (uid: string) => `uid=${dnValue(uid)},${users[uid]?.ou ?? 'ou=people'},${BASE}`
    const groupDN = (cn: string) => `cn=${dnValue(cn)},ou=groups,${BASE}`
    try {
      await root.add(BASE, { objectClass: ['dcObject', 'organization'], dc: 'example', o: 'Example' })
      await root.add(`cn=reader,${BASE}`, { objectClass: ['person', 'simpleSecurityObject'], cn: 'reader', sn: 'reader', userPassword: ssha(readerPassword) })
      const ous = new Set(['ou=people', 'ou=groups', ...Object.values(users).map((u) => u.ou ?? 'ou=people')])
      // Parents first: `ou=x,ou=people` after `ou=people`.
      for (const ou of [...ous].sort((a, b) => a.split(',').length - b.split(',').length)) {
        await root.add(`${ou},${BASE}`, { objectClass: 'organizationalUnit', ou: ou.split(',')[0]?.replace(/^ou=/, '') ?? '' })
      }
      for (const [uid, u] of Object.entries(users)) {
        await root.add(userDN(uid), {
          objectClass: ['inetOrgPerson'],
          uid,
          cn: uid,
          sn: uid,
          userPassword: u.hashed === false ? u.password : ssha(u.password),
          ...(u.mail ? { mail: u.mail } : {}),
        })
      }
      for (const [cn, g] of Object.entries(groups)) {
        // groupOfNames needs a member: the group's own DN stands in when it has none.
        await root.add(groupDN(cn), { objectClass: 'groupOfNames', cn, member: g.members.length > 0 ? g.members.map(userDN) : [groupDN(cn)] })
      }
    } finally {
      await root.unbind().catch(() => undefined)
    }

    const change = async (dn: string, c: Change) => {
      const client = new Client({ url, timeout: 5_000, connectTimeout: 5_000 })
      try {
        await client.bind(ROOT_DN, rootPassword)
        await client.modify(dn, c)
      } finally {
        await client.unbind().catch(() => undefined)
      }
    }
    const modify = (group: string, uid: string, operation: 'add' | 'delete') =>
      change(groupDN(group), new Change({ operation, modification: new Attribute({ type: 'member', values: [userDN(uid)] }) }))
    return {
      url,
      ldapsUrl,
      baseDN: BASE,
      readerDN: `cn=reader,${BASE}`,
      readerPassword,
      caFile: join(dir, 'ca.pem'),
      otherCaFile: join(dir, 'other-ca.pem'),
      userDN,
      groupDN,
      addMember: (group, uid) => modify(group, uid, 'add'),
      removeMember: (group, uid) => modify(group, uid, 'delete'),
      setPassword: (uid, password) => change(userDN(uid), new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [ssha(password)] }) })),
      close: stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
