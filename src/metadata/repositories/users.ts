import type { Selectable } from 'kysely'
import type { UsersTable } from '../schema.js'
import { revokePrincipalTokens } from './credentials.js'
import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

export type UserRow = Selectable<UsersTable>

export interface NewUser {
  username: string
  passwordHash: string | null
  email: string | null
  admin: boolean
  source: 'local' | 'oidc' | 'ldap'
  groups?: string[]
}

export function createUserRepository(db: Db, changes: ChangeFeed) {
  return {
    async find(username: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst()
    },

    async list(limit: number, offset: number): Promise<UserRow[]> {
      return db.selectFrom('users').selectAll().orderBy('username').limit(limit).offset(offset).execute()
    },

    async count(): Promise<number> {
      const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      return Number(row.n)
    },

    /** Inserts the user; false when the name is taken. */
    async insert(u: NewUser, now: number): Promise<boolean> {
      const res = await db
        .insertInto('users')
        .values({
          username: u.username,
          password_hash: u.passwordHash,
          email: u.email,
          admin: u.admin ? 1 : 0,
          disabled: 0,
          source: u.source,
          groups: u.groups ? JSON.stringify(u.groups) : null,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('username').doNothing())
        .executeTakeFirst()
      changes.changed('user')
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0
    },

    /**
     * Changes a user. `revoke`: also ends every session and refresh token of the user, in the same
     * transaction (a password change, a new CLI secret, disabling).
     */
    async update(
      username: string,
      patch: { passwordHash?: string; email?: string | null; admin?: boolean; disabled?: boolean; cliSecretHash?: string; groups?: string[]; lastLoginAt?: number },
      now: number,
      opts: { revoke?: boolean } = {},
    ): Promise<boolean> {
      const change = (trx: Db) =>
        trx
          .updateTable('users')
          .set({
            updated_at: now,
            ...(patch.passwordHash !== undefined ? { password_hash: patch.passwordHash } : {}),
            ...(patch.email !== undefined ? { email: patch.email } : {}),
            ...(patch.admin !== undefined ? { admin: patch.admin ? 1 : 0 } : {}),
            ...(patch.disabled !== undefined ? { disabled: patch.disabled ? 1 : 0 } : {}),
            ...(patch.cliSecretHash !== undefined ? { cli_secret_hash: patch.cliSecretHash } : {}),
            ...(patch.groups !== undefined ? { groups: JSON.stringify(patch.groups) } : {}),
            ...(patch.lastLoginAt !== undefined ? { last_login_at: patch.lastLoginAt } : {}),
          })
          .where('username', '=', username)
          .returning('id')
          .executeTakeFirst()
      try {
        if (!opts.revoke) return (await change(db)) !== undefined
        return await db.transaction().execute(async (trx) => {
          const row = await change(trx)
          if (row) await revokePrincipalTokens(trx, 'user', row.id)
          return row !== undefined
        })
      } finally {
        // The last login time alone is no change the access caches hold.
        if (Object.keys(patch).some((k) => k !== 'lastLoginAt')) changes.changed('user')
      }
    },

    /** Records a successful login (nothing else changes, updated_at included). */
    async recordLogin(username: string, now: number): Promise<void> {
      await db.updateTable('users').set({ last_login_at: now }).where('username', '=', username).execute()
    },

    /** Deletes the user with its memberships and its sessions and refresh tokens, in one transaction. */
    async delete(username: string): Promise<boolean> {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx.selectFrom('users').select('id').where('username', '=', username).executeTakeFirst()
          if (!row) return false
          await revokePrincipalTokens(trx, 'user', row.id)
          await trx.deleteFrom('project_members').where('user_id', '=', row.id).execute()
          await trx.deleteFrom('users').where('id', '=', row.id).execute()
          return true
        })
      } finally {
        changes.changed('user', 'member')
      }
    },
  }
}

export type UserRepository = ReturnType<typeof createUserRepository>
