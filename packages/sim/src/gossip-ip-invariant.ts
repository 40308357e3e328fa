/**
 * The IP-sharing invariant, checked while the gossip simulation runs: no non-broadcasting
 * (silent) node's address ever appears in another node's table, in a message, or in a dial.
 *
 * Theory of operation
 * - The checker knows every silent node's address and public key (the scenario registers them
 *   as the nodes are made; a silent node's engine is even given its address in `GossipSelf`, so
 *   the engine must actively keep it back).
 * - An address can enter an engine's table only through a verified peer record, and the engine
 *   reports each such change as a `gossip:peer` event ('learned' or 'updated', carrying the
 *   record). So checking every such event's record, as it is emitted, is checking every table
 *   change at the step that made it, at the cost of one record decode per change rather than
 *   a sweep of every table after every step.
 * - Every frame an engine sends that carries records (PEER_ANNOUNCEMENT, PEER_UPDATE,
 *   PEER_LIST_RESPONSE) is decoded and its records checked the same way, and every `dial`
 *   output's address is checked: dialling a silent node means its address leaked somewhere.
 * - `sweep` checks an engine's whole `snapshot()` (addresses, and the record each entry
 *   keeps): the scenario sweeps a few random engines every simulated second and every live
 *   engine at the end, so a table that changed without an event is caught too.
 * - A record that does not decode, or a sent frame that does not decode, cannot be shown to
 *   obey the rule and counts as a violation. The first few violations are kept with their
 *   detail; all are counted.
 * - Cost: the same announcement is relayed by every node and learnt by every node, so the
 *   checker remembers what it has already found clean: record bytes (by their signature, then
 *   compared byte for byte) and frame bodies (by message ID, compared byte for byte after the
 *   ttl, the one byte a relay changes; not table syncs, each sent once). Identical bytes give an identical verdict; anything
 *   that differs in a single byte is decoded and checked afresh. Both memories are bounded.
 */
import {
  decodeGossip,
  decodePeerRecord,
  GossipCode,
  PeerRecordCache,
  type CryptoProvider,
  toHex,
  type GossipEvent,
  type GossipFrameMessage,
  type GossipPeerSnapshot,
} from '@peapod/core';

export interface IpViolation {
  readonly atMs: number;
  /** The node whose table, message or dial showed the address. */
  readonly node: number;
  readonly where: 'table-event' | 'message' | 'dial' | 'sweep';
  readonly detail: string;
}

export interface IpInvariantChecks {
  tableEvents: number;
  messages: number;
  dials: number;
  sweptTables: number;
  sweptEntries: number;
}

const VIOLATIONS_KEPT = 10;
/** Records per generation of the checker's decode cache. */
const RECORDS_MAX = 1 << 16;
/** Clean records and frame bodies remembered (each memory is emptied when full). */
const REMEMBERED_MAX = 200_000;

function sameBytes(a: Uint8Array, b: Uint8Array, from = 0): boolean {
  if (a.length !== b.length) return false;
  for (let i = from; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Remembers byte strings found clean, under a caller-chosen key; a hit must match exactly. */
class CleanBytes<K> {
  private readonly memory = new Map<K, Uint8Array[]>();
  private size = 0;

  constructor(private readonly compareFrom: number) {}

  has(key: K, bytes: Uint8Array): boolean {
    const list = this.memory.get(key);
    if (list === undefined) return false;
    for (const known of list) if (sameBytes(known, bytes, this.compareFrom)) return true;
    return false;
  }

  add(key: K, bytes: Uint8Array): void {
    if (this.size >= REMEMBERED_MAX) {
      this.memory.clear();
      this.size = 0;
    }
    const list = this.memory.get(key);
    if (list === undefined) this.memory.set(key, [bytes.slice()]);
    else list.push(bytes.slice());
    this.size++;
  }
}

/** A record's key in the memory: 48 bits of its signature (its last 64 bytes). */
function recordKey(bytes: Uint8Array): number {
  const at = bytes.length - 64;
  if (at < 0) return -1;
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16)) * 0x100_0000 +
    (bytes[at + 3]! | (bytes[at + 4]! << 8) | (bytes[at + 5]! << 16))
  );
}

/** A frame's key in the memory: its code and message ID (body bytes 1..17). */
function frameKey(code: number, body: Uint8Array): string {
  let key = String.fromCharCode(code);
  for (let i = 1; i < 17 && i < body.length; i++) key += String.fromCharCode(body[i]!);
  return key;
}

export class IpSharingInvariant {
  readonly checks: IpInvariantChecks = {
    tableEvents: 0,
    messages: 0,
    dials: 0,
    sweptTables: 0,
    sweptEntries: 0,
  };
  readonly violations: IpViolation[] = [];
  violationCount = 0;
  private readonly silentAddresses = new Set<string>();
  private readonly silentKeys = new Set<string>();
  private readonly cleanRecords = new CleanBytes<number>(0);
  /** The checker's own record cache (not the engines'): a frame's records are parsed once. */
  private readonly records: PeerRecordCache;
  private readonly decodeRecord = (bytes: Uint8Array) => this.records.decode(bytes);

  constructor(crypto: CryptoProvider) {
    this.records = new PeerRecordCache(crypto, RECORDS_MAX);
  }
  /** Frame bodies compared from byte 1: a relay lowers the ttl (byte 0) and nothing else. */
  private readonly cleanFrames = new CleanBytes<string>(1);

  /** Registers a silent node (before its engine runs). */
  addSilent(address: string, publicKey: Uint8Array, deviceId: Uint8Array): void {
    this.silentAddresses.add(address);
    this.silentKeys.add(toHex(publicKey));
    this.silentKeys.add(toHex(deviceId));
  }

  get silentCount(): number {
    return this.silentAddresses.size;
  }

  get ok(): boolean {
    return this.violationCount === 0;
  }

  onEvent(node: number, event: GossipEvent, atMs: number): void {
    if (event.type !== 'gossip:peer') return;
    if (event.change !== 'learned' && event.change !== 'updated') return;
    this.checks.tableEvents++;
    if (event.record === undefined) return; // an entry without a record carries no address
    this.checkRecord(node, event.record, 'table-event', atMs);
  }

  onDial(node: number, address: string, atMs: number): void {
    this.checks.dials++;
    if (this.silentAddresses.has(address)) {
      this.fail({ atMs, node, where: 'dial', detail: `dialled silent address ${address}` });
    }
  }

  onSend(node: number, frame: GossipFrameMessage, atMs: number): void {
    const code = frame.code;
    if (
      code !== GossipCode.peerAnnouncement &&
      code !== GossipCode.peerUpdate &&
      code !== GossipCode.peerListResponse
    ) {
      return;
    }
    this.checks.messages++;
    const key = frameKey(code, frame.body);
    if (this.cleanFrames.has(key, frame.body)) return;
    const before = this.violationCount;
    const decoded = decodeGossip(frame, undefined, this.decodeRecord);
    if (!decoded.ok) {
      this.fail({
        atMs,
        node,
        where: 'message',
        detail: `sent a frame (code 0x${code.toString(16)}) that does not decode: ${decoded.rejection} ${decoded.detail}`,
      });
      return;
    }
    const message = decoded.message;
    if (message.code === GossipCode.peerListResponse) {
      for (const record of message.records) this.checkRecord(node, record, 'message', atMs);
    } else if (
      message.code === GossipCode.peerAnnouncement ||
      message.code === GossipCode.peerUpdate
    ) {
      this.checkRecord(node, message.record, 'message', atMs);
    }
    // A PEER_LIST_RESPONSE on its last hop (a table sync, an answer's final leg) is sent once,
    // on one link: remembering it would only fill the memory.
    const lastHop = code === GossipCode.peerListResponse && frame.body[0] === 1;
    if (this.violationCount === before && !lastHop) this.cleanFrames.add(key, frame.body);
  }

  /** Checks one engine's whole table. */
  sweep(node: number, snapshot: readonly GossipPeerSnapshot[], atMs: number): void {
    this.checks.sweptTables++;
    for (const peer of snapshot) {
      this.checks.sweptEntries++;
      for (const address of peer.addresses) {
        if (this.silentAddresses.has(address)) {
          this.fail({
            atMs,
            node,
            where: 'sweep',
            detail: `table lists silent address ${address}`,
          });
        }
      }
      if (this.silentKeys.has(peer.deviceIdHex) && (peer.addresses.length > 0 || peer.broadcast)) {
        this.fail({
          atMs,
          node,
          where: 'sweep',
          detail: `table shows silent peer ${peer.deviceIdHex.slice(0, 16)} as broadcasting`,
        });
      }
      if (peer.record !== undefined) this.checkRecord(node, peer.record, 'sweep', atMs);
    }
  }

  private checkRecord(
    node: number,
    bytes: Uint8Array,
    where: IpViolation['where'],
    atMs: number,
  ): void {
    const key = recordKey(bytes);
    if (this.cleanRecords.has(key, bytes)) return;
    const before = this.violationCount;
    const decoded = decodePeerRecord(bytes);
    if (!decoded.ok) {
      this.fail({ atMs, node, where, detail: `record does not decode: ${decoded.detail}` });
      return;
    }
    const record = decoded.record;
    for (const address of record.addresses) {
      if (this.silentAddresses.has(address)) {
        this.fail({ atMs, node, where, detail: `record carries silent address ${address}` });
      }
    }
    if (record.broadcast && this.silentKeys.has(toHex(record.publicKey))) {
      this.fail({ atMs, node, where, detail: 'a silent node signed a broadcasting record' });
    }
    if (this.violationCount === before) this.cleanRecords.add(key, bytes);
  }

  private fail(violation: IpViolation): void {
    this.violationCount++;
    if (this.violations.length < VIOLATIONS_KEPT) this.violations.push(violation);
  }
}
