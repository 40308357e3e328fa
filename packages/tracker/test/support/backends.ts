/**
 * The two real databases the tracker tests run against: SQLite in a temporary file, and the
 * PostgreSQL that `.ci/run` starts (PEAPOD_TEST_POSTGRES; else the same URL on this machine).
 * Each backend is one fresh database (a new file, or a new schema dropped at the end); every
 * `newStore()` opens another connection to it, so two trackers on one backend share state as
 * two instances on one PostgreSQL do. `snapshot()` reads every table through a separate
 * connection, so a test can assert that a refused request changed nothing.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { PostgresStore } from '../../src/postgres-store.js';
import { SqliteStore } from '../../src/sqlite-store.js';
import type { TrackerStore } from '../../src/store.js';

export const LOCAL_POSTGRES = 'postgres://peapod:peapod@127.0.0.1:5432/peapod_test';

export interface Backend {
  readonly name: 'sqlite' | 'postgres';
  newStore(): TrackerStore;
  /** What `peapod tracker --db` takes to open the same database. */
  readonly db: string;
  /** Every row of every table, as sorted JSON. */
  snapshot(): Promise<string>;
  dispose(): Promise<void>;
}

function rowsJson(tables: Record<string, unknown[]>): string {
  return JSON.stringify(tables, (_key, value: unknown) =>
    Buffer.isBuffer(value)
      ? value.toString('hex')
      : typeof value === 'bigint'
        ? String(value)
        : value,
  );
}

const TABLES = {
  bootstrap: 'device_id',
  nodes: 'device_id',
  node_contents: 'content_id, device_id',
} as const;

export async function sqliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'peapod-tracker-'));
  const path = join(dir, 'tracker.db');
  const stores: SqliteStore[] = [];
  return {
    name: 'sqlite',
    db: path,
    newStore() {
      const store = new SqliteStore(path);
      stores.push(store);
      return store;
    },
    async snapshot() {
      const db = new Database(path, { readonly: true });
      try {
        const tables: Record<string, unknown[]> = {};
        for (const [table, key] of Object.entries(TABLES))
          tables[table] = db.prepare(`SELECT * FROM ${table} ORDER BY ${key}`).all();
        return rowsJson(tables);
      } finally {
        db.close();
      }
    },
    async dispose() {
      for (const store of stores) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const POSTGRES_URL = process.env['PEAPOD_TEST_POSTGRES'] ?? LOCAL_POSTGRES;

/**
 * Undefined when PostgreSQL answers, else the sentence saying why its tests skip. Throws when
 * PEAPOD_TEST_POSTGRES is set but does not answer: CI sets it, and there a skip would hide a
 * failure.
 */
export async function postgresSkipReason(): Promise<string | undefined> {
  const configured = process.env['PEAPOD_TEST_POSTGRES'];
  const probe = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
  try {
    await probe.connect();
    await probe.end();
    return undefined;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (configured !== undefined)
      throw new Error(`PEAPOD_TEST_POSTGRES=${configured} does not answer: ${why}`);
    return (
      `PostgreSQL tests skipped: PEAPOD_TEST_POSTGRES is unset and no server answers at ` +
      `${LOCAL_POSTGRES} (${why}). Run .ci/run, or start one: pg_ctlcluster 15 main start.`
    );
  }
}

/** A fresh PostgreSQL schema on the test server. */
export async function postgresBackend(): Promise<Backend> {
  const url = POSTGRES_URL;
  const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await probe.connect();
  const schema = `tracker_test_${randomBytes(6).toString('hex')}`;
  const stores: PostgresStore[] = [];
  return {
    name: 'postgres',
    db: `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    newStore() {
      const store = new PostgresStore({ connectionString: url, schema });
      stores.push(store);
      return store;
    },
    async snapshot() {
      const tables: Record<string, unknown[]> = {};
      for (const [table, key] of Object.entries(TABLES)) {
        const exists = await probe.query(`SELECT to_regclass($1) AS name`, [
          `${schema}.tracker_${table}`,
        ]);
        tables[table] =
          (exists.rows[0] as { name: string | null }).name === null
            ? []
            : (await probe.query(`SELECT * FROM ${schema}.tracker_${table} ORDER BY ${key}`)).rows;
      }
      return rowsJson(tables);
    },
    async dispose() {
      for (const store of stores) await store.close().catch(() => undefined);
      await probe.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await probe.end();
    },
  };
}

export const POSTGRES_SKIP = await postgresSkipReason();
if (POSTGRES_SKIP !== undefined) console.log(`# ${POSTGRES_SKIP}`);

/** Backend factories for `eachBackend`. */
export const BACKENDS = [
  { name: 'sqlite', open: sqliteBackend, skip: undefined },
  { name: 'postgres', open: postgresBackend, skip: POSTGRES_SKIP },
] as const;
