import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, sep } from 'node:path'
import type { z } from 'zod'
import { buildConfigSchema, SECRET_KEYS, type Config, type ConfigSchema } from './schema.js'

export class ConfigError extends Error {}

export interface LoadOptions {
  file?: string
  env?: NodeJS.ProcessEnv
  /** Values from command-line flags, as key paths (`http.addr`); they beat environment and file. */
  flags?: Record<string, string | undefined>
}

export interface LoadedConfig {
  config: Config
  /** BERTH_* variables that name no config key (reported, not fatal: other tools share the prefix). */
  unknownEnv: string[]
  /** BERTH_ADMIN_PASSWORD: the first admin's password (only used when that user is created) */
  adminPassword?: string
}

/** Variables with the BERTH_ prefix that are not config keys. */
// BERTH_WORKER: set by `berth serve --workers` on the processes it starts (src/runtime/workers.ts).
const NON_CONFIG_ENV = new Set(['BERTH_ADMIN_PASSWORD', 'BERTH_WORKER'])

/** defaults → YAML file → BERTH_* environment → flags → validate → freeze */
export async function loadConfig(opts: LoadOptions = {}): Promise<LoadedConfig> {
  const raw = opts.file ? parseYaml(await readText(opts.file), opts.file) : {}
  const leaves = configLeaves()
  const unknownEnv: string[] = []
  for (const [name, value] of Object.entries(opts.env ?? {})) {
    if (!name.startsWith('BERTH_') || value === undefined || NON_CONFIG_ENV.has(name) || name.startsWith('BERTH_TEST_')) continue
    const leaf = leaves.get(name)
    if (!leaf) {
      unknownEnv.push(name)
      continue
    }
    setPath(raw, leaf.path, coerce(value, leaf.kind, name))
  }
  for (const [path, value] of Object.entries(opts.flags ?? {})) {
    if (value === undefined) continue
    const leaf = [...leaves.values()].find((l) => l.path.join('.') === path)
    if (!leaf) throw new ConfigError(`unknown config key ${path}`)
    setPath(raw, leaf.path, coerce(value, leaf.kind, `--${path}`))
  }
  return { config: parseConfig(raw), unknownEnv, adminPassword: opts.env?.BERTH_ADMIN_PASSWORD || undefined }
}

/** Validates a config tree (defaults filled in); the result is frozen. */
export function parseConfig(raw: unknown): Config {
  const parsed = modules().schema.safeParse(raw)
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error))
  return deepFreeze(parsed.data)
}

/**
 * zod and yaml are needed while config is read, never after: they are loaded as CommonJS, so
 * that a long-running process can forget them (releaseConfigModules) and the garbage collector
 * takes back their ≈ 3.7 MiB of heap (measured on an idle server) — an ES module, once imported, stays for the process's life.
 */
const PACKAGES = ['zod', 'yaml'] as const
let loaded: { z: typeof z; schema: ConfigSchema; parseYaml: (text: string) => unknown } | undefined

function modules(): NonNullable<typeof loaded> {
  if (!loaded) {
    const require = createRequire(import.meta.url)
    const zod = (require('zod') as { z: typeof z }).z
    const yaml = require('yaml') as { parse: (text: string) => unknown }
    loaded = { z: zod, schema: buildConfigSchema(zod), parseYaml: (text) => yaml.parse(text) }
  }
  return loaded
}

/** Drops zod, yaml and the schema: `berth serve` calls this once its config is loaded. */
export function releaseConfigModules(): void {
  loaded = undefined
  const require = createRequire(import.meta.url)
  const roots = PACKAGES.map((name) => dirname(require.resolve(`${name}/package.json`)) + sep)
  for (const file of Object.keys(require.cache)) {
    if (roots.some((root) => file.startsWith(root))) delete require.cache[file]
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`)
  }
}

function parseYaml(text: string, file: string): Record<string, unknown> {
  let doc: unknown
  try {
    doc = modules().parseYaml(text)
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${file} must hold a mapping`)
  return doc as Record<string, unknown>
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const at = issue.path.join('.')
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `unknown config key ${at ? `${at}.` : ''}${k}`).join('; ')
      }
      return `${at || '(root)'}: ${issue.message}`
    })
    .join('; ')
}

type LeafKind = 'string' | 'number' | 'boolean'
interface Leaf {
  path: string[]
  kind: LeafKind
}

/** Environment variable name of a key path: BERTH_ + upper snake case of each segment. */
export function envName(path: string[]): string {
  return 'BERTH_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

let leavesCache: Map<string, Leaf> | undefined

/** Every settable leaf of the schema, keyed by its environment variable name. */
export function configLeaves(): Map<string, Leaf> {
  if (leavesCache) return leavesCache
  const out = new Map<string, Leaf>()
  const { z: zod, schema: root } = modules()
  const walk = (schema: z.ZodType, path: string[]): void => {
    const inner = unwrap(zod, schema)
    if (inner instanceof zod.ZodObject) {
      for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) walk(child, [...path, key])
      return
    }
    const name = envName(path)
    if (out.has(name)) throw new Error(`ambiguous environment variable ${name}`)
    out.set(name, { path, kind: leafKind(zod, inner) })
  }
  walk(root, [])
  leavesCache = out
  return out
}

function unwrap(zod: typeof z, schema: z.ZodType): z.ZodType {
  let s = schema
  while (s instanceof zod.ZodDefault || s instanceof zod.ZodOptional || s instanceof zod.ZodPrefault || s instanceof zod.ZodNullable) {
    s = s.def.innerType as z.ZodType
  }
  return s
}

function leafKind(zod: typeof z, schema: z.ZodType): LeafKind {
  if (schema instanceof zod.ZodNumber) return 'number'
  if (schema instanceof zod.ZodBoolean) return 'boolean'
  return 'string'
}

function coerce(value: string, kind: LeafKind, name: string): string | number | boolean {
  if (kind === 'number') {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${name}: expected a number, got "${value}"`)
    return n
  }
  if (kind === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(value)) return true
    if (/^(false|0|no|off)$/i.test(value)) return false
    throw new ConfigError(`${name}: expected true or false, got "${value}"`)
  }
  return value
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (typeof next !== 'object' || next === null) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[path[path.length - 1] as string] = value
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/** The effective config with secret values replaced, for `config check` and the startup log. */
export function maskSecrets(config: Config): unknown {
  const mask = (node: unknown, path: string[]): unknown => {
    if (typeof node !== 'object' || node === null) {
      const key = path.join('.')
      return node !== undefined && SECRET_KEYS.some((re) => re.test(key) || re.test(path.at(-1) ?? '')) ? '*****' : node
    }
    if (Array.isArray(node)) return node.map((v, i) => mask(v, [...path, String(i)]))
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, mask(v, [...path, k])]))
  }
  return mask(config, [])
}
