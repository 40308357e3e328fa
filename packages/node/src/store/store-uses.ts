/**
 * Last-use bookkeeping for the store, batched so that reads stay cheap: a read or put records
 * its use here, in memory (a counter value that orders eviction exactly, a clock time for
 * `peapod ls`), and the uses are written to the index in one transaction by `flush`: before an
 * eviction decision and at `list` and `close` (chunk-store.ts calls it), and at most
 * `USE_FLUSH_MS` after the first unwritten use. Uses are hints: a crash, or a flush that cannot
 * commit (a full disk), loses some, which leaves the eviction order slightly off and never
 * loses or corrupts a chunk. So `flush` never throws.
 */
import { toHex } from '@peapod/core';
import type { ChunkFileTouch, StoreIndex } from './store-index.js';

/** The longest a recorded use waits in memory before it is written to the index. */
export const USE_FLUSH_MS = 2_000;

export class UseLog {
  private useSeq: number;
  private readonly files = new Map<string, ChunkFileTouch>();
  private readonly contents = new Map<string, [Uint8Array, number]>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly index: StoreIndex) {
    this.useSeq = index.maxUseSeq();
  }

  /** A use of a new chunk file, for its first row (written with the row, not batched). */
  next(hash: Uint8Array): ChunkFileTouch {
    this.useSeq += 1;
    return { hash, useSeq: this.useSeq, atMs: Date.now() };
  }

  /** Records a use of the chunk file `hash`. */
  useFile(hash: Uint8Array): void {
    if (this.closed) return;
    this.files.set(toHex(hash), this.next(hash));
    this.arm();
  }

  /** Records a use of a content. */
  useContent(contentId: Uint8Array): void {
    if (this.closed) return;
    this.contents.set(toHex(contentId), [contentId, Date.now()]);
    this.arm();
  }

  /** Forgets unwritten uses of a chunk file whose row was deleted (a later row is newer). */
  forgetFile(hashHex: string): void {
    this.files.delete(hashHex);
  }

  /** Forgets unwritten uses of a removed content. */
  forgetContent(contentIdHex: string): void {
    this.contents.delete(contentIdHex);
  }

  /** Writes every recorded use in one transaction (see the module comment: never throws). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || (this.files.size === 0 && this.contents.size === 0)) return;
    try {
      this.index.writeTouches(this.files.values(), this.contents.values());
    } catch {
      // Lost hints only (module comment).
    } finally {
      this.files.clear();
      this.contents.clear();
    }
  }

  /** Flushes, then records nothing more (the index is about to close). */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private arm(): void {
    this.timer ??= setTimeout(() => this.flush(), USE_FLUSH_MS).unref();
  }
}
