/**
 * The gateway's object index in SQLite (DESIGN.md decision 19): for each cached object, the
 * content that holds its bytes in the store and what is needed to answer for it as the origin
 * would (status line fields, freshness inputs, usage for eviction).
 *
 * Theory of operation
 * - One row per cache key (the upstream URL without credentials: routes.ts and the caller make
 *   it). A key maps to exactly one version; storing a new version replaces the row (the caller
 *   removes the old content from the store).
 * - `headers` are the origin's end-to-end response fields worth replaying (content-type, etag,
 *   last-modified, cache-control, expires, content-encoding, content-disposition,
 *   content-language, x-amz-*), as a JSON array of [name, value] pairs in their order.
 * - Times: `storedAtMs` and `responseDateMs` are wall-clock (Unix ms), as freshness needs;
 *   `lastUsedMs` is wall-clock too, for eviction across restarts.
 * - WAL with `synchronous = NORMAL`: a crash loses at most the last commits; a row whose content
 *   the store no longer holds is dropped by the caller when a read finds it gone.
 * Plain data in, plain data out; nothing here touches the store or the network.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export interface CachedObject {
  readonly key: string;
  readonly contentId: Uint8Array;
  readonly totalBytes: number;
  /** [name, value] pairs, lowercase names. */
  readonly headers: readonly (readonly [string, string])[];
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly storedAtMs: number;
  /** The response's `Date` (Unix ms), or when it was received when it had none. */
  readonly responseDateMs: number;
  /** The `Age` the origin's response carried, in ms (0 without one). */
  readonly ageAtStoreMs: number;
  /** Fetched with credentials: every request for it is revalidated with the origin first. */
  readonly private: boolean;
  readonly hits: number;
  readonly lastUsedMs: number;
}

interface Row {
  key: string;
  content_id: Buffer;
  total_bytes: number;
  headers: string;
  etag: string | null;
  last_modified: string | null;
  stored_at_ms: number;
  response_date_ms: number;
  age_at_store_ms: number;
  private: number;
  hits: number;
  last_used_ms: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS objects (
  key TEXT PRIMARY KEY,
  content_id BLOB NOT NULL,
  total_bytes INTEGER NOT NULL,
  headers TEXT NOT NULL,
  etag TEXT,
  last_modified TEXT,
  stored_at_ms INTEGER NOT NULL,
  response_date_ms INTEGER NOT NULL,
  age_at_store_ms INTEGER NOT NULL,
  private INTEGER NOT NULL,
  hits INTEGER NOT NULL DEFAULT 0,
  last_used_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_content ON objects (content_id);
`;

export class ObjectIndex {
  private readonly db: Database.Database;

  /** Opens (creating) the index at `path`. @throws when the file is not an SQLite database. */
  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
  }

  /** One prepared statement per SQL text (preparing is most of a hit's index cost). */
  private readonly statements = new Map<string, Database.Statement>();
  private prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  get(key: string): CachedObject | undefined {
    const row = this.prepare('SELECT * FROM objects WHERE key = ?').get(key) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  /** Stores (or replaces) the row for `object.key`; returns the content it replaced, if another. */
  put(object: Omit<CachedObject, 'hits' | 'lastUsedMs'>, nowMs: number): Uint8Array | undefined {
    const previous = this.get(object.key);
    this.prepare(
      `INSERT OR REPLACE INTO objects (key, content_id, total_bytes, headers, etag, last_modified,
           stored_at_ms, response_date_ms, age_at_store_ms, private, hits, last_used_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
    ).run(
      object.key,
      Buffer.from(object.contentId),
      object.totalBytes,
      JSON.stringify(object.headers),
      object.etag ?? null,
      object.lastModified ?? null,
      object.storedAtMs,
      object.responseDateMs,
      object.ageAtStoreMs,
      object.private ? 1 : 0,
      nowMs,
    );
    if (previous === undefined || Buffer.from(previous.contentId).equals(object.contentId))
      return undefined;
    return previous.contentId;
  }

  /** A revalidation confirmed the stored version (304): freshness starts again. */
  refreshed(key: string, responseDateMs: number, nowMs: number): void {
    this.prepare(
      'UPDATE objects SET stored_at_ms = ?, response_date_ms = ?, age_at_store_ms = 0 WHERE key = ?',
    ).run(nowMs, responseDateMs, key);
  }

  used(key: string, nowMs: number): void {
    this.prepare('UPDATE objects SET hits = hits + 1, last_used_ms = ? WHERE key = ?').run(
      nowMs,
      key,
    );
  }

  remove(key: string): void {
    this.prepare('DELETE FROM objects WHERE key = ?').run(key);
  }

  /** Whether another key still uses `contentId` (the same bytes under two URLs). */
  contentInUse(contentId: Uint8Array): boolean {
    return (
      this.prepare('SELECT 1 FROM objects WHERE content_id = ? LIMIT 1').get(
        Buffer.from(contentId),
      ) !== undefined
    );
  }

  all(): CachedObject[] {
    return (this.prepare('SELECT * FROM objects ORDER BY key').all() as Row[]).map(fromRow);
  }

  totalBytes(): number {
    const row = this.prepare('SELECT COALESCE(SUM(total_bytes), 0) AS n FROM objects').get() as {
      n: number;
    };
    return row.n;
  }

  close(): void {
    this.db.close();
  }
}

function fromRow(row: Row): CachedObject {
  let headers: [string, string][] = [];
  try {
    const parsed: unknown = JSON.parse(row.headers);
    if (Array.isArray(parsed))
      headers = parsed.filter(
        (pair): pair is [string, string] =>
          Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string',
      );
  } catch {
    // A garbled row replays no fields; the bytes are still verified by the store.
  }
  return {
    key: row.key,
    contentId: new Uint8Array(row.content_id),
    totalBytes: row.total_bytes,
    headers,
    etag: row.etag ?? undefined,
    lastModified: row.last_modified ?? undefined,
    storedAtMs: row.stored_at_ms,
    responseDateMs: row.response_date_ms,
    ageAtStoreMs: row.age_at_store_ms,
    private: row.private !== 0,
    hits: row.hits,
    lastUsedMs: row.last_used_ms,
  };
}
