/**
 * In-order delivery with a bounded window (DESIGN.md decision 9). Verified pieces arrive in any
 * order; the buffer releases them strictly by offset, each byte once, and keeps the accounting
 * the memory bound needs:
 *
 *   ackedOffset <= emittedOffset <= (buffered pieces, maybe with gaps) < windowEnd
 *
 * - `emittedOffset`: bytes handed to the host in `deliver` outputs.
 * - `ackedOffset`: bytes the host reported consumed (`delivered` input). Bytes between the two
 *   are still counted against the download's memory: the host holds them for the core.
 * - `windowEnd = ackedOffset + windowBytes`: the scheduler assigns no piece that ends past it
 *   (except the head piece, so a window smaller than a piece still makes progress).
 *
 * A running SHA-256 of every emitted byte gives `download:complete` its digest.
 */
import type { CryptoProvider, Sha256Hasher } from '../crypto-provider.js';
import { assert, invalidArgument } from '../errors.js';

export interface ReleasedPiece {
  readonly offset: number;
  readonly bytes: Uint8Array;
}

export class ReorderBuffer {
  readonly totalBytes: number;
  readonly windowBytes: number;
  private readonly pending = new Map<number, Uint8Array>();
  private bufferedBytes = 0;
  private emitted = 0;
  private acked = 0;
  private readonly hasher: Sha256Hasher;

  constructor(crypto: CryptoProvider, totalBytes: number, windowBytes: number) {
    this.totalBytes = totalBytes;
    this.windowBytes = windowBytes;
    this.hasher = crypto.createSha256();
  }

  get emittedOffset(): number {
    return this.emitted;
  }

  get ackedOffset(): number {
    return this.acked;
  }

  /** Where the scheduler's window ends. */
  get windowEnd(): number {
    return this.acked + this.windowBytes;
  }

  /** Bytes held for the download: buffered out of order plus emitted but not yet consumed. */
  get heldBytes(): number {
    return this.bufferedBytes + (this.emitted - this.acked);
  }

  /** True when every byte was emitted. */
  get finished(): boolean {
    return this.emitted === this.totalBytes;
  }

  /** Stores a verified piece starting at `offset`. */
  insert(offset: number, bytes: Uint8Array): void {
    assert(
      offset >= this.emitted && !this.pending.has(offset),
      `piece at ${offset} inserted twice`,
    );
    assert(offset + bytes.length <= this.totalBytes, `piece at ${offset} passes the end`);
    this.pending.set(offset, bytes);
    this.bufferedBytes += bytes.length;
  }

  /** Releases every piece that continues the emitted prefix, in order. */
  release(): ReleasedPiece[] {
    const out: ReleasedPiece[] = [];
    for (;;) {
      const bytes = this.pending.get(this.emitted);
      if (bytes === undefined) break;
      this.pending.delete(this.emitted);
      this.bufferedBytes -= bytes.length;
      out.push({ offset: this.emitted, bytes });
      this.hasher.update(bytes);
      this.emitted += bytes.length;
    }
    return out;
  }

  /**
   * The host consumed `byteCount` more emitted bytes.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when that is more than it was given.
   */
  acknowledge(byteCount: number): void {
    if (
      !Number.isSafeInteger(byteCount) ||
      byteCount < 0 ||
      this.acked + byteCount > this.emitted
    ) {
      invalidArgument(
        'byteCount',
        `${byteCount} is not in [0, ${this.emitted - this.acked}] (bytes delivered, not yet acknowledged)`,
      );
    }
    this.acked += byteCount;
  }

  /** The SHA-256 of all emitted bytes; call once, after `finished`. */
  digest(): Uint8Array {
    assert(this.finished, 'digest before every byte was emitted');
    return this.hasher.digest();
  }
}
