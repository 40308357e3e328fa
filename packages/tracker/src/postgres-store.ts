/**
 * The shared store: PostgreSQL through a `pg` Pool, for several tracker instances at once
 * (DESIGN.md decisions 11 and 19). Nothing an instance keeps in memory matters for
 * correctness: every rule store.ts lists is one conditional statement (an upsert whose
 * DO UPDATE has a WHERE, an UPDATE whose WHERE holds the condition), or a transaction whose
 * first statement takes the row lock, so two instances racing on one device serialize in the
 * database and exactly one wins. The schema is created at `open` under an advisory lock (two
 * instances starting together would otherwise race in CREATE TABLE IF NOT EXISTS).
 * Tables are prefixed `tracker_` so the database can be shared with other applications; the
 * `schema` option (tests) puts them in a schema of their own.
 */
import pg from 'pg';
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
CREATE TABLE IF NOT EXISTS tracker_bootstrap (
  device_id TEXT PRIMARY KEY,
  record BYTEA,
  issued_at_ms BIGINT NOT NULL,
  request_ms BIGINT NOT NULL DEFAULT 0,
  expires_at_ms BIGINT NOT NULL,
  sample_key INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tracker_bootstrap_sample ON tracker_bootstrap (sample_key);
CREATE INDEX IF NOT EXISTS tracker_bootstrap_expiry ON tracker_bootstrap (expires_at_ms);
CREATE TABLE IF NOT EXISTS tracker_nodes (
  device_id TEXT PRIMARY KEY,
  record BYTEA NOT NULL,
  issued_at_ms BIGINT NOT NULL,
  request_ms BIGINT NOT NULL DEFAULT 0,
  last_heartbeat_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tracker_nodes_expiry ON tracker_nodes (expires_at_ms);
CREATE TABLE IF NOT EXISTS tracker_node_contents (
  content_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  PRIMARY KEY (content_id, device_id)
);
CREATE INDEX IF NOT EXISTS tracker_node_contents_device ON tracker_node_contents (device_id);
`;
/** pg_advisory_xact_lock key for schema creation ("PPTR" as a number). */
const SCHEMA_LOCK = 0x50505452;

export interface PostgresStoreOptions {
  readonly connectionString: string;
  /** A schema to hold the tables (created if missing); default: the connection's search_path. */
  readonly schema?: string;
  /** Pool size; default 10. */
  readonly connectionsMax?: number;
  /** Where pool errors (a dropped idle connection) are reported; default: ignored. */
  readonly onError?: (error: Error) => void;
}

export class PostgresStore implements TrackerStore {
  private readonly pool: pg.Pool;
  private readonly schema: string | undefined;

  constructor(options: PostgresStoreOptions) {
    if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema))
      throw new RangeError('schema: a lowercase SQL identifier');
    this.schema = options.schema;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.connectionsMax ?? 10,
      ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
    });
    // Without a listener, an idle connection the server drops would crash the process.
    this.pool.on('error', (error) => options.onError?.(error));
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async open(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      if (this.schema !== undefined)
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await client.query(SCHEMA);
    });
  }

  async putBootstrap(entry: BootstrapEntry): Promise<PutResult> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO tracker_bootstrap (device_id, record, issued_at_ms, request_ms, expires_at_ms, sample_key)
       VALUES ($1, $2, $3, 0, $4, $5)
       ON CONFLICT (device_id) DO UPDATE SET record = excluded.record,
         issued_at_ms = excluded.issued_at_ms, expires_at_ms = excluded.expires_at_ms
       WHERE tracker_bootstrap.issued_at_ms < excluded.issued_at_ms`,
      [
        entry.deviceIdHex,
        Buffer.from(entry.record),
        entry.issuedAtMs,
        entry.expiresAtMs,
        entry.sampleKey,
      ],
    );
    return rowCount === 1 ? 'stored' : 'not-newer';
  }

  async removeBootstrap(claim: RequestClaim, tombstoneUntilMs: number): Promise<SignedResult> {
    const { rowCount } = await this.pool.query(
      `UPDATE tracker_bootstrap SET record = NULL, request_ms = $1,
         issued_at_ms = GREATEST(issued_at_ms, $1), expires_at_ms = $2
       WHERE device_id = $3 AND record IS NOT NULL AND expires_at_ms > $4 AND request_ms < $1`,
      [claim.timestampMs, tombstoneUntilMs, claim.deviceIdHex, claim.nowMs],
    );
    if (rowCount === 1) return 'applied';
    const { rows } = await this.pool.query(
      `SELECT 1 FROM tracker_bootstrap
       WHERE device_id = $1 AND record IS NOT NULL AND expires_at_ms > $2`,
      [claim.deviceIdHex, claim.nowMs],
    );
    return rows.length === 0 ? 'not-registered' : 'replayed';
  }

  async sampleBootstrap(nowMs: number, limit: number, startKey: number): Promise<Uint8Array[]> {
    const { rows } = await this.pool.query(
      `(SELECT record, 0 AS part, sample_key FROM tracker_bootstrap
          WHERE sample_key >= $1 AND record IS NOT NULL AND expires_at_ms > $2
          ORDER BY sample_key LIMIT $3)
       UNION ALL
       (SELECT record, 1 AS part, sample_key FROM tracker_bootstrap
          WHERE sample_key < $1 AND record IS NOT NULL AND expires_at_ms > $2
          ORDER BY sample_key LIMIT $3)
       ORDER BY part, sample_key LIMIT $3`,
      [startKey, nowMs, limit],
    );
    return (rows as { record: Buffer }[]).map((row) => bytes(row.record));
  }

  async putNode(entry: NodeEntry): Promise<PutResult> {
    return this.transaction(async (client) => {
      // Locks the row (when there is one) so a racing registration waits for this one.
      const previous = await client.query(
        `SELECT expires_at_ms FROM tracker_nodes WHERE device_id = $1 FOR UPDATE`,
        [entry.deviceIdHex],
      );
      const { rowCount } = await client.query(
        `INSERT INTO tracker_nodes (device_id, record, issued_at_ms, request_ms, last_heartbeat_ms, expires_at_ms)
         VALUES ($1, $2, $3, 0, $4, $5)
         ON CONFLICT (device_id) DO UPDATE SET record = excluded.record,
           issued_at_ms = excluded.issued_at_ms, last_heartbeat_ms = excluded.last_heartbeat_ms,
           expires_at_ms = excluded.expires_at_ms
         WHERE tracker_nodes.issued_at_ms < excluded.issued_at_ms`,
        [
          entry.deviceIdHex,
          Buffer.from(entry.record),
          entry.issuedAtMs,
          entry.nowMs,
          entry.expiresAtMs,
        ],
      );
      if (rowCount !== 1) return 'not-newer';
      const old = previous.rows[0] as { expires_at_ms: string } | undefined;
      // A node that had expired comes back holding nothing until its next heartbeat.
      if (old !== undefined && Number(old.expires_at_ms) <= entry.nowMs)
        await client.query(`DELETE FROM tracker_node_contents WHERE device_id = $1`, [
          entry.deviceIdHex,
        ]);
      return 'stored';
    });
  }

  async heartbeat(
    claim: RequestClaim,
    contentIds: readonly string[],
    expiresAtMs: number,
  ): Promise<SignedResult> {
    return this.transaction(async (client) => {
      const { rowCount } = await client.query(
        `UPDATE tracker_nodes SET request_ms = $1, last_heartbeat_ms = $2, expires_at_ms = $3
         WHERE device_id = $4 AND expires_at_ms > $2 AND request_ms < $1`,
        [claim.timestampMs, claim.nowMs, expiresAtMs, claim.deviceIdHex],
      );
      if (rowCount !== 1) {
        const { rows } = await client.query(
          `SELECT 1 FROM tracker_nodes WHERE device_id = $1 AND expires_at_ms > $2`,
          [claim.deviceIdHex, claim.nowMs],
        );
        return rows.length === 0 ? 'not-registered' : 'replayed';
      }
      await client.query(`DELETE FROM tracker_node_contents WHERE device_id = $1`, [
        claim.deviceIdHex,
      ]);
      if (contentIds.length > 0)
        await client.query(
          `INSERT INTO tracker_node_contents (content_id, device_id) SELECT unnest($1::text[]), $2`,
          [contentIds, claim.deviceIdHex],
        );
      return 'applied';
    });
  }

  async liveNodes(nowMs: number, limit: number): Promise<ListedNode[]> {
    // A random sample, not the smallest device IDs: Sybils cannot crowd out real nodes.
    const { rows } = await this.pool.query(
      `SELECT device_id, record, last_heartbeat_ms, expires_at_ms FROM tracker_nodes
       WHERE expires_at_ms > $1 ORDER BY random() LIMIT $2`,
      [nowMs, limit],
    );
    return (rows as NodeRow[]).map(listedNode);
  }

  async locations(
    contentIds: readonly string[],
    nowMs: number,
    holdersMax: number,
  ): Promise<Map<string, string[]>> {
    const { rows } = await this.pool.query(
      `SELECT content_id, device_id FROM (
         SELECT c.content_id, c.device_id,
           row_number() OVER (PARTITION BY c.content_id ORDER BY random()) AS rank
         FROM tracker_node_contents c JOIN tracker_nodes n ON n.device_id = c.device_id
         WHERE c.content_id = ANY($1::text[]) AND n.expires_at_ms > $2) ranked
       WHERE rank <= $3`,
      [contentIds, nowMs, holdersMax],
    );
    return holdersByContent(rows as { content_id: string; device_id: string }[]);
  }

  async issuedAt(table: 'bootstrap' | 'nodes', deviceIdHex: string): Promise<number | undefined> {
    const sql =
      table === 'bootstrap'
        ? `SELECT issued_at_ms FROM tracker_bootstrap WHERE device_id = $1`
        : `SELECT issued_at_ms FROM tracker_nodes WHERE device_id = $1`;
    const { rows } = await this.pool.query(sql, [deviceIdHex]);
    return issuedAt(rows[0] as { issued_at_ms: string } | undefined);
  }

  async purge(nowMs: number): Promise<number> {
    return this.transaction(async (client) => {
      let removed =
        (await client.query(`DELETE FROM tracker_bootstrap WHERE expires_at_ms <= $1`, [nowMs]))
          .rowCount ?? 0;
      removed +=
        (
          await client.query(
            `DELETE FROM tracker_node_contents WHERE device_id IN
               (SELECT device_id FROM tracker_nodes WHERE expires_at_ms <= $1)`,
            [nowMs],
          )
        ).rowCount ?? 0;
      removed +=
        (await client.query(`DELETE FROM tracker_nodes WHERE expires_at_ms <= $1`, [nowMs]))
          .rowCount ?? 0;
      return removed;
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
