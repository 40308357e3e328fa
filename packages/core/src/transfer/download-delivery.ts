/**
 * The delivery half every download shares: a `ReorderBuffer` (in-order release within the
 * memory window, running SHA-256), per-source verified byte counts, and rate-limited
 * `download:progress` events (at most one per `progressIntervalMs` of `nowMs`; a due event that
 * was held back is sent by `onTimer`).
 */
import type { CryptoProvider } from '../crypto-provider.js';
import { ReorderBuffer } from './reorder-buffer.js';
import type { TransferContext } from './transfer-context.js';

export class DownloadDelivery {
  readonly buffer: ReorderBuffer;
  private readonly bySource = new Map<string, number>();
  private verifiedBytes = 0;
  private lastProgressMs = -Infinity;
  private progressDue = false;

  constructor(
    private readonly ctx: TransferContext,
    crypto: CryptoProvider,
    private readonly downloadId: number,
    readonly totalBytes: number,
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
        offset: piece.offset,
        bytes: piece.bytes,
      });
    }
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

  private maybeProgress(nowMs: number): void {
    if (!this.progressDue || nowMs < this.lastProgressMs + this.ctx.settings.progressIntervalMs)
      return;
    if (this.buffer.finished) {
      this.progressDue = false;
      return; // download:complete follows at once
    }
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

  /** Verified bytes per source so far. */
  sourceCounts(): Record<string, number> {
    return Object.fromEntries(this.bySource);
  }
}
