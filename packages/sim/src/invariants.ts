/**
 * Safety invariants, checked as the run goes (after every step that could break them), and the
 * `Violation` they raise.
 *
 * Theory of operation
 * - The simulator knows the truth the Cores must converge on: the content's bytes at every
 *   offset (`Content`), its SHA-256 and chunk hashes. Each checker compares what a Core did
 *   against that truth and throws a `Violation` naming the invariant; the simulator catches it,
 *   stops the run and prints `SEED=` with a trace.
 * - `DeliveryChecker` (one per download): every `deliver` starts exactly where the previous one
 *   ended (in order, no gap, no overlap: so exactly once), stays within the object, and equals
 *   the content at its offset (so every delivered byte was verified); `download:complete` comes
 *   once, after the last byte, with the content's SHA-256.
 * - `checkSend`: no `send` exceeds a u16 length prefix plus one record (2 + 65535 bytes).
 * - `checkMemory`: `downloadMemoryBytes` stays under a bound that does not depend on the
 *   content size.
 * - `checkStoredChunk`: a chunk handed to the store hashes to the manifest's hash and equals the
 *   content (nothing unverified reaches a store).
 * Each checker is small and pure enough that a test can plant a violation and watch it fire.
 */
import { createHash, type Hash } from 'node:crypto';
import { toHex } from '@peapod/core';
import type { Content } from './content.js';

/** The names of the invariants, as printed after `SEED=`. */
export type InvariantName =
  | 'delivered-bytes-verified'
  | 'delivery-in-order-exactly-once'
  | 'delivery-within-object'
  | 'complete-after-all-bytes'
  | 'complete-sha256'
  | 'send-size'
  | 'download-memory-bounded'
  | 'stored-chunk-verified'
  | 'core-did-not-throw'
  | 'timer-progress'
  | 'liveness';

/** A broken invariant. */
export class Violation extends Error {
  constructor(
    readonly invariant: InvariantName,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'Violation';
  }
}

/** The largest `send` a Core may emit: a u16 length prefix and one record of at most 65535. */
export const MAX_SEND_BYTES = 2 + 65_535;

export function checkSend(node: number, linkId: number, byteCount: number): void {
  if (byteCount > MAX_SEND_BYTES) {
    throw new Violation(
      'send-size',
      `node ${node} link ${linkId}: send of ${byteCount} bytes > ${MAX_SEND_BYTES}`,
    );
  }
}

export function checkMemory(
  node: number,
  downloadId: number,
  bytes: number,
  boundBytes: number,
): void {
  if (!(bytes <= boundBytes)) {
    throw new Violation(
      'download-memory-bounded',
      `node ${node} download ${downloadId}: holds ${bytes} bytes > bound ${boundBytes}`,
    );
  }
}

/** Tracks one download's deliveries against the content. */
export class DeliveryChecker {
  /** Bytes delivered so far (also the offset the next delivery must start at). */
  deliveredBytes = 0;
  completed = false;
  /** SHA-256 (hex) of everything delivered, once the download completed. */
  outputSha256: string | undefined;
  private readonly hasher: Hash = createHash('sha256');

  constructor(
    readonly node: number,
    readonly downloadId: number,
    private readonly content: Content,
  ) {}

  get totalBytes(): number {
    return this.content.totalBytes;
  }

  /** Checks one `deliver` output. */
  onDeliver(offset: number, bytes: Uint8Array): void {
    const where = `node ${this.node} download ${this.downloadId}`;
    if (this.completed) {
      throw new Violation(
        'delivery-in-order-exactly-once',
        `${where}: deliver at ${offset} after download:complete`,
      );
    }
    if (offset !== this.deliveredBytes) {
      throw new Violation(
        'delivery-in-order-exactly-once',
        `${where}: deliver at offset ${offset}, expected ${this.deliveredBytes} ` +
          (offset < this.deliveredBytes ? '(bytes delivered twice)' : '(a gap)'),
      );
    }
    if (offset + bytes.length > this.content.totalBytes) {
      throw new Violation(
        'delivery-within-object',
        `${where}: deliver [${offset}, ${offset + bytes.length}) past the end ${this.content.totalBytes}`,
      );
    }
    if (!this.content.matches(offset, bytes)) {
      const at = this.content.firstMismatch(offset, bytes);
      throw new Violation(
        'delivered-bytes-verified',
        `${where}: delivered byte at offset ${at} differs from the content (piece [${offset}, ` +
          `${offset + bytes.length}))`,
      );
    }
    this.deliveredBytes += bytes.length;
    this.hasher.update(bytes);
  }

  /** Checks `download:complete`. */
  onComplete(totalBytes: number, sha256: Uint8Array, expectedSha256: Uint8Array): void {
    const where = `node ${this.node} download ${this.downloadId}`;
    if (this.completed) {
      throw new Violation('complete-after-all-bytes', `${where}: download:complete twice`);
    }
    if (this.deliveredBytes !== this.content.totalBytes || totalBytes !== this.content.totalBytes) {
      throw new Violation(
        'complete-after-all-bytes',
        `${where}: download:complete with ${this.deliveredBytes} of ${this.content.totalBytes} ` +
          `bytes delivered (event says ${totalBytes})`,
      );
    }
    if (toHex(sha256) !== toHex(expectedSha256)) {
      throw new Violation(
        'complete-sha256',
        `${where}: download:complete sha256 ${toHex(sha256).slice(0, 16)}..., content ` +
          `${toHex(expectedSha256).slice(0, 16)}...`,
      );
    }
    this.completed = true;
    this.outputSha256 = this.hasher.digest('hex');
  }
}

/** Checks a `store-chunk` against the manifest hash and the content. */
export function checkStoredChunk(
  node: number,
  content: Content,
  chunkSizeBytes: number,
  chunkHashes: readonly Uint8Array[],
  chunkIndex: number,
  chunkHash: Uint8Array,
  bytes: Uint8Array,
): void {
  const expected = chunkHashes[chunkIndex];
  const where = `node ${node} chunk ${chunkIndex}`;
  if (expected === undefined || toHex(expected) !== toHex(chunkHash)) {
    throw new Violation('stored-chunk-verified', `${where}: store-chunk with a wrong chunk hash`);
  }
  const offset = chunkIndex * chunkSizeBytes;
  const length = Math.min(chunkSizeBytes, content.totalBytes - offset);
  if (bytes.length !== length || !content.matches(offset, bytes)) {
    throw new Violation('stored-chunk-verified', `${where}: stored bytes differ from the content`);
  }
}
