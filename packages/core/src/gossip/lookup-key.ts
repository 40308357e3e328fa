/**
 * Blinded lookup keys: what gossip says instead of a content ID (docs/protocol.md 11.7).
 *
 * Theory of operation: a content ID is a capability (whoever knows it may fetch the content
 * from any holder that serves it), so it never travels in gossip, which relays see in clear.
 * PEER_REQUEST and CONTENT_AVAILABILITY carry `SHA-256("peapod/lookup/v1" || contentId)`
 * instead: a holder and a seeker, who both know the ID, compute the same key and find each other;
 * a relay learns only a hash it cannot turn back into the ID (SHA-256 is preimage resistant and
 * the ID itself is a 256-bit hash). The key is deterministic, so a relay can tell that two
 * requests ask for the same content, and test a content ID it already knows: blinding hides
 * IDs, not interest in IDs one already holds. Whether a holder then serves a stranger is the
 * core's rule (published contents only, core.ts).
 */
import type { CryptoProvider } from '../crypto-provider.js';

/** Domain-separation prefix of lookup keys (ASCII, no terminator). */
export const LOOKUP_KEY_DOMAIN = new TextEncoder().encode('peapod/lookup/v1');

/** The blinded lookup key of a 32-byte content ID. */
export function lookupKeyOf(crypto: CryptoProvider, contentId: Uint8Array): Uint8Array {
  const input = new Uint8Array(LOOKUP_KEY_DOMAIN.length + contentId.length);
  input.set(LOOKUP_KEY_DOMAIN, 0);
  input.set(contentId, LOOKUP_KEY_DOMAIN.length);
  return crypto.sha256(input);
}
