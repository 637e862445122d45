// Differences between the SQL dialects, in one table (pg-boss style).
export type Dialect = 'sqlite' | 'postgres'

export interface Capabilities {
  dialect: Dialect
  /** column type for raw bytes */
  binaryType: 'blob' | 'bytea'
  /** column type for millisecond timestamps and byte sizes */
  bigintType: 'integer' | 'bigint'
  skipLocked: boolean
  advisoryLocks: boolean
}

export const CAPABILITIES: Record<Dialect, Capabilities> = {
  sqlite: { dialect: 'sqlite', binaryType: 'blob', bigintType: 'integer', skipLocked: false, advisoryLocks: false },
  postgres: { dialect: 'postgres', binaryType: 'bytea', bigintType: 'bigint', skipLocked: true, advisoryLocks: true },
}
