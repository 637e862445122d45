import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely'
import { capabilitiesOf, type Dialect } from '../capabilities.js'
import type { Database } from '../schema.js'

// The repositories' Db, named here so that repositories.ts can use this module without a cycle.
type Db = Kysely<Database>

/** Where a compiled query's parameter comes from: the call's nth argument, or a constant. */
type Slot = { arg: number } | { value: unknown }

interface Template {
  compiled: CompiledQuery<unknown>
  slots: Slot[]
}

const MARK = '\u0000berth-arg:'

/** While a template compiles: the arguments the dialect replaces by a value of its own. */
let replaced: Set<unknown> | undefined

/**
 * Called by a query builder for an argument this dialect does not use, because the database
 * supplies the value itself (the database clock, see clock.ts): it is not a parameter then.
 */
export function replacedByDatabase(arg: unknown): void {
  replaced?.add(arg)
}

/**
 * A query on the push and pull paths, built and compiled by Kysely once per SQL dialect; each
 * call only puts its own values into the parameters. Kysely otherwise builds a fresh query tree
 * and compiles it to SQL on every call — about a tenth of the CPU a small blob push costs.
 *
 * `build` must give the same SQL whatever its arguments: no clause that depends on them, no IN
 * list, arguments used as values only (not computed with). The first call checks this as far as
 * it can: every parameter must be one argument or a constant of the query itself.
 */
export function prepared<A extends unknown[], R>(build: (db: Db, ...args: A) => Compilable<R>): (db: Db, ...args: A) => Promise<QueryResult<R>> {
  const templates = new Map<Dialect, Template>()
  return async (db, ...args) => {
    const dialect = capabilitiesOf(db).dialect
    let template = templates.get(dialect)
    if (!template) {
      template = compileTemplate(db, build, args.length)
      templates.set(dialect, template)
    }
    const parameters = template.slots.map((slot) => ('arg' in slot ? args[slot.arg] : slot.value))
    return db.executeQuery<R>({ ...(template.compiled as CompiledQuery<R>), parameters })
  }
}

function compileTemplate<A extends unknown[], R>(db: Db, build: (db: Db, ...args: A) => Compilable<R>, count: number): Template {
  const marks = Array.from({ length: count }, (_, i) => `${MARK}${i}`)
  const skipped = new Set<unknown>()
  replaced = skipped
  let compiled: CompiledQuery<unknown>
  try {
    compiled = build(db, ...(marks as unknown as A)).compile() as CompiledQuery<unknown>
  } finally {
    replaced = undefined
  }
  const slots = compiled.parameters.map((value): Slot => {
    const index = typeof value === 'string' ? marks.indexOf(value) : -1
    if (index >= 0) return { arg: index }
    if ((typeof value === 'string' && value.includes(MARK)) || Number.isNaN(value)) {
      throw new Error(`prepared query computes with an argument instead of passing it: ${compiled.sql}`)
    }
    return { value }
  })
  const unused = marks.findIndex((mark, i) => !skipped.has(mark) && !slots.some((slot) => 'arg' in slot && slot.arg === i))
  if (unused >= 0) throw new Error(`prepared query does not pass argument ${unused} as a parameter: ${compiled.sql}`)
  return { compiled, slots }
}
