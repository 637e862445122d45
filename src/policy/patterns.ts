import picomatch from 'picomatch'
import { RegistryError } from '../errors/registry-error.js'

// Doublestar globs of retention and immutability rules (picomatch): `*` stays inside one path
// segment, `**` crosses segments, `{a,b}`, `[a-z]` and `?` work as in a shell. Repository
// patterns see the path inside the project (`tools/ret` for `library/tools/ret`).

const MAX_PATTERN = 256

/** A compiled include/exclude pair; no exclude matches nothing. */
export interface Scope {
  include: string
  exclude?: string
}

export type Matcher = (value: string) => boolean

const OPTIONS = { dot: true, strictBrackets: true } as const

/** Compiles a pattern, or throws INVALID_FIELD naming `field` and the reason. */
export function compilePattern(field: string, pattern: unknown): Matcher {
  if (typeof pattern !== 'string' || pattern.length === 0) throw RegistryError.invalidField(field, 'a non-empty glob pattern')
  if (pattern.length > MAX_PATTERN) throw RegistryError.invalidField(field, `a glob pattern of at most ${MAX_PATTERN} characters`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(pattern)) throw RegistryError.invalidField(field, 'a glob pattern without control characters')
  try {
    return picomatch(pattern, OPTIONS)
  } catch (err) {
    throw new RegistryError('INVALID_FIELD', `invalid glob pattern in ${field}: ${(err as Error).message}`, { detail: { field } })
  }
}

/** include matches and exclude (when set) does not. */
export function scopeMatcher(field: string, scope: Scope): Matcher {
  const inc = compilePattern(field, scope.include)
  const exc = scope.exclude === undefined ? undefined : compilePattern(`${field}Exclude`, scope.exclude)
  return exc ? (v) => inc(v) && !exc(v) : inc
}

/** The project of a repository: its first component, `library` for one-part names (as auth/permissions.ts). */
export function projectOf(repository: string): string {
  const slash = repository.indexOf('/')
  return slash === -1 ? 'library' : repository.slice(0, slash)
}

/** The repository's path inside its project: `tools/ret` for `library/tools/ret`, `app` for `app`. */
export function pathInProject(repository: string): string {
  const project = projectOf(repository)
  return repository.startsWith(`${project}/`) ? repository.slice(project.length + 1) : repository
}
