/**
 * Records the control-lane messages (CHUNK_REQUEST, CHUNK_ANNOUNCE, CHUNK_REMOVE, CANCEL) one
 * mesh node sends to one peer, before they are sealed: tests count what a real Core asked for.
 * It wraps the link's `sendControl`, as mesh.ts's lying peer wraps `queueStream`; install it
 * right after `connect`, before the link becomes ready.
 */
import { toHex } from '../../src/bytes.js';
import type { PeerLink } from '../../src/peer-link.js';
import type { WireMessage } from '../../src/wire/messages.js';
import { Mesh } from './mesh.js';

export function tapSent(mesh: Mesh, node: number, peer: number): WireMessage[] {
  const links = (mesh.nodes[node]!.core as unknown as { links: Map<number, { link: PeerLink }> })
    .links;
  const link = links.get(Mesh.linkId(peer))!.link;
  const sent: WireMessage[] = [];
  const original = link.sendControl.bind(link);
  link.sendControl = (message: WireMessage): void => {
    sent.push(message);
    original(message);
  };
  return sent;
}

/** The CHUNK_REQUESTs among `sent`, as the hex of the hash each asked for. */
export function requestedHashes(sent: readonly WireMessage[]): string[] {
  const out: string[] = [];
  for (const message of sent) {
    if (message.type === 'chunk-request') out.push(toHex(message.chunkHash));
  }
  return out;
}
