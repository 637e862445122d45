import { RegistryError } from '../errors/registry-error.js'
import { parseDigest, type Digest } from '../oci/digest.js'
import { isValidName, isValidTag, MAX_NAME_LENGTH } from '../oci/reference.js'

export function requireName(name: string): string {
  if (!isValidName(name)) {
    const why = name.length > MAX_NAME_LENGTH ? `longer than ${MAX_NAME_LENGTH} characters` : 'not matching [a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*'
    throw new RegistryError('NAME_INVALID', `invalid repository name: ${why}`, { detail: { name: name.slice(0, MAX_NAME_LENGTH + 1) } })
  }
  return name
}

/** A tag a manifest is pushed under: MANIFEST_INVALID (the spec has no tag code) when it breaks the grammar. */
export function requireTag(tag: string): string {
  if (!isValidTag(tag)) {
    throw new RegistryError('MANIFEST_INVALID', 'invalid tag: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}', { detail: { tag: tag.slice(0, 200) } })
  }
  return tag
}

export function requireDigest(text: string): Digest {
  const parsed = parseDigest(text)
  if (parsed === 'unsupported') {
    throw new RegistryError('DIGEST_INVALID', 'unsupported digest algorithm (sha256 and sha512 are supported)', { detail: { digest: text.slice(0, 200) } })
  }
  if (parsed === 'malformed') throw RegistryError.digestInvalid('invalid digest', { digest: text.slice(0, 200) })
  return parsed
}
