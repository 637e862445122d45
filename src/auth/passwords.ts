import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { hash, verify } from '@node-rs/argon2'
import bcrypt from 'bcryptjs'

/** argon2id with the library's defaults (OWASP's minimums). */
export async function hashSecret(secret: string): Promise<string> {
  return hash(secret)
}

/**
 * Verifies a secret against a stored hash: argon2 for Berth's own, bcrypt for users imported
 * from an htpasswd file (they are re-hashed with argon2 on their next login).
 */
export async function verifySecret(stored: string, secret: string): Promise<boolean> {
  try {
    if (stored.startsWith('$argon2')) return await verify(stored, secret)
    if (/^\$2[aby]\$/.test(stored)) return await bcrypt.compare(secret, stored)
  } catch {
    return false
  }
  return false
}

let dummyHash: Promise<string> | undefined

/**
 * Spends the time of a real check on a hash nobody's password matches: answering an unknown
 * user (or robot) faster than a wrong password would tell which names exist.
 */
export async function verifyNothing(secret: string): Promise<false> {
  dummyHash ??= hashSecret(generateSecret())
  await verifySecret(await dummyHash, secret)
  return false
}

export function isLegacyHash(stored: string): boolean {
  return !stored.startsWith('$argon2')
}

/** A random secret for robots, CLI secrets and generated passwords. */
export function generateSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url')
}

/** Constant-time equality of two strings (compared as SHA-256 digests, so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest()
  const db = createHash('sha256').update(b).digest()
  return timingSafeEqual(da, db)
}
