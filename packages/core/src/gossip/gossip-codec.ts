/**
 * Gossip frames: the signed envelope and the six bodies (docs/protocol.md section 11).
 *
 * SPINE STUB: the wire stream fills this module (layout, signing, verification, golden vectors).
 *
 * Frame body layout (after the wire type code): u8 ttl | 16 messageId | 32 originPublicKey
 * | u64 timestampMs | u8 initialTtl | type body | 64 signature over
 * "PeaPod/1 gossip" || code || every body byte after ttl and before the signature.
 */
import type { CryptoProvider, KeyPair } from '../crypto-provider.js';
import type { GossipFrameMessage } from '../wire/messages.js';
import type { GossipMessage, GossipRejection } from './messages.js';

/** A message before signing: the envelope fields the origin chooses, and the body. */
export type UnsignedGossip = GossipMessage extends infer M
  ? M extends GossipMessage
    ? Omit<M, 'signature' | 'originPublicKey'>
    : never
  : never;

export type GossipDecodeResult =
  | { readonly ok: true; readonly message: GossipMessage }
  | { readonly ok: false; readonly rejection: GossipRejection; readonly detail: string };

/**
 * Signs `message` as `identity` and frames it.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a field out of range (the builder's rules,
 * the IP-sharing rule of the records it carries included).
 */
export function encodeGossip(
  crypto: CryptoProvider,
  identity: KeyPair,
  message: UnsignedGossip,
): GossipFrameMessage {
  void crypto;
  void identity;
  void message;
  throw new Error('spine stub: encodeGossip');
}

/**
 * Parses a gossip frame's layout and limits (not the signature, not the clock). Never throws on
 * any bytes: `malformed`, `oversized` or `ttl-inflated` (ttl > initialTtl, or initialTtl above
 * the type's budget).
 */
export function decodeGossip(frame: GossipFrameMessage): GossipDecodeResult {
  void frame;
  throw new Error('spine stub: decodeGossip');
}

/** True when the envelope's signature is its origin's over the frame. */
export function verifyGossip(crypto: CryptoProvider, frame: GossipFrameMessage): boolean {
  void crypto;
  void frame;
  throw new Error('spine stub: verifyGossip');
}

/** The same frame with `ttl` replaced (what a relay sends); the signature stays valid. */
export function withTtl(frame: GossipFrameMessage, ttl: number): GossipFrameMessage {
  void frame;
  void ttl;
  throw new Error('spine stub: withTtl');
}
