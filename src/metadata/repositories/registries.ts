import type { Selectable } from 'kysely'
import type { RegistryEndpointsTable } from '../schema.js'
import type { Db } from './repositories.js'

export type RegistryEndpointRow = Selectable<RegistryEndpointsTable>

export interface RegistryEndpointValues {
  url: string
  username: string | null
  /** already encrypted */
  password: string | null
  insecure: boolean
  caCertificate: string | null
}

/** Rows of registry_endpoints; the password column holds ciphertext only (the service encrypts). */
export function createRegistryEndpointRepository(db: Db) {
  return {
    async find(name: string): Promise<RegistryEndpointRow | undefined> {
      return db.selectFrom('registry_endpoints').selectAll().where('name', '=', name).executeTakeFirst()
    },

    async list(): Promise<RegistryEndpointRow[]> {
      return db.selectFrom('registry_endpoints').selectAll().orderBy('name').execute()
    },

    /** false when the name is taken */
    async insert(name: string, v: RegistryEndpointValues, now: number): Promise<boolean> {
      const res = await db
        .insertInto('registry_endpoints')
        .values({
          name,
          url: v.url,
          username: v.username,
          password: v.password,
          insecure: v.insecure ? 1 : 0,
          ca_certificate: v.caCertificate,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst()
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0
    },

    /** false when there is no such endpoint */
    async update(name: string, v: RegistryEndpointValues, now: number): Promise<boolean> {
      const res = await db
        .updateTable('registry_endpoints')
        .set({ url: v.url, username: v.username, password: v.password, insecure: v.insecure ? 1 : 0, ca_certificate: v.caCertificate, updated_at: now })
        .where('name', '=', name)
        .executeTakeFirst()
      return Number(res.numUpdatedRows) > 0
    },

    async delete(name: string): Promise<boolean> {
      const res = await db.deleteFrom('registry_endpoints').where('name', '=', name).executeTakeFirst()
      return Number(res.numDeletedRows) > 0
    },
  }
}

export type RegistryEndpointRepository = ReturnType<typeof createRegistryEndpointRepository>
