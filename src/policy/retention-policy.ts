import { cronProblem } from '../config/schema.js'
import { RegistryError } from '../errors/registry-error.js'
import { scopeMatcher, type Matcher } from './patterns.js'

// The tag retention policy of a project, as the API takes and returns it, and its validation.
// Every problem is refused when the policy is saved (INVALID_FIELD naming the field).

export const RULE_KINDS = ['latestPushed', 'latestPulled', 'pushedWithinDays', 'pulledWithinDays', 'always'] as const
export type RuleKind = (typeof RULE_KINDS)[number]

export interface RetentionRule {
  kind: RuleKind
  /** latestPushed, latestPulled: how many artifacts per repository */
  count?: number
  /** pushedWithinDays, pulledWithinDays */
  days?: number
  /** doublestar glob over the repository path inside the project */
  repositories: string
  repositoriesExclude?: string
  /** doublestar glob over tag names; an artifact matches when one of its tags does */
  tags: string
  tagsExclude?: string
}

export interface RetentionPolicy {
  rules: RetentionRule[]
  /** untagged manifests of the repositories in scope: removed ('delete') or left alone ('keep') */
  untagged: 'keep' | 'delete'
  /** cron expression of scheduled runs; null: on demand only */
  schedule: string | null
}

export interface CompiledRule extends RetentionRule {
  repository: Matcher
  tag: Matcher
}

export const MAX_RULES = 50
const MAX_COUNT = 1_000_000
const MAX_DAYS = 36_500
const POLICY_FIELDS = new Set(['rules', 'untagged', 'schedule'])
const RULE_FIELDS = new Set(['kind', 'count', 'days', 'repositories', 'repositoriesExclude', 'tags', 'tagsExclude'])

/** Parses and validates a policy body; throws INVALID_FIELD with the reason. */
export function parsePolicy(body: unknown): RetentionPolicy {
  if (!isObject(body)) throw RegistryError.invalidField('body', 'a JSON object')
  for (const k of Object.keys(body)) if (!POLICY_FIELDS.has(k)) throw RegistryError.invalidField(k, 'not a field of a retention policy')
  if (!Array.isArray(body.rules)) throw RegistryError.invalidField('rules', 'an array of rules')
  if (body.rules.length > MAX_RULES) throw RegistryError.invalidField('rules', `at most ${MAX_RULES} rules`)
  const rules = body.rules.map((r, i) => parseRule(r, `rules[${i}]`))
  const untagged = body.untagged ?? 'keep'
  if (untagged !== 'keep' && untagged !== 'delete') throw RegistryError.invalidField('untagged', '"keep" or "delete"')
  let schedule: string | null = null
  if (body.schedule !== undefined && body.schedule !== null && body.schedule !== '') {
    if (typeof body.schedule !== 'string') throw RegistryError.invalidField('schedule', 'a cron expression, or null')
    const problem = cronProblem(body.schedule)
    if (problem) throw new RegistryError('INVALID_FIELD', `schedule: invalid cron expression: ${problem}`, { detail: { field: 'schedule' } })
    schedule = body.schedule
  }
  return { rules, untagged, schedule }
}

function parseRule(value: unknown, at: string): RetentionRule {
  if (!isObject(value)) throw RegistryError.invalidField(at, 'a rule object')
  for (const k of Object.keys(value)) if (!RULE_FIELDS.has(k)) throw RegistryError.invalidField(`${at}.${k}`, 'not a field of a retention rule')
  const kind = value.kind
  if (typeof kind !== 'string' || !(RULE_KINDS as readonly string[]).includes(kind)) throw RegistryError.invalidField(`${at}.kind`, `one of ${RULE_KINDS.join(', ')}`)
  const rule: RetentionRule = {
    kind: kind as RuleKind,
    repositories: optionalString(value.repositories, `${at}.repositories`) ?? '**',
    tags: optionalString(value.tags, `${at}.tags`) ?? '**',
  }
  const repositoriesExclude = optionalString(value.repositoriesExclude, `${at}.repositoriesExclude`)
  const tagsExclude = optionalString(value.tagsExclude, `${at}.tagsExclude`)
  if (repositoriesExclude !== undefined) rule.repositoriesExclude = repositoriesExclude
  if (tagsExclude !== undefined) rule.tagsExclude = tagsExclude
  scopeMatcher(`${at}.repositories`, { include: rule.repositories, exclude: rule.repositoriesExclude })
  scopeMatcher(`${at}.tags`, { include: rule.tags, exclude: rule.tagsExclude })

  const wantsCount = rule.kind === 'latestPushed' || rule.kind === 'latestPulled'
  const wantsDays = rule.kind === 'pushedWithinDays' || rule.kind === 'pulledWithinDays'
  if (wantsCount) rule.count = positiveInteger(value.count, `${at}.count`, MAX_COUNT)
  else if (value.count !== undefined) throw RegistryError.invalidField(`${at}.count`, `not used by ${rule.kind}`)
  if (wantsDays) rule.days = positiveInteger(value.days, `${at}.days`, MAX_DAYS)
  else if (value.days !== undefined) throw RegistryError.invalidField(`${at}.days`, `not used by ${rule.kind}`)
  return rule
}

/** A stored policy with its patterns compiled (stored policies were validated when saved). */
export function compileRules(policy: RetentionPolicy): CompiledRule[] {
  return policy.rules.map((r, i) => ({
    ...r,
    repository: scopeMatcher(`rules[${i}].repositories`, { include: r.repositories, exclude: r.repositoriesExclude }),
    tag: scopeMatcher(`rules[${i}].tags`, { include: r.tags, exclude: r.tagsExclude }),
  }))
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw RegistryError.invalidField(field, 'a glob pattern (string)')
  return v
}

function positiveInteger(v: unknown, field: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw RegistryError.invalidField(field, `an integer from 1 to ${max}`)
  return v
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
