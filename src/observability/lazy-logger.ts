import type { Bindings, ChildLoggerOptions, Logger } from 'pino'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const

/**
 * A request logger that creates its pino child only when something is logged. Fastify makes a
 * child per request; on the pull path nothing is logged (access logging off), and creating the
 * child was a quarter of a manifest GET's CPU time.
 */
export function lazyChildLogger(parent: Logger, bindings: Bindings, opts: ChildLoggerOptions): Logger {
  let real: Logger | undefined
  const child = (): Logger => (real ??= parent.child(bindings, opts))
  const lazy: Record<string, unknown> = {
    get level() {
      return real?.level ?? parent.level
    },
    set level(value: string) {
      child().level = value
    },
    child: (b: Bindings, o?: ChildLoggerOptions) => child().child(b, o),
    bindings: () => child().bindings(),
    isLevelEnabled: (level: string) => parent.isLevelEnabled(level),
    silent: () => undefined,
  }
  for (const level of LEVELS) {
    lazy[level] = (...args: unknown[]) => {
      if (!parent.isLevelEnabled(level)) return
      ;(child()[level] as (...a: unknown[]) => void)(...args)
    }
  }
  return lazy as unknown as Logger
}
