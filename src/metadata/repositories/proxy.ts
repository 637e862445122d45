import { sql } from 'kysely'
import type { Db } from './repositories.js'

/** Rows of the proxy cache: when tags were checked upstream, and the cluster-wide fetch leases. */
export function createProxyRepository(db: Db) {
  return {
    async tagChecked(repository: string, tag: string): Promise<{ digest: string; checkedAt: number } | undefined> {
      const row = await db.selectFrom('proxy_tags').select(['digest', 'checked_at']).where('repository', '=', repository).where('tag', '=', tag).executeTakeFirst()
      return row && { digest: row.digest, checkedAt: Number(row.checked_at) }
    },

    async markTagChecked(repository: string, tag: string, digest: string, now: number): Promise<void> {
      await db
        .insertInto('proxy_tags')
        .values({ repository, tag, digest, checked_at: now })
        .onConflict((oc) => oc.columns(['repository', 'tag']).doUpdateSet({ digest, checked_at: now }))
        .execute()
    },

    /**
     * Takes the lease of `key` for `owner` until `expiresAt`: when nobody holds it, when its
     * holder's lease has expired (a dead node), or when `owner` holds it already (a renewal).
     * True when `owner` holds it now.
     */
    async acquire(key: string, owner: string, now: number, expiresAt: number): Promise<boolean> {
      await db
        .insertInto('proxy_fetches')
        .values({ key, owner, expires_at: expiresAt })
        .onConflict((oc) =>
          oc
            .column('key')
            .doUpdateSet({ owner, expires_at: expiresAt })
            .where((eb) => eb.or([eb('proxy_fetches.owner', '=', owner), eb('proxy_fetches.expires_at', '<', now)])),
        )
        .execute()
      const row = await db.selectFrom('proxy_fetches').select('owner').where('key', '=', key).executeTakeFirst()
      return row?.owner === owner
    },

    /** Whether someone other than `owner` holds a live lease of `key`. */
    async heldByOther(key: string, owner: string, now: number): Promise<boolean> {
      const row = await db.selectFrom('proxy_fetches').select(['owner', 'expires_at']).where('key', '=', key).executeTakeFirst()
      return row !== undefined && row.owner !== owner && Number(row.expires_at) >= now
    },

    async release(key: string, owner: string): Promise<void> {
      await db.deleteFrom('proxy_fetches').where('key', '=', key).where('owner', '=', owner).execute()
    },

    /** Removes leases that expired before `before` (their holders died). */
    async pruneLeases(before: number): Promise<number> {
      const res = await db.deleteFrom('proxy_fetches').where('expires_at', '<', before).executeTakeFirst()
      return Number(res.numDeletedRows)
    },

    /** Forgets the check times of the repositories of a project (its proxy settings changed). */
    async forgetProject(project: string): Promise<void> {
      await db.deleteFrom('proxy_tags').where(sql<boolean>`substr(repository, 1, ${project.length + 1}) = ${`${project}/`}`).execute()
    },
  }
}

export type ProxyRepository = ReturnType<typeof createProxyRepository>
