import { sql, type Selectable } from 'kysely'
import type { AuthTokensTable, LoginFailuresTable } from '../schema.js'
import type { Db } from './repositories.js'

export type AuthTokenRow = Selectable<AuthTokensTable>
export type LoginFailureRow = Selectable<LoginFailuresTable>
export type PrincipalType = 'user' | 'robot'

/** Deletes every session and refresh token of a user or robot (inside the caller's transaction). */
export async function revokePrincipalTokens(db: Db, type: PrincipalType, id: number): Promise<number> {
  const res = await db.deleteFrom('auth_tokens').where('principal_type', '=', type).where('principal_id', '=', id).executeTakeFirst()
  return Number(res.numDeletedRows)
}

/** Issued sessions and refresh tokens, and the failed-login counters. */
export function createCredentialRepository(db: Db) {
  return {
    async insertToken(t: Omit<AuthTokenRow, 'used_at'>): Promise<void> {
      await db.insertInto('auth_tokens').values({ ...t, used_at: null }).execute()
    },

    async findToken(id: string): Promise<AuthTokenRow | undefined> {
      return db.selectFrom('auth_tokens').selectAll().where('id', '=', id).executeTakeFirst()
    },

    /** Marks a refresh token redeemed; false when it was already (a replay, or a race lost). */
    async markUsed(id: string, now: number): Promise<boolean> {
      const res = await db.updateTable('auth_tokens').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst()
      return Number(res.numUpdatedRows) > 0
    },

    async revoke(id: string): Promise<boolean> {
      const res = await db.deleteFrom('auth_tokens').where('id', '=', id).executeTakeFirst()
      return Number(res.numDeletedRows) > 0
    },

    async revokeFamily(family: string): Promise<number> {
      const res = await db.deleteFrom('auth_tokens').where('family', '=', family).executeTakeFirst()
      return Number(res.numDeletedRows)
    },

    async revokePrincipal(type: PrincipalType, id: number): Promise<number> {
      return revokePrincipalTokens(db, type, id)
    },

    async pruneTokens(now: number): Promise<number> {
      const res = await db.deleteFrom('auth_tokens').where('expires_at', '<', now).executeTakeFirst()
      return Number(res.numDeletedRows)
    },

    /** The counters of a (user, address) pair and of the address ('' user), if any. */
    async failures(username: string, address: string): Promise<LoginFailureRow[]> {
      return db
        .selectFrom('login_failures')
        .selectAll()
        .where('address', '=', address)
        .where('username', 'in', username === '' ? [''] : [username, ''])
        .execute()
    },

    /**
     * Counts one more failure (starting again from 1 when the last one is older than `since`)
     * and returns the new count. An atomic upsert: concurrent failures on several nodes all count.
     */
    async addFailure(username: string, address: string, now: number, since: number): Promise<number> {
      const row = await db
        .insertInto('login_failures')
        .values({ username, address, failures: 1, last_at: now, blocked_until: 0 })
        .onConflict((oc) =>
          oc.columns(['username', 'address']).doUpdateSet({
            failures: sql<number>`case when login_failures.last_at < ${since} then 1 else login_failures.failures + 1 end`,
            last_at: now,
          }),
        )
        .returning('failures')
        .executeTakeFirstOrThrow()
      return Number(row.failures)
    },

    async block(username: string, address: string, until: number): Promise<void> {
      await db.updateTable('login_failures').set({ blocked_until: until }).where('username', '=', username).where('address', '=', address).execute()
    },

    async clearFailures(username: string, address: string): Promise<void> {
      await db.deleteFrom('login_failures').where('username', '=', username).where('address', '=', address).execute()
    },

    async pruneFailures(cutoff: number): Promise<number> {
      const res = await db.deleteFrom('login_failures').where('last_at', '<', cutoff).where('blocked_until', '<', cutoff).executeTakeFirst()
      return Number(res.numDeletedRows)
    },
  }
}

export type CredentialRepository = ReturnType<typeof createCredentialRepository>
