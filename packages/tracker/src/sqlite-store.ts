/**
 * The embedded store: one SQLite database (better-sqlite3) in WAL mode, for a single tracker
 * instance (a file path, or ":memory:" for tests). better-sqlite3 is synchronous, so each
 * method runs its statements in one transaction and no other request interleaves; the rules it
 * enforces are the ones store.ts lists, in the same SQL shape as postgres-store.ts.
 */
import Database from 'better-sqlite3';
import type {
  BootstrapEntry,
  ListedNode,
  NodeEntry,
  PutResult,
  RequestClaim,
  SignedResult,
  TrackerStore,
} from './store.js';
import { bytes, holdersByContent, issuedAt, listedNode, type NodeRow } from './store-rows.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bootstrap (
  device_id TEXT PRIMARY KEY,
  record BLOB,
  issued_at_ms INTEGER NOT NULL,
  request_ms INTEGER NOT NULL DEFAULT 0,
  expires_at_ms INTEGER NOT NULL,
  sample_key INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bootstrap_sample ON bootstrap (sample_key);
CREATE INDEX IF NOT EXISTS bootstrap_expiry ON bootstrap (expires_at_ms);
CREATE TABLE IF NOT EXISTS nodes (
  device_id TEXT PRIMARY KEY,
  record BLOB NOT NULL,
  issued_at_ms INTEGER NOT NULL,
  request_ms INTEGER NOT NULL DEFAULT 0,
  last_heartbeat_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_expiry ON nodes (expires_at_ms);
CREATE TABLE IF NOT EXISTS node_contents (
  content_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  PRIMARY KEY (content_id, device_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS node_contents_device ON node_contents (device_id);
`;

type Statement = Database.Statement<unknown[], unknown>;

export class SqliteStore implements TrackerStore {
  private db: Database.Database | undefined;
  private readonly statements = new Map<string, Statement>();

  constructor(readonly path: string) {}

  async open(): Promise<void> {
    if (this.db !== undefined) return;
    const db = new Database(this.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    this.db = db;
  }

  private get database(): Database.Database {
    if (this.db === undefined) throw new Error('SqliteStore: open() first');
    return this.db;
  }

  private sql(text: string): Statement {
    let statement = this.statements.get(text);
    if (statement === undefined) {
      statement = this.database.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  async putBootstrap(entry: BootstrapEntry): Promise<PutResult> {
    const { changes } = this.sql(
      `INSERT INTO bootstrap (device_id, record, issued_at_ms, request_ms, expires_at_ms, sample_key)
       VALUES (?, ?, ?, 0, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET record = excluded.record,
         issued_at_ms = excluded.issued_at_ms, expires_at_ms = excluded.expires_at_ms
       WHERE bootstrap.issued_at_ms < excluded.issued_at_ms`,
    ).run(entry.deviceIdHex, entry.record, entry.issuedAtMs, entry.expiresAtMs, entry.sampleKey);
    return changes === 1 ? 'stored' : 'not-newer';
  }

  async removeBootstrap(claim: RequestClaim, tombstoneUntilMs: number): Promise<SignedResult> {
    return this.database.transaction((): SignedResult => {
      const { changes } = this.sql(
        `UPDATE bootstrap SET record = NULL, request_ms = ?, issued_at_ms = max(issued_at_ms, ?),
           expires_at_ms = ?
         WHERE device_id = ? AND record IS NOT NULL AND expires_at_ms > ? AND request_ms < ?`,
      ).run(
        claim.timestampMs,
        claim.timestampMs,
        tombstoneUntilMs,
        claim.deviceIdHex,
        claim.nowMs,
        claim.timestampMs,
      );
      if (changes === 1) return 'applied';
      const row = this.sql(
        `SELECT request_ms FROM bootstrap
         WHERE device_id = ? AND record IS NOT NULL AND expires_at_ms > ?`,
      ).get(claim.deviceIdHex, claim.nowMs);
      return row === undefined ? 'not-registered' : 'replayed';
    })();
  }

  async sampleBootstrap(nowMs: number, limit: number, startKey: number): Promise<Uint8Array[]> {
    const from = this.sql(
      `SELECT record FROM bootstrap
       WHERE sample_key >= ? AND record IS NOT NULL AND expires_at_ms > ?
       ORDER BY sample_key LIMIT ?`,
    ).all(startKey, nowMs, limit) as { record: Buffer }[];
    const wrapped =
      from.length < limit
        ? (this.sql(
            `SELECT record FROM bootstrap
             WHERE sample_key < ? AND record IS NOT NULL AND expires_at_ms > ?
             ORDER BY sample_key LIMIT ?`,
          ).all(startKey, nowMs, limit - from.length) as { record: Buffer }[])
        : [];
    return [...from, ...wrapped].map((row) => bytes(row.record));
  }

  async putNode(entry: NodeEntry): Promise<PutResult> {
    return this.database.transaction((): PutResult => {
      const previous = this.sql(`SELECT expires_at_ms FROM nodes WHERE device_id = ?`).get(
        entry.deviceIdHex,
      ) as { expires_at_ms: number } | undefined;
      const { changes } = this.sql(
        `INSERT INTO nodes (device_id, record, issued_at_ms, request_ms, last_heartbeat_ms, expires_at_ms)
         VALUES (?, ?, ?, 0, ?, ?)
         ON CONFLICT (device_id) DO UPDATE SET record = excluded.record,
           issued_at_ms = excluded.issued_at_ms, last_heartbeat_ms = excluded.last_heartbeat_ms,
           expires_at_ms = excluded.expires_at_ms
         WHERE nodes.issued_at_ms < excluded.issued_at_ms`,
      ).run(entry.deviceIdHex, entry.record, entry.issuedAtMs, entry.nowMs, entry.expiresAtMs);
      if (changes !== 1) return 'not-newer';
      // A node that had expired comes back holding nothing until its next heartbeat.
      if (previous !== undefined && previous.expires_at_ms <= entry.nowMs)
        this.sql(`DELETE FROM node_contents WHERE device_id = ?`).run(entry.deviceIdHex);
      return 'stored';
    })();
  }

  async heartbeat(
    claim: RequestClaim,
    contentIds: readonly string[],
    expiresAtMs: number,
  ): Promise<SignedResult> {
    return this.database.transaction((): SignedResult => {
      const { changes } = this.sql(
        `UPDATE nodes SET request_ms = ?, last_heartbeat_ms = ?, expires_at_ms = ?
         WHERE device_id = ? AND expires_at_ms > ? AND request_ms < ?`,
      ).run(
        claim.timestampMs,
        claim.nowMs,
        expiresAtMs,
        claim.deviceIdHex,
        claim.nowMs,
        claim.timestampMs,
      );
      if (changes !== 1) {
        const live = this.sql(`SELECT 1 FROM nodes WHERE device_id = ? AND expires_at_ms > ?`).get(
          claim.deviceIdHex,
          claim.nowMs,
        );
        return live === undefined ? 'not-registered' : 'replayed';
      }
      this.sql(`DELETE FROM node_contents WHERE device_id = ?`).run(claim.deviceIdHex);
      const insert = this.sql(`INSERT INTO node_contents (content_id, device_id) VALUES (?, ?)`);
      for (const contentId of contentIds) insert.run(contentId, claim.deviceIdHex);
      return 'applied';
    })();
  }

  async liveNodes(nowMs: number, limit: number): Promise<ListedNode[]> {
    // A random sample, not the smallest device IDs: Sybils cannot crowd out real nodes.
    const rows = this.sql(
      `SELECT device_id, record, last_heartbeat_ms, expires_at_ms FROM nodes
       WHERE expires_at_ms > ? ORDER BY random() LIMIT ?`,
    ).all(nowMs, limit) as NodeRow[];
    return rows.map(listedNode);
  }

  async locations(
    contentIds: readonly string[],
    nowMs: number,
    holdersMax: number,
  ): Promise<Map<string, string[]>> {
    const query = this.sql(
      `SELECT c.content_id, c.device_id FROM node_contents c JOIN nodes n ON n.device_id = c.device_id
       WHERE c.content_id = ? AND n.expires_at_ms > ? ORDER BY random() LIMIT ?`,
    );
    const rows = contentIds.flatMap(
      (contentId) =>
        query.all(contentId, nowMs, holdersMax) as { content_id: string; device_id: string }[],
    );
    return holdersByContent(rows);
  }

  async issuedAt(table: 'bootstrap' | 'nodes', deviceIdHex: string): Promise<number | undefined> {
    const sql =
      table === 'bootstrap'
        ? `SELECT issued_at_ms FROM bootstrap WHERE device_id = ?`
        : `SELECT issued_at_ms FROM nodes WHERE device_id = ?`;
    return issuedAt(this.sql(sql).get(deviceIdHex) as { issued_at_ms: number } | undefined);
  }

  async purge(nowMs: number): Promise<number> {
    return this.database.transaction((): number => {
      let removed = this.sql(`DELETE FROM bootstrap WHERE expires_at_ms <= ?`).run(nowMs).changes;
      removed += this.sql(
        `DELETE FROM node_contents WHERE device_id IN
           (SELECT device_id FROM nodes WHERE expires_at_ms <= ?)`,
      ).run(nowMs).changes;
      removed += this.sql(`DELETE FROM nodes WHERE expires_at_ms <= ?`).run(nowMs).changes;
      return removed;
    })();
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    this.statements.clear();
  }
}
