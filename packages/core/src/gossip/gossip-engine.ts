/**
 * The gossip engine: sans-I/O peer discovery beyond one LAN (DESIGN.md decision 8).
 *
 * SPINE STUB: the API below is the contract the Core, the simulator and the daemon build on;
 * the engine stream fills the bodies.
 *
 * Theory of operation (what the finished engine does)
 * - Links: the Core tells the engine which ready links speak gossip (`linkUp`/`linkDown`). The
 *   engine keeps an active view of about `activeLinks` of them and asks the host to dial more
 *   (`dial` outputs) from its table of known broadcasting peers when it has fewer.
 * - Every message it originates is signed (gossip-codec.ts) with this device's identity and the
 *   wall clock the host passed with the input (`wallClockMs`, never derived from `nowMs`).
 * - Receiving: decode, limits, ttl <= initialTtl <= the type's budget, |wallClockMs - timestamp|
 *   <= 30 s, not seen before (bounded memory), signature; only then is the message ID recorded
 *   (so a forged copy cannot suppress the real one), the message applied, and forwarded with
 *   ttl - 1 to `fanOut` active links other than the one it came from.
 * - The table: peers learnt from verified records (gossip, the tracker, the persisted table),
 *   each with its source, when it was last heard (monotonic), and a score from availability
 *   (heartbeats heard) and performance (RTT, throughput the Core reports). A peer not heard for
 *   `peerExpiryMs` is dropped. Only records signed with `broadcast` carry an address (the
 *   IP-sharing rule): the engine builds none other, relays none other, and rejects any other.
 */
import type { CryptoProvider, KeyPair } from '../crypto-provider.js';
import type { Prng } from '../prng.js';
import type { GossipFrameMessage } from '../wire/messages.js';
import type { GossipCode, GossipRejection } from './messages.js';

export interface GossipSettings {
  /** Active links a new message is forwarded to (besides the one it came from). */
  readonly fanOut: number;
  /** Gossip links the engine tries to hold open (it dials from its table below this). */
  readonly activeLinks: number;
  /** Inbound gossip links accepted beyond which the engine asks to close the newest. */
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
  fanOut: 3,
  activeLinks: 4,
  activeLinksMax: 8,
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
  /** A broadcasting peer announced holding (or dropping) a content. */
  | {
      readonly type: 'gossip:content';
      readonly deviceId: Uint8Array;
      readonly contentId: Uint8Array;
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
  /** Close a gossip link (the active view is over `activeLinksMax`). */
  | { readonly type: 'close'; readonly linkId: number }
  | { readonly type: 'event'; readonly event: GossipEvent };

export interface GossipCounters {
  sent: number;
  received: number;
  accepted: number;
  duplicates: number;
  rejected: Partial<Record<GossipRejection, number>>;
}

export interface GossipEngineOptions {
  readonly crypto: CryptoProvider;
  readonly identity: KeyPair;
  readonly prng: Prng;
  readonly self: GossipSelf;
  readonly settings?: Partial<GossipSettings>;
}

export class GossipEngine {
  readonly counters: GossipCounters = {
    sent: 0,
    received: 0,
    accepted: 0,
    duplicates: 0,
    rejected: {},
  };

  /** @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a malformed setting or self. */
  constructor(readonly options: GossipEngineOptions) {}

  /** A ready link whose remote speaks gossip (HELLO capability bit). */
  linkUp(linkId: number, deviceId: Uint8Array, nowMs: number, wallClockMs: number): void {
    void [linkId, deviceId, nowMs, wallClockMs];
  }

  linkDown(linkId: number, nowMs: number): void {
    void [linkId, nowMs];
  }

  /** A gossip frame from a link. Never throws on its bytes. */
  receive(linkId: number, frame: GossipFrameMessage, nowMs: number, wallClockMs: number): void {
    void [linkId, frame, nowMs, wallClockMs];
  }

  timer(nowMs: number, wallClockMs: number): void {
    void [nowMs, wallClockMs];
  }

  nextDeadlineMs(): number | undefined {
    return undefined;
  }

  /** This device's state changed (broadcast toggled, address learnt): a PEER_UPDATE goes out. */
  setSelf(self: GossipSelf, nowMs: number, wallClockMs: number): void {
    void [self, nowMs, wallClockMs];
  }

  /** Contents this device holds or dropped (sent only when it broadcasts). */
  announceContent(
    entries: readonly { readonly contentId: Uint8Array; readonly held: boolean }[],
    nowMs: number,
    wallClockMs: number,
  ): void {
    void [entries, nowMs, wallClockMs];
  }

  /** Asks the network for peers (holding `contentId`, when given). Returns the request's ID. */
  requestPeers(contentId: Uint8Array | undefined, nowMs: number, wallClockMs: number): Uint8Array {
    void [contentId, nowMs, wallClockMs];
    return new Uint8Array(16);
  }

  /**
   * Signed records from outside gossip (the tracker, the persisted table). Each is verified;
   * returns how many were accepted. Records older than `peerExpiryMs` are ignored.
   */
  addRecords(
    records: readonly Uint8Array[],
    source: GossipSource,
    nowMs: number,
    wallClockMs: number,
  ): number {
    void [records, source, nowMs, wallClockMs];
    return 0;
  }

  /** Performance the Core measured on a link to `deviceId` (feeds the score). */
  observe(
    deviceId: Uint8Array,
    sample: { readonly rttMs?: number; readonly bytesPerSecond?: number },
  ): void {
    void [deviceId, sample];
  }

  /** Broadcasting peers that announced holding `contentId`, best score first. */
  peersHolding(contentId: Uint8Array): GossipPeerSnapshot[] {
    void contentId;
    return [];
  }

  /** This device's own signed record (for a tracker registration). */
  ownRecord(wallClockMs: number): Uint8Array {
    void wallClockMs;
    return new Uint8Array(0);
  }

  snapshot(): GossipPeerSnapshot[] {
    return [];
  }

  takeOutput(): GossipOutput | undefined {
    return undefined;
  }
}
