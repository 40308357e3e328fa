/**
 * The daemon's chunk store (store-api.ts has the contract): `ChunkStore` puts the chunk files
 * (chunk-files.ts) and the SQLite index (store-index.ts) together, in the one order that keeps
 * them agreeing through any crash, and keeps the byte budget.
 *
 * Theory of operation
 * - Orders. A put writes the chunk file durably, then commits its rows; a removal (eviction,
 *   `remove`, a failed read) commits the rows' deletion, then unlinks. A crash in between
 *   leaves an orphan file, which `open` deletes (store-recovery.ts).
 * - One file per hash. Sections that write, unlink or confirm a chunk file run one at a time
 *   per hash (key-locks.ts). A put whose hash already has a chunk file only adds a row (dedup).
 *   The chunk file's reference count is its rows in `content_chunks`; the file goes when the
 *   last one does.
 * - Reads verify. `readChunk` hashes what it read against the manifest's hash. A failure is
 *   confirmed by a second read under the hash's lock (so a file that eviction unlinked and a
 *   put wrote again is not taken for a corrupt one), then the chunk file and every row that used
 *   it are dropped and each content is reported through `onChunksDropped`. A reference that
 *   fails is dropped alone; the user's file is only ever opened read-only.
 * - Budget. `storedBytes` (chunk files, counted in memory from the index at open) plus the bytes
 *   of writes in flight never exceed `budgetBytes`: a put that would cross it first evicts the
 *   least recently used chunk files that no pinned content uses (`use_seq` order), waits when
 *   only other writes in flight are in the way, or fails with StoreFullError when pinned files
 *   leave no room. References cost nothing.
 * - Last use. Reads and puts record uses in memory and write them in batches (store-uses.ts);
 *   an eviction decision flushes them first, so the order it follows is exact.
 * - Callbacks. `onChunksDropped` runs after the change committed, once per content, with the
 *   indices ascending; it must not throw.
 * - One process. The index's exclusive lock keeps a second process out (store-index.ts). Let
 *   every pending call settle before `close`.
 */
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import {
  PeapodError,
  chunkCount,
  chunkLength,
  decodeManifest,
  encodeManifest,
  toHex,
  type CryptoProvider,
  type Manifest,
} from '@peapod/core';
import { createNodeCryptoProvider } from '../node-crypto-provider.js';
import { ChunkFiles, errorCode, sameBytes, sha256 } from './chunk-files.js';
import { KeyLocks } from './key-locks.js';
import { recoverStore } from './store-recovery.js';
import { UseLog } from './store-uses.js';
import {
  StoreFullError,
  type ChunkReference,
  type ChunkStoreApi,
  type ContentOrigin,
  type PutOptions,
  type RecoveryReport,
  type StoreOptions,
  type StoredContent,
} from './store-api.js';
import {
  StoreIndex,
  StoreIndexOpenError,
  type ChunkFileRow,
  type ChunkLocation,
  type DroppedChunk,
} from './store-index.js';

const INDEX_FILE = 'index.sqlite';
const CHUNKS_DIRECTORY = 'chunks';
/** Reads of a chunk whose reference moved while it was read (readChunk). */
const READ_ATTEMPTS = 3;

function invalid(name: string, problem: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `${name}: ${problem}`);
}

function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function isDiskFull(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}

/** What moving a store aside costs, for the sentences below. */
const MOVE_ASIDE = (dir: string) =>
  `move it aside (mv ${dir} ${dir}.broken) and restart: the store starts empty, so what you shared must be shared again (peapod share) and fetched contents are fetched again as needed`;

/**
 * Any failure of `open` (or of the daemon's first reads after it) as one sentence naming the
 * store and what to do (the index's own sentences, already so, pass through).
 */
export function storeOpenError(dir: string, error: unknown): Error {
  if (error instanceof StoreIndexOpenError || error instanceof PeapodError) return error;
  const code = errorCode(error);
  const message = (error as Error).message;
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || /malformed/.test(message)) {
    return new StoreIndexOpenError(
      `The chunk store ${dir} is damaged (${message}); ${MOVE_ASIDE(dir)}.`,
      { cause: error },
    );
  }
  if (code === 'EEXIST' || code === 'ENOTDIR') {
    return new StoreIndexOpenError(
      `The chunk store ${dir} cannot be opened: a part of it (${join(dir, CHUNKS_DIRECTORY)} or ${dir} itself) is a file, not a directory; ${MOVE_ASIDE(dir)}.`,
      { cause: error },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StoreIndexOpenError(
      `The chunk store ${dir} cannot be opened (${message}); give the daemon's user write access to it, or ${MOVE_ASIDE(dir)}.`,
      { cause: error },
    );
  }
  if (isDiskFull(error)) {
    return new StoreIndexOpenError(
      `The chunk store ${dir} cannot be opened: its disk is full; free some space and restart.`,
      { cause: error },
    );
  }
  return new StoreIndexOpenError(
    `The chunk store ${dir} cannot be opened (${message}); if it persists, ${MOVE_ASIDE(dir)}.`,
    { cause: error },
  );
}

export class ChunkStore implements ChunkStoreApi {
  private storedBytesNow: number;
  private reservedBytes = 0;
  /** Puts waiting for writes in flight to settle before they can make room. */
  private readonly reservationWaiters: Array<() => void> = [];
  private closed = false;
  private readonly manifests = new Map<string, Manifest>();
  private readonly locks = new KeyLocks();
  private readonly uses: UseLog;
  private readonly crypto: CryptoProvider = createNodeCryptoProvider();

  private constructor(
    private readonly options: StoreOptions,
    private readonly files: ChunkFiles,
    private readonly index: StoreIndex,
    readonly recovery: RecoveryReport,
  ) {
    this.storedBytesNow = index.storedBytes();
    this.uses = new UseLog(index);
  }

  /**
   * Opens the store in `options.dir` (created if needed) and recovers it (store-recovery.ts).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a budget that is not a non-negative
   * safe integer; StoreIndexOpenError when another process holds the store.
   * @example
   * const store = await ChunkStore.open({ dir, budgetBytes: 2 ** 30 });
   * store.recovery; // => {"temporaryFilesRemoved":0,"orphanFilesRemoved":0,"rowsDropped":0}
   * store.close();
   */
  static async open(options: StoreOptions): Promise<ChunkStore> {
    if (!Number.isSafeInteger(options.budgetBytes) || options.budgetBytes < 0) {
      invalid('budgetBytes', `must be a non-negative integer, got ${options.budgetBytes}`);
    }
    try {
      await mkdir(options.dir, { recursive: true });
      const files = new ChunkFiles(join(options.dir, CHUNKS_DIRECTORY));
      await files.prepare();
      const index = StoreIndex.open(join(options.dir, INDEX_FILE));
      try {
        const crypto = createNodeCryptoProvider();
        const recovery = await recoverStore(
          files,
          index,
          (contentId, bytes) => decodeManifest(crypto, bytes, contentId).ok,
        );
        return new ChunkStore(options, files, index, recovery);
      } catch (error) {
        index.close();
        throw error;
      }
    } catch (error) {
      throw storeOpenError(options.dir, error);
    }
  }

  /** Bytes of chunk files held now, and the budget. */
  usage(): { storedBytes: number; budgetBytes: number } {
    return { storedBytes: this.storedBytesNow, budgetBytes: this.options.budgetBytes };
  }

  addContent(manifest: Manifest, origin: ContentOrigin, options: { pinned: boolean }): void {
    const encoded = encodeManifest(manifest);
    const decoded = decodeManifest(this.crypto, encoded, manifest.contentId);
    if (!decoded.ok) invalid('manifest', `does not hash to its content ID (${decoded.detail})`);
    this.commit(() =>
      this.index.upsertContent({
        contentId: manifest.contentId,
        manifest: encoded,
        totalBytes: manifest.totalBytes,
        chunkSizeBytes: manifest.chunkSizeBytes,
        chunkCount: chunkCount(manifest),
        pinned: options.pinned,
        origin,
        nowMs: Date.now(),
      }),
    );
    this.manifests.set(toHex(manifest.contentId), decoded.manifest);
  }

  setPublished(contentId: Uint8Array, published: boolean): boolean {
    return this.commit(() => this.index.setPublished(contentId, published));
  }

  isPublished(contentId: Uint8Array): boolean {
    return this.index.content(contentId)?.published === true;
  }

  manifest(contentId: Uint8Array): Manifest | undefined {
    const hex = toHex(contentId);
    const cached = this.manifests.get(hex);
    if (cached !== undefined) return cached;
    const row = this.index.content(contentId);
    if (row === undefined) return undefined;
    const decoded = decodeManifest(this.crypto, row.manifestBytes, contentId);
    if (!decoded.ok) {
      throw new PeapodError(
        'PEAPOD_ERR_ASSERTION',
        `invariant broken: the stored manifest of ${hex} does not decode (${decoded.detail})`,
      );
    }
    this.manifests.set(hex, decoded.manifest);
    return decoded.manifest;
  }

  heldIndices(contentId: Uint8Array): number[] {
    return this.index.heldIndices(contentId);
  }

  list(): StoredContent[] {
    this.uses.flush();
    return this.index.contents().map((row) => ({
      contentId: toHex(row.contentId),
      manifest: this.requireManifest(row.contentId, 'list'),
      totalBytes: row.totalBytes,
      chunkCount: row.chunkCount,
      heldChunks: row.heldChunks,
      complete: row.heldChunks === row.chunkCount,
      pinned: row.pinned,
      published: row.published,
      origin: row.origin,
      addedAtMs: row.addedAtMs,
      lastUsedAtMs: row.lastUsedAtMs,
    }));
  }

  async putChunk(
    contentId: Uint8Array,
    index: number,
    bytes: Uint8Array,
    options: PutOptions = {},
  ): Promise<void> {
    const manifest = this.requireManifest(contentId, 'contentId');
    const hash = this.chunkHash(manifest, index);
    const length = chunkLength(manifest, index);
    if (bytes.length !== length) {
      invalid('bytes', `chunk ${index} is ${length} bytes long, got ${bytes.length}`);
    }
    if (options.verified !== true && !sameBytes(sha256(bytes), hash)) {
      invalid('bytes', `do not hash to the SHA-256 of chunk ${index} in the manifest`);
    }
    const evicted: DroppedChunk[] = [];
    const hashHex = toHex(hash);
    try {
      await this.locks.run(hashHex, () => this.storeLocked(contentId, index, hash, bytes, evicted));
    } finally {
      this.report(evicted);
    }
  }

  referenceChunks(contentId: Uint8Array, references: readonly ChunkReference[]): void {
    const manifest = this.requireManifest(contentId, 'contentId');
    for (const reference of references) {
      this.chunkHash(manifest, reference.index);
      if (!isAbsolute(reference.path)) {
        invalid('references.path', `must be absolute: ${reference.path}`);
      }
      if (!Number.isSafeInteger(reference.offset) || reference.offset < 0) {
        invalid('references.offset', `must be a non-negative integer, got ${reference.offset}`);
      }
    }
    const freed = this.commit(() =>
      references.flatMap((reference) =>
        this.index.setLocation(contentId, reference.index, {
          kind: 'reference',
          hash: this.chunkHash(manifest, reference.index),
          path: reference.path,
          offset: reference.offset,
        }),
      ),
    );
    this.unlinkFreed(freed);
    this.uses.useContent(contentId);
  }

  async readChunk(contentId: Uint8Array, index: number): Promise<Uint8Array | undefined> {
    // A reference can move while it is read (a gateway fill renames its file and references the
    // new name): a failed read of a location that is no longer the chunk's is tried again at
    // the new one, a few times at most.
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const location = this.index.location(contentId, index);
      if (location === undefined) return undefined;
      const length = chunkLength(this.requireManifest(contentId, 'contentId'), index);
      const bytes = await this.files.readVerified(location, length);
      if (bytes !== undefined) {
        this.touch(contentId, location);
        return bytes;
      }
      if (location.kind === 'reference') {
        if (this.referenceMoved(contentId, index, location)) continue;
        this.dropFailedReference(contentId, index, location);
        return undefined;
      }
      return this.locks.run(toHex(location.hash), () =>
        this.confirmFailedFile(contentId, index, location, length),
      );
    }
    return undefined;
  }

  async remove(contentId: Uint8Array): Promise<boolean> {
    if (!this.index.contentExists(contentId)) return false;
    const held = this.index.heldIndices(contentId);
    const freed = this.commit(() => this.index.deleteContent(contentId));
    const hex = toHex(contentId);
    this.manifests.delete(hex);
    this.uses.forgetContent(hex);
    this.report(held.map((index) => ({ contentId, index })));
    await Promise.all(this.unlinkFreed(freed));
    return true;
  }

  mapUrl(url: string, validator: string, contentId: Uint8Array): void {
    if (url.length === 0) invalid('url', 'must not be empty');
    if (!this.index.contentExists(contentId)) {
      invalid('contentId', `content ${toHex(contentId)} is not in the store (addContent first)`);
    }
    this.commit(() => this.index.mapUrl(url, validator, contentId, Date.now()));
  }

  urlContents(url: string): Array<{ readonly validator: string; readonly contentId: Uint8Array }> {
    return this.index.urlContents(url);
  }

  urlMappings(): Array<{ url: string; validator: string; contentId: Uint8Array }> {
    return this.index.urlMappings();
  }

  close(): void {
    if (this.closed) return;
    this.uses.close();
    this.closed = true;
    this.index.close();
  }

  /** A reference failed its check: drop its row if it is still the same reference. */
  /** The chunk is no longer at the reference `location` (it moved, or is gone). */
  private referenceMoved(
    contentId: Uint8Array,
    index: number,
    location: Extract<ChunkLocation, { kind: 'reference' }>,
  ): boolean {
    const now = this.index.location(contentId, index);
    return (
      now?.kind !== 'reference' || now.path !== location.path || now.offset !== location.offset
    );
  }

  private dropFailedReference(
    contentId: Uint8Array,
    index: number,
    location: Extract<ChunkLocation, { kind: 'reference' }>,
  ): void {
    if (this.referenceMoved(contentId, index, location)) return;
    if (!this.tryCommit(() => this.index.deleteChunk(contentId, index))) return;
    this.report([{ contentId, index }]);
  }

  /**
   * Under the hash's lock: a chunk file failed its check. Read it again (it may have been
   * unlinked and written again since); if it still fails, drop it and every row using it.
   */
  private async confirmFailedFile(
    contentId: Uint8Array,
    index: number,
    location: ChunkLocation,
    length: number,
  ): Promise<Uint8Array | undefined> {
    const now = this.index.location(contentId, index);
    if (now?.kind !== 'file' || !sameBytes(now.hash, location.hash)) return undefined;
    const again = await this.files.readVerified(now, length);
    if (again !== undefined) {
      this.touch(contentId, now);
      return again;
    }
    const result = this.tryCommit(() => this.index.dropChunkFile(location.hash));
    if (result === undefined) return undefined;
    const hashHex = toHex(location.hash);
    this.storedBytesNow -= result.sizeBytes;
    this.uses.forgetFile(hashHex);
    await this.files.remove(hashHex);
    this.report(result.dropped);
    return undefined;
  }

  /**
   * `commit`, except that a disk too full to commit gives undefined: a failed copy is then not
   * served but stays in the index, to be dropped by a later read.
   */
  private tryCommit<T>(fn: () => T): T | undefined {
    try {
      return this.commit(fn);
    } catch (error) {
      if ((error as Partial<StoreFullError>).code === 'PEAPOD_ERR_STORE_FULL') return undefined;
      throw error;
    }
  }

  /** Under the hash's lock: dedup, or make room and write the chunk file, then its rows. */
  private async storeLocked(
    contentId: Uint8Array,
    index: number,
    hash: Uint8Array,
    bytes: Uint8Array,
    evicted: DroppedChunk[],
  ): Promise<void> {
    // The content may have been removed while this put waited for the lock: nothing to keep.
    if (!this.index.contentExists(contentId)) return;
    const held = this.index.location(contentId, index);
    if (held !== undefined) {
      this.touch(contentId, held);
      return;
    }
    const location: ChunkLocation = { kind: 'file', hash };
    if (this.index.chunkFileSize(hash) !== undefined) {
      this.commit(() => this.index.setLocation(contentId, index, location));
      this.touch(contentId, location);
      return;
    }
    for (;;) {
      const room = this.makeRoom(bytes.length);
      if (room !== 'wait') {
        evicted.push(...room);
        break;
      }
      await new Promise<void>((resolve) => this.reservationWaiters.push(resolve));
    }
    this.reservedBytes += bytes.length;
    const hashHex = toHex(hash);
    try {
      await this.files.write(hashHex, bytes);
      const kept = this.commit(() => {
        if (!this.index.contentExists(contentId)) return false;
        this.index.insertChunkFile(hash, bytes.length, this.uses.next(hash));
        this.index.setLocation(contentId, index, location);
        return true;
      });
      if (kept) {
        this.storedBytesNow += bytes.length;
        this.uses.useContent(contentId);
      } else await this.files.remove(hashHex);
    } catch (error) {
      await this.files.remove(hashHex);
      throw isDiskFull(error) ? this.diskFull(error) : error;
    } finally {
      this.reservedBytes -= bytes.length;
      const waiters = this.reservationWaiters.splice(0);
      for (const wake of waiters) wake();
    }
  }

  /**
   * Runs `fn` in one index transaction.
   * @throws StoreFullError when the disk is too full for SQLite to commit (SQLITE_FULL).
   */
  private commit<T>(fn: () => T): T {
    try {
      return this.index.transaction(fn);
    } catch (error) {
      throw isDiskFull(error) ? this.diskFull(error) : error;
    }
  }

  private diskFull(cause: unknown): StoreFullError {
    return new StoreFullError(
      `The disk holding the chunk store (${this.options.dir}) is full; free space there, or lower the store's budget with --store-budget or PEAPOD_STORE_BUDGET.`,
      { cause },
    );
  }

  /**
   * Evicts least recently used unpinned chunk files until `sizeBytes` more fit the budget, or
   * says 'wait' when only the writes in flight are in the way (they become evictable once
   * committed).
   * @throws StoreFullError when pinned chunk files leave no room.
   */
  private makeRoom(sizeBytes: number): DroppedChunk[] | 'wait' {
    const budget = this.options.budgetBytes;
    const over = this.storedBytesNow + this.reservedBytes + sizeBytes - budget;
    if (over <= 0) return [];
    this.uses.flush();
    const victims = this.index.evictionCandidates(over);
    const evictable = victims.reduce((sum, victim) => sum + victim.sizeBytes, 0);
    if (evictable < over) {
      // Every unpinned file together is not enough: what is left is pinned. (Not a query
      // over all files: a full store evicts on every put.)
      const pinned = this.storedBytesNow - evictable;
      if (pinned + sizeBytes > budget) {
        throw new StoreFullError(
          `The chunk store is full: its budget is ${mebibytes(budget)} and pinned content (shared or kept) takes ${mebibytes(pinned)}, so a ${mebibytes(sizeBytes)} chunk does not fit; raise the budget with --store-budget or PEAPOD_STORE_BUDGET, or remove content with peapod rm.`,
        );
      }
      return 'wait';
    }
    const dropped = this.commit(() =>
      victims.flatMap((victim) => {
        const result = this.index.dropChunkFile(victim.hash);
        this.storedBytesNow -= result.sizeBytes;
        return result.dropped;
      }),
    );
    for (const victim of victims) void this.unlinkUnindexed(victim.hash);
    return dropped;
  }

  /** Unlinks chunk files whose rows were deleted, and stops counting their bytes. */
  private unlinkFreed(freed: readonly ChunkFileRow[]): Array<Promise<void>> {
    return freed.map((file) => {
      this.storedBytesNow -= file.sizeBytes;
      return this.unlinkUnindexed(file.hash);
    });
  }

  /**
   * Unlinks the chunk file of `hash`, whose rows were deleted, under the hash's lock, unless a
   * put that was already waiting for the lock wrote the file again and indexed it (then the
   * file on disk is that put's). Never rejects: a file left behind (an unlink that failed, a
   * store closed meanwhile) is an orphan, which the next open deletes.
   */
  private unlinkUnindexed(hash: Uint8Array): Promise<void> {
    const hashHex = toHex(hash);
    this.uses.forgetFile(hashHex);
    return this.locks
      .run(hashHex, async () => {
        if (this.closed || this.index.chunkFileSize(hash) !== undefined) return;
        await this.files.remove(hashHex);
      })
      .catch(() => undefined);
  }

  /** Calls `onChunksDropped` once per content, indices ascending. */
  private report(dropped: readonly DroppedChunk[]): void {
    const callback = this.options.onChunksDropped;
    if (callback === undefined || dropped.length === 0) return;
    const byContent = new Map<string, { contentId: Uint8Array; indices: number[] }>();
    for (const chunk of dropped) {
      const hex = toHex(chunk.contentId);
      const entry = byContent.get(hex) ?? { contentId: chunk.contentId, indices: [] };
      entry.indices.push(chunk.index);
      byContent.set(hex, entry);
    }
    for (const { contentId, indices } of byContent.values()) {
      callback(
        contentId,
        indices.sort((a, b) => a - b),
      );
    }
  }

  private requireManifest(contentId: Uint8Array, name: string): Manifest {
    return (
      this.manifest(contentId) ??
      invalid(name, `content ${toHex(contentId)} is not in the store (addContent first)`)
    );
  }

  private chunkHash(manifest: Manifest, index: number): Uint8Array {
    const hash = Number.isInteger(index) ? manifest.chunkHashes[index] : undefined;
    return (
      hash ??
      invalid('index', `must be a chunk index below ${manifest.chunkHashes.length}, got ${index}`)
    );
  }

  private touch(contentId: Uint8Array, location: ChunkLocation): void {
    if (location.kind === 'file') this.uses.useFile(location.hash);
    this.uses.useContent(contentId);
  }
}
