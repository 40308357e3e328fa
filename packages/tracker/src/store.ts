/**
 * The tracker's storage: one small interface, two implementations (sqlite-store.ts, embedded,
 * one instance; postgres-store.ts, shared by several instances). Every rule that makes a
 * request safe to accept is decided inside one statement or transaction here, so two tracker
 * instances on one PostgreSQL cannot both accept what only one may:
 *   - a record replaces the stored one only when its `issuedAtMs` is greater (a conditional
 *     upsert): replaying or rolling back a record is refused;
 *   - a signed request applies only when its `timestampMs` is greater than the last one
 *     accepted for that device (`requestMs`, a conditional update): the per-device replay guard;
 *   - an unregister leaves a tombstone whose floor is the request's timestamp until every
 *     record issued before it is outside the clock window, so a captured registration cannot be
 *     replayed to bring a device back;
 *   - expiry compares `expiresAtMs` with the caller's clock in every query; `purge` deletes
 *     what expired, periodically, to keep tables small. Nothing here reads a clock.
 * IDs are lowercase hex text; records are bytes. No address other than inside a record is
 * stored, so no silent device's address can leak from here.
 */
export interface BootstrapEntry {
  readonly deviceIdHex: string;
  readonly record: Uint8Array;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  /** Random u31, the discover sample's order. */
  readonly sampleKey: number;
}

export interface NodeEntry {
  readonly deviceIdHex: string;
  readonly record: Uint8Array;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly nowMs: number;
}

export interface ListedNode {
  readonly deviceIdHex: string;
  readonly record: Uint8Array;
  readonly lastHeartbeatMs: number;
  readonly expiresAtMs: number;
}

/** A signed request's claim: this device, this timestamp. */
export interface RequestClaim {
  readonly deviceIdHex: string;
  readonly timestampMs: number;
  readonly nowMs: number;
}

export type PutResult = 'stored' | 'not-newer';
export type SignedResult = 'applied' | 'not-registered' | 'replayed';

export interface TrackerStore {
  /** Creates the schema if missing. Idempotent; safe when several instances start at once. */
  open(): Promise<void>;
  putBootstrap(entry: BootstrapEntry): Promise<PutResult>;
  /** Replaces the live record with a tombstone (floor: the claim's timestamp) kept until `tombstoneUntilMs`. */
  removeBootstrap(claim: RequestClaim, tombstoneUntilMs: number): Promise<SignedResult>;
  /** Up to `limit` live bootstrap records, in sample-key order from `startKey`, wrapping around. */
  sampleBootstrap(nowMs: number, limit: number, startKey: number): Promise<Uint8Array[]>;
  putNode(entry: NodeEntry): Promise<PutResult>;
  /** Refreshes a live node and replaces its content list. */
  heartbeat(
    claim: RequestClaim,
    contentIds: readonly string[],
    expiresAtMs: number,
  ): Promise<SignedResult>;
  /** Up to `limit` live nodes, a random sample (never ordered by device ID). */
  liveNodes(nowMs: number, limit: number): Promise<ListedNode[]>;
  /**
   * Live holders of each content, at most `holdersMax` each, a random sample of them (contents
   * nobody holds are absent).
   */
  locations(
    contentIds: readonly string[],
    nowMs: number,
    holdersMax: number,
  ): Promise<Map<string, string[]>>;
  /**
   * The `issuedAtMs` stored for a device (its record's, or an unregister tombstone's floor), or
   * undefined. A read only, before the rate limit is charged: a replayed record is refused as
   * not-newer without spending its device's budget; the put itself stays the atomic check.
   */
  issuedAt(table: 'bootstrap' | 'nodes', deviceIdHex: string): Promise<number | undefined>;
  /** Deletes expired entries; returns how many rows went. */
  purge(nowMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A store for `db`: a postgres:// or postgresql:// URL, else a SQLite file path or ":memory:".
 * `onError` hears PostgreSQL pool errors (a dropped idle connection), which are not a request's.
 */
export async function openStore(
  db: string,
  onError: (error: Error) => void = () => undefined,
): Promise<TrackerStore> {
  const store = /^postgres(ql)?:\/\//.test(db)
    ? new (await import('./postgres-store.js')).PostgresStore({ connectionString: db, onError })
    : new (await import('./sqlite-store.js')).SqliteStore(db);
  await store.open();
  return store;
}
