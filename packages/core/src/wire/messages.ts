/**
 * The typed messages of the PeaPod wire protocol, version 1 (docs/protocol.md is the spec).
 *
 * One frame carries one message: `[u8 type][body]`. Frames travel inside AEAD-sealed records of
 * the secure session, so a frame is at most MAX_FRAME_BYTES. Large payloads (a 16 MiB chunk, a
 * pooled-download byte range) travel as a stream of DATA frames tagged with a request ID, so
 * control and RPC frames interleave with them instead of waiting behind them.
 *
 * Numeric type codes are grouped by family; gaps are reserved. Gossip (DESIGN.md decision 8)
 * owns 0x40-0x4f. A receiver ignores frames of unknown type (forward compatibility, as HTTP/2
 * does for unknown frame types).
 */

/** Largest Noise transport message (Noise spec section 3) minus the 16-byte AEAD tag. */
export const MAX_FRAME_BYTES = 65_535 - 16;

/** Protocol versions this implementation speaks; HELLO negotiates the highest common one. */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 1;

/** Wire type codes. Append only. */
export const MessageType = {
  hello: 0x01,
  heartbeat: 0x02,
  goodbye: 0x03,
  chunkRequest: 0x10,
  data: 0x11,
  cancel: 0x12,
  status: 0x13,
  chunkAnnounce: 0x18,
  chunkRemove: 0x19,
  urlQuery: 0x1a,
  urlAnswer: 0x1b,
  fetchAssign: 0x20,
  rpcRequest: 0x30,
  rpcResponse: 0x31,
  rpcError: 0x32,
  /** Gossip (packages/core/src/gossip/, docs/protocol.md section 11): 0x40-0x45 in use. */
  peerAnnouncement: 0x40,
  peerRequest: 0x41,
  peerListResponse: 0x42,
  peerUpdate: 0x43,
  gossipHeartbeat: 0x44,
  contentAvailability: 0x45,
} as const;

/** Type codes the gossip layer owns: their bodies are decoded by gossip/gossip-codec.ts. */
export const GOSSIP_TYPE_CODES: ReadonlySet<number> = new Set([0x40, 0x41, 0x42, 0x43, 0x44, 0x45]);
export type MessageTypeName = keyof typeof MessageType;

/** Outcome carried by STATUS, the terminal frame of every request. */
export const TransferStatus = {
  ok: 0,
  checksumMismatch: 1,
  error: 2,
  notFound: 3,
  busy: 4,
  cancelled: 5,
  originError: 6,
  originChanged: 7,
} as const;
export type TransferStatus = (typeof TransferStatus)[keyof typeof TransferStatus];

/** Field bounds, enforced by both encoder (throws) and decoder (protocol error). */
export const Limits = {
  deviceNameBytes: 64,
  goodbyeMessageBytes: 256,
  statusMessageBytes: 256,
  urlBytes: 8192,
  validatorBytes: 256,
  headerCount: 32,
  headerNameBytes: 64,
  headerValueBytes: 4096,
  rpcMethodBytes: 256,
  rpcErrorMessageBytes: 1024,
  announceRanges: 1024,
  /** Mappings one URL_ANSWER may carry (a device keeps at most 4 versions of a URL). */
  urlAnswerEntries: 8,
} as const;

/** Capability bits advertised in HELLO. */
export const Capability = {
  /** Serves chunks it stores (content by ID). */
  serveChunks: 1 << 0,
  /** Accepts FETCH_ASSIGN: fetches origin ranges through its own link for a pod member. */
  fetchOrigin: 1 << 1,
  /** Answers RPC requests. */
  rpc: 1 << 2,
  /** Relays gossip (DESIGN.md decision 8). */
  gossip: 1 << 3,
} as const;

export interface HelloMessage {
  readonly type: 'hello';
  readonly versionMin: number; // u8
  readonly versionMax: number; // u8
  readonly capabilities: number; // u32 bit set of Capability
  readonly listenPort: number; // u16, 0 = does not accept connections
  readonly deviceName: string; // UTF-8, <= Limits.deviceNameBytes
}

export interface HeartbeatMessage {
  readonly type: 'heartbeat';
  /** false: a ping that asks for an echo; true: the echo (pong) of ping `id`. */
  readonly isReply: boolean;
  readonly id: number; // u32
}

export interface GoodbyeMessage {
  readonly type: 'goodbye';
  readonly reason: number; // u16 ReasonCode
  readonly message: string; // <= Limits.goodbyeMessageBytes
}

export interface ChunkRequestMessage {
  readonly type: 'chunk-request';
  readonly requestId: number; // u32, unique per link and direction while open
  readonly chunkHash: Uint8Array; // 32 bytes, SHA-256 of the chunk
  readonly priority: number; // u8, 0 = most urgent
}

export interface DataMessage {
  readonly type: 'data';
  readonly requestId: number; // u32 (chunk request or fetch assignment)
  readonly offset: number; // u64 on the wire, <= Number.MAX_SAFE_INTEGER
  readonly bytes: Uint8Array; // <= MAX_DATA_BYTES
}

export interface CancelMessage {
  readonly type: 'cancel';
  readonly requestId: number; // u32
}

export interface StatusMessage {
  readonly type: 'status';
  readonly requestId: number; // u32
  readonly status: TransferStatus; // u8
  /** Total bytes sent for the request (sender) or received and verified (receiver). */
  readonly length: number; // u64
  readonly message: string; // <= Limits.statusMessageBytes
}

/** A half-open range of chunk indices [start, end). */
export interface IndexRange {
  readonly start: number; // u32
  readonly end: number; // u32, > start
}

export interface ChunkAnnounceMessage {
  readonly type: 'chunk-announce';
  readonly contentId: Uint8Array; // 32 bytes
  readonly ranges: readonly IndexRange[]; // sorted, non-overlapping, <= Limits.announceRanges
}

export interface ChunkRemoveMessage {
  readonly type: 'chunk-remove';
  readonly contentId: Uint8Array; // 32 bytes
  readonly ranges: readonly IndexRange[];
}

/**
 * Which content holds the bytes of `url` (DESIGN.md decision 16)? Sent to pod links only;
 * answered by one URL_ANSWER with the same `queryId` (docs/protocol.md, URL_QUERY).
 */
export interface UrlQueryMessage {
  readonly type: 'url-query';
  readonly queryId: number; // u32, chosen by the asker
  readonly url: string; // 1 to Limits.urlBytes UTF-8 bytes
}

/** One mapping of a URL_ANSWER: the sender holds `contentId` as the URL at `validator`. */
export interface UrlAnswerEntry {
  readonly validator: string; // <= Limits.validatorBytes
  readonly contentId: Uint8Array; // 32 bytes
}

export interface UrlAnswerMessage {
  readonly type: 'url-answer';
  readonly queryId: number; // u32, the query's
  readonly entries: readonly UrlAnswerEntry[]; // <= Limits.urlAnswerEntries; may be empty
}

export interface HttpHeader {
  readonly name: string;
  readonly value: string;
}

export interface FetchAssignMessage {
  readonly type: 'fetch-assign';
  readonly requestId: number; // u32; the helper answers with DATA frames then STATUS
  readonly url: string; // <= Limits.urlBytes
  readonly rangeStart: number; // u64, inclusive
  readonly rangeEnd: number; // u64, exclusive, > rangeStart
  /** The object version the range is pinned to (an ETag); empty means none known. */
  readonly validator: string;
  /** Request headers the helper must send (e.g. authorization), <= Limits.headerCount. */
  readonly headers: readonly HttpHeader[];
}

export interface RpcRequestMessage {
  readonly type: 'rpc-request';
  readonly callId: number; // u32
  readonly method: string; // <= Limits.rpcMethodBytes
  readonly body: Uint8Array; // rest of the frame
}

export interface RpcResponseMessage {
  readonly type: 'rpc-response';
  readonly callId: number;
  readonly body: Uint8Array;
}

export interface RpcErrorMessage {
  readonly type: 'rpc-error';
  readonly callId: number;
  readonly code: number; // u16, application-defined
  readonly message: string; // <= Limits.rpcErrorMessageBytes
}

/**
 * A gossip frame (a code in GOSSIP_TYPE_CODES). The wire codec only frames it: the body (the
 * signed envelope of docs/protocol.md section 11) is decoded and verified by the gossip layer.
 */
export interface GossipFrameMessage {
  readonly type: 'gossip';
  readonly code: number; // u8, one of GOSSIP_TYPE_CODES
  readonly body: Uint8Array;
}

/** A frame of a type this version does not know; receivers ignore it. */
export interface UnknownMessage {
  readonly type: 'unknown';
  readonly code: number; // u8
  readonly body: Uint8Array;
}

export type WireMessage =
  | HelloMessage
  | HeartbeatMessage
  | GoodbyeMessage
  | ChunkRequestMessage
  | DataMessage
  | CancelMessage
  | StatusMessage
  | ChunkAnnounceMessage
  | ChunkRemoveMessage
  | UrlQueryMessage
  | UrlAnswerMessage
  | FetchAssignMessage
  | RpcRequestMessage
  | RpcResponseMessage
  | RpcErrorMessage
  | GossipFrameMessage
  | UnknownMessage;
