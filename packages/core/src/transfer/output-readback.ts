/**
 * Reads a download's output back from the host and hashes it (pooled URL downloads, after a
 * repair: url-download.ts). A repair overwrites bytes the running SHA-256 already covered, so
 * the only digest that describes what the host holds is one of the output itself.
 *
 * It asks for `[0, totalBytes)` in slices of `sliceBytes` through `read-delivered` outputs, with
 * at most `outstandingBytesMax` requested and not yet hashed (so memory stays bounded whatever
 * the object's size), and hashes the answers (`delivered-read`, possibly out of order) strictly
 * by offset. It ends with `onReadBackDone(sha256)`, or `onReadBackFailed(detail)` when the host
 * cannot read back (`bytes` undefined) or answers with the wrong length. `cancel` forgets every
 * open read: late answers are then ignored by the engine.
 */
import type { Sha256Hasher } from '../crypto-provider.js';
import type { DeliveredReadHandler, TransferContext } from './transfer-context.js';

/** Slice size of one read: small enough to bound memory, large enough to keep a disk busy. */
export const READ_BACK_SLICE_BYTES = 1024 * 1024;
/** Bytes requested and not yet hashed (four slices: a disk pipeline without much memory). */
export const READ_BACK_OUTSTANDING_BYTES_MAX = 4 * READ_BACK_SLICE_BYTES;

/** Who hears how the read-back ended. */
export interface ReadBackOwner {
  onReadBackDone(sha256: Uint8Array, nowMs: number): void;
  onReadBackFailed(detail: string, nowMs: number): void;
}

export class OutputReadBack implements DeliveredReadHandler {
  private readonly hasher: Sha256Hasher;
  /** Next offset to request. */
  private requested = 0;
  /** Bytes hashed so far (the answers arrive in any order; hashing follows offsets). */
  private hashed = 0;
  /** Open reads: read ID -> [offset, length]. */
  private readonly open = new Map<number, { offset: number; length: number }>();
  /** Answers waiting for their turn, by offset. */
  private readonly answers = new Map<number, Uint8Array>();
  private ended = false;

  constructor(
    private readonly ctx: TransferContext,
    private readonly owner: ReadBackOwner,
    private readonly downloadId: number,
    private readonly totalBytes: number,
  ) {
    this.hasher = ctx.crypto.createSha256();
  }

  /** Issues the first reads (or finishes at once for an empty object). */
  start(nowMs: number): void {
    this.pump(nowMs);
  }

  /** Bytes this read-back may hold: everything requested and not yet hashed. */
  get memoryBytes(): number {
    return this.requested - this.hashed;
  }

  onDeliveredRead(readId: number, bytes: Uint8Array | undefined, nowMs: number): void {
    const read = this.open.get(readId);
    if (read === undefined || this.ended) return;
    this.open.delete(readId);
    if (bytes === undefined || bytes.length !== read.length) {
      this.end();
      this.owner.onReadBackFailed(
        bytes === undefined
          ? `the host could not read back its output at ${read.offset} to verify the repaired ` +
              'download (write to a file, not a stream, so repairs can be checked)'
          : `the host read back ${bytes.length} bytes at ${read.offset}, not ${read.length}`,
        nowMs,
      );
      return;
    }
    this.answers.set(read.offset, bytes);
    for (let next = this.answers.get(this.hashed); next !== undefined;) {
      this.answers.delete(this.hashed);
      this.hasher.update(next);
      this.hashed += next.length;
      next = this.answers.get(this.hashed);
    }
    this.pump(nowMs);
  }

  /** Stops: open reads are forgotten (a new repair made this read-back moot). */
  cancel(): void {
    this.end();
  }

  private pump(nowMs: number): void {
    if (this.ended) return;
    while (
      this.requested < this.totalBytes &&
      this.requested - this.hashed < READ_BACK_OUTSTANDING_BYTES_MAX
    ) {
      const length = Math.min(READ_BACK_SLICE_BYTES, this.totalBytes - this.requested);
      const readId = this.ctx.readDelivered(this, this.downloadId, this.requested, length);
      this.open.set(readId, { offset: this.requested, length });
      this.requested += length;
    }
    if (this.hashed === this.totalBytes) {
      this.ended = true;
      this.owner.onReadBackDone(this.hasher.digest(), nowMs);
    }
  }

  private end(): void {
    this.ended = true;
    for (const readId of this.open.keys()) this.ctx.cancelRead(readId);
    this.open.clear();
    this.answers.clear();
  }
}
