/**
 * The row mapping both stores share (sqlite-store.ts, postgres-store.ts): what a database row
 * of the trackers' tables becomes in store.ts's types. better-sqlite3 hands back numbers and
 * Buffers; pg hands back BIGINT as strings and BYTEA as Buffers; `Number` and `bytes` read both,
 * so the two stores cannot drift apart in how they read a row.
 */
import type { ListedNode } from './store.js';

/** A BLOB/BYTEA value as a Uint8Array over the same memory. */
export function bytes(value: unknown): Uint8Array {
  const buffer = value as Buffer;
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/** A row of `SELECT device_id, record, last_heartbeat_ms, expires_at_ms` on the nodes table. */
export interface NodeRow {
  readonly device_id: string;
  readonly record: Buffer;
  readonly last_heartbeat_ms: number | string;
  readonly expires_at_ms: number | string;
}

export function listedNode(row: NodeRow): ListedNode {
  return {
    deviceIdHex: row.device_id,
    record: bytes(row.record),
    lastHeartbeatMs: Number(row.last_heartbeat_ms),
    expiresAtMs: Number(row.expires_at_ms),
  };
}

/** Rows of `(content_id, device_id)` as holders per content (contents without rows absent). */
export function holdersByContent(
  rows: readonly { readonly content_id: string; readonly device_id: string }[],
): Map<string, string[]> {
  const answer = new Map<string, string[]>();
  for (const row of rows) {
    const holders = answer.get(row.content_id) ?? [];
    holders.push(row.device_id);
    answer.set(row.content_id, holders);
  }
  return answer;
}

/** The stored `issued_at_ms` of a row (a record's or a tombstone's floor), if any. */
export function issuedAt(
  row: { readonly issued_at_ms: number | string } | undefined,
): number | undefined {
  return row === undefined ? undefined : Number(row.issued_at_ms);
}
