import type { RepositoryAction } from './permissions.js'

export interface RobotGrant {
  /** a project name, or '*' for every project (system robots) */
  project: string
  actions: RepositoryAction[]
}

/** Who is making a request, as established by an authenticator. */
export type Principal =
  | { kind: 'anonymous' }
  | { kind: 'user'; name: string; admin: boolean; groups: string[]; via: 'password' | 'token' | 'session' | 'cli-secret' | 'ldap' | 'certificate' }
  | { kind: 'robot'; name: string; grants: RobotGrant[]; via: 'password' | 'token' | 'certificate' }
  /**
   * a token from an external issuer: its access claims are all it may do; `scanner`: a pull
   * token Berth gave a scanner adapter (src/scan/adapters), which scan policies do not gate
   */
  | { kind: 'external'; name: string; access: TokenAccess[]; scanner?: true }

export interface TokenAccess {
  type: string
  name: string
  actions: string[]
}

export const ANONYMOUS: Principal = { kind: 'anonymous' }

/** A scanner adapter pulling with the token Berth gave it: pull gates let it read what it must scan (as Harbor). */
export function isScannerPull(p: Principal | undefined): boolean {
  return p?.kind === 'external' && p.scanner === true
}

export function principalName(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.name
}
