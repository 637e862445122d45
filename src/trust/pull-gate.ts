import type { RegistryError } from '../errors/registry-error.js'
import type { PullGate } from '../policy/pull-gate.js'
import type { TrustService } from './trust-service.js'

/** The trust policy as a pull gate (src/policy/pull-gate.ts): DENIED for what the project's policy does not accept. */
export class TrustPullGate implements PullGate {
  readonly name = 'trust'

  constructor(private readonly trust: TrustService) {}

  check(repository: string, digest: string, _mediaType: string): RegistryError | undefined | Promise<RegistryError | undefined> {
    return this.trust.check(repository, digest)
  }
}
