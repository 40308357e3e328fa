/**
 * The gossip engine: sans-I/O peer discovery beyond one LAN (DESIGN.md decision 8,
 * docs/protocol.md section 11). The Core (or the simulator) feeds it link changes, gossip
 * frames, timers and commands, each with `nowMs` (monotonic: timers, last heard, expiry) and,
 * where a signature's clock matters, `wallClockMs` (Unix ms from the host, never derived from
 * `nowMs`); it answers with outputs (`send`, `dial`, `close`, `event`) drained by `takeOutput`.
 *
 * Theory of operation
 * - Links (active-view.ts): every ready link whose remote speaks gossip. A new link gets a table
 *   sync (PEER_LIST_RESPONSE, request ID all zero: up to 16 best records, only broadcasting ones)
 *   and, when this device broadcasts, its PEER_ANNOUNCEMENT (the one signed in the last 15 s, so
 *   the links a start-up brings share one flood, else a fresh one). Below `activeLinks` the
 *   engine asks for dials from its table; a link past `activeLinksMax` makes it close a random
 *   other link.
 * - Originating: every message is signed (gossip-codec.ts) with this device's identity and the
 *   input's wall clock, with `ttl = initialTtl` (docs/protocol.md 11.1: ttl counts the hops left,
 *   the current one included), recorded as seen (so its echoes are duplicates) and sent to
 *   `fanOut` links.
 * - Receiving (11.4), cheapest check first: the link ('not-gossip-link') -> decode and limits
 *   (codec) -> clock (+-30 s of the wall clock: 'stale' / 'future') -> seen set (seen-set.ts: a
 *   duplicate is dropped and counted, no event; at or below the floor: 'replayed') -> 'self'
 *   (one this device no longer remembers sending) -> signature ('bad-signature') -> only then
 *   is the ID recorded (a forged copy never suppresses the real one) -> apply -> forward with
 *   ttl - 1 to `fanOut` links other than the sender, when ttl > 1. Each signature is verified
 *   once per node; a record already held byte for byte is not verified again.
 * - Applying: PEER_ANNOUNCEMENT / PEER_UPDATE carry the origin's own record (same key, its own
 *   signature): learned, updated, or 'stale' when older than the one held (not forwarded); an
 *   update that says leaving, or that drops the broadcast flag, removes the peer ('left') and
 *   leaves a tombstone. HEARTBEAT refreshes its origin. CONTENT_AVAILABILITY is recorded for
 *   origins held with a broadcasting record (`gossip:content`, `peersHolding`). PEER_REQUEST is
 *   answered (along the reverse path, request-routes.ts) by a node holding matching broadcasting
 *   records (holding the content, when one is named), else forwarded.
 * - The IP-sharing rule, enforced where messages are built and checked where they arrive: the
 *   table (gossip-table.ts) admits only records signed with the broadcast flag, so every address
 *   it holds, syncs or answers with was published by its own device. A silent device builds no
 *   record with an address, never originates PEER_ANNOUNCEMENT or CONTENT_AVAILABILITY (it may
 *   ask PEER_REQUEST and dial the answers), and its heartbeats go to its direct links only
 *   (signed initialTtl 1, so nobody can relay them): a heartbeat carries no address, but there
 *   is no reason to spread a silent device's key and liveness beyond the peers it chose to dial.
 *   Broadcasting devices heartbeat with TTL 2.
 * - Timers: one tick per `heartbeatIntervalMs` (first one jittered by the Prng): heartbeat, table
 *   expiry (`peerExpiryMs` without hearing), seen-set and route pruning, dial timeouts, and every
 *   `peerExpiryMs / 2` a re-announcement, so a live broadcasting peer never expires in tables
 *   beyond its heartbeat's two hops.
 * - Memory: the seen set, the table, the routes and the dials are bounded by the settings; what
 *   is rarely used is allocated on first use, so an idle engine is a few small objects.
 * Network bytes never make it throw: a bad frame is a `gossip:rejected` event and a counter.
 * It throws only for host misuse (PEAPOD_ERR_INVALID_ARGUMENT, naming the argument).
 */
import { equalBytes, toHex } from '../bytes.js';
import type { CryptoProvider, KeyPair } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { deriveDeviceId } from '../identity.js';
import type { Prng } from '../prng.js';
import type { GossipFrameMessage } from '../wire/messages.js';
import {
  ActiveView,
  DIAL_BACKOFF_MS,
  chooseDials,
  dialAddress,
  type LinkFacts,
} from './active-view.js';
import { bytesKey, pairKey } from './byte-key.js';
import { lookupKeyOf } from './lookup-key.js';
import {
  decodeGossip,
  encodeGossip,
  verifyGossip,
  withTtl,
  type UnsignedGossip,
} from './gossip-codec.js';
import { GossipTable, type TableEntry } from './gossip-table.js';
import {
  GossipCode,
  GossipLimits,
  GossipTtl,
  type ContentAvailabilityMessage,
  type GossipMessage,
  type GossipRejection,
  type PeerAnnouncementMessage,
  type PeerListResponseMessage,
  type PeerRequestMessage,
} from './messages.js';
import { permilleToScore } from './peer-score.js';
import { buildPeerRecord, peerRecordProblem } from './peer-record.js';
import { PeerRecordCache, type KnownRecord, type KnownRecordResult } from './record-cache.js';
import { RequestRoutes } from './request-routes.js';
import { LinkBudget } from './link-budget.js';
import { SeenSet } from './seen-set.js';

export interface GossipSettings {
  /** Active links a new message is forwarded to (besides the one it came from). */
  readonly fanOut: number;
  /** Gossip links the engine tries to hold open (it dials from its table below this). */
  readonly activeLinks: number;
  /**
   * Gossip links held at most: a new link past it stays and a random other one is closed
   * (HyParView). Kept close to `activeLinks` so degrees stay near fanOut + 1 and forwarding to
   * 3 random links still reaches everyone (measured in-memory: 4/5 reached 299/299 and 599/599
   * in every one of 20 announcements, 4/8 a minimum of 295/299).
   */
  readonly activeLinksMax: number;
  /** Origin heartbeat period (HEARTBEAT, 2 hops). */
  readonly heartbeatIntervalMs: number;
  /** A peer not heard for this long is dropped from the table. */
  readonly peerExpiryMs: number;
  /** Message IDs remembered for duplicate and replay suppression. */
  readonly seenMax: number;
  /** Peers kept in the table. */
  readonly tableMax: number;
}

export const GossipDefaults: GossipSettings = {
  fanOut: 4,
  activeLinks: 4,
  activeLinksMax: 5,
  heartbeatIntervalMs: 30_000,
  peerExpiryMs: 2 * 60 * 60 * 1000,
  seenMax: 100_000,
  tableMax: 10_000,
};

/** This device as gossip shows it (what its own peer record says). */
export interface GossipSelf {
  /** Pass this device's address on (the IP-sharing rule's "yes"); false: silent. */
  readonly broadcast: boolean;
  /** Registered as a bootstrap node with a tracker. */
  readonly bootstrap: boolean;
  /** Hosts it may be reached at (ignored, and never sent, unless `broadcast`). */
  readonly addresses: readonly string[];
  readonly listenPort: number;
  readonly deviceName: string;
  readonly capabilities: number;
}

/** Where a table entry was learnt. */
export type GossipSource = 'gossip' | 'tracker' | 'cache' | 'link';

export interface GossipPeerSnapshot {
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  readonly deviceName: string;
  readonly source: GossipSource;
  readonly broadcast: boolean;
  readonly bootstrap: boolean;
  /** From its signed record; empty for a peer that does not broadcast. */
  readonly addresses: readonly string[];
  readonly listenPort: number;
  /** Monotonic (core clock) time it was last heard from, directly or by gossip. */
  readonly lastHeardMs: number;
  /** 0..1: availability and performance combined (higher is better). */
  readonly score: number;
  /** Contents it announced holding. */
  readonly contents: number;
  /** A gossip link to it is open now. */
  readonly linked: boolean;
  /** The latest signed record (what the host persists). */
  readonly record: Uint8Array | undefined;
}

export type GossipEvent =
  /** A peer was learnt, its record changed, it expired or it said it is leaving. */
  | {
      readonly type: 'gossip:peer';
      readonly change: 'learned' | 'updated' | 'expired' | 'left';
      readonly deviceId: Uint8Array;
      readonly source: GossipSource;
      /** Its signed record, for the host's persisted table (undefined when expired or left). */
      readonly record: Uint8Array | undefined;
    }
  /** A broadcasting peer announced holding (or dropping) a content, by its lookup key. */
  | {
      readonly type: 'gossip:content';
      readonly deviceId: Uint8Array;
      /** The content's blinded lookup key (lookup-key.ts); gossip never carries the ID. */
      readonly lookupKey: Uint8Array;
      readonly held: boolean;
    }
  /** A new valid message was accepted (the simulator measures spread with it). */
  | {
      readonly type: 'gossip:accepted';
      readonly code: GossipCode;
      readonly messageId: Uint8Array;
      readonly originDeviceId: Uint8Array;
      /** initialTtl - ttl at arrival: 1 for a message straight from its origin. */
      readonly hops: number;
    }
  /** A frame was refused, and why (logs, counters, tests). */
  | {
      readonly type: 'gossip:rejected';
      readonly linkId: number;
      readonly rejection: GossipRejection;
      readonly detail: string;
    };

export type GossipOutput =
  | { readonly type: 'send'; readonly linkId: number; readonly frame: GossipFrameMessage }
  /** Open a gossip link to a broadcasting peer (its record's address and port). */
  | {
      readonly type: 'dial';
      readonly deviceId: Uint8Array;
      readonly address: string;
      readonly port: number;
    }
  /**
   * Close a gossip link (a new link took the view past `activeLinksMax`, or the link spent its
   * bad-frame budget, link-budget.ts).
   */
  | { readonly type: 'close'; readonly linkId: number }
  | { readonly type: 'event'; readonly event: GossipEvent };

export interface GossipCounters {
  sent: number;
  received: number;
  accepted: number;
  duplicates: number;
  /** Links closed for spending their bad-frame budget (link-budget.ts). */
  closedBadFrames: number;
  /** New links refused: no room in a full view, or their network group's cap (active-view.ts). */
  refusedLinks: number;
  rejected: Partial<Record<GossipRejection, number>>;
}

/** What `announce` and `announceContent` did: the messages sent, or why nothing was. */
export type GossipSendResult =
  | { readonly sent: true; readonly messageIds: readonly Uint8Array[] }
  | { readonly sent: false; readonly reason: string };

export interface GossipEngineOptions {
  readonly crypto: CryptoProvider;
  readonly identity: KeyPair;
  readonly prng: Prng;
  readonly self: GossipSelf;
  readonly settings?: Partial<GossipSettings>;
  /**
   * Decoded peer records (record-cache.ts). Default: the engine's own. Engines in one process may
   * share one (the simulator does), with the same `crypto`.
   */
  readonly records?: PeerRecordCache;
}

/**
 * A link introduction younger than this is resent as is to a new link, and a join announcement
 * is not repeated within it (one signature per burst of links).
 */
const ANNOUNCEMENT_REUSE_MS = GossipLimits.clockSkewMs / 2;
/**
 * Hops a join announcement goes (a device's first link after it had none): its neighbourhood
 * learns it at once, about 50 devices at the default degree, without a whole-network flood per
 * join; the rest learn it from table syncs, answers and its hourly re-announcement.
 */
const JOIN_TTL = 3;
/**
 * Refused links whose one-hop introduction is still read: the refuser learns the newcomer and
 * hands it to the next ones in its table syncs (recent joiners are the devices with room).
 */
const REFUSED_INTRODUCTIONS_MAX = 64;
/**
 * A refused link is closed at its first frame (its introduction is sent first, then its table
 * sync), or after this long when it sends none (a silent device with an empty table).
 */
const REFUSED_WAIT_MS = 5_000;
/** Reverse paths kept for PEER_REQUEST answers, and how long. */
const ROUTES_MAX = 1024;
const ROUTE_LIFETIME_MS = 2 * GossipLimits.clockSkewMs;
/** Contents this device announced holding, remembered to answer PEER_REQUEST. */
const OWN_CONTENTS_MAX = 4096;
const ZERO_REQUEST_ID = new Uint8Array(GossipLimits.messageIdBytes);

/** A message this device originates, before its ttl is set. */
type Originated = UnsignedGossip extends infer M
  ? M extends UnsignedGossip
    ? Omit<M, 'ttl'>
    : never
  : never;

type Applied =
  'forward' | 'keep' | { readonly rejection: GossipRejection; readonly detail: string };

export class GossipEngine {
  readonly counters: GossipCounters = {
    sent: 0,
    received: 0,
    accepted: 0,
    duplicates: 0,
    closedBadFrames: 0,
    refusedLinks: 0,
    rejected: {},
  };

  private readonly crypto: CryptoProvider;
  private readonly identity: KeyPair;
  private readonly prng: Prng;
  private readonly settings: GossipSettings;
  private self: GossipSelf;
  private readonly selfKey: string;
  private readonly records: PeerRecordCache;
  private readonly decodeRecord: (bytes: Uint8Array) => KnownRecordResult;
  private readonly seen: SeenSet;
  private readonly badFrames = new LinkBudget();
  private introducedAtMs: number | undefined = undefined;
  private readonly table: GossipTable;
  private readonly view: ActiveView;
  private readonly routes = new RequestRoutes(ROUTES_MAX, ROUTE_LIFETIME_MS);
  private readonly outputs: GossipOutput[] = [];
  private outputHead = 0;
  private lastNowMs = Number.NEGATIVE_INFINITY;
  private tickDueMs: number | undefined = undefined;
  private reannounceDueMs: number | undefined = undefined;
  private lastIssuedAtMs = -1;
  /** Links refused for room: device key and when to close it, until its first frame arrives. */
  private readonly refused = new Map<
    number,
    { readonly key: string; readonly closeAtMs: number }
  >();
  /** When this device last joined (its first link after none): its join announcement. */
  private joinedAtMs: number | undefined = undefined;
  /** The last one-hop announcement a new link got (reused for ANNOUNCEMENT_REUSE_MS). */
  private introduction:
    { readonly frame: GossipFrameMessage; readonly timestampMs: number } | undefined = undefined;
  private ownContents: Set<string> | undefined = undefined;
  private dialsWanted = false;

  /** @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a malformed setting or self. */
  constructor(readonly options: GossipEngineOptions) {
    if (typeof options !== 'object' || options === null) invalidArgument('options', 'required');
    this.crypto = options.crypto;
    this.identity = options.identity;
    this.prng = options.prng;
    if (!(this.identity?.publicKey instanceof Uint8Array) || this.identity.publicKey.length !== 32)
      invalidArgument('options.identity', 'must be an Ed25519 key pair');
    this.settings = checkSettings({ ...GossipDefaults, ...options.settings });
    this.self = checkSelf(options.self, 'options.self');
    this.selfKey = bytesKey(deriveDeviceId(this.crypto, this.identity.publicKey));
    this.records = options.records ?? new PeerRecordCache(this.crypto);
    this.decodeRecord = (bytes) => this.records.decode(bytes);
    this.seen = new SeenSet(this.settings.seenMax, GossipLimits.clockSkewMs);
    this.view = new ActiveView(2 * this.settings.heartbeatIntervalMs);
    this.table = new GossipTable({
      tableMax: this.settings.tableMax,
      peerExpiryMs: this.settings.peerExpiryMs,
      heartbeatIntervalMs: this.settings.heartbeatIntervalMs,
      prng: this.prng,
    });
  }

  /**
   * A ready link whose remote speaks gossip (HELLO capability bit), with what the host knows of
   * it (`facts`: who dialled, the socket's remote address, a pod link). When the view is full the
   * newcomer takes the place of an inbound stranger's link (active-view.ts), or, when none may
   * give way, is refused: it gets a table sync, so it learns where else to go, and is closed.
   * An accepted link gets a table sync and, when this device broadcasts, a one-hop
   * PEER_ANNOUNCEMENT of it (the link's peer learns it; the rest of the network learns it from
   * table syncs, answers and its own announcements).
   */
  linkUp(
    linkId: number,
    deviceId: Uint8Array,
    nowMs: number,
    wallClockMs: number,
    facts: LinkFacts,
  ): void {
    checkLinkId(linkId);
    checkId(deviceId, 'deviceId');
    checkFacts(facts);
    const wall = this.clock(nowMs, wallClockMs);
    if (this.view.has(linkId)) invalidArgument('linkId', `link ${linkId} is already up`);
    const key = bytesKey(deviceId);
    if (key === this.selfKey) invalidArgument('deviceId', 'is this device');
    const room = this.view.victimFor(
      facts,
      this.settings.activeLinksMax,
      nowMs,
      this.prng,
      !this.self.bootstrap,
    );
    if (room !== undefined && 'refused' in room) {
      // Closed once its introduction arrives (or at the next tick): see REFUSED_INTRODUCTIONS_MAX.
      this.counters.refusedLinks++;
      this.refused.set(linkId, { key, closeAtMs: nowMs + REFUSED_WAIT_MS });
      if (this.refused.size > REFUSED_INTRODUCTIONS_MAX)
        this.closeRefused(this.refused.keys().next().value as number);
      this.sendSync(linkId, key, wall);
      return;
    }
    if (room !== undefined) {
      this.push({ type: 'close', linkId: room.victim });
      this.dropLink(room.victim, nowMs);
    }
    this.view.add(linkId, key, facts, nowMs);
    this.table.linked(key, deviceId.slice(), nowMs);
    // The introduction first: a refusing remote reads only the first frame (REFUSED_WAIT_MS).
    if (this.self.broadcast) {
      const joined = this.joinedAtMs;
      if (this.view.size === 1 && (joined === undefined || wall - joined > ANNOUNCEMENT_REUSE_MS)) {
        this.joinedAtMs = wall;
        this.announceSelf([linkId], wall, JOIN_TTL);
      } else {
        this.introduce(linkId, wall);
      }
    }
    this.sendSync(linkId, key, wall);
    this.maintain(nowMs);
  }

  linkDown(linkId: number, nowMs: number): void {
    checkLinkId(linkId);
    this.clock(nowMs, undefined);
    this.refused.delete(linkId);
    this.dropLink(linkId, nowMs);
    this.maintain(nowMs);
  }

  /** A gossip frame from a link. Never throws on its bytes. */
  receive(linkId: number, frame: GossipFrameMessage, nowMs: number, wallClockMs: number): void {
    checkLinkId(linkId);
    if (typeof frame !== 'object' || frame === null || !(frame.body instanceof Uint8Array))
      invalidArgument('frame', 'must be a gossip frame');
    const wall = this.clock(nowMs, wallClockMs);
    this.counters.received++;
    // A refused link's first frame is read, and only if it introduces its own device
    // (REFUSED_INTRODUCTIONS_MAX); the link is closed at it.
    const linked = this.view.has(linkId);
    const refusedKey = linked ? undefined : this.refused.get(linkId)?.key;
    if (refusedKey !== undefined) this.closeRefused(linkId);
    if (!linked && (refusedKey === undefined || frame.code !== GossipCode.peerAnnouncement)) {
      this.reject(linkId, 'not-gossip-link', 'the link is not an active gossip link');
      return;
    }
    const parsed: KnownRecord[] = [];
    const decoded = decodeGossip(frame, parsed, this.decodeRecord);
    if (!decoded.ok) {
      this.reject(linkId, decoded.rejection, decoded.detail);
      return;
    }
    const message = decoded.message;
    if (refusedKey !== undefined) {
      const fromLinkDevice =
        bytesKey(deriveDeviceId(this.crypto, message.originPublicKey)) === refusedKey;
      if (!fromLinkDevice) {
        this.reject(linkId, 'not-gossip-link', 'a refused link may only introduce its device');
        return;
      }
    }
    const skew = GossipLimits.clockSkewMs;
    if (message.timestampMs > wall + skew) {
      this.reject(linkId, 'future', `timestamp ${message.timestampMs - wall} ms ahead`);
      return;
    }
    if (message.timestampMs < wall - skew) {
      this.reject(linkId, 'stale', `timestamp ${wall - message.timestampMs} ms behind`);
      return;
    }
    const key = pairKey(message.messageId, message.originPublicKey);
    const originPk = bytesKey(message.originPublicKey);
    const verdict = this.seen.check(key, message.timestampMs, originPk, wall);
    if (verdict === 'duplicate') {
      this.counters.duplicates++;
      return;
    }
    if (verdict === 'replayed') {
      this.reject(linkId, 'replayed', 'timestamp at or below the seen set floor');
      return;
    }
    if (verdict === 'over-quota') {
      this.reject(linkId, 'over-quota', 'the origin holds its quota of seen messages');
      return;
    }
    if (equalBytes(message.originPublicKey, this.identity.publicKey)) {
      this.reject(linkId, 'self', 'a message of this device that it no longer remembers');
      return;
    }
    const originDeviceId = deriveDeviceId(this.crypto, message.originPublicKey);
    const originKey = bytesKey(originDeviceId);
    if (
      (message.code === GossipCode.heartbeat || message.code === GossipCode.contentAvailability) &&
      this.table.get(originKey) === undefined &&
      this.view.deviceKeyOf(linkId) !== originKey
    ) {
      this.reject(linkId, 'unknown-origin', 'an origin neither in the table nor a direct link');
      return;
    }
    if (!verifyGossip(this.crypto, frame)) {
      this.reject(linkId, 'bad-signature', 'the envelope signature is not its origin key’s');
      this.chargeBadFrame(linkId, nowMs);
      return;
    }
    this.seen.add(key, message.timestampMs, wall, originPk);
    const applied = this.apply(linkId, message, frame, parsed, originKey, nowMs, wall);
    if (typeof applied === 'object') {
      this.reject(linkId, applied.rejection, applied.detail);
      return;
    }
    const origin = this.table.get(originKey);
    if (origin !== undefined) this.table.heard(origin, nowMs);
    this.counters.accepted++;
    this.view.noteAccepted(linkId);
    this.event({
      type: 'gossip:accepted',
      code: message.code,
      messageId: message.messageId,
      originDeviceId,
      hops: message.initialTtl - message.ttl + 1,
    });
    if (applied === 'forward' && message.ttl > 1 && refusedKey === undefined) {
      const relayed = withTtl(frame, message.ttl - 1);
      for (const target of this.view.targets(this.settings.fanOut, linkId, this.prng))
        this.send(target, relayed);
    }
    if (this.dialsWanted) this.maintain(nowMs);
  }

  timer(nowMs: number, wallClockMs: number): void {
    const wall = this.clock(nowMs, wallClockMs);
    for (const [linkId, refused] of this.refused) {
      if (refused.closeAtMs > nowMs) break;
      this.closeRefused(linkId);
    }
    for (const key of this.view.expireDials(nowMs)) {
      const entry = this.table.get(key);
      if (entry !== undefined) entry.dialBackoffUntilMs = nowMs + DIAL_BACKOFF_MS;
      this.dialsWanted = true;
    }
    if (this.tickDueMs !== undefined && nowMs >= this.tickDueMs) {
      this.tickDueMs = nowMs + this.settings.heartbeatIntervalMs;
      this.tick(nowMs, wall);
    }
    this.maintain(nowMs);
  }

  nextDeadlineMs(): number | undefined {
    let next = this.tickDueMs;
    const dial = this.view.nextDialDeadlineMs();
    if (dial !== undefined && (next === undefined || dial < next)) next = dial;
    // The oldest refused link is the first to close (insertion order).
    const refused = this.refused.values().next().value?.closeAtMs;
    if (refused !== undefined && (next === undefined || refused < next)) next = refused;
    return next;
  }

  /** This device's state changed (broadcast toggled, address learnt): a PEER_UPDATE goes out. */
  setSelf(self: GossipSelf, nowMs: number, wallClockMs: number): void {
    const checked = checkSelf(self, 'self');
    const wall = this.clock(nowMs, wallClockMs);
    const wasBroadcasting = this.self.broadcast;
    this.self = checked;
    this.introduction = undefined;
    // A device that stops broadcasting still tells the network, so its address is dropped.
    if (checked.broadcast || wasBroadcasting) this.sendUpdate(false, wall);
    if (checked.broadcast && !wasBroadcasting)
      this.reannounceDueMs = nowMs + this.settings.peerExpiryMs / 2;
  }

  /**
   * This device is going away: a PEER_UPDATE whose record says leaving (and carries no
   * address), so tables drop it at once instead of after `peerExpiryMs`. Sent only by a
   * broadcasting device (no table holds a silent one).
   */
  leave(nowMs: number, wallClockMs: number): GossipSendResult {
    const wall = this.clock(nowMs, wallClockMs);
    if (!this.self.broadcast) return { sent: false, reason: 'this device does not broadcast' };
    return { sent: true, messageIds: [this.sendUpdate(true, wall)] };
  }

  /**
   * A fresh PEER_ANNOUNCEMENT of this device to `fanOut` links (the engine also announces
   * on every new link and every `peerExpiryMs / 2`; the simulator measures spread with this).
   * A silent device announces nothing: it says why.
   */
  announce(nowMs: number, wallClockMs: number): GossipSendResult {
    const wall = this.clock(nowMs, wallClockMs);
    if (!this.self.broadcast)
      return { sent: false, reason: 'this device does not broadcast: it announces nothing' };
    return { sent: true, messageIds: [this.announceSelf(this.originTargets(), wall)] };
  }

  /**
   * Contents this device holds or dropped, sent only when it broadcasts (a silent device's
   * contents are nobody's business): CONTENT_AVAILABILITY, 64 entries a message, each by its
   * blinded lookup key (lookup-key.ts), never by content ID. The caller names only contents it
   * serves to strangers (published: the core's rule).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for an entry that is not a 32-byte ID and a
   * boolean.
   */
  announceContent(
    entries: readonly { readonly contentId: Uint8Array; readonly held: boolean }[],
    nowMs: number,
    wallClockMs: number,
  ): GossipSendResult {
    if (!Array.isArray(entries)) invalidArgument('entries', 'must be an array');
    for (const entry of entries) {
      checkId(entry?.contentId, 'entries[].contentId');
      if (typeof entry.held !== 'boolean') invalidArgument('entries[].held', 'must be a boolean');
    }
    const wall = this.clock(nowMs, wallClockMs);
    if (!this.self.broadcast)
      return {
        sent: false,
        reason:
          'this device does not broadcast: content availability is sent only by broadcasting devices',
      };
    // One entry per content (the last one given wins): a message may not name one twice.
    const byContent = new Map<string, { lookupKey: Uint8Array; held: boolean }>();
    for (const entry of entries) {
      const lookupKey = lookupKeyOf(this.crypto, entry.contentId);
      byContent.set(bytesKey(lookupKey), { lookupKey, held: entry.held });
    }
    if (byContent.size === 0) return { sent: false, reason: 'no entries' };
    for (const [contentKey, entry] of byContent) this.rememberOwnContent(contentKey, entry.held);
    this.introduceBeforeContent(wall);
    const distinct = [...byContent.values()];
    const messageIds: Uint8Array[] = [];
    for (let at = 0; at < distinct.length; at += GossipLimits.contentEntries) {
      const slice = distinct.slice(at, at + GossipLimits.contentEntries);
      const messageId = this.newMessageId();
      this.originate(
        {
          code: GossipCode.contentAvailability,
          initialTtl: GossipTtl[GossipCode.contentAvailability],
          messageId,
          timestampMs: wall,
          entries: slice,
        },
        this.originTargets(),
      );
      messageIds.push(messageId);
    }
    return { sent: true, messageIds };
  }

  /**
   * Asks the network for peers (holding `contentId`, when given: the request names its lookup
   * key, lookup-key.ts). Returns the request's ID.
   */
  requestPeers(contentId: Uint8Array | undefined, nowMs: number, wallClockMs: number): Uint8Array {
    if (contentId !== undefined) checkId(contentId, 'contentId');
    const wall = this.clock(nowMs, wallClockMs);
    const messageId = this.newMessageId();
    const lookupKey = contentId === undefined ? undefined : lookupKeyOf(this.crypto, contentId);
    const contentKey = lookupKey === undefined ? undefined : bytesKey(lookupKey);
    const targets = this.originTargets();
    this.routes.add(bytesKey(messageId), undefined, contentKey, nowMs, targets);
    this.originate(
      {
        code: GossipCode.peerRequest,
        initialTtl: GossipTtl[GossipCode.peerRequest],
        messageId,
        timestampMs: wall,
        lookupKey,
        maxResults: GossipLimits.listRecords,
      },
      targets,
    );
    return messageId;
  }

  /**
   * Signed records from outside gossip (the tracker, the persisted table). Each is verified;
   * returns how many were accepted. Records older than `peerExpiryMs` are ignored, and so are
   * records without the broadcast flag, leaving ones and this device's own. A record's last
   * heard time is taken from its issue time (nothing newer is known of it).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT unless `records` is an array of byte arrays.
   */
  addRecords(
    records: readonly Uint8Array[],
    source: GossipSource,
    nowMs: number,
    wallClockMs: number,
  ): number {
    if (!Array.isArray(records) || !records.every((r) => r instanceof Uint8Array))
      invalidArgument('records', 'must be an array of byte arrays');
    if (!GOSSIP_SOURCES.has(source))
      invalidArgument('source', `must be one of ${[...GOSSIP_SOURCES].join(', ')}`);
    const wall = this.clock(nowMs, wallClockMs);
    const decoded: KnownRecord[] = [];
    for (const bytes of records) {
      const result = this.records.decode(bytes);
      if (result.ok) decoded.push(result.record); // one that does not decode is unverifiable
    }
    const accepted = this.learnRecords(decoded, source, nowMs, wall, undefined);
    this.maintain(nowMs);
    return accepted;
  }

  /** Performance the Core measured on a link to `deviceId` (feeds the score). */
  observe(
    deviceId: Uint8Array,
    sample: { readonly rttMs?: number; readonly bytesPerSecond?: number },
  ): void {
    checkId(deviceId, 'deviceId');
    for (const field of ['rttMs', 'bytesPerSecond'] as const) {
      const value = sample?.[field];
      if (value !== undefined && (!Number.isFinite(value) || value < 0))
        invalidArgument(`sample.${field}`, 'must be a finite number >= 0');
    }
    this.table.get(bytesKey(deviceId))?.score.observe(sample);
  }

  /** Broadcasting peers that announced holding `contentId` (its lookup key), best score first. */
  peersHolding(contentId: Uint8Array): GossipPeerSnapshot[] {
    checkId(contentId, 'contentId');
    const contentKey = bytesKey(lookupKeyOf(this.crypto, contentId));
    return this.table
      .best(this.table.size, this.lastNowMs, (entry) => entry.contents?.has(contentKey) === true)
      .map((entry) => this.snapshotOf(entry));
  }

  /** Whether gossip learnt device `deviceId` as a holder of `contentId` (by its lookup key). */
  holds(deviceId: Uint8Array, contentId: Uint8Array): boolean {
    checkId(deviceId, 'deviceId');
    checkId(contentId, 'contentId');
    const contents = this.table.get(bytesKey(deviceId))?.contents;
    return contents?.has(bytesKey(lookupKeyOf(this.crypto, contentId))) === true;
  }

  /** This device's own signed record (for a tracker registration). */
  ownRecord(wallClockMs: number): Uint8Array {
    return this.buildOwnRecord(checkWallClock(wallClockMs), false);
  }

  snapshot(): GossipPeerSnapshot[] {
    return this.table.all().map((entry) => this.snapshotOf(entry));
  }

  takeOutput(): GossipOutput | undefined {
    if (this.outputHead >= this.outputs.length) return undefined;
    const output = this.outputs[this.outputHead]!;
    this.outputs[this.outputHead] = undefined as unknown as GossipOutput;
    this.outputHead++;
    if (this.outputHead === this.outputs.length) {
      this.outputs.length = 0;
      this.outputHead = 0;
    }
    return output;
  }

  /** Sizes of the bounded structures (tests and the simulator check the bounds). */
  get sizes(): { readonly table: number; readonly seen: number; readonly links: number } {
    return { table: this.table.size, seen: this.seen.size, links: this.view.size };
  }

  // --- receiving ---------------------------------------------------------------------------

  /** `parsed`: the records `message` carries, as decodeGossip parsed them. */
  private apply(
    linkId: number,
    message: GossipMessage,
    frame: GossipFrameMessage,
    parsed: readonly KnownRecord[],
    originKey: string,
    nowMs: number,
    wall: number,
  ): Applied {
    switch (message.code) {
      case GossipCode.peerAnnouncement:
      case GossipCode.peerUpdate:
        return this.applyAnnouncement(message, parsed[0]!, originKey, nowMs);
      case GossipCode.peerRequest:
        return this.applyRequest(linkId, message, originKey, nowMs, wall);
      case GossipCode.peerListResponse:
        return this.applyListResponse(linkId, message, frame, parsed, originKey, nowMs, wall);
      case GossipCode.heartbeat:
        return 'forward';
      case GossipCode.contentAvailability:
        return this.applyContent(message, originKey);
    }
  }

  /** `record`: the message's record, parsed (decodeGossip refused one not the origin's own). */
  private applyAnnouncement(
    message: PeerAnnouncementMessage,
    record: KnownRecord,
    originKey: string,
    nowMs: number,
  ): Applied {
    const held = this.table.get(originKey)?.record;
    if (held !== record.held && !this.records.valid(record))
      return { rejection: 'bad-signature', detail: 'the record’s signature is not its key’s' };
    if (record.leaving || (!record.broadcast && message.code === GossipCode.peerUpdate)) {
      if (held !== undefined && record.issuedAtMs < held.issuedAtMs)
        return { rejection: 'stale', detail: 'the record is older than the one held' };
      const gone = this.table.leave(originKey, record.issuedAtMs);
      if (gone !== undefined && held !== undefined) {
        this.peerEvent('left', gone.deviceId, gone.source, undefined);
      }
      return 'forward';
    }
    if (!record.broadcast)
      return {
        rejection: 'address-not-broadcast',
        detail: 'an announcement of a device that does not broadcast',
      };
    const outcome = this.table.putRecord(
      originKey,
      record.deviceId,
      record.held,
      'gossip',
      nowMs,
      nowMs,
    );
    if (outcome.change === 'stale')
      return { rejection: 'stale', detail: 'the record is older than the one held' };
    if (outcome.change === 'learned' || outcome.change === 'updated') {
      this.peerEvent(outcome.change, outcome.entry.deviceId, outcome.entry.source, record.bytes);
      if (outcome.change === 'learned') this.dialsWanted = true;
    }
    return 'forward';
  }

  private applyRequest(
    linkId: number,
    message: PeerRequestMessage,
    originKey: string,
    nowMs: number,
    wall: number,
  ): Applied {
    // Answers are taken from the links the request may be forwarded on (all but the sender's).
    const onward = message.ttl > 1 ? this.view.linkIds().filter((id) => id !== linkId) : [];
    if (!this.routes.add(bytesKey(message.messageId), linkId, undefined, nowMs, onward, originKey))
      return { rejection: 'over-quota', detail: 'the link or origin holds its quota of routes' };
    const records = this.matchingRecords(message.lookupKey, message.maxResults, originKey, wall);
    if (records.length === 0) return 'forward';
    this.originate(
      {
        code: GossipCode.peerListResponse,
        initialTtl: GossipTtl[GossipCode.peerListResponse],
        messageId: this.newMessageId(),
        timestampMs: wall,
        requestId: message.messageId,
        records,
      },
      [linkId],
    );
    return 'keep';
  }

  private applyListResponse(
    linkId: number,
    message: PeerListResponseMessage,
    frame: GossipFrameMessage,
    parsed: readonly KnownRecord[],
    originKey: string,
    nowMs: number,
    wall: number,
  ): Applied {
    if (equalBytes(message.requestId, ZERO_REQUEST_ID)) {
      if (originKey !== this.view.deviceKeyOf(linkId))
        return {
          rejection: 'record-mismatch',
          detail: 'a table sync comes from the linked device',
        };
      if (!this.view.takeSync(linkId))
        return { rejection: 'replayed', detail: 'one table sync is accepted per link' };
      this.learnRecords(parsed, 'gossip', nowMs, wall, undefined, linkId);
      return 'keep';
    }
    const route = this.routes.get(bytesKey(message.requestId), nowMs);
    if (route === undefined) return 'keep'; // expired or never ours to route: dropped
    if (!RequestRoutes.answerable(route, linkId))
      return { rejection: 'unsolicited', detail: 'the request was not sent on this link' };
    if (route.linkId === undefined) {
      this.learnRecords(parsed, 'gossip', nowMs, wall, route.contentKey, linkId);
    } else if (message.ttl > 1 && this.view.has(route.linkId)) {
      this.send(route.linkId, withTtl(frame, message.ttl - 1));
    }
    return 'keep';
  }

  private applyContent(message: ContentAvailabilityMessage, originKey: string): Applied {
    // Recorded only for an origin held with a broadcasting record: a device that does not
    // broadcast sends none, and the table never holds its record to attach contents to.
    const entry = this.table.get(originKey);
    if (entry?.record !== undefined) {
      for (const item of message.entries) {
        this.table.setContent(entry, bytesKey(item.lookupKey), item.held);
        this.event({
          type: 'gossip:content',
          deviceId: entry.deviceId,
          lookupKey: item.lookupKey,
          held: item.held,
        });
      }
    }
    return 'forward';
  }

  /**
   * Verifies and admits records (a table sync, an answer, the tracker, the cache). Records from
   * an answer to this device's request for `contentKey` also mark their peers as holding it.
   */
  private learnRecords(
    records: readonly KnownRecord[],
    source: GossipSource,
    nowMs: number,
    wall: number,
    contentKey: string | undefined,
    viaLinkId?: number,
  ): number {
    let accepted = 0;
    for (const record of records) {
      if (!record.broadcast || record.leaving) continue;
      if (record.issuedAtMs > wall + GossipLimits.clockSkewMs) continue;
      const ageMs = wall - record.issuedAtMs;
      if (ageMs > this.settings.peerExpiryMs) continue;
      const { deviceId, key } = record;
      if (key === this.selfKey) continue;
      const held = this.table.get(key)?.record;
      if (held !== undefined && record.issuedAtMs < held.issuedAtMs) continue;
      if (held !== record.held && !this.records.valid(record)) continue;
      const heardMs = nowMs - Math.max(0, ageMs);
      const outcome = this.table.putRecord(
        key,
        deviceId,
        record.held,
        source,
        heardMs,
        nowMs,
        viaLinkId,
      );
      if (!('entry' in outcome)) continue; // stale, the table is full or the link's quota is
      const entry = outcome.entry;
      accepted++;
      if (outcome.change !== 'refreshed')
        this.peerEvent(outcome.change, deviceId, entry.source, record.bytes);
      if (outcome.change === 'learned') this.dialsWanted = true;
      if (contentKey !== undefined) {
        this.table.setContent(entry, contentKey, true);
        this.event({
          type: 'gossip:content',
          deviceId: entry.deviceId,
          lookupKey: keyBytes(contentKey),
          held: true,
        });
      }
    }
    return accepted;
  }

  /**
   * Records answering a PEER_REQUEST: broadcasting peers (holding the content, if named by its
   * lookup key; this device's own contents are remembered by lookup key too).
   */
  private matchingRecords(
    lookupKey: Uint8Array | undefined,
    maxResults: number,
    requesterKey: string,
    wall: number,
  ): Uint8Array[] {
    const contentKey = lookupKey === undefined ? undefined : bytesKey(lookupKey);
    const records: Uint8Array[] = [];
    if (this.self.broadcast && (contentKey === undefined || this.ownContents?.has(contentKey)))
      records.push(this.buildOwnRecord(wall, false));
    const wanted = maxResults - records.length;
    const peers = this.table.best(
      wanted,
      this.lastNowMs,
      (entry) =>
        entry.key !== requesterKey &&
        (contentKey === undefined || entry.contents?.has(contentKey) === true),
    );
    for (const entry of peers) records.push(entry.record!.bytes);
    return records;
  }

  // --- originating ---------------------------------------------------------------------------

  /**
   * The table sync a new link gets: up to 16 broadcasting records drawn at random (those heard
   * directly first, gossip-table.ts), never the peer's own.
   */
  private sendSync(linkId: number, peerKey: string, wall: number): void {
    const records = this.table
      .sample(GossipLimits.listRecords, (entry) => entry.key !== peerKey, this.prng)
      .map((entry) => entry.record!.bytes);
    if (records.length === 0) return;
    this.originate(
      {
        code: GossipCode.peerListResponse,
        initialTtl: 1,
        messageId: this.newMessageId(),
        timestampMs: wall,
        requestId: ZERO_REQUEST_ID,
        records,
      },
      [linkId],
    );
  }

  /**
   * The one-hop PEER_ANNOUNCEMENT a new link gets (initialTtl 1: nobody relays it), the one
   * signed in the last ANNOUNCEMENT_REUSE_MS when there is one, so a burst of links costs one
   * signature.
   */
  private introduce(linkId: number, wall: number): void {
    const cached = this.introduction;
    if (cached !== undefined && wall - cached.timestampMs <= ANNOUNCEMENT_REUSE_MS) {
      this.send(linkId, cached.frame);
      return;
    }
    const frame = this.originate(
      {
        code: GossipCode.peerAnnouncement,
        initialTtl: 1,
        messageId: this.newMessageId(),
        timestampMs: wall,
        record: this.buildOwnRecord(wall, false),
      },
      [linkId],
    );
    this.introduction = { frame, timestampMs: wall };
  }

  private announceSelf(
    targets: readonly number[],
    wall: number,
    initialTtl: number = GossipTtl[GossipCode.peerAnnouncement],
  ): Uint8Array {
    const messageId = this.newMessageId();
    this.originate(
      {
        code: GossipCode.peerAnnouncement,
        initialTtl,
        messageId,
        timestampMs: wall,
        record: this.buildOwnRecord(wall, false),
      },
      targets,
    );
    return messageId;
  }

  private sendUpdate(leaving: boolean, wall: number): Uint8Array {
    const messageId = this.newMessageId();
    this.originate(
      {
        code: GossipCode.peerUpdate,
        initialTtl: GossipTtl[GossipCode.peerUpdate],
        messageId,
        timestampMs: wall,
        record: this.buildOwnRecord(wall, leaving),
      },
      this.originTargets(),
    );
    return messageId;
  }

  /**
   * This device's record, issued now (and strictly after the last one, so receivers take it
   * as newer). Addresses only when broadcasting and not leaving: the IP-sharing rule at the
   * builder.
   */
  private buildOwnRecord(wall: number, leaving: boolean): Uint8Array {
    const issuedAtMs = Math.max(wall, this.lastIssuedAtMs + 1);
    this.lastIssuedAtMs = issuedAtMs;
    const self = this.self;
    const broadcast = self.broadcast && !leaving;
    return buildPeerRecord(this.crypto, this.identity, {
      issuedAtMs,
      broadcast,
      bootstrap: self.bootstrap,
      leaving,
      capabilities: self.capabilities,
      listenPort: self.listenPort,
      deviceName: self.deviceName,
      addresses: broadcast ? self.addresses : [],
    });
  }

  /** Signs with `ttl = initialTtl`, records the ID as seen and sends to `targets`. */
  private originate(message: Originated, targets: readonly number[]): GossipFrameMessage {
    const unsigned = { ...message, ttl: message.initialTtl } as UnsignedGossip;
    const frame = encodeGossip(this.crypto, this.identity, unsigned, this.decodeRecord);
    // Signed with the wall clock now, so the timestamp is also the clock to prune against.
    const { messageId, timestampMs } = message;
    this.seen.add(pairKey(messageId, this.identity.publicKey), timestampMs, timestampMs);
    for (const linkId of targets) this.send(linkId, frame);
    return frame;
  }

  /** An origin sends to `fanOut` links, as a relay does (section 11.4, origination). */
  private originTargets(): number[] {
    return this.view.targets(this.settings.fanOut, undefined, this.prng);
  }

  private newMessageId(): Uint8Array {
    return this.crypto.randomBytes(GossipLimits.messageIdBytes);
  }

  private rememberOwnContent(contentKey: string, held: boolean): void {
    if (!held) {
      this.ownContents?.delete(contentKey);
      return;
    }
    this.ownContents ??= new Set();
    this.ownContents.delete(contentKey);
    this.ownContents.add(contentKey);
    if (this.ownContents.size > OWN_CONTENTS_MAX)
      this.ownContents.delete(this.ownContents.values().next().value as string);
  }

  // --- timers and links ------------------------------------------------------------------

  /** A refused link's wait is over: it is closed. */
  private closeRefused(linkId: number): void {
    if (this.refused.delete(linkId)) this.push({ type: 'close', linkId });
  }

  private tick(nowMs: number, wall: number): void {
    for (const entry of this.table.expire(nowMs))
      if (entry.record !== undefined)
        this.peerEvent('expired', entry.deviceId, entry.source, undefined);
    this.seen.forgetOlderThan(wall - GossipLimits.clockSkewMs);
    this.routes.prune(nowMs);
    if (this.view.size > 0) {
      this.originate(
        {
          code: GossipCode.heartbeat,
          initialTtl: this.self.broadcast ? GossipTtl[GossipCode.heartbeat] : 1,
          messageId: this.newMessageId(),
          timestampMs: wall,
        },
        this.view.linkIds(),
      );
    }
    if (
      this.self.broadcast &&
      this.reannounceDueMs !== undefined &&
      nowMs >= this.reannounceDueMs
    ) {
      this.reannounceDueMs = nowMs + this.settings.peerExpiryMs / 2;
      if (this.view.size > 0) this.announceSelf(this.originTargets(), wall);
    }
    this.dialsWanted = true;
  }

  /** Takes a link out of the view; its peer is not redialled at once (it, or we, closed it). */
  private dropLink(linkId: number, nowMs: number): void {
    const key = this.view.remove(linkId);
    if (key === undefined) return; // closed by this engine already, or never a gossip link
    const entry = this.table.get(key);
    if (entry !== undefined) entry.dialBackoffUntilMs = nowMs + DIAL_BACKOFF_MS;
    this.table.unlinked(key);
    this.dialsWanted = true;
  }

  /** Asks for dials while below `activeLinks`, from random dialable broadcasting peers. */
  private maintain(nowMs: number): void {
    if (!this.dialsWanted) return;
    this.dialsWanted = false;
    const slots = this.view.dialSlots(this.settings.activeLinks);
    if (slots === 0) return;
    // Bootstrap nodes are introduction points, full at once and refusing with a table sync: one
    // dial at a time (a newcomer that knows only them would otherwise dial them all together).
    let bootstrapBusy = false;
    for (const key of this.view.dialingKeys())
      if (this.table.get(key)?.record?.bootstrap === true) bootstrapBusy = true;
    const chosen = chooseDials(
      this.table.all(),
      slots,
      (entry) =>
        entry.links === 0 &&
        entry.dialBackoffUntilMs <= nowMs &&
        !this.view.isDialing(entry.key) &&
        !(bootstrapBusy && entry.record?.bootstrap === true) &&
        dialAddress(entry) !== undefined,
      this.view.chosenGroups(),
      this.prng,
    ).filter((entry) => {
      if (entry.record?.bootstrap !== true) return true;
      if (bootstrapBusy) return false;
      bootstrapBusy = true;
      return true;
    });
    if (chosen.length < slots) this.dialsWanted = true; // the rest at the next input
    for (const entry of chosen) {
      const target = dialAddress(entry)!;
      this.view.markDialing(entry.key, target.address, nowMs);
      this.push({
        type: 'dial',
        deviceId: entry.deviceId,
        address: target.address,
        port: target.port,
      });
    }
  }

  /** Checks and records the input's clocks; returns the wall clock as an integer. */
  private clock(nowMs: number, wallClockMs: number | undefined): number {
    if (!Number.isFinite(nowMs)) invalidArgument('nowMs', `must be a finite number, got ${nowMs}`);
    if (nowMs < this.lastNowMs)
      invalidArgument('nowMs', `went backwards (${nowMs} after ${this.lastNowMs})`);
    this.lastNowMs = nowMs;
    if (this.tickDueMs === undefined) {
      // The first tick is jittered so engines started together do not heartbeat in step.
      this.tickDueMs = nowMs + 1 + this.prng.nextInt(this.settings.heartbeatIntervalMs);
      this.reannounceDueMs = nowMs + this.settings.peerExpiryMs / 2;
      this.dialsWanted = true;
    }
    return wallClockMs === undefined ? 0 : checkWallClock(wallClockMs);
  }

  // --- outputs -----------------------------------------------------------------------------

  private send(linkId: number, frame: GossipFrameMessage): void {
    this.counters.sent++;
    this.push({ type: 'send', linkId, frame });
  }

  /**
   * Receivers refuse CONTENT_AVAILABILITY from origins they hold no record of ('unknown-origin'),
   * so a content announcement is preceded by a flooded PEER_ANNOUNCEMENT of this device (sent
   * first on every link, it is ahead of the content message on each path), at most one per
   * ANNOUNCEMENT_REUSE_MS.
   */
  private introduceBeforeContent(wall: number): void {
    if (this.introducedAtMs !== undefined && wall - this.introducedAtMs <= ANNOUNCEMENT_REUSE_MS)
      return;
    this.introducedAtMs = wall;
    this.announceSelf(this.originTargets(), wall);
  }

  /** A bad frame from `linkId`: past its budget (link-budget.ts) the link is closed. */
  private chargeBadFrame(linkId: number, nowMs: number): void {
    if (!this.badFrames.charge(linkId, (id) => this.view.has(id))) return;
    this.counters.closedBadFrames++;
    this.push({ type: 'close', linkId });
    this.dropLink(linkId, nowMs);
  }

  private reject(linkId: number, rejection: GossipRejection, detail: string): void {
    this.counters.rejected[rejection] = (this.counters.rejected[rejection] ?? 0) + 1;
    this.event({ type: 'gossip:rejected', linkId, rejection, detail });
  }

  private peerEvent(
    change: 'learned' | 'updated' | 'expired' | 'left',
    deviceId: Uint8Array,
    source: GossipSource,
    record: Uint8Array | undefined,
  ): void {
    this.event({ type: 'gossip:peer', change, deviceId, source, record });
  }

  private event(event: GossipEvent): void {
    this.push({ type: 'event', event });
  }

  private push(output: GossipOutput): void {
    this.outputs.push(output);
  }

  private snapshotOf(entry: TableEntry): GossipPeerSnapshot {
    const record = entry.record;
    return {
      deviceId: entry.deviceId,
      deviceIdHex: toHex(entry.deviceId),
      deviceName: record?.deviceName ?? '',
      source: entry.source,
      broadcast: record !== undefined,
      bootstrap: record?.bootstrap ?? false,
      addresses: record?.addresses ?? [],
      listenPort: record?.listenPort ?? 0,
      lastHeardMs: entry.lastHeardMs,
      score: permilleToScore(this.table.scorePermille(entry, this.lastNowMs)),
      contents: entry.contents?.size ?? 0,
      linked: entry.links > 0,
      record: record?.bytes,
    };
  }
}

const GOSSIP_SOURCES: ReadonlySet<string> = new Set(['gossip', 'tracker', 'cache', 'link']);

function keyBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

function checkSettings(settings: GossipSettings): GossipSettings {
  const positive = (name: keyof GossipSettings, max: number) => {
    const value = settings[name];
    if (!Number.isSafeInteger(value) || value < 1 || value > max)
      invalidArgument(`settings.${name}`, `must be an integer in [1, ${max}], got ${value}`);
  };
  positive('fanOut', 64);
  positive('activeLinks', 1024);
  positive('activeLinksMax', 1024);
  positive('heartbeatIntervalMs', 0x1_0000_0000);
  positive('peerExpiryMs', Number.MAX_SAFE_INTEGER);
  positive('seenMax', 100_000_000);
  positive('tableMax', 100_000_000);
  if (settings.activeLinksMax < settings.activeLinks)
    invalidArgument('settings.activeLinksMax', 'must be at least activeLinks');
  return settings;
}

function checkSelf(self: GossipSelf, name: string): GossipSelf {
  if (typeof self !== 'object' || self === null) invalidArgument(name, 'required');
  if (typeof self.broadcast !== 'boolean' || typeof self.bootstrap !== 'boolean')
    invalidArgument(name, 'broadcast and bootstrap must be booleans');
  if (!Array.isArray(self.addresses) || !self.addresses.every((a) => typeof a === 'string'))
    invalidArgument(`${name}.addresses`, 'must be an array of strings');
  if (typeof self.deviceName !== 'string')
    invalidArgument(`${name}.deviceName`, 'must be a string');
  const problem = peerRecordProblem({
    issuedAtMs: 0,
    broadcast: self.broadcast,
    bootstrap: self.bootstrap,
    leaving: false,
    capabilities: self.capabilities,
    listenPort: self.listenPort,
    deviceName: self.deviceName,
    addresses: self.broadcast ? self.addresses : [],
  });
  if (problem !== undefined) invalidArgument(name, problem);
  return { ...self, addresses: [...self.addresses] };
}

function checkFacts(facts: LinkFacts): void {
  if (typeof facts !== 'object' || facts === null || typeof facts.outbound !== 'boolean')
    invalidArgument('facts', 'must say whether this device dialled the link (outbound)');
  if (facts.address !== undefined && typeof facts.address !== 'string')
    invalidArgument('facts.address', 'must be a string');
  if (facts.pinned !== undefined && typeof facts.pinned !== 'boolean')
    invalidArgument('facts.pinned', 'must be a boolean');
}

function checkLinkId(linkId: number): void {
  if (!Number.isSafeInteger(linkId) || linkId < 0)
    invalidArgument('linkId', `must be an integer >= 0, got ${linkId}`);
}

function checkId(id: Uint8Array | undefined, name: string): asserts id is Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== 32) invalidArgument(name, 'must be 32 bytes');
}

function checkWallClock(wallClockMs: number): number {
  if (!Number.isFinite(wallClockMs) || wallClockMs < 0)
    invalidArgument('wallClockMs', `must be Unix milliseconds, got ${wallClockMs}`);
  return Math.floor(wallClockMs);
}
