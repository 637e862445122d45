import type { Db } from './repositories.js'

/** Small values shared by every node (the token signing key, for one). */
export function createSettingsRepository(db: Db) {
  return {
    async get(key: string): Promise<string | undefined> {
      return (await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst())?.value
    },

    /** Stores the value unless the key exists; returns the value that is stored afterwards. */
    async putIfAbsent(key: string, value: string): Promise<string> {
      await db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doNothing()).execute()
      return (await this.get(key)) ?? value
    },
  }
}

export type SettingsRepository = ReturnType<typeof createSettingsRepository>
