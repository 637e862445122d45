import { compare, valid } from '@renovatebot/pep440'

// PEP 440 (PyPI): epochs, release segments with trailing zeros ignored, pre-releases
// (a/b/rc), post-releases, dev-releases and local versions, with the spec's normalisations
// (1.0alpha1 = 1.0a1, 1.0-post1 = 1.0.post1), by @renovatebot/pep440.

export function comparePep440(a: string, b: string): number {
  if (!valid(a)) throw new Error(`not a PEP 440 version: ${a}`)
  if (!valid(b)) throw new Error(`not a PEP 440 version: ${b}`)
  return Math.sign(compare(a, b))
}
