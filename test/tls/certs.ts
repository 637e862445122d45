import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Pem {
  cert: string
  key: string
  certPath: string
  keyPath: string
}

/** A self-signed CA made with openssl in `dir`. */
export async function makeCa(dir: string, name: string): Promise<Pem> {
  const keyPath = join(dir, `${name}.key`)
  const certPath = join(dir, `${name}.crt`)
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${name}`])
  return { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8'), certPath, keyPath }
}

/**
 * A certificate signed by `ca`: a server one (for 127.0.0.1 and localhost) or a client one
 * whose subject CN is `cn`.
 */
export async function makeCert(dir: string, ca: Pem, name: string, cn: string, kind: 'server' | 'client'): Promise<Pem> {
  const keyPath = join(dir, `${name}.key`)
  const csrPath = join(dir, `${name}.csr`)
  const certPath = join(dir, `${name}.crt`)
  const extPath = join(dir, `${name}.ext`)
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${cn.replace(/[+/=\\]/g, '\\$&')}`])
  await writeFile(extPath, kind === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n')
  await run('openssl', ['x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-CAcreateserial', '-out', certPath, '-days', '2', '-extfile', extPath])
  return { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8'), certPath, keyPath }
}

/** The SHA-256 fingerprint openssl prints for a certificate file (colon-separated hex). */
export async function opensslFingerprint(certPath: string): Promise<string> {
  const { stdout } = await run('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', certPath])
  return stdout.trim().split('=')[1]!
}

/** Retries an assertion until it passes or `ms` have gone by (then its last failure is thrown). */
export async function settles(check: () => unknown, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      await check()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}
