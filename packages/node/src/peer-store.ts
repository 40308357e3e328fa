/**
 * The persisted gossip peer table: `peers.db` in the data directory (SQLite in WAL mode,
 * DESIGN.md decision 19), so a restarted daemon rejoins the gossip without a tracker.
 *
 * Theory of operation
 * - What a row is: one device beyond the pod, as the core's gossip engine learnt it: its signed
 *   peer record exactly as it travelled (gossip/peer-record.ts), where it was learnt (`source`:
 *   gossip, tracker, cache, link), when it was last heard (wall clock, Unix ms) and its score
 *   (0..1). The record is the only place an address lives, and a record carries one only when
 *   its device signed it with the broadcast flag: a silent device's address cannot be stored
 *   here because no record of it holds one. `upsert` checks that (and the signature) again on
 *   the way in, and `open` on the way out, so a row written by anything else is dropped.
 * - Who writes: the daemon, on the core's `gossip:peer` events (learned/updated: upsert;
 *   expired/left: delete), and once more on stop with the engine's last-heard times and scores.
 *   At start its records go back to the core as `gossip-records` with source 'cache'; the core
 *   verifies them again and decides what is still fresh.
 * - Bounded: at most `rowsMax` rows; past it, the rows heard from longest ago go first.
 * - A damaged file is a sentence, not a crash: `open` moves it aside (`peers.db.broken-<time>`,
 *   with its -wal and -shm files) and starts an empty table, and says so in `movedAside`. Only
 *   peer discovery is lost, and the tracker or `--peer` rebuild it.
 */
import { rename } from 'node:fs/promises';
import Database from 'better-sqlite3';
import {
  openPeerRecord,
  peerRecordDeviceId,
  toHex,
  type CryptoProvider,
  type GossipSource,
} from '@peapod/core';

/** Rows kept by default: far more than the engine's active view needs to rejoin. */
export const PEER_STORE_ROWS_DEFAULT = 1_000;

const SCHEMA_VERSION = 1;

/**
 * Schema version 1. `record` is the signed peer record as it travelled; `device_id` (hex) is
 * derived from the record's key, never taken from elsewhere.
 */
const SCHEMA = `
CREATE TABLE peers (
  device_id TEXT PRIMARY KEY NOT NULL,
  record BLOB NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('gossip', 'tracker', 'cache', 'link')),
  last_heard_at_ms INTEGER NOT NULL,
  score REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX peers_by_last_heard ON peers (last_heard_at_ms);
`;

/** One row of the table. */
export interface StoredPeer {
  readonly deviceIdHex: string;
  readonly record: Uint8Array;
  readonly source: GossipSource;
  /** Wall clock (Unix ms). */
  readonly lastHeardAtMs: number;
  readonly score: number;
}

interface RawRow {
  device_id: string;
  record: Buffer;
  source: GossipSource;
  last_heard_at_ms: number;
  score: number;
}

const SOURCES: ReadonlySet<string> = new Set(['gossip', 'tracker', 'cache', 'link']);

export class PeerStore {
  private readonly statements;

  private constructor(
    private readonly db: Database.Database,
    private readonly crypto: CryptoProvider,
    private readonly rowsMax: number,
  ) {
    this.statements = {
      upsert: db.prepare(`INSERT INTO peers VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (device_id) DO UPDATE SET record = excluded.record,
          source = excluded.source, last_heard_at_ms = excluded.last_heard_at_ms,
          score = excluded.score`),
      heard: db.prepare(
        `UPDATE peers SET last_heard_at_ms = max(last_heard_at_ms, ?), score = ? WHERE device_id = ?`,
      ),
      remove: db.prepare(`DELETE FROM peers WHERE device_id = ?`),
      count: db.prepare(`SELECT count(*) FROM peers`).pluck(),
      trim: db.prepare(`DELETE FROM peers WHERE device_id IN
        (SELECT device_id FROM peers ORDER BY last_heard_at_ms ASC, device_id LIMIT ?)`),
      all: db.prepare(`SELECT * FROM peers ORDER BY last_heard_at_ms DESC, device_id`),
    };
  }

  /**
   * Opens (creating it if needed) the table at `path`. A file that is not a readable peer table
   * of this version is moved aside and replaced by an empty one; `movedAside` then says where
   * it went and why, for the log.
   */
  static async open(
    path: string,
    options: { readonly crypto: CryptoProvider; readonly rowsMax?: number },
  ): Promise<{ store: PeerStore; movedAside: string | undefined }> {
    const rowsMax = options.rowsMax ?? PEER_STORE_ROWS_DEFAULT;
    try {
      return { store: PeerStore.openFile(path, options.crypto, rowsMax), movedAside: undefined };
    } catch (error) {
      const aside = `${path}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      for (const suffix of ['', '-wal', '-shm']) {
        await rename(`${path}${suffix}`, `${aside}${suffix}`).catch(() => undefined);
      }
      const store = PeerStore.openFile(path, options.crypto, rowsMax);
      const why = (error as Error).message;
      return {
        store,
        movedAside:
          `The gossip peer table ${path} could not be read (${why}); it was moved to ${aside} ` +
          'and this daemon starts with an empty table (trackers and --peer find peers again).',
      };
    }
  }

  private static openFile(path: string, crypto: CryptoProvider, rowsMax: number): PeerStore {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const version = db.pragma('user_version', { simple: true }) as number;
      const tables = db
        .prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`)
        .pluck()
        .get() as number;
      if (version === 0 && tables === 0) {
        db.transaction(() => {
          db.exec(SCHEMA);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      } else if (version !== SCHEMA_VERSION) {
        throw new Error(`schema version ${version}, this PeaPod reads ${SCHEMA_VERSION}`);
      }
      const check = db.pragma('quick_check', { simple: true }) as string;
      if (check !== 'ok') throw new Error(`SQLite quick_check: ${check}`);
      const store = new PeerStore(db, crypto, rowsMax);
      store.dropInvalidRows();
      return store;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /**
   * Records the peer `record` speaks for (its Device ID comes from the record's key). Returns
   * false, writing nothing, when the record does not verify or breaks a record rule (an
   * address without the broadcast flag is one).
   */
  upsert(record: Uint8Array, source: GossipSource, lastHeardAtMs: number, score: number): boolean {
    const opened = openPeerRecord(this.crypto, record);
    if (!opened.ok || !SOURCES.has(source)) return false;
    const hex = toHex(peerRecordDeviceId(this.crypto, opened.record));
    this.db
      .transaction(() => {
        this.statements.upsert.run(hex, Buffer.from(record), source, lastHeardAtMs, score);
        const over = (this.statements.count.get() as number) - this.rowsMax;
        if (over > 0) this.statements.trim.run(over);
      })
      .immediate();
    return true;
  }

  /** The engine heard from a stored peer (stop writes this); later times win. */
  heard(deviceIdHex: string, lastHeardAtMs: number, score: number): void {
    this.statements.heard.run(lastHeardAtMs, score, deviceIdHex);
  }

  remove(deviceIdHex: string): void {
    this.statements.remove.run(deviceIdHex);
  }

  /** Every row, most recently heard first. */
  rows(): StoredPeer[] {
    return (this.statements.all.all() as RawRow[]).map((row) => ({
      deviceIdHex: row.device_id,
      record: new Uint8Array(row.record),
      source: row.source,
      lastHeardAtMs: row.last_heard_at_ms,
      score: row.score,
    }));
  }

  close(): void {
    this.db.close();
  }

  /** Rows whose record does not verify, or names another device, are not kept. */
  private dropInvalidRows(): void {
    for (const row of this.statements.all.all() as RawRow[]) {
      const opened = Buffer.isBuffer(row.record)
        ? openPeerRecord(this.crypto, new Uint8Array(row.record))
        : undefined;
      const valid =
        opened?.ok === true &&
        toHex(peerRecordDeviceId(this.crypto, opened.record)) === row.device_id &&
        SOURCES.has(row.source);
      if (!valid) this.statements.remove.run(row.device_id);
    }
  }
}
