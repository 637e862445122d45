import pino, { type Logger, type LoggerOptions } from 'pino'

/**
 * pino options shared by the server and the CLI. Credentials never reach a log line: the
 * headers that carry them and any field named like a secret are redacted. Times are ISO 8601.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["proxy-authorization"]',
        'res.headers["set-cookie"]',
        '*.password',
        '*.secret',
        '*.token',
        '*.accessToken',
        '*.refreshToken',
      ],
      censor: '[redacted]',
    },
  }
}

export type LogFormat = 'json' | 'pretty'

/**
 * The server's logger on `out` (stdout): log.format, or by default readable lines on a terminal
 * and JSON lines (for collectors) otherwise.
 */
export function createLogger(log: { level: string; format?: LogFormat }, out: NodeJS.WriteStream = process.stdout): Logger {
  const format = log.format ?? (out.isTTY ? 'pretty' : 'json')
  if (format === 'json') return pino(loggerOptions(log.level))
  return pino(loggerOptions(log.level), { write: (line: string) => void out.write(prettyLine(line)) })
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
/** Fields every line has, or that say nothing to a reader at a terminal. */
const OMITTED = new Set(['level', 'time', 'msg', 'pid', 'hostname'])

/** One JSON log line as `TIME LEVEL message key=value …`; an error's stack on the lines after. */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>
  try {
    entry = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json
  }
  const level = LEVEL_NAMES[Number(entry.level)] ?? String(entry.level)
  const fields: string[] = []
  let stack = ''
  for (const [key, value] of Object.entries(entry)) {
    if (OMITTED.has(key) || value === undefined) continue
    if (key === 'err' && value && typeof value === 'object' && 'stack' in value) {
      stack = `\n    ${String((value as { stack: unknown }).stack).replace(/\n/g, '\n    ')}`
      continue
    }
    fields.push(`${key}=${typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)}`)
  }
  return `${String(entry.time)} ${level.padEnd(5)} ${String(entry.msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}${stack}\n`
}
