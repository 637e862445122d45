// Encryption at rest of the secrets Berth must give back to other systems (registry endpoint
// passwords): AES-256-GCM with a random 96-bit IV per value, the value's context (which row it
// belongs to) as associated data, so a ciphertext copied into another row does not decrypt.
//
// The key: `secrets.key` (BERTH_SECRETS_KEY) when set: 32 bytes as 64 hex digits or as base64
// (44 characters), anything else is a passphrase stretched with scrypt. Otherwise a random key
// in `<dataDir>/secrets.key`, generated on first start with mode 0600. Every ciphertext names the
// key it was made with (the first 8 bytes of the key's SHA-256, in hex), so a node holding
// another key says so instead of failing obscurely: on PostgreSQL every node must be given the
// same `secrets.key` (their data directories, and so their generated keys, differ).

import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto'
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { RegistryError } from '../errors/registry-error.js'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16
/** scrypt's salt for passphrases: fixed, so every node derives the same key from the same phrase */
const PASSPHRASE_SALT = 'berth secrets.key v1'

export class SecretBox {
  /** names the key in every ciphertext (not secret: a hash prefix) */
  readonly keyId: string

  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the secrets key must be 32 bytes')
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 16)
  }

  /** `v1:<key id>:<base64 iv|tag|ciphertext>`; `context` must be given again to decrypt. */
  encrypt(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.key, iv)
    cipher.setAAD(Buffer.from(context, 'utf8'))
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return `${VERSION}:${this.keyId}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`
  }

  decrypt(stored: string, context: string): string {
    const [version, keyId, payload] = stored.split(':')
    if (version !== VERSION || !keyId || !payload) throw new RegistryError('UNKNOWN', `a stored secret of ${context} is not in a known format`)
    if (keyId !== this.keyId) {
      throw new RegistryError(
        'UNAVAILABLE',
        `the secret of ${context} was encrypted with another key (id ${keyId}; this node has ${this.keyId}): give every node the same secrets.key (BERTH_SECRETS_KEY)`,
      )
    }
    const raw = Buffer.from(payload, 'base64')
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES))
    decipher.setAAD(Buffer.from(context, 'utf8'))
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
    } catch (err) {
      throw new RegistryError('UNKNOWN', `the stored secret of ${context} does not decrypt (altered, or moved from another row)`, { cause: err })
    }
  }
}

/** The 32 key bytes of a configured `secrets.key`: hex, base64, or a passphrase (scrypt). */
export function keyFromConfig(text: string): Buffer {
  const trimmed = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex')
  if (/^[A-Za-z0-9+/]{43}=$/.test(trimmed)) return Buffer.from(trimmed, 'base64')
  if (trimmed.length < 16) throw new RegistryError('INVALID_FIELD', 'secrets.key: 32 bytes as 64 hex digits or base64, or a passphrase of at least 16 characters', { detail: { field: 'secrets.key' } })
  return scryptSync(trimmed, PASSPHRASE_SALT, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 })
}

/** The key file's 32 bytes, creating it (random, mode 0600) when it does not exist yet. */
export async function keyFromFile(path: string): Promise<{ key: Buffer; generated: boolean }> {
  try {
    return { key: parseKeyFile(await readFile(path, 'utf8'), path), generated: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await mkdir(dirname(path), { recursive: true })
  const key = randomBytes(32)
  // Written whole under a temporary name, then linked into place: link() fails when the file
  // exists, so two processes starting at once on one data dir agree on the first key, and no
  // reader ever sees a half-written file.
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`
  const file = await open(temporary, 'wx', 0o600)
  try {
    await file.writeFile(`${key.toString('base64')}\n`)
    await file.sync()
  } finally {
    await file.close()
  }
  try {
    await link(temporary, path)
    return { key, generated: true }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return { key: parseKeyFile(await readFile(path, 'utf8'), path), generated: false }
  } finally {
    await unlink(temporary).catch(() => undefined)
  }
}

function parseKeyFile(text: string, path: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64')
  if (key.length !== 32) throw new Error(`${path}: not a base64 32-byte key (remove it to generate a new one; secrets encrypted with it are then lost)`)
  return key
}
