/**
 * Peer records a gossip engine has decoded, remembered by their bytes, so a record heard again
 * (the same announcement from several links, the same record in many table syncs) is parsed,
 * hashed and verified once.
 *
 * Theory of operation
 * - `decode(bytes)` answers with a `KnownRecord`: the decoded record (over the cache's own copy
 *   of the bytes, never a view into a frame), its Device ID and table key, and the `HeldRecord`
 *   a table keeps. A second call with byte-for-byte the same record returns the same object, so
 *   every table holding that record holds one copy of it. Bytes that do not decode are not
 *   remembered (they cost what they cost before: one parse).
 * - `valid(record)` verifies the signature once per remembered record and keeps the answer; the
 *   answer depends only on the bytes, so it is the same for every later caller.
 * - Lookup: a Map keyed by 48 bits of the signature (the record's last 64 bytes), then a full
 *   byte comparison, so a record differing in any byte is a different record.
 * - Bounds: two generations of at most `entriesMax` each. A hit in the older one moves the record
 *   to the newer; when the newer is full the older is dropped and the newer becomes it (records
 *   still held by tables live on; only their sharing with later decodes is lost).
 * - Sharing: one engine owns one by default. Several engines in one process (the simulator) may
 *   share one; they must share its crypto provider, which derives Device IDs and verifies.
 */
import { equalBytes } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import { deriveDeviceId } from '../identity.js';
import { addressPrefix } from './address-prefix.js';
import { bytesKey } from './byte-key.js';
import type { HeldRecord } from './gossip-table.js';
import {
  decodePeerRecord,
  verifyPeerRecord,
  type PeerRecord,
  type PeerRecordResult,
} from './peer-record.js';

/** A decoded record with what tables and receivers derive from it, shared by every holder. */
export interface KnownRecord extends PeerRecord {
  readonly deviceId: Uint8Array;
  /** `bytesKey(deviceId)`: the table's key. */
  readonly key: string;
  /** What a table keeps of it. */
  readonly held: HeldRecord;
}

export type KnownRecordResult = PeerRecordResult<KnownRecord>;

interface Slot {
  readonly record: KnownRecord;
  /** Signature check: undefined until `valid` is first asked. */
  validity: boolean | undefined;
}

/** Records remembered per generation by default (one engine's own cache). */
export const RECORD_CACHE_DEFAULT_MAX = 1024;

/** 48 bits of the signature, a Map key (collisions are compared out). */
function signatureKey(bytes: Uint8Array): number {
  const at = bytes.length - 64;
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16)) * 0x100_0000 +
    (bytes[at + 3]! | (bytes[at + 4]! << 8) | (bytes[at + 5]! << 16))
  );
}

function find(generation: Map<number, Slot[]>, key: number, bytes: Uint8Array): Slot | undefined {
  const list = generation.get(key);
  if (list === undefined) return undefined;
  for (const slot of list) if (equalBytes(slot.record.bytes, bytes)) return slot;
  return undefined;
}

export class PeerRecordCache {
  private newer = new Map<number, Slot[]>();
  private older = new Map<number, Slot[]>();
  private newerSize = 0;
  private readonly slots = new WeakMap<KnownRecord, Slot>();
  /** Decodes answered from memory, and those parsed afresh (a measure for tests and the sim). */
  readonly stats = { remembered: 0, decoded: 0 };

  /** @param entriesMax records per generation (at most twice this are remembered). */
  constructor(
    private readonly crypto: CryptoProvider,
    private readonly entriesMax = RECORD_CACHE_DEFAULT_MAX,
  ) {
    if (!Number.isInteger(entriesMax) || entriesMax < 1)
      throw new RangeError('entriesMax must be a positive integer');
  }

  /** The record `bytes` encode, remembered; never throws on any bytes. */
  decode(bytes: Uint8Array): KnownRecordResult {
    if (!(bytes instanceof Uint8Array) || bytes.length < 65) {
      // Too short to hold a signature: decodePeerRecord refuses it, and says why.
      const refused = decodePeerRecord(bytes);
      return refused.ok ? { ok: false, detail: 'record too short' } : refused;
    }
    const key = signatureKey(bytes);
    const hit = find(this.newer, key, bytes);
    if (hit !== undefined) {
      this.stats.remembered++;
      return { ok: true, record: hit.record };
    }
    const old = find(this.older, key, bytes);
    if (old !== undefined) {
      this.stats.remembered++;
      this.remember(key, old);
      return { ok: true, record: old.record };
    }
    this.stats.decoded++;
    const result = decodePeerRecord(bytes.slice());
    if (!result.ok) return result;
    const { record } = result;
    const deviceId = deriveDeviceId(this.crypto, record.publicKey);
    const known: KnownRecord = {
      ...record,
      deviceId,
      key: bytesKey(deviceId),
      held: {
        bytes: record.bytes,
        issuedAtMs: record.issuedAtMs,
        bootstrap: record.bootstrap,
        addresses: record.addresses,
        listenPort: record.listenPort,
        deviceName: record.deviceName,
        dialGroup:
          record.addresses[0] === undefined ? undefined : addressPrefix(record.addresses[0]),
      },
    };
    const slot: Slot = { record: known, validity: undefined };
    this.slots.set(known, slot);
    this.remember(key, slot);
    return { ok: true, record: known };
  }

  /** True when the record's signature is its own key's (checked once per remembered record). */
  valid(record: KnownRecord): boolean {
    const slot = this.slots.get(record);
    if (slot === undefined) return verifyPeerRecord(this.crypto, record);
    slot.validity ??= verifyPeerRecord(this.crypto, record);
    return slot.validity;
  }

  private remember(key: number, slot: Slot): void {
    if (this.newerSize >= this.entriesMax) {
      this.older = this.newer;
      this.newer = new Map();
      this.newerSize = 0;
    }
    const list = this.newer.get(key);
    if (list === undefined) this.newer.set(key, [slot]);
    else list.push(slot);
    this.newerSize++;
  }
}
