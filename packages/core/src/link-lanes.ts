/**
 * Which lane of a peer link a message travels in, decided by its type in this one place
 * (docs/protocol.md, "Streams and priorities"). Both the Core's `send-message` input and the
 * transfer engine's link port (transfer/link-port.ts) send through `sendOnLane`, so a message
 * never takes one lane when the application sends it and another when a transfer does.
 *
 * - `control`: everything not below (HELLO-level and transfer control: CHUNK_REQUEST, CANCEL,
 *   CHUNK_ANNOUNCE / CHUNK_REMOVE, FETCH_ASSIGN, ...), sealed at once, ahead of any queued frame.
 * - `rpc`: RPC frames, after control frames and before DATA.
 * - `data`: DATA, cut into frames as the send window allows.
 * - `after-data`: STATUS, queued behind the DATA already queued: it ends a request, so it must
 *   not overtake that request's DATA.
 */
import type { WireMessage } from './wire/messages.js';

/** What `sendOnLane` needs of a link (PeerLink has it). */
export interface LaneSink {
  sendControl(message: WireMessage): void;
  sendAfterData(requestId: number, message: WireMessage): void;
  sendRpc(message: WireMessage): void;
  queueStream(requestId: number, bytes: Uint8Array, baseOffset?: number): void;
}

export type Lane = 'control' | 'rpc' | 'data' | 'after-data';

/** Queues `message` on `link` in the lane its type calls for; returns that lane. */
export function sendOnLane(link: LaneSink, message: WireMessage): Lane {
  if (message.type === 'data') {
    link.queueStream(message.requestId, message.bytes, message.offset);
    return 'data';
  }
  if (message.type === 'status') {
    link.sendAfterData(message.requestId, message);
    return 'after-data';
  }
  if (message.type.startsWith('rpc-')) {
    link.sendRpc(message);
    return 'rpc';
  }
  link.sendControl(message);
  return 'control';
}
