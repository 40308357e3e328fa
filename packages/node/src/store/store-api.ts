/**
 * The chunk store's contract (DESIGN.md decisions 10, 16, 19): what the daemon, the jobs and the
 * tests may rely on. The implementation is `ChunkStore` (chunk-store.ts) over the chunk files
 * (chunk-files.ts) and the SQLite index (store-index.ts).
 *
 * - Content-addressed: a chunk's bytes live in `<dir>/chunks/<2 hex>/<64 hex of its SHA-256>`,
 *   written to a temporary name, fsynced, renamed, the directory fsynced, and only then
 *   recorded in the index; or they live in a user's file (a shared file, a `get` output) that
 *   the index references by path, offset and length. One chunk file serves every content that
 *   has that chunk.
 * - Every read is verified against the chunk's SHA-256. A copy that fails (a flipped byte, a
 *   referenced file that changed) is dropped from the index (its file deleted when it is a
 *   chunk file) and reported through `onChunksDropped`, never returned.
 * - A byte budget bounds the chunk files (references cost nothing): storing past it evicts the
 *   least recently used chunks of unpinned contents first; what the user shared is pinned.
 *   When pinned chunks alone fill the budget, `putChunk` fails with `StoreFullError`; so does a
 *   full disk (ENOSPC, EDQUOT), with a sentence that says which.
 * - `open` recovers from any crash: temporary files and chunk files the index does not know
 *   are deleted, index rows whose file is missing or has the wrong size are dropped. So after a
 *   `kill -9` the index agrees with the files and only verified bytes are ever served.
 */
import type { Manifest } from '@peapod/core';

/** Where a stored content came from, for `peapod ls`. */
export type ContentOrigin =
  /** `peapod share PATH`: pinned, its chunks referenced in the user's files. */
  | { readonly kind: 'shared'; readonly path: string }
  /** `peapod fetch ID`: from pod members. */
  | { readonly kind: 'fetched' }
  /** A completed `peapod get` or proxied GET: the bytes of `url` at version `validator`. */
  | { readonly kind: 'url'; readonly url: string; readonly validator: string };

/** One row of `peapod ls`. */
export interface StoredContent {
  /** Hex. */
  readonly contentId: string;
  readonly manifest: Manifest;
  readonly totalBytes: number;
  readonly chunkCount: number;
  /** Chunks held (a chunk file or a reference). */
  readonly heldChunks: number;
  readonly complete: boolean;
  readonly pinned: boolean;
  /**
   * Strangers (peers of other pods) are served it and, when this device broadcasts, gossip
   * announces it (`peapod share --publish`; `peapod unpublish` clears it). Kept across restarts.
   */
  readonly published: boolean;
  readonly origin: ContentOrigin;
  /** Milliseconds since the epoch. */
  readonly addedAtMs: number;
  readonly lastUsedAtMs: number;
}

/** A chunk whose bytes are in a user's file, not in a chunk file. */
export interface ChunkReference {
  readonly index: number;
  readonly path: string;
  /** Where the chunk's bytes start in that file. */
  readonly offset: number;
}

/** What `open` cleaned up after an unclean stop. */
export interface RecoveryReport {
  /** `.tmp-*` files of writes a crash interrupted. */
  readonly temporaryFilesRemoved: number;
  /** Chunk files the index did not name or whose size disagreed, and stray files. */
  readonly orphanFilesRemoved: number;
  /** Index rows dropped: chunk file rows whose file was missing or the wrong size, and the chunk rows that used them. */
  readonly rowsDropped: number;
}

/**
 * `putChunk` cannot store: the budget is full of pinned chunks, or the disk is full. The message
 * says which, and what to do. Compare `code` (STYLE.md section 5), not `instanceof`.
 */
export class StoreFullError extends Error {
  override readonly name = 'StoreFullError';
  readonly code = 'PEAPOD_ERR_STORE_FULL';
}

export interface StoreOptions {
  /** The store's directory (the daemon passes `<data dir>/store`). */
  readonly dir: string;
  /** Bytes of chunk files the store may keep. */
  readonly budgetBytes: number;
  /**
   * Chunks a read found corrupt, or that eviction or `remove` dropped: tell the core. Called
   * after the change committed, once per content, indices ascending; it must not throw.
   * Recovery in `open` calls it for nothing (nobody has been told of the store yet).
   */
  readonly onChunksDropped?: (contentId: Uint8Array, indices: readonly number[]) => void;
}

export interface PutOptions {
  /**
   * The caller already checked `bytes` against this chunk's SHA-256 (the core verifies every
   * chunk before `store-chunk`), so the store does not hash them again (DESIGN.md decision 15).
   * Default false: the store checks them and refuses bytes that do not match.
   */
  readonly verified?: boolean;
}

/** The operations (implemented by `ChunkStore` in chunk-store.ts). */
export interface ChunkStoreApi {
  readonly recovery: RecoveryReport;
  /**
   * Records a content's manifest (idempotent; `pinned` and `origin` update an existing row, its
   * `published` flag stays; a new row is not published).
   */
  addContent(manifest: Manifest, origin: ContentOrigin, options: { pinned: boolean }): void;
  /**
   * Records, durably, whether strangers are served the content (the caller tells the core).
   * False when the store has no such content; a disk too full to commit throws StoreFullError.
   */
  setPublished(contentId: Uint8Array, published: boolean): boolean;
  /** Whether the content is recorded published (false when unknown). */
  isPublished(contentId: Uint8Array): boolean;
  /**
   * Stores a chunk the core verified (checked again: bytes that do not hash to the manifest's
   * chunk hash reject with PEAPOD_ERR_INVALID_ARGUMENT, as does a content never added). A chunk
   * already held only counts as a use; one whose hash has a chunk file adds a row (dedup). A
   * content removed while the put waited resolves with nothing kept. Rejects with
   * StoreFullError when it cannot store.
   */
  putChunk(
    contentId: Uint8Array,
    index: number,
    bytes: Uint8Array,
    options?: PutOptions,
  ): Promise<void>;
  /**
   * Records chunks whose bytes are in a user's file (absolute path; verified on every read,
   * never written). A reference replaces a chunk file copy of the same chunk (freeing it when
   * no other content uses it).
   */
  referenceChunks(contentId: Uint8Array, references: readonly ChunkReference[]): void;
  /** The chunk's bytes, verified; undefined when not held or the copy failed its check. */
  readChunk(contentId: Uint8Array, index: number): Promise<Uint8Array | undefined>;
  manifest(contentId: Uint8Array): Manifest | undefined;
  /** Indices held, ascending. */
  heldIndices(contentId: Uint8Array): number[];
  list(): StoredContent[];
  /**
   * Drops the content, its URL mappings and its chunk files when no other content uses them;
   * reports its held indices through `onChunksDropped`. False if unknown.
   */
  remove(contentId: Uint8Array): Promise<boolean>;
  /** `url` at `validator` is `contentId` (a completed URL download; the content must be added). */
  mapUrl(url: string, validator: string, contentId: Uint8Array): void;
  /** The contents known for `url`, newest first. */
  urlContents(url: string): Array<{ readonly validator: string; readonly contentId: Uint8Array }>;
  /** Every URL mapping (announced to the core at start). */
  urlMappings(): Array<{ url: string; validator: string; contentId: Uint8Array }>;
  /** Writes pending last-use times and closes the index; let pending calls settle first. */
  close(): void;
}
