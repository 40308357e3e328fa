/**
 * The gossip layer's messages, decoded (docs/protocol.md section 11 is the spec).
 *
 * Every gossip frame is a signed envelope: who said it (`originPublicKey`, an Ed25519 key; the
 * origin's Device ID is its SHA-256), when (`timestampMs`, the origin's wall clock, accepted only
 * within +-30 s of the receiver's), a random `messageId` (duplicate and replay suppression), the
 * hop budget (`initialTtl`, signed, and `ttl`, the one field relays change), and a body per type.
 * Peer addresses travel only inside peer records (peer-record.ts) signed by the peer itself with
 * its `broadcast` flag set: that is the IP-sharing rule, checkable by every receiver.
 */
import { MessageType } from '../wire/messages.js';

/** Gossip type codes (a subset of wire MessageType, 0x40-0x45). */
export const GossipCode = {
  peerAnnouncement: MessageType.peerAnnouncement,
  peerRequest: MessageType.peerRequest,
  peerListResponse: MessageType.peerListResponse,
  peerUpdate: MessageType.peerUpdate,
  heartbeat: MessageType.gossipHeartbeat,
  contentAvailability: MessageType.contentAvailability,
} as const;
export type GossipCode = (typeof GossipCode)[keyof typeof GossipCode];

/** Hop budgets per type (the seed's values; 32 is the ceiling of every type). */
export const GossipTtl = {
  max: 32,
  [GossipCode.peerAnnouncement]: 32,
  [GossipCode.peerRequest]: 16,
  [GossipCode.peerListResponse]: 16,
  [GossipCode.peerUpdate]: 32,
  [GossipCode.heartbeat]: 2,
  [GossipCode.contentAvailability]: 32,
} as const;

export const GossipLimits = {
  /** Largest gossip frame body accepted or built; beyond it: rejected as oversized. */
  bodyBytes: 32 * 1024,
  messageIdBytes: 16,
  /** A receiver accepts a message only when |its wall clock - timestampMs| <= this. */
  clockSkewMs: 30_000,
  /** Peer records one PEER_LIST_RESPONSE may carry. */
  listRecords: 16,
  /** Content entries one CONTENT_AVAILABILITY may carry. */
  contentEntries: 64,
} as const;

/** What every gossip message carries (the signed envelope). */
export interface GossipEnvelope {
  readonly code: GossipCode;
  /** Hops left, this one included (1..initialTtl); relays send ttl - 1 when > 1. Not signed. */
  readonly ttl: number;
  /** Signed hop budget the origin gave; ttl <= initialTtl <= GossipTtl[code]. */
  readonly initialTtl: number;
  readonly messageId: Uint8Array; // 16 bytes
  readonly originPublicKey: Uint8Array; // 32 bytes
  /** The origin's wall clock (Unix ms) when it signed. */
  readonly timestampMs: number;
  readonly signature: Uint8Array; // 64 bytes
}

/** A peer's presence (PEER_ANNOUNCEMENT) or its changed state (PEER_UPDATE). */
export interface PeerAnnouncementMessage extends GossipEnvelope {
  readonly code: typeof GossipCode.peerAnnouncement | typeof GossipCode.peerUpdate;
  /** The origin's own signed peer record (peer-record.ts), same key as the envelope's. */
  readonly record: Uint8Array;
}

/**
 * "Who knows peers (holding this content)?" Answers travel back along the request's path.
 * The content is named by its blinded lookup key (lookup-key.ts), never by its ID.
 */
export interface PeerRequestMessage extends GossipEnvelope {
  readonly code: typeof GossipCode.peerRequest;
  /** SHA-256("peapod/lookup/v1" || contentId), 32 bytes, when a content is named. */
  readonly lookupKey: Uint8Array | undefined;
  readonly maxResults: number; // 1..GossipLimits.listRecords
}

/** An answer to PEER_REQUEST `requestId`, or (requestId all zero) a table sync on a new link. */
export interface PeerListResponseMessage extends GossipEnvelope {
  readonly code: typeof GossipCode.peerListResponse;
  readonly requestId: Uint8Array; // 16 bytes
  /** Signed peer records, each verifiable on its own (peer-record.ts). */
  readonly records: readonly Uint8Array[];
}

/** "The origin is alive" (2 hops). */
export interface GossipHeartbeatMessage extends GossipEnvelope {
  readonly code: typeof GossipCode.heartbeat;
}

export interface ContentAvailabilityEntry {
  /** The content's blinded lookup key (lookup-key.ts), 32 bytes: never the content ID. */
  readonly lookupKey: Uint8Array;
  /** true: the origin holds the content (all or part); false: it no longer does. */
  readonly held: boolean;
}

/**
 * Which published contents the origin (a broadcasting peer) holds or dropped, by lookup key: a
 * device announces only contents it serves to strangers (published, core.ts).
 */
export interface ContentAvailabilityMessage extends GossipEnvelope {
  readonly code: typeof GossipCode.contentAvailability;
  readonly entries: readonly ContentAvailabilityEntry[]; // 1..GossipLimits.contentEntries
}

export type GossipMessage =
  | PeerAnnouncementMessage
  | PeerRequestMessage
  | PeerListResponseMessage
  | GossipHeartbeatMessage
  | ContentAvailabilityMessage;

/** Why a gossip frame was not accepted (events, counters and tests name these). */
export type GossipRejection =
  | 'malformed'
  | 'oversized'
  | 'bad-signature'
  | 'stale'
  | 'future'
  | 'replayed'
  | 'ttl-inflated'
  | 'address-not-broadcast'
  | 'record-mismatch'
  | 'self'
  | 'not-gossip-link'
  /** The origin already holds its quota of live seen-set entries (seen-set.ts). */
  | 'over-quota'
  /** A HEARTBEAT / CONTENT_AVAILABILITY from an origin neither in the table nor a direct link. */
  | 'unknown-origin'
  /** A PEER_LIST_RESPONSE from a link its request was never sent or forwarded to. */
  | 'unsolicited';
