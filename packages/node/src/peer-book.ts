/**
 * The daemon's view of the core's peer table (peer-table.ts in @peapod/core): the rows of
 * `peapod peers` / `GET /api/peers`, device names for logs and messages, and the peers cache.
 *
 * Theory of operation
 * - The core's table is the only peer table: who is known, how each was reached, who dials
 *   whom. This module keeps no state of its own; every answer is read from `core.peers()`.
 * - `peers.json` in the data directory keeps each known device's last address and port, so a
 *   restarted daemon redials without waiting for beacons: `loadPeersCache` reads it (anything
 *   malformed is skipped: discovery finds the peers anyway), the daemon feeds each row to the
 *   core as `peer-discovered` with source 'cache', and `savePeersCache` writes it on stop.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDeviceId, type Core, type PeerSnapshot } from '@peapod/core';
import { deviceLabel } from './device-label.js';

/** A row of `peapod peers`. */
export interface PeerRow {
  readonly deviceId: string;
  readonly name: string;
  readonly address: string;
  readonly state: 'discovered' | 'connecting' | 'connected' | 'gone';
  readonly rttMs: number | undefined;
  readonly direction: 'inbound' | 'outbound' | undefined;
  readonly since: string;
  /** How this device last learnt of the peer: a LAN beacon, the peers cache, the user, gossip, a tracker. */
  readonly source: PeerSnapshot['source'];
  /** The protocol version negotiated in HELLO on the last ready link; absent before one. */
  readonly protocolVersion: number | undefined;
}

/** A device of the peers cache. */
export interface CachedPeer {
  readonly deviceId: Uint8Array;
  readonly address: string;
  readonly port: number;
}

export class PeerBook {
  constructor(
    private readonly core: Core,
    private readonly ownHex: string,
    private readonly ownName: string,
  ) {}

  /** The rows of `peapod peers`. `since` is the core clock (`performance.now()`) as a date. */
  rows(): PeerRow[] {
    return this.core.peers().map((peer) => ({
      deviceId: formatDeviceId(peer.deviceId),
      name: peer.name,
      address: `${peer.address}:${peer.port}`,
      state: peer.state,
      rttMs: peer.rttMs,
      direction: peer.direction,
      since: new Date(performance.timeOrigin + peer.sinceMs).toISOString(),
      source: peer.source,
      protocolVersion: peer.protocolVersion === 0 ? undefined : peer.protocolVersion,
    }));
  }

  /** The table's row for a device, if it knows it. */
  find(hex: string): PeerSnapshot | undefined {
    return this.core.peers().find((peer) => peer.deviceIdHex === hex);
  }

  /** A device as people see it everywhere: `name (SHORTID)` (device-label.ts). */
  label(hex: string): string {
    if (hex === this.ownHex) return deviceLabel(this.ownName, hex);
    return deviceLabel(this.find(hex)?.name ?? '', hex);
  }

  /**
   * `text` with each Device ID in hex written as `name (SHORTID)`: only this device's and the
   * peers' it knows. Any other 64 hex digits (a SHA-256 in a digest mismatch) stay as they are.
   */
  nameDevices(text: string): string {
    if (!/\b[0-9a-f]{64}\b/.test(text)) return text;
    const names = new Map(this.core.peers().map((peer) => [peer.deviceIdHex, peer.name]));
    names.set(this.ownHex, this.ownName);
    return text.replace(/\b[0-9a-f]{64}\b/g, (hex) => {
      const name = names.get(hex);
      return name === undefined ? hex : deviceLabel(name, hex);
    });
  }

  /** What `savePeersCache` keeps: every device with a known listening port. */
  cacheRows(): CachedPeer[] {
    return this.core
      .peers()
      .filter((peer) => peer.port > 0)
      .map(({ deviceId, address, port }) => ({ deviceId, address, port }));
  }
}

const PEERS_CACHE = 'peers.json';

/** peers.json: Device IDs with the last address and port each was reached at. */
export async function loadPeersCache(dataDir: string, ownHex: string): Promise<CachedPeer[]> {
  try {
    const rows = JSON.parse(await readFile(join(dataDir, PEERS_CACHE), 'utf8')) as unknown;
    if (!Array.isArray(rows)) return [];
    return rows
      .filter(
        (row): row is { deviceId: string; address: string; port: number } =>
          typeof row?.deviceId === 'string' &&
          /^[0-9a-f]{64}$/.test(row.deviceId) &&
          typeof row.address === 'string' &&
          Number.isInteger(row.port) &&
          row.port > 0 &&
          row.port < 65536,
      )
      .filter((row) => row.deviceId !== ownHex)
      .map((row) => ({
        deviceId: Uint8Array.from(Buffer.from(row.deviceId, 'hex')),
        address: row.address,
        port: row.port,
      }));
  } catch {
    return []; // none yet, or unreadable: discovery finds the peers anyway
  }
}

export async function savePeersCache(dataDir: string, peers: readonly CachedPeer[]): Promise<void> {
  const rows = peers.map(({ deviceId, address, port }) => ({
    deviceId: Buffer.from(deviceId).toString('hex'),
    address,
    port,
  }));
  const path = join(dataDir, PEERS_CACHE);
  await writeFile(`${path}.tmp`, JSON.stringify(rows, null, 2));
  await rename(`${path}.tmp`, path);
}
