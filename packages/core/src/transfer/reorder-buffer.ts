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
 * Repairs (pooled URL downloads, url-download.ts): a held piece found suspect is taken back with
 * `remove` before it was emitted (its place becomes a gap again until the refetched piece is
 * inserted); an emitted one is sent again by the caller as a repair, recorded with
 * `repairEmitted` so that the host's acknowledgements, which count every delivered byte in the
 * order given, stay matched: `acknowledge` consumes a FIFO of (in-order | repair) byte runs, and
 * only the in-order part moves `ackedOffset`. Unacknowledged repair bytes count as held.
 *
 * A running SHA-256 of every emitted byte gives `download:complete` its digest: each byte is
 * hashed once, as it is released. It says nothing about repaired ranges, so the caller stops it
 * (`stopHashing`) once one was repaired and reads the output back instead; a buffer made
 * without a crypto provider (a resumed URL download, whose digest the host computes) never
 * hashes.
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
  /** Repair bytes handed out and not yet acknowledged. */
  private repairOutstanding = 0;
  /**
   * Delivered, unacknowledged bytes as runs in output order: positive = in-order bytes,
   * negative = repair bytes. Same-kind neighbours merge, so without repairs this is one run.
   */
  private readonly unacked: number[] = [];
  private unackedHead = 0;
  /** The running digest; undefined when not hashing. */
  private hasher: Sha256Hasher | undefined;

  /** `crypto` undefined: no running digest. */
  constructor(crypto: CryptoProvider | undefined, totalBytes: number, windowBytes: number) {
    this.totalBytes = totalBytes;
    this.windowBytes = windowBytes;
    this.hasher = crypto?.createSha256();
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

  /**
   * Bytes held for the download: buffered out of order, plus emitted (in order or as repairs)
   * but not yet consumed.
   */
  get heldBytes(): number {
    return this.bufferedBytes + (this.emitted - this.acked) + this.repairOutstanding;
  }

  /** Whether a piece starting at `offset` is buffered (verified, not yet emitted). */
  holds(offset: number): boolean {
    return this.pending.has(offset);
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

  /**
   * Takes back a buffered piece that was not emitted yet (it turned out suspect): its offset
   * becomes a gap again, to be filled by a later `insert`. Returns its bytes, or undefined when
   * no piece starts at `offset` in the buffer.
   */
  remove(offset: number): Uint8Array | undefined {
    const bytes = this.pending.get(offset);
    if (bytes === undefined) return undefined;
    this.pending.delete(offset);
    this.bufferedBytes -= bytes.length;
    return bytes;
  }

  /**
   * Records `byteCount` bytes handed to the host as a repair of an emitted range: they count as
   * held until the host acknowledges them, in output order with the in-order bytes.
   */
  repairEmitted(offset: number, byteCount: number): void {
    assert(
      offset >= 0 && offset + byteCount <= this.emitted,
      `repair [${offset}, ${offset + byteCount}) of bytes not emitted`,
    );
    this.repairOutstanding += byteCount;
    this.pushUnacked(-byteCount);
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
      this.hasher?.update(bytes);
      this.emitted += bytes.length;
      this.pushUnacked(bytes.length);
    }
    return out;
  }

  /**
   * The host consumed `byteCount` more delivered bytes (in-order and repair bytes, in the order
   * they were handed out).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when that is more than it was given.
   */
  acknowledge(byteCount: number): void {
    const outstanding = this.emitted - this.acked + this.repairOutstanding;
    if (!Number.isSafeInteger(byteCount) || byteCount < 0 || byteCount > outstanding) {
      invalidArgument(
        'byteCount',
        `${byteCount} is not in [0, ${outstanding}] (bytes delivered, not yet acknowledged)`,
      );
    }
    let left = byteCount;
    while (left > 0) {
      const run = this.unacked[this.unackedHead]!;
      const take = Math.min(left, Math.abs(run));
      if (run > 0) {
        this.acked += take;
        this.unacked[this.unackedHead] = run - take;
      } else {
        this.repairOutstanding -= take;
        this.unacked[this.unackedHead] = run + take;
      }
      left -= take;
      if (this.unacked[this.unackedHead] === 0) this.unackedHead++;
    }
    if (this.unackedHead === this.unacked.length) {
      this.unacked.length = 0;
      this.unackedHead = 0;
    } else if (this.unackedHead > 64 && this.unackedHead * 2 > this.unacked.length) {
      this.unacked.splice(0, this.unackedHead);
      this.unackedHead = 0;
    }
  }

  private pushUnacked(run: number): void {
    if (run === 0) return;
    const last = this.unacked.length - 1;
    if (last >= this.unackedHead && Math.sign(this.unacked[last]!) === Math.sign(run)) {
      this.unacked[last] = this.unacked[last]! + run;
    } else {
      this.unacked.push(run);
    }
  }

  /** Stops the running digest (it no longer describes the output): `digest` is then undefined. */
  stopHashing(): void {
    this.hasher = undefined;
  }

  /** The SHA-256 of all emitted bytes, undefined when not hashing; call once, after `finished`. */
  digest(): Uint8Array | undefined {
    assert(this.finished, 'digest before every byte was emitted');
    return this.hasher?.digest();
  }
}
