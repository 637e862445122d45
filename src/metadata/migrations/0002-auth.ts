import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Identity and tenancy: users, projects and their members, robot accounts, the audit log, and
// settings shared by every node (such as the token signing key).
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  const serial = caps.dialect === 'postgres' ? 'bigserial' : 'integer'
  // Flags are 0/1 integers on both dialects (SQLite has no boolean to bind).
  const bool = 'integer'

  await db.schema
    .createTable('users')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('password_hash', 'text')
    .addColumn('email', 'text')
    .addColumn('admin', bool, (c) => c.notNull())
    .addColumn('disabled', bool, (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('cli_secret_hash', 'text')
    .addColumn('groups', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addColumn('last_login_at', big)
    .execute()

  await db.schema
    .createTable('projects')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('public', bool, (c) => c.notNull())
    .addColumn('quota_bytes', big)
    .addColumn('created_at', big, (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('project_members')
    .addColumn('project_id', big, (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('member_type', 'text', (c) => c.notNull())
    .addColumn('member_name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('project_members_pk', ['project_id', 'member_type', 'member_name'])
    .execute()

  await db.schema
    .createTable('robots')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('project_id', big, (c) => c.references('projects.id').onDelete('cascade'))
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('permissions', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('expires_at', big)
    .addColumn('disabled', bool, (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('last_used_at', big)
    .execute()

  await db.schema
    .createTable('audit_log')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('at', big, (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('actor_type', 'text', (c) => c.notNull())
    .addColumn('address', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('project', 'text')
    .addColumn('repository', 'text')
    .addColumn('resource', 'text')
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('detail', 'text')
    .execute()
  await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute()
  await db.schema.createIndex('audit_log_project').on('audit_log').columns(['project', 'at']).execute()

  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute()
}
