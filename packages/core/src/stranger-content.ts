/**
 * Which contents strangers may learn of and fetch: the published ones (docs/protocol.md 11.7).
 *
 * Theory of operation: a content ID is a capability. Pod peers may see every content this
 * device holds; a stranger (a Noise XX link, trust 'stranger') only contents the host marked
 * published (`content-available` with `published: true`, `peapod share --publish`). The core
 * asks this set three things:
 * - serving: a stranger's CHUNK_REQUEST is answered only for a hash of a published content (its
 *   manifest, keyed by the content ID, or one of its chunks); anything else gets the same
 *   `notFound` a hash nobody holds gets, so a stranger cannot tell "held, private" from "not
 *   held".
 * - announcing: CHUNK_ANNOUNCE / CHUNK_REMOVE of a content go to a stranger only when the
 *   content is published here, or when gossip learnt that stranger as a holder of the content's
 *   lookup key (a download's interest: the holder already knows the ID). Everything else is
 *   dropped at the link port (core.ts), whatever the transfer engine queued.
 * - gossip: CONTENT_AVAILABILITY is originated for published contents only (when broadcasting).
 * Chunk hashes are reference-counted: two published contents may share a chunk. Memory is one
 * map entry per chunk of a published content.
 */
import { toHex } from './bytes.js';
import type { Manifest } from './content/manifest.js';

export class PublishedContents {
  private readonly contents = new Map<string, { contentId: Uint8Array; hashes: string[] }>();
  private readonly hashes = new Map<string, number>();

  /** Marks `manifest`'s content published; false when it already was. */
  publish(manifest: Manifest): boolean {
    const key = toHex(manifest.contentId);
    if (this.contents.has(key)) return false;
    const hashes = [key, ...manifest.chunkHashes.map((hash) => toHex(hash))];
    this.contents.set(key, { contentId: manifest.contentId.slice(), hashes });
    for (const hash of hashes) this.hashes.set(hash, (this.hashes.get(hash) ?? 0) + 1);
    return true;
  }

  /** Forgets a published content (unpublished or removed); false when it was not published. */
  unpublish(contentId: Uint8Array): boolean {
    const key = toHex(contentId);
    const content = this.contents.get(key);
    if (content === undefined) return false;
    this.contents.delete(key);
    for (const hash of content.hashes) {
      const left = (this.hashes.get(hash) ?? 1) - 1;
      if (left <= 0) this.hashes.delete(hash);
      else this.hashes.set(hash, left);
    }
    return true;
  }

  /** Whether content `contentHex` is published. */
  has(contentHex: string): boolean {
    return this.contents.has(contentHex);
  }

  /** Whether a CHUNK_REQUEST for `hashHex` (a manifest or a chunk) may be served to a stranger. */
  servesHash(hashHex: string): boolean {
    return this.hashes.has(hashHex);
  }

  /** The published content IDs (copies). */
  ids(): Uint8Array[] {
    return [...this.contents.values()].map((content) => content.contentId.slice());
  }

  get size(): number {
    return this.contents.size;
  }
}
