import { createHash } from 'node:crypto'

// Digest grammar of the OCI image spec: algorithm ":" encoded. Only registered algorithms are
// accepted for content; their encoded part is lowercase hex of a fixed length.
export const Algorithms = { sha256: 64, sha512: 128 } as const
export type Algorithm = keyof typeof Algorithms

const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/

export interface Digest {
  algorithm: Algorithm
  hex: string
  /** algorithm:hex */
  value: string
}

export type DigestProblem = 'malformed' | 'unsupported'

/** Parses a digest string; returns a problem instead of throwing so callers pick the error code. */
export function parseDigest(text: string): Digest | DigestProblem {
  if (text.length > 256 || !DIGEST_GRAMMAR.test(text)) return 'malformed'
  const colon = text.indexOf(':')
  const algorithm = text.slice(0, colon)
  const hex = text.slice(colon + 1)
  if (!isAlgorithm(algorithm)) return 'unsupported'
  if (hex.length !== Algorithms[algorithm] || !/^[a-f0-9]+$/.test(hex)) return 'malformed'
  return { algorithm, hex, value: text }
}

export function isAlgorithm(name: string): name is Algorithm {
  return Object.hasOwn(Algorithms, name)
}

export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':')
}

export function digestOf(data: Buffer | string, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`
}

