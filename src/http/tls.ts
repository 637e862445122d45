import { X509Certificate } from 'node:crypto'
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls'
import type { Logger } from 'pino'

/** http.tls: the server's certificate and key, and the CAs of client certificates (mTLS). */
export interface TlsOptions {
  certificate?: string
  key?: string
  /** PEM bundle of the CAs whose client certificates authenticate callers */
  clientCA?: string
  /** none: no client certificate asked for; optional: asked for, not required; require: no connection without one */
  clientAuth?: 'none' | 'optional' | 'require'
  /** how often (ms) the files are checked for changes besides file-system events; 0: events only */
  reloadIntervalMs?: number
}

/** The files a TLS server is made of, read now (start-up fails on a bad one). */
export function readTlsFiles(tls: TlsOptions): SecureContextOptions {
  if (!tls.certificate || !tls.key) throw new Error('http.tls: certificate and key are both required')
  const options: SecureContextOptions = { cert: readFileSync(tls.certificate), key: readFileSync(tls.key) }
  if (clientCertificates(tls)) options.ca = readFileSync(tls.clientCA!)
  // Fails here, with OpenSSL's reason, on a key that does not match the certificate or bad PEM.
  createSecureContext(options)
  return options
}

/** Whether client certificates are asked for (http.tls.clientAuth optional or require). */
export function clientCertificates(tls: TlsOptions | undefined): boolean {
  return tls?.clientCA !== undefined && tls.clientAuth !== undefined && tls.clientAuth !== 'none'
}

/** The options of the TLS server beyond the secure context: client certificates when configured. */
export function clientCertificateOptions(tls: TlsOptions): { requestCert?: boolean; rejectUnauthorized?: boolean } {
  if (!clientCertificates(tls)) return {}
  return { requestCert: true, rejectUnauthorized: tls.clientAuth === 'require' }
}

/** What a server's certificate can be replaced on (tls.Server and the HTTP/2 secure server). */
interface SecureServer {
  setSecureContext(options: SecureContextOptions): void
}

/**
 * Reloads the certificate, key and client CA bundle when their files change, without a restart:
 * `setSecureContext` applies to new handshakes only, so open connections (a long download, a
 * keep-alive client) go on with the certificate they started with. Changes are noticed from
 * file-system events on the files' folders (a renamed-over file and a swapped symlink, as
 * cert-manager and certbot write them, included) and from a stat of every file each
 * `reloadIntervalMs` (network file systems send no events). A file that cannot be read, or a
 * certificate that does not parse or does not match its key, leaves the current one serving and
 * logs why (paths and OpenSSL's reason only, never file contents); the next change tries again.
 */
export function watchCertificates(server: SecureServer, tls: TlsOptions, log: Pick<Logger, 'info' | 'warn'>): { close(): void } {
  const files = [tls.certificate, tls.key, ...(clientCertificates(tls) ? [tls.clientCA] : [])].filter((f): f is string => f !== undefined)
  let seen = signature(files)
  let timer: NodeJS.Timeout | undefined
  const check = () => {
    timer = undefined
    const now = signature(files)
    if (now === seen) return
    seen = now
    reload()
  }
  const reload = () => {
    let options: SecureContextOptions
    try {
      options = readTlsFiles(tls)
    } catch (err) {
      log.warn({ certificate: tls.certificate, key: tls.key, clientCA: tls.clientCA, reason: reason(err) }, 'TLS certificate not reloaded: the one loaded before keeps serving')
      return
    }
    server.setSecureContext(options)
    const cert = new X509Certificate(options.cert as Buffer)
    log.info({ certificate: tls.certificate, fingerprint256: cert.fingerprint256, subject: cert.subject, validTo: cert.validTo }, 'TLS certificate reloaded')
  }
  // Events come in bursts (a write, a rename, a chmod): check once they settle.
  const soon = () => {
    if (timer === undefined) timer = setTimeout(check, 100)
  }
  const watchers: FSWatcher[] = []
  for (const folder of new Set(files.map((f) => dirname(f)))) {
    const names = new Set(files.filter((f) => dirname(f) === folder).map((f) => basename(f)))
    try {
      const watcher = watch(folder, { persistent: false }, (_event, name) => {
        // Kubernetes secret volumes swap a `..data` symlink; other names are other files.
        if (name === null || names.has(name.toString()) || name.toString().startsWith('..')) soon()
      })
      watcher.on('error', () => watcher.close())
      watchers.push(watcher)
    } catch (err) {
      log.warn({ folder, reason: reason(err) }, 'TLS certificate folder not watched: changes are seen by the periodic check only')
    }
  }
  const interval = tls.reloadIntervalMs ?? 60_000
  const poll = interval > 0 ? setInterval(check, interval) : undefined
  poll?.unref()
  return {
    close() {
      for (const w of watchers) w.close()
      if (poll) clearInterval(poll)
      if (timer) clearTimeout(timer)
    },
  }
}

/** What identifies the files' current contents without reading them: inode, size, times (stat follows symlinks). */
function signature(files: string[]): string {
  return files
    .map((f) => {
      try {
        const s = statSync(f)
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
      } catch (err) {
        return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`
      }
    })
    .join('|')
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e.code && e.syscall ? `${e.code}: ${e.syscall} ${e.path ?? ''}`.trim() : (e.message ?? String(err))
}

/** A verified client certificate's subject CN (undefined: none, or not verified). */
export interface PeerCertificate {
  /** the subject's common name, when the certificate verified against http.tls.clientCA */
  name?: string
  /** why a certificate the client presented was not accepted (unknown CA, expired) */
  refused?: string
}

/**
 * The client certificate of a TLS connection (HTTP/1.1 or HTTP/2): its subject CN when it
 * verified against the configured CAs; why not when one was presented and did not verify.
 */
export function peerCertificate(socket: unknown): PeerCertificate | undefined {
  const s = socket as Partial<TLSSocket> | undefined
  if (!s || typeof s.getPeerCertificate !== 'function') return undefined
  const cert = s.getPeerCertificate()
  if (!cert || Object.keys(cert).length === 0) return undefined
  if (!s.authorized) return { refused: String(s.authorizationError ?? 'certificate not verified') }
  const cn = cert.subject?.CN
  const name = Array.isArray(cn) ? undefined : cn
  return name ? { name } : { refused: 'the certificate has no subject CN' }
}
