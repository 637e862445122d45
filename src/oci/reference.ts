// Name and tag grammar of the OCI distribution spec.
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*'
const NAME = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`)
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/

/** Distribution's limit on the full repository name (host excluded). */
export const MAX_NAME_LENGTH = 255

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME.test(name)
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag)
}
