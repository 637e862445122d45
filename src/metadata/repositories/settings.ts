import type { Db } from './repositories.js'

/** The settings key of the GC cron expression set through the API (honoured over gc.schedule). */
export const GC_SCHEDULE_SETTING = 'gc.schedule'

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

    // --- the GC schedule set through the API ---------------------------------------------------

    async gcSchedule(): Promise<string | undefined> {
      return this.get(GC_SCHEDULE_SETTING)
    },

    /** Stores the expression; undefined removes it (gc.schedule of the config applies again). */
    async setGcSchedule(expression: string | undefined): Promise<void> {
      if (expression === undefined) {
        await db.deleteFrom('settings').where('key', '=', GC_SCHEDULE_SETTING).execute()
        return
      }
      await db
        .insertInto('settings')
        .values({ key: GC_SCHEDULE_SETTING, value: expression })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: expression }))
        .execute()
    },
  }
}

export type SettingsRepository = ReturnType<typeof createSettingsRepository>
