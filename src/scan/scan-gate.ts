import { projectOf } from '../auth/permissions.js'
import { describe } from '../browse/describe.js'
import { RegistryError } from '../errors/registry-error.js'
import type { Generation } from '../metadata/changes.js'
import type { ScanRepository } from '../metadata/repositories/scans.js'
import type { PullGate } from '../policy/pull-gate.js'
import type { Registry } from '../registry/registry.js'
import { activeAllowlist, blocks, DEFAULT_POLICY, SEVERITY_RANK, SYSTEM_SCOPE, type ScanPolicies } from './policy.js'
import { digestsOf, reportOf, scannable, type StoredFinding } from './scan-service.js'
import { suppresses } from './vex.js'
import type { VexService } from './vex-service.js'

// The pull gate of the scan policies: a manifest GET of an artifact with a finding at or above
// the project's blockSeverity (not allowlisted by the project or the system), or of an unscanned
// artifact when blockUnscanned, is refused with DENIED naming the worst finding and how to
// allow it. Decisions are cached per project and digest until a scan result or a policy changes
// (the 'scan' change kind, heard from every node) or an allowlist entry that mattered expires,
// so the pull fast path answers synchronously; projects without a blocking policy never wait.

const MAX_DECISIONS = 10_000

interface Decision {
  error: RegistryError | undefined
  /** recompute after this time (an allowlist entry expires) */
  until: number | undefined
}

export class ScanGate implements PullGate {
  readonly name = 'vulnerability-scan'
  private decisions = new Map<string, Decision>()
  private generationSeen: number | undefined

  constructor(
    private readonly deps: {
      registry: Registry
      scans: ScanRepository
      policies: ScanPolicies
      generation: Generation
      /**
       * What decisions follow besides scans and policies: manifests, since a VEX referrer pushed
       * or deleted changes which findings count (default: generation)
       */
      decisionGeneration?: Generation
      vex?: VexService
      now: () => number
    },
  ) {}

  check(repository: string, digest: string, _mediaType: string): RegistryError | undefined | Promise<RegistryError | undefined> {
    const generation = this.deps.generation()
    const decided = this.deps.decisionGeneration ? this.deps.decisionGeneration() : generation
    if (decided !== this.generationSeen) {
      this.decisions = new Map()
      this.generationSeen = decided
    }
    const project = projectOf(repository)
    const policies = this.deps.policies.cached(generation)
    if (policies && !blocks(policies.get(project) ?? DEFAULT_POLICY)) return undefined
    // Per repository: VEX referrers live in the image's repository.
    const key = `${repository} ${digest}`
    const hit = decided === undefined ? undefined : this.decisions.get(key)
    if (hit && (hit.until === undefined || this.deps.now() < hit.until)) return hit.error
    return this.decide(project, repository, digest).then((d) => {
      const now = this.deps.decisionGeneration ? this.deps.decisionGeneration() : this.deps.generation()
      if (decided !== undefined && now === decided) {
        if (this.decisions.size >= MAX_DECISIONS) this.decisions.clear()
        this.decisions.set(key, d)
      }
      return d.error
    })
  }

  private async decide(project: string, repository: string, digest: string): Promise<Decision> {
    const all = await this.deps.policies.all()
    const policy = all.get(project) ?? DEFAULT_POLICY
    if (!blocks(policy)) return { error: undefined, until: undefined }
    const row = await this.deps.scans.result(digest)
    if (!row || row.scanned_at === null) {
      if (!policy.blockUnscanned) return { error: undefined, until: undefined }
      const m = await this.deps.registry.manifests.get(repository, digest)
      // Signatures, SBOMs and other artifacts have nothing to scan: never "unscanned".
      if (!scannable(describe(m.content ?? Buffer.alloc(0), m.mediaType))) return { error: undefined, until: undefined }
      const state = row ? `its scan is ${row.status}${row.status === 'failed' && row.error ? `: ${row.error}` : ''}` : 'it was never scanned'
      return {
        error: RegistryError.denied(
          `pull of ${repository}@${digest} denied by the scan policy of project ${project}: ${state}, and unscanned artifacts are blocked (blockUnscanned). Scan it (POST /api/v1/projects/${project}/repositories/{repository}/artifacts/${digest}/scan) or set blockUnscanned to false (PUT /api/v1/projects/${project}/scan-policy)`,
          { digest, reason: 'unscanned' },
        ),
        until: undefined,
      }
    }
    if (policy.blockSeverity === 'none') return { error: undefined, until: undefined }
    const now = this.deps.now()
    const allowed = activeAllowlist([...policy.allowlist, ...(all.get(SYSTEM_SCOPE)?.allowlist ?? [])], now)
    const threshold = SEVERITY_RANK[policy.blockSeverity]
    let findings = reportOf(row).findings
    if (this.deps.vex) findings = (await this.deps.vex.apply(repository, digestsOf(row), findings)).findings
    // Findings a VEX statement marks not_affected or fixed block nothing.
    const blocking = findings.filter((f) => SEVERITY_RANK[f.severity] >= threshold && !isAllowed(f, allowed.ids) && !suppresses(f.vex?.status))
    if (blocking.length === 0) return { error: undefined, until: allowed.nextExpiry }
    const worst = blocking.reduce((a, b) => (SEVERITY_RANK[b.severity] > SEVERITY_RANK[a.severity] ? b : a))
    const others = new Set(blocking.map((f) => f.id))
    others.delete(worst.id)
    const fixed = worst.fixedVersion ? `, fixed in ${worst.fixedVersion}` : ', no fix yet'
    const more = others.size > 0 ? ` and ${others.size} more ${others.size === 1 ? 'vulnerability' : 'vulnerabilities'} at or above ${policy.blockSeverity}` : ''
    return {
      error: RegistryError.denied(
        `pull of ${repository}@${digest} denied by the scan policy of project ${project}: ${worst.id} (${worst.severity}) in ${worst.package} ${worst.version}${fixed}${more}. To allow it, add ${worst.id} to the project's allowlist (PUT /api/v1/projects/${project}/scan-policy) or the system allowlist (PUT /api/v1/scan-policy), or raise blockSeverity above ${worst.severity}`,
        { digest, vulnerability: worst.id, severity: worst.severity, package: worst.package, version: worst.version },
      ),
      until: allowed.nextExpiry,
    }
  }
}

/** Allowlisted by its id or any alias (a CVE allowlisted also allows the GHSA naming it). */
function isAllowed(f: StoredFinding, ids: Set<string>): boolean {
  return ids.has(f.id.toUpperCase()) || f.aliases.some((a) => ids.has(a.toUpperCase()))
}
