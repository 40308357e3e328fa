/**
 * Safety invariants, checked as the run goes (after every step that could break them), and the
 * `Violation` they raise.
 *
 * Theory of operation
 * - The simulator knows the truth the Cores must converge on: the content's bytes at every
 *   offset (`Content`), its SHA-256 and chunk hashes. Each checker compares what a Core did
 *   against that truth and throws a `Violation` naming the invariant; the simulator catches it,
 *   stops the run and prints `SEED=` with a trace.
 * - `DeliveryChecker` (one per download) keeps the download's output, the way a host writing a
 *   file would hold it, and checks every `deliver`:
 *   - a non-repair `deliver` starts exactly where the previous one ended (in order, no gap, no
 *     overlap: so exactly once), stays within the object, and comes before `download:complete`;
 *   - content by ID (manifest-verified): every delivered byte equals the content at delivery
 *     time, and a repair is a violation (verified chunks never need one);
 *   - pooled URL (no manifest; spot checks, then repairs after a ban): a repair only overwrites
 *     bytes already delivered; at `download:complete` the whole output must equal the content
 *     and the event's SHA-256 must be the content's.
 *   The output costs little memory: it is "the content, except these byte runs", where each run
 *   holds the bytes the host wrote that differ from the content (a sparse liar's flipped bytes;
 *   a repair removes them). `read` answers `read-delivered` from it.
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
  | 'content-never-repaired'
  | 'repair-within-delivered'
  | 'read-within-output'
  | 'output-equals-content'
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

/** Output bytes that differ from the content: a run starting at `start`. */
interface DifferingRun {
  readonly start: number;
  readonly bytes: Uint8Array;
}

/** Mismatches closer than this are kept in one run (fewer, slightly longer runs). */
const RUN_JOIN_BYTES = 64;

/** Tracks one download's deliveries and output against the content. */
export class DeliveryChecker {
  /** Bytes delivered in order so far (also the offset the next delivery must start at). */
  deliveredBytes = 0;
  completed = false;
  /** Repair deliveries seen. */
  repairs = 0;
  /** SHA-256 (hex) of the output, once the download completed. */
  outputSha256: string | undefined;
  private readonly hasher: Hash = createHash('sha256');
  /** Where the output differs from the content: sorted, disjoint runs. */
  private runs: DifferingRun[] = [];

  constructor(
    readonly node: number,
    readonly downloadId: number,
    private readonly content: Content,
    /** 'content': manifest-verified (no repairs, every byte right); 'url': pooled URL. */
    readonly kind: 'content' | 'url' = 'content',
  ) {}

  get totalBytes(): number {
    return this.content.totalBytes;
  }

  /** Bytes of the output that differ from the content, as stored runs (tests, reports). */
  get differingRunCount(): number {
    return this.runs.length;
  }

  /** Checks one `deliver` output and writes it into the output. */
  onDeliver(offset: number, bytes: Uint8Array, repair = false): void {
    const where = `node ${this.node} download ${this.downloadId}`;
    if (this.completed) {
      throw new Violation(
        'delivery-in-order-exactly-once',
        `${where}: deliver${repair ? ' (repair)' : ''} at ${offset} after download:complete`,
      );
    }
    if (repair) {
      if (this.kind === 'content') {
        throw new Violation(
          'content-never-repaired',
          `${where}: repair of [${offset}, ${offset + bytes.length}) in a manifest-verified download`,
        );
      }
      if (!(offset >= 0 && offset + bytes.length <= this.deliveredBytes)) {
        throw new Violation(
          'repair-within-delivered',
          `${where}: repair of [${offset}, ${offset + bytes.length}) but only ` +
            `${this.deliveredBytes} bytes were delivered`,
        );
      }
      this.repairs++;
      this.write(offset, bytes);
      return;
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
    if (this.kind === 'content' && !this.content.matches(offset, bytes)) {
      const at = this.content.firstMismatch(offset, bytes);
      throw new Violation(
        'delivered-bytes-verified',
        `${where}: delivered byte at offset ${at} differs from the content (piece [${offset}, ` +
          `${offset + bytes.length}))`,
      );
    }
    this.write(offset, bytes);
    this.deliveredBytes += bytes.length;
    this.hasher.update(bytes);
  }

  /** Checks that `read-delivered` asks only for bytes already delivered. */
  checkRead(offset: number, length: number): void {
    const end = offset + length;
    if (!(offset >= 0 && length > 0 && end <= this.deliveredBytes)) {
      throw new Violation(
        'read-within-output',
        `node ${this.node} download ${this.downloadId}: read-delivered [${offset}, ${end}) but ` +
          `only ${this.deliveredBytes} bytes were delivered`,
      );
    }
  }

  /** The output's bytes at `[offset, offset + length)` (answers `read-delivered`). */
  read(offset: number, length: number): Uint8Array {
    this.checkRead(offset, length);
    const end = offset + length;
    let out = this.content.slice(offset, end);
    let copied = false;
    for (const run of this.runs) {
      const runEnd = run.start + run.bytes.length;
      if (runEnd <= offset || run.start >= end) continue;
      if (!copied) {
        out = out.slice(); // content blocks are shared
        copied = true;
      }
      const from = Math.max(offset, run.start);
      const to = Math.min(end, runEnd);
      out.set(run.bytes.subarray(from - run.start, to - run.start), from - offset);
    }
    return out;
  }

  /** Checks `download:complete`. */
  /**
   * `sha256`: the core's digest of what it delivered; undefined for a content download (the core
   * verified each chunk against the manifest and reports none), where the byte runs checked
   * above are the proof.
   */
  onComplete(totalBytes: number, sha256: Uint8Array | undefined, expectedSha256: Uint8Array): void {
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
    const wrong = this.runs[0];
    if (wrong !== undefined) {
      const at = this.content.firstMismatch(wrong.start, wrong.bytes);
      throw new Violation(
        'output-equals-content',
        `${where}: download:complete, but the output differs from the content at offset ${at} ` +
          `(${this.runs.length} differing run(s), ${this.repairs} repair(s))`,
      );
    }
    if (sha256 !== undefined && toHex(sha256) !== toHex(expectedSha256)) {
      throw new Violation(
        'complete-sha256',
        `${where}: download:complete sha256 ${toHex(sha256).slice(0, 16)}..., content ` +
          `${toHex(expectedSha256).slice(0, 16)}...`,
      );
    }
    this.completed = true;
    // Without repairs, the hash of the delivered stream; with them, the output is the content
    // (no differing run is left, checked above over the whole output).
    this.outputSha256 = this.repairs === 0 ? this.hasher.digest('hex') : toHex(expectedSha256);
  }

  /** Writes bytes at `offset` into the output: drops overlapped runs, records new mismatches. */
  private write(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (this.runs.length > 0) {
      const kept: DifferingRun[] = [];
      for (const run of this.runs) {
        const runEnd = run.start + run.bytes.length;
        if (runEnd <= offset || run.start >= end) {
          kept.push(run);
          continue;
        }
        // What is left of a run outside the write; kept only if it still differs.
        const remnants = [
          ...(run.start < offset
            ? [{ start: run.start, bytes: run.bytes.slice(0, offset - run.start) }]
            : []),
          ...(runEnd > end ? [{ start: end, bytes: run.bytes.slice(end - run.start) }] : []),
        ];
        for (const remnant of remnants)
          if (!this.content.matches(remnant.start, remnant.bytes)) kept.push(remnant);
      }
      this.runs = kept;
    }
    if (this.content.matches(offset, bytes)) return;
    const expected = this.content.slice(offset, end);
    const added: DifferingRun[] = [];
    let runStart = -1;
    let lastBad = -1;
    for (let i = 0; i <= bytes.length; i++) {
      const bad = i < bytes.length && bytes[i] !== expected[i];
      if (bad) {
        if (runStart < 0) runStart = i;
        lastBad = i;
      } else if (runStart >= 0 && (i === bytes.length || i - lastBad > RUN_JOIN_BYTES)) {
        added.push({ start: offset + runStart, bytes: bytes.slice(runStart, lastBad + 1) });
        runStart = -1;
      }
    }
    this.runs = [...this.runs, ...added].sort((a, b) => a.start - b.start);
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
