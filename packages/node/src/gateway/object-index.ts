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
 * - Reads come from memory: every row is loaded at open and kept in a map that each write
 *   updates with the database (a hit costs no SQL; one row per object, a few hundred bytes).
 * - Usage (`used`: hits and last use) is written in batches: at the `USES_PER_FLUSH`th unwritten
 *   use, at the first use `FLUSH_AFTER_MS` or more after the oldest unwritten one, and at
 *   `close`. Until then it is exact in memory, where eviction reads it; a crash loses at most
 *   the unwritten usage.
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

/** Unwritten uses that trigger a write of usage, and how long one may stay unwritten. */
const USES_PER_FLUSH = 1024;
const FLUSH_AFTER_MS = 1_000;

export class ObjectIndex {
  private readonly db: Database.Database;
  private readonly rows = new Map<string, CachedObject>();
  /** Keys whose hits and last use changed since the last write. */
  private readonly unwritten = new Set<string>();
  private unwrittenUses = 0;
  private firstUnwrittenMs = 0;
  private bytes = 0;
  /** Keys per content (hex): the same bytes may be cached under two URLs. */
  private readonly keysPerContent = new Map<string, number>();

  /** Opens (creating) the index at `path`. @throws when the file is not an SQLite database. */
  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    for (const row of this.db.prepare('SELECT * FROM objects').all() as Row[])
      this.keep(fromRow(row));
  }

  /** One prepared statement per SQL text. */
  private readonly statements = new Map<string, Database.Statement>();
  private prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  private keep(object: CachedObject): void {
    this.forget(object.key);
    this.bytes += object.totalBytes;
    const hex = Buffer.from(object.contentId).toString('hex');
    this.keysPerContent.set(hex, (this.keysPerContent.get(hex) ?? 0) + 1);
    this.rows.set(object.key, object);
  }

  private forget(key: string): void {
    const object = this.rows.get(key);
    if (object === undefined) return;
    this.rows.delete(key);
    this.bytes -= object.totalBytes;
    const hex = Buffer.from(object.contentId).toString('hex');
    const keys = (this.keysPerContent.get(hex) ?? 1) - 1;
    if (keys > 0) this.keysPerContent.set(hex, keys);
    else this.keysPerContent.delete(hex);
  }

  get(key: string): CachedObject | undefined {
    return this.rows.get(key);
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
    this.unwritten.delete(object.key);
    this.keep({
      ...object,
      contentId: new Uint8Array(object.contentId),
      hits: 0,
      lastUsedMs: nowMs,
    });
    if (previous === undefined || Buffer.from(previous.contentId).equals(object.contentId))
      return undefined;
    return previous.contentId;
  }

  /** A revalidation confirmed the stored version (304): freshness starts again. */
  refreshed(key: string, responseDateMs: number, nowMs: number): void {
    const object = this.rows.get(key);
    if (object === undefined) return;
    this.prepare(
      'UPDATE objects SET stored_at_ms = ?, response_date_ms = ?, age_at_store_ms = 0 WHERE key = ?',
    ).run(nowMs, responseDateMs, key);
    this.keep({ ...object, storedAtMs: nowMs, responseDateMs, ageAtStoreMs: 0 });
  }

  used(key: string, nowMs: number): void {
    const object = this.rows.get(key);
    if (object === undefined) return;
    // In place: a hit changes only usage, so what callers derived from the object stays valid.
    const usage = object as { hits: number; lastUsedMs: number };
    usage.hits++;
    usage.lastUsedMs = nowMs;
    if (this.unwrittenUses++ === 0) this.firstUnwrittenMs = nowMs;
    this.unwritten.add(key);
    if (this.unwrittenUses >= USES_PER_FLUSH || nowMs - this.firstUnwrittenMs >= FLUSH_AFTER_MS)
      this.writeUsage();
  }

  /** Writes the unwritten hits and last uses in one transaction. */
  private writeUsage(): void {
    const update = this.prepare('UPDATE objects SET hits = ?, last_used_ms = ? WHERE key = ?');
    this.db.transaction(() => {
      for (const key of this.unwritten) {
        const object = this.rows.get(key);
        if (object !== undefined) update.run(object.hits, object.lastUsedMs, key);
      }
    })();
    this.unwritten.clear();
    this.unwrittenUses = 0;
  }

  remove(key: string): void {
    this.prepare('DELETE FROM objects WHERE key = ?').run(key);
    this.unwritten.delete(key);
    this.forget(key);
  }

  /** Whether another key still uses `contentId` (the same bytes under two URLs). */
  contentInUse(contentId: Uint8Array): boolean {
    return this.keysPerContent.has(Buffer.from(contentId).toString('hex'));
  }

  /** Every object, by key. */
  all(): CachedObject[] {
    return [...this.rows.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  totalBytes(): number {
    return this.bytes;
  }

  close(): void {
    if (this.unwritten.size > 0) this.writeUsage();
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
