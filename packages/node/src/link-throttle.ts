/**
 * Bandwidth limits on one peer link's socket (`--max-upload`, `--max-download`; LAN peers are
 * exempt unless `--limit-lan`, see rate-limit.ts).
 *
 * Theory of operation
 * - Upload: the host hands each host loop's sends of a link as one batch. While the upload
 *   bucket is in debt, batches wait in order in a queue and a timer writes them when the debt is
 *   repaid; a batch's flush callback fires only once it was written, so the core's send window
 *   (256 KiB of unflushed DATA) stops producing more: the link slows down, memory does not grow.
 *   `end()` (a disconnect after GOODBYE) waits for the queue.
 * - Download: after each read the download bucket takes the bytes; while in debt the socket is
 *   paused, so the kernel's receive window fills and TCP slows the sender down.
 */
import type { Socket } from 'node:net';
import type { TokenBucket } from './rate-limit.js';

interface Batch {
  readonly chunks: readonly Uint8Array[];
  readonly byteCount: number;
  readonly onFlushed: () => void;
}

export class ThrottledWriter {
  private readonly queue: Batch[] = [];
  private timer: NodeJS.Timeout | undefined;
  private ending = false;

  constructor(
    private readonly socket: Socket,
    private readonly bucket: TokenBucket,
  ) {
    socket.once('close', () => clearTimeout(this.timer));
  }

  write(chunks: readonly Uint8Array[], byteCount: number, onFlushed: () => void): void {
    this.queue.push({ chunks, byteCount, onFlushed });
    this.pump();
  }

  /** Ends the socket once every queued batch is written. */
  end(): void {
    this.ending = true;
    this.pump();
  }

  private pump(): void {
    if (this.timer !== undefined || this.socket.destroyed) return;
    while (this.queue.length > 0) {
      const waitMs = this.bucket.waitMs();
      if (waitMs > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, Math.ceil(waitMs));
        return;
      }
      const batch = this.queue.shift()!;
      writeBatch(this.socket, batch.chunks, batch.onFlushed);
      this.bucket.take(batch.byteCount);
    }
    if (this.ending) this.socket.end();
  }
}

/** Writes `chunks` as one corked batch; `onFlushed` runs once the last one is flushed. */
export function writeBatch(
  socket: Socket,
  chunks: readonly Uint8Array[],
  onFlushed: () => void,
): void {
  socket.cork();
  const last = chunks.length - 1;
  for (let i = 0; i < last; i++) socket.write(chunks[i]!);
  socket.write(chunks[last]!, onFlushed);
  socket.uncork();
}

/** Pauses `socket` while the download bucket is in debt (call after each read). */
export function throttleRead(socket: Socket, bucket: TokenBucket, byteCount: number): void {
  const waitMs = bucket.take(byteCount);
  if (waitMs <= 0 || socket.isPaused()) return;
  socket.pause();
  setTimeout(() => socket.resume(), Math.ceil(waitMs));
}
