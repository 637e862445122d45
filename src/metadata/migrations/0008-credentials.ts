import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Credentials that end, and principals referred to by id (src/auth):
// - auth_tokens: every UI session and refresh token Berth issues, keyed by the token's id (its
//   JWT `jti`) and bound to the id of the user or robot it was issued to. A password change, a
//   robot secret rotation, a deletion or a logout deletes rows, which every node sees at once.
// - login_failures: failed logins per (user name, address) and per address (user name ''), so
//   the exponential delay survives restarts and holds across nodes.
// - project_members.user_id: a user membership belongs to the user's row, and goes with it.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType

  await db.schema
    .createTable('auth_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** session | refresh */
    .addColumn('kind', 'text', (c) => c.notNull())
    /** user | robot */
    .addColumn('principal_type', 'text', (c) => c.notNull())
    .addColumn('principal_id', big, (c) => c.notNull())
    /** refresh tokens: the id of the family's first token (a login); sessions: their own id */
    .addColumn('family', 'text', (c) => c.notNull())
    /** 0/1: the token docker login stores, which docker presents again and again */
    .addColumn('reusable', 'integer', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    /** when a refresh token was redeemed (presenting it again revokes the family) */
    .addColumn('used_at', big)
    .execute()
  await db.schema.createIndex('auth_tokens_principal').on('auth_tokens').columns(['principal_type', 'principal_id']).execute()
  await db.schema.createIndex('auth_tokens_family').on('auth_tokens').column('family').execute()
  await db.schema.createIndex('auth_tokens_expires').on('auth_tokens').column('expires_at').execute()

  await db.schema
    .createTable('login_failures')
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('last_at', big, (c) => c.notNull())
    /** no password is checked for this pair before then (answered 429) */
    .addColumn('blocked_until', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('login_failures_pk', ['username', 'address'])
    .execute()
  await db.schema.createIndex('login_failures_last').on('login_failures').column('last_at').execute()

  await db.schema
    .alterTable('project_members')
    .addColumn('user_id', big, (c) => c.references('users.id').onDelete('cascade'))
    .execute()
  await sql`update project_members set user_id = (select u.id from users u where u.username = project_members.member_name) where member_type = 'user'`.execute(db)
  // A membership whose user was deleted would pass to the next user of that name: drop it.
  await sql`delete from project_members where member_type = 'user' and user_id is null`.execute(db)
  await db.schema.createIndex('project_members_user').on('project_members').column('user_id').execute()
}
