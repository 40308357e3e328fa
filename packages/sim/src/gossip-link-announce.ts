/**
 * `--link-announce hop`: a model of one proposed engine change, applied to the real engine's
 * output, for runs the engine as it is cannot finish.
 *
 * The engine sends its PEER_ANNOUNCEMENT on every new link with ttl = initialTtl = 32 (a fresh
 * one when its last is over 15 s old), so every broadcasting node that joins floods the whole
 * network: joining N nodes costs about 3 N^2 frames. A real network spreads that over N
 * machines; one simulator process cannot (10,000 nodes are ~2.4e8 frames, hours of CPU here).
 * In this mode the announcement a node sends on a new link is re-signed by the sim with that
 * node's own key as a one-hop introduction (ttl = initialTtl = 1, same message ID, timestamp
 * and record), so the neighbour learns it and does not relay it; the rest of the network learns
 * the node from table syncs, as the engine already does. The announcements the scenario asks
 * for (`announce()`, the measured PEER_ANNOUNCEMENTs) are marked with `allowNext` and flood
 * unchanged. Nothing else is touched. The default, `flood`, runs the engine exactly as it is.
 */
import {
  decodeGossip,
  encodeGossip,
  GossipCode,
  type CryptoProvider,
  type GossipFrameMessage,
  type KeyPair,
} from '@peapod/core';

export type LinkAnnounceMode = 'flood' | 'hop';

interface NodeState {
  allowNext: boolean;
  /** Message keys of announcements allowed to flood. */
  readonly allowed: Set<string>;
  /** The last rewritten announcement (the engine reuses one frame for 15 s). */
  lastKey: string | undefined;
  lastFrame: GossipFrameMessage | undefined;
}

function messageKey(body: Uint8Array): string {
  let key = '';
  for (let i = 1; i < 17 && i < body.length; i++) key += String.fromCharCode(body[i]!);
  return key;
}

function isOwn(body: Uint8Array, publicKey: Uint8Array): boolean {
  if (body.length < 49) return false;
  for (let i = 0; i < 32; i++) if (body[17 + i] !== publicKey[i]) return false;
  return true;
}

export class LinkAnnouncementHop {
  /** Link announcements re-signed as one-hop introductions. */
  rewritten = 0;
  private readonly nodes = new Map<number, NodeState>();

  constructor(private readonly crypto: CryptoProvider) {}

  private state(node: number): NodeState {
    let state = this.nodes.get(node);
    if (state === undefined) {
      state = { allowNext: false, allowed: new Set(), lastKey: undefined, lastFrame: undefined };
      this.nodes.set(node, state);
    }
    return state;
  }

  /** The node's next own PEER_ANNOUNCEMENT floods as the engine sent it. */
  allowNext(node: number): void {
    this.state(node).allowNext = true;
  }

  forget(node: number): void {
    this.nodes.delete(node);
  }

  /** The frame to send in place of `frame` (itself unless it is a link announcement). */
  filter(node: number, identity: KeyPair, frame: GossipFrameMessage): GossipFrameMessage {
    if (frame.code !== GossipCode.peerAnnouncement || !isOwn(frame.body, identity.publicKey)) {
      return frame;
    }
    const state = this.state(node);
    const key = messageKey(frame.body);
    if (state.allowed.has(key)) return frame;
    if (state.allowNext) {
      state.allowNext = false;
      state.allowed.add(key);
      return frame;
    }
    if (state.lastKey === key && state.lastFrame !== undefined) return state.lastFrame;
    const decoded = decodeGossip(frame);
    if (!decoded.ok || decoded.message.code !== GossipCode.peerAnnouncement) return frame;
    const message = decoded.message;
    const hop = encodeGossip(this.crypto, identity, {
      code: GossipCode.peerAnnouncement,
      ttl: 1,
      initialTtl: 1,
      messageId: message.messageId,
      timestampMs: message.timestampMs,
      record: message.record,
    });
    this.rewritten++;
    state.lastKey = key;
    state.lastFrame = hop;
    return hop;
  }
}
