/**
 * The gossip peer table: who this device knows beyond its pod, bounded.
 *
 * Theory of operation
 * - An entry is keyed by Device ID. It holds the peer's latest signed record (only ever one with
 *   the broadcast flag: the engine admits no other, so every address in the table was published
 *   by its own device, the IP-sharing rule), where it was learnt, when it was last heard
 *   (monotonic), its score (peer-score.ts), the contents it announced, and how many gossip links
 *   to it are open. A linked peer whose record is not known (yet) has an entry without a record
 *   and without an address; it is dropped when its last link goes.
 * - Records only move forward: a record issued before the held one is 'stale'; an equal one only
 *   refreshes. A peer that said it is leaving leaves a tombstone (bounded) so an older record
 *   still in flight cannot bring it back.
 * - Bounds: at most `tableMax` entries. When full, a newcomer replaces the worst of a random
 *   sample of unlinked entries (sampled eviction, as Redis approximates LRU: O(1) per insert),
 *   and only when that entry scores below what a newcomer starts with, so a stream of fresh
 *   records cannot flush peers that proved themselves. Contents per peer are bounded too
 *   (oldest forgotten first).
 * - Bulk quota: records learnt in bulk from one link (a table sync or a PEER_LIST_RESPONSE it
 *   relayed) are tagged with that link; one link may have at most `perLinkMax` such entries
 *   (1/8 of the table, at least 16), past which its records are answered 'full'. The tag goes
 *   once the peer is linked. A bulk record may evict only another bulk record, and eviction
 *   ranks tagged entries just below untagged ones of the same score, so peers heard directly
 *   (their own announcement, a link, the tracker) outlive records pushed in bulk.
 * - Expiry: `expire(nowMs)` drops unlinked entries not heard for `peerExpiryMs`.
 * The table decides nothing about the network; the engine feeds it verified facts.
 */
import type { Prng } from '../prng.js';
import { NEW_PEER_SCORE_PERMILLE, PeerScore } from './peer-score.js';
import type { GossipSource } from './gossip-engine.js';

/** What the table keeps of a verified broadcasting record. */
export interface HeldRecord {
  readonly bytes: Uint8Array;
  readonly issuedAtMs: number;
  readonly bootstrap: boolean;
  readonly addresses: readonly string[];
  readonly listenPort: number;
  readonly deviceName: string;
  /** The network group of its first address (address-prefix.ts); undefined for loopback. */
  readonly dialGroup: string | undefined;
}

export interface TableEntry {
  readonly key: string;
  readonly deviceId: Uint8Array;
  source: GossipSource;
  record: HeldRecord | undefined;
  lastHeardMs: number;
  readonly score: PeerScore;
  /** Content keys it announced holding (insertion order: oldest first). */
  contents: Set<string> | undefined;
  links: number;
  /** Monotonic time before which it is not dialled again (a dial that did not come up). */
  dialBackoffUntilMs: number;
  /** Position in the table's entry array (sampled eviction). */
  position: number;
  /** The link it was learnt from in bulk (sync / list answer), until it is linked. */
  viaLink: number | undefined;
}

export type RecordOutcome =
  | { readonly change: 'learned' | 'updated' | 'refreshed'; readonly entry: TableEntry }
  | { readonly change: 'stale' | 'full' };

export interface GossipTableOptions {
  readonly tableMax: number;
  readonly peerExpiryMs: number;
  readonly heartbeatIntervalMs: number;
  readonly prng: Prng;
}

/** Contents remembered per peer. */
export const CONTENTS_PER_PEER_MAX = 256;
const EVICTION_SAMPLE = 8;
/** Tables this small are scanned whole when evicting (exactly the worst goes). */
const EVICTION_SCAN_ALL = 64;
const TOMBSTONES_MAX = 1024;

export class GossipTable {
  private readonly byKey = new Map<string, TableEntry>();
  private readonly entries: TableEntry[] = [];
  private tombstones: Map<string, number> | undefined = undefined;
  private readonly bulkPerLink = new Map<number, number>();

  constructor(private readonly options: GossipTableOptions) {}

  get size(): number {
    return this.entries.length;
  }

  /** Entries one link may have brought in bulk. */
  get perLinkMax(): number {
    return Math.max(16, Math.floor(this.options.tableMax / 8));
  }

  /** Entries currently tagged as learnt in bulk from `linkId`. */
  bulkFrom(linkId: number): number {
    return this.bulkPerLink.get(linkId) ?? 0;
  }

  get(key: string): TableEntry | undefined {
    return this.byKey.get(key);
  }

  all(): readonly TableEntry[] {
    return this.entries;
  }

  /**
   * Applies a verified broadcasting record of peer `key`, heard at `heardMs` (never after
   * `nowMs`).
   */
  putRecord(
    key: string,
    deviceId: Uint8Array,
    record: HeldRecord,
    source: GossipSource,
    heardMs: number,
    nowMs: number,
    viaLinkId?: number,
  ): RecordOutcome {
    const left = this.tombstones?.get(key);
    if (left !== undefined && record.issuedAtMs <= left) return { change: 'stale' };
    const entry = this.byKey.get(key);
    if (entry !== undefined) {
      const held = entry.record;
      if (held !== undefined && record.issuedAtMs < held.issuedAtMs) return { change: 'stale' };
      this.heard(entry, heardMs);
      if (held !== undefined && record.issuedAtMs === held.issuedAtMs)
        return { change: 'refreshed', entry };
      entry.record = record;
      if (held === undefined) entry.source = source;
      return { change: held === undefined ? 'learned' : 'updated', entry };
    }
    if (viaLinkId !== undefined && this.bulkFrom(viaLinkId) >= this.perLinkMax)
      return { change: 'full' };
    if (
      this.entries.length >= this.options.tableMax &&
      !this.evictFor(nowMs, false, viaLinkId !== undefined)
    )
      return { change: 'full' };
    const created = this.insert(key, deviceId, source, heardMs);
    created.record = record;
    if (viaLinkId !== undefined) this.tag(created, viaLinkId);
    return { change: 'learned', entry: created };
  }

  /** A gossip link to `key` came up: its entry exists while linked, with or without a record. */
  linked(key: string, deviceId: Uint8Array, nowMs: number): TableEntry {
    let entry = this.byKey.get(key);
    if (entry === undefined) {
      // A link always gets an entry: it evicts the worst unlinked one whatever its score, and
      // only when every entry is linked does the table pass tableMax (by at most the links).
      if (this.entries.length >= this.options.tableMax) this.evictFor(nowMs, true);
      entry = this.insert(key, deviceId, 'link', nowMs);
    } else {
      this.heard(entry, nowMs);
    }
    this.tag(entry, undefined);
    entry.links++;
    return entry;
  }

  unlinked(key: string): void {
    const entry = this.byKey.get(key);
    if (entry === undefined) return;
    entry.links = Math.max(0, entry.links - 1);
    if (entry.links === 0 && entry.record === undefined) this.remove(key);
  }

  /** A verified message of `key` arrived. */
  heard(entry: TableEntry, nowMs: number): void {
    if (nowMs > entry.lastHeardMs) entry.lastHeardMs = nowMs;
    entry.score.heard(nowMs, this.options.heartbeatIntervalMs);
  }

  /** The peer said it is leaving (record issued at `issuedAtMs`): forget it, keep a tombstone. */
  leave(key: string, issuedAtMs: number): TableEntry | undefined {
    const entry = this.byKey.get(key);
    if (entry?.record !== undefined && issuedAtMs < entry.record.issuedAtMs) return undefined;
    this.tombstones ??= new Map();
    this.tombstones.delete(key);
    this.tombstones.set(key, issuedAtMs);
    if (this.tombstones.size > TOMBSTONES_MAX) {
      const oldest = this.tombstones.keys().next().value as string;
      this.tombstones.delete(oldest);
    }
    if (entry === undefined) return undefined;
    if (entry.links > 0) {
      // Still linked: keep the link's entry, forget what it published.
      entry.record = undefined;
      entry.contents = undefined;
    } else {
      this.remove(key);
    }
    return entry;
  }

  /** Records that `key` holds (or dropped) content `contentKey`. */
  setContent(entry: TableEntry, contentKey: string, held: boolean): void {
    if (!held) {
      entry.contents?.delete(contentKey);
      return;
    }
    entry.contents ??= new Set();
    entry.contents.delete(contentKey);
    entry.contents.add(contentKey);
    if (entry.contents.size > CONTENTS_PER_PEER_MAX) {
      const oldest = entry.contents.values().next().value as string;
      entry.contents.delete(oldest);
    }
  }

  /** Drops unlinked entries not heard for `peerExpiryMs`; returns them. */
  expire(nowMs: number): TableEntry[] {
    const expired: TableEntry[] = [];
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i]!;
      if (entry.links === 0 && nowMs - entry.lastHeardMs >= this.options.peerExpiryMs) {
        expired.push(entry);
        this.remove(entry.key);
      }
    }
    return expired;
  }

  scorePermille(entry: TableEntry, nowMs: number): number {
    return entry.score.permille(nowMs, this.options.heartbeatIntervalMs);
  }

  /** Up to `count` entries with a record passing `accept`, best score first. */
  best(count: number, nowMs: number, accept: (entry: TableEntry) => boolean): TableEntry[] {
    const picked: { entry: TableEntry; score: number }[] = [];
    for (const entry of this.entries) {
      if (entry.record === undefined || !accept(entry)) continue;
      // A record pushed in bulk by one link ranks just below a peer of the same score.
      const score = this.scorePermille(entry, nowMs) - (entry.viaLink === undefined ? 0 : 0.5);
      if (picked.length === count && score <= picked[picked.length - 1]!.score) continue;
      let at = picked.length;
      while (at > 0 && picked[at - 1]!.score < score) at--;
      picked.splice(at, 0, { entry, score });
      if (picked.length > count) picked.pop();
    }
    return picked.map((p) => p.entry);
  }

  /**
   * Up to `count` entries with a record passing `accept`, drawn uniformly at random (reservoir
   * sampling), those heard directly before those learnt in bulk: what a table sync hands a new
   * link, so the overlay stays random instead of piling dials onto the oldest entries.
   */
  sample(count: number, accept: (entry: TableEntry) => boolean, prng: Prng): TableEntry[] {
    const direct: TableEntry[] = [];
    const bulk: TableEntry[] = [];
    let directSeen = 0;
    let bulkSeen = 0;
    // A large table is sampled from SAMPLE_PROBES random slots, not scanned: a bootstrap node
    // syncs every newcomer, and a full scan per sync would cost O(table) each.
    const entries =
      this.entries.length <= SAMPLE_PROBES ? this.entries : this.probe(SAMPLE_PROBES, prng);
    for (const entry of entries) {
      if (entry.record === undefined || !accept(entry)) continue;
      if (entry.viaLink === undefined) reservoir(direct, ++directSeen, count, entry, prng);
      else reservoir(bulk, ++bulkSeen, count, entry, prng);
    }
    return [...direct, ...bulk].slice(0, count);
  }

  /** Up to `probes` distinct entries at random slots (drawn with replacement, repeats dropped). */
  private probe(probes: number, prng: Prng): TableEntry[] {
    const slots = new Set<number>();
    for (let i = 0; i < probes; i++) slots.add(prng.nextInt(this.entries.length));
    return [...slots].map((slot) => this.entries[slot]!);
  }

  remove(key: string): void {
    const entry = this.byKey.get(key);
    if (entry === undefined) return;
    this.byKey.delete(key);
    this.tag(entry, undefined);
    const last = this.entries.pop()!;
    if (last !== entry) {
      this.entries[entry.position] = last;
      last.position = entry.position;
    }
  }

  private insert(key: string, deviceId: Uint8Array, source: GossipSource, heardMs: number) {
    const entry: TableEntry = {
      key,
      deviceId,
      source,
      record: undefined,
      lastHeardMs: heardMs,
      score: new PeerScore(heardMs),
      contents: undefined,
      links: 0,
      dialBackoffUntilMs: 0,
      position: this.entries.length,
      viaLink: undefined,
    };
    this.byKey.set(key, entry);
    this.entries.push(entry);
    return entry;
  }

  /**
   * Makes room by evicting the worst unlinked entry of a sample (of all entries, for a small
   * table); unless `force`, only one scoring below a newcomer; for a record learnt in bulk
   * (`bulkOnly`), only another such record. False when none qualifies.
   */
  private evictFor(nowMs: number, force: boolean, bulkOnly = false): boolean {
    let worst: TableEntry | undefined = undefined;
    let worstScore = force ? Number.POSITIVE_INFINITY : NEW_PEER_SCORE_PERMILLE;
    const n = this.entries.length;
    const scanAll = n <= EVICTION_SCAN_ALL;
    const draws = scanAll ? n : EVICTION_SAMPLE;
    for (let i = 0; i < draws; i++) {
      const entry = this.entries[scanAll ? i : this.options.prng.nextInt(n)]!;
      if (entry.links > 0 || (bulkOnly && entry.viaLink === undefined)) continue;
      const score = this.scorePermille(entry, nowMs);
      if (
        score < worstScore ||
        (worst !== undefined && score === worstScore && entry.lastHeardMs < worst.lastHeardMs)
      ) {
        worst = entry;
        worstScore = score;
      }
    }
    if (worst === undefined) return false;
    this.remove(worst.key);
    return true;
  }

  /** Moves `entry`'s bulk tag to `linkId` (undefined: untagged), keeping the per-link counts. */
  private tag(entry: TableEntry, linkId: number | undefined): void {
    const old = entry.viaLink;
    if (old === linkId) return;
    if (old !== undefined) {
      const count = this.bulkFrom(old) - 1;
      if (count > 0) this.bulkPerLink.set(old, count);
      else this.bulkPerLink.delete(old);
    }
    entry.viaLink = linkId;
    if (linkId !== undefined) this.bulkPerLink.set(linkId, this.bulkFrom(linkId) + 1);
  }
}

/** Table slots a sync draws from when the table is larger (gossip-table.ts `sample`). */
const SAMPLE_PROBES = 64;

/** One step of reservoir sampling: `entry` is the `seen`-th candidate for `picked`. */
function reservoir<T>(picked: T[], seen: number, count: number, entry: T, prng: Prng): void {
  if (picked.length < count) picked.push(entry);
  else {
    const slot = prng.nextInt(seen);
    if (slot < count) picked[slot] = entry;
  }
}
