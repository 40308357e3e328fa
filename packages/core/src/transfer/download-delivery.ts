/**
 * The delivery half every download shares: a `ReorderBuffer` (in-order release within the
 * memory window, running SHA-256), per-source verified byte counts, and rate-limited
 * `download:progress` events (at most one per `progressIntervalMs` of `nowMs`; a due event that
 * was held back is sent by `onTimer`).
 *
 * Repairs (pooled URL downloads): `withdraw` takes a suspect piece back (out of the buffer when
 * it was not emitted yet) and out of the counts; `repair` re-sends a refetched piece over an
 * emitted range as `deliver` with `repair: true`. So `verifiedBytes` is always the bytes
 * currently believed good, each counted once, and equals the sum of `bySource`.
 *
 * Offsets: the buffer counts in the download's own byte space; `outputOffset` maps a released
 * piece's position to the offset `deliver` carries (a content download with a chunk selection
 * delivers its selected chunks at their content offsets, chunk-selection.ts). Identity when
 * absent.
 */
import type { CryptoProvider } from '../crypto-provider.js';
import { assert } from '../errors.js';
import { ReorderBuffer } from './reorder-buffer.js';
import type { TransferContext } from './transfer-context.js';

export class DownloadDelivery {
  readonly buffer: ReorderBuffer;
  private readonly bySource = new Map<string, number>();
  private verifiedBytes = 0;
  private lastProgressMs = -Infinity;
  private progressDue = false;

  /** `crypto` undefined: no running digest (see reorder-buffer.ts). */
  constructor(
    private readonly ctx: TransferContext,
    crypto: CryptoProvider | undefined,
    private readonly downloadId: number,
    readonly totalBytes: number,
    private readonly outputOffset: (position: number) => number = (position) => position,
  ) {
    this.buffer = new ReorderBuffer(crypto, totalBytes, ctx.settings.reorderWindowBytes);
  }

  /** A verified piece: buffer it, emit what is now in order, maybe report progress. */
  add(offset: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    this.buffer.insert(offset, bytes);
    this.verifiedBytes += bytes.length;
    this.bySource.set(sourceName, (this.bySource.get(sourceName) ?? 0) + bytes.length);
    for (const piece of this.buffer.release()) {
      this.ctx.output({
        type: 'deliver',
        downloadId: this.downloadId,
        offset: this.outputOffset(piece.offset),
        bytes: piece.bytes,
      });
    }
    this.progressDue = true;
    this.maybeProgress(nowMs);
  }

  /**
   * A suspect piece of `length` bytes at `offset`, credited to `sourceName`, is taken back: out
   * of the buffer if it was not emitted yet, and out of the counts either way.
   */
  withdraw(offset: number, length: number, sourceName: string): void {
    if (offset >= this.buffer.emittedOffset) {
      const bytes = this.buffer.remove(offset);
      assert(bytes?.length === length, `withdraw: no buffered piece of ${length} at ${offset}`);
    }
    this.verifiedBytes -= length;
    const left = (this.bySource.get(sourceName) ?? 0) - length;
    assert(left >= 0, `withdraw: ${sourceName} was credited less than ${length}`);
    if (left === 0) this.bySource.delete(sourceName);
    else this.bySource.set(sourceName, left);
    this.progressDue = true;
  }

  /** A refetched, checked piece for an emitted range: `deliver` with `repair: true`. */
  repair(offset: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    this.buffer.repairEmitted(offset, bytes.length);
    this.verifiedBytes += bytes.length;
    this.bySource.set(sourceName, (this.bySource.get(sourceName) ?? 0) + bytes.length);
    this.ctx.output({
      type: 'deliver',
      downloadId: this.downloadId,
      offset,
      bytes,
      repair: true,
    });
    this.progressDue = true;
    this.maybeProgress(nowMs);
  }

  get finished(): boolean {
    return this.buffer.finished;
  }

  /** Sends a held-back progress event when its interval has passed. */
  onTimer(nowMs: number): void {
    this.maybeProgress(nowMs);
  }

  nextDeadlineMs(): number | undefined {
    return this.progressDue
      ? this.lastProgressMs + this.ctx.settings.progressIntervalMs
      : undefined;
  }

  /** Rate-limited, except that the event for the last byte always goes out (final shares). */
  private maybeProgress(nowMs: number): void {
    if (!this.progressDue) return;
    const complete = this.verifiedBytes === this.totalBytes;
    if (!complete && nowMs < this.lastProgressMs + this.ctx.settings.progressIntervalMs) return;
    // The last byte's event goes out too, just before download:complete (at once, or after a
    // read-back): it carries the final per-source shares, which the host reports.
    this.progressDue = false;
    this.lastProgressMs = nowMs;
    this.ctx.event({
      type: 'download:progress',
      downloadId: this.downloadId,
      verifiedBytes: this.verifiedBytes,
      totalBytes: this.totalBytes,
      bySource: Object.fromEntries(this.bySource),
    });
  }
}
