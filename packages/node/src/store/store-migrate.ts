/**
 * Brings a store index to the schema this code reads (store-schema.ts), inside the transaction
 * that opens it (store-index.ts), so a crash mid-upgrade leaves the old version whole.
 *
 * Theory of operation: a database without a `schema_version` table is new and gets `SCHEMA`.
 * Otherwise its one version row decides: this version, nothing to do; an older one, each step
 * of `MIGRATIONS` from it up, then the row says the new version; a newer one (written by a
 * newer PeaPod) or a row that is not a version at all is refused with a sentence, the file
 * untouched: a downgrade would lose what the newer code recorded.
 */
import type Database from 'better-sqlite3';
import { MIGRATIONS, SCHEMA, SCHEMA_VERSION } from './store-schema.js';

/** The index cannot be read by this code (the message says why and what to do). */
export class StoreSchemaError extends Error {
  override readonly name = 'StoreSchemaError';
}

/**
 * Creates or upgrades the schema of the index at `path` (call inside a write transaction).
 * @throws StoreSchemaError for a newer or unreadable version.
 */
export function migrateSchema(db: Database.Database, path: string): void {
  const exists = db
    .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`)
    .pluck()
    .get();
  if (exists === undefined) {
    db.exec(SCHEMA);
    db.prepare(`INSERT INTO schema_version VALUES (?)`).run(SCHEMA_VERSION);
    return;
  }
  const versions = db.prepare(`SELECT version FROM schema_version`).pluck().all();
  const version = versions[0];
  if (versions.length !== 1 || !Number.isSafeInteger(version) || (version as number) < 1) {
    throw new StoreSchemaError(
      `The chunk store index ${path} has no readable schema version (${JSON.stringify(versions)}); it is damaged or not a PeaPod store: move the store directory aside and restart (the store starts empty, so what you shared must be shared again with peapod share).`,
    );
  }
  const from = version as number;
  if (from > SCHEMA_VERSION) {
    throw new StoreSchemaError(
      `The chunk store index ${path} has schema version ${from}, written by a newer PeaPod, and this PeaPod reads versions up to ${SCHEMA_VERSION}; run the newer PeaPod, or move the store directory aside to start an empty one.`,
    );
  }
  for (let at = from; at < SCHEMA_VERSION; at++) {
    const step = MIGRATIONS[at];
    if (step === undefined) {
      throw new StoreSchemaError(
        `The chunk store index ${path} has schema version ${from}, which this PeaPod cannot upgrade (no step from version ${at}); move the store directory aside and restart.`,
      );
    }
    db.exec(step);
  }
  if (from !== SCHEMA_VERSION) {
    db.prepare(`UPDATE schema_version SET version = ?`).run(SCHEMA_VERSION);
  }
}
