/**
 * Spot checks of helpers' pieces in a pooled URL download (url-download.ts; DESIGN.md
 * decision 6). A helper's piece is accepted only after this device fetched a PRNG-chosen
 * sample range of it (16-32 KiB) from the origin itself and found the helper's bytes equal.
 *
 * The sample is fetched as soon as the piece is assigned (the helper never learns where it
 * lies), so when the helper's last byte arrives the check usually needs nothing more: the
 * piece is judged at once instead of one origin round trip later, which would hold it (and the
 * in-order window) that long. A check is judged when both halves are here, the helper's piece
 * (`pieceArrived`) and the sample (or its failure after `SPOT_ATTEMPTS_MAX` tries), and its
 * owner hears the verdict: `match`, `mismatch` (the bytes differ: the caller decides strikes and
 * bans) or `unchecked` (the origin would not give the sample: the piece cannot be vouched for).
 * The comparison is a byte comparison of the sample, not a hash.
 *
 * The sample fetches are this module's own (it is their `FetchHandler`); an origin that says
 * the object changed while giving a sample ends the download (`onOriginChanged`).
 */
import { equalBytes } from '../bytes.js';
import type { SourceId } from './scheduler.js';
import type { FetchHandler, FetchSpec, TransferContext } from './transfer-context.js';
import type { OriginOutcome } from './transfer-api.js';

/** Spot-check sample length: 16 KiB plus up to 16 KiB more, drawn per piece. */
const SPOT_MIN_BYTES = 16 * 1024;
const SPOT_EXTRA_BYTES = 16 * 1024;
const SPOT_ATTEMPTS_MAX = 3;

export type SpotVerdict = 'match' | 'mismatch' | 'unchecked';

/** The spot check of one helper assignment. */
export interface SpotCheck {
  readonly piece: number;
  readonly source: SourceId;
  /** The helper's Device ID in hex (its link may close before the check ends). */
  readonly sourceName: string;
  readonly repair: boolean;
  /** The helper's copy of the piece, once all of it arrived. */
  bytes: Uint8Array | undefined;
  readonly sampleStart: number;
  readonly sampleEnd: number;
  /** 'fetching' the sample, 'ready' (all of it here), or 'failed' (the origin would not give it). */
  sampleState: 'fetching' | 'ready' | 'failed';
  fetchId: number;
  readonly sample: Uint8Array;
  received: number;
  attempts: number;
}

/** Where pieces lie and how to ask the origin for a range (url-pieces.ts's `PieceLayout`). */
export interface PieceGeometry {
  start(piece: number): number;
  lengthOf(piece: number): number;
  fetchSpec(start: number, end: number): FetchSpec;
}

/** Who hears the checks' verdicts. */
export interface SpotCheckOwner {
  onSpotVerdict(spot: SpotCheck, bytes: Uint8Array, verdict: SpotVerdict, nowMs: number): void;
  onOriginChanged(detail: string, nowMs: number): void;
}

export class SpotChecks implements FetchHandler {
  /** Every live check (of pieces in flight at helpers, or received and not judged yet). */
  private readonly checks = new Set<SpotCheck>();
  /** Checks whose sample fetch is running, by fetch ID. */
  private readonly fetches = new Map<number, SpotCheck>();

  constructor(
    private readonly ctx: TransferContext,
    private readonly layout: PieceGeometry,
    private readonly owner: SpotCheckOwner,
  ) {}

  /** Draws the sample of a piece just assigned to a helper and starts fetching it. */
  start(piece: number, source: SourceId, repair: boolean): SpotCheck {
    const length = this.layout.lengthOf(piece);
    const sampleLength = Math.min(
      length,
      SPOT_MIN_BYTES + this.ctx.prng.nextInt(SPOT_EXTRA_BYTES + 1),
    );
    const offset = this.ctx.prng.nextInt(length - sampleLength + 1);
    const sampleStart = this.layout.start(piece) + offset;
    const spot: SpotCheck = {
      piece,
      source,
      sourceName: this.ctx.sourceName(source),
      repair,
      bytes: undefined,
      sampleStart,
      sampleEnd: sampleStart + sampleLength,
      sampleState: 'fetching',
      fetchId: 0,
      sample: new Uint8Array(sampleLength),
      received: 0,
      attempts: 0,
    };
    this.checks.add(spot);
    this.issue(spot);
    return spot;
  }

  /** The helper's whole piece arrived: judge now, or once the sample is here. */
  pieceArrived(spot: SpotCheck, bytes: Uint8Array, nowMs: number): void {
    spot.bytes = bytes;
    this.judge(spot, nowMs);
  }

  /** The check is no longer needed (its assignment ended without the piece, or was dropped). */
  discard(spot: SpotCheck): void {
    this.checks.delete(spot);
    if (spot.sampleState !== 'fetching') return;
    this.fetches.delete(spot.fetchId);
    this.ctx.cancelFetch(spot.fetchId);
  }

  /** Discards the checks of pieces `sourceName` already gave in full; returns them. */
  discardReceivedFrom(sourceName: string): SpotCheck[] {
    const dropped: SpotCheck[] = [];
    for (const spot of [...this.checks]) {
      if (spot.sourceName !== sourceName || spot.bytes === undefined) continue;
      this.discard(spot);
      dropped.push(spot);
    }
    return dropped;
  }

  /** Stops every check (the download ended). */
  clear(): void {
    for (const fetchId of this.fetches.keys()) this.ctx.cancelFetch(fetchId);
    this.fetches.clear();
    this.checks.clear();
  }

  /** Bytes held: samples, and helper pieces waiting for their sample. */
  memoryBytes(): number {
    let total = 0;
    for (const spot of this.checks) total += (spot.bytes?.length ?? 0) + spot.sample.length;
    return total;
  }

  onOriginData(fetchId: number, bytes: Uint8Array, nowMs: number): void {
    const spot = this.fetches.get(fetchId);
    if (spot === undefined) return;
    if (spot.received + bytes.length > spot.sample.length) {
      this.ctx.cancelFetch(fetchId);
      this.failed(spot, nowMs);
      return;
    }
    spot.sample.set(bytes, spot.received);
    spot.received += bytes.length;
  }

  onOriginEnd(fetchId: number, outcome: OriginOutcome, detail: string, nowMs: number): void {
    this.ctx.endFetch(fetchId);
    const spot = this.fetches.get(fetchId);
    if (spot === undefined) return;
    this.fetches.delete(fetchId);
    if (outcome === 'changed') {
      this.owner.onOriginChanged(detail, nowMs);
    } else if (outcome !== 'ok' || spot.received !== spot.sample.length) {
      this.failed(spot, nowMs);
    } else {
      spot.sampleState = 'ready';
      this.judge(spot, nowMs);
    }
  }

  private issue(spot: SpotCheck): void {
    spot.attempts++;
    spot.received = 0;
    spot.fetchId = this.ctx.openFetch(
      this,
      this.layout.fetchSpec(spot.sampleStart, spot.sampleEnd),
    );
    this.fetches.set(spot.fetchId, spot);
  }

  private failed(spot: SpotCheck, nowMs: number): void {
    this.fetches.delete(spot.fetchId);
    if (!this.checks.has(spot)) return;
    if (spot.attempts < SPOT_ATTEMPTS_MAX) {
      this.issue(spot);
      return;
    }
    spot.sampleState = 'failed';
    this.judge(spot, nowMs);
  }

  private judge(spot: SpotCheck, nowMs: number): void {
    const bytes = spot.bytes;
    if (bytes === undefined || spot.sampleState === 'fetching' || !this.checks.has(spot)) return;
    this.checks.delete(spot);
    let verdict: SpotVerdict = 'unchecked';
    if (spot.sampleState === 'ready') {
      const offset = spot.sampleStart - this.layout.start(spot.piece);
      const claimed = bytes.subarray(offset, offset + spot.sample.length);
      verdict = equalBytes(claimed, spot.sample) ? 'match' : 'mismatch';
    }
    this.owner.onSpotVerdict(spot, bytes, verdict, nowMs);
  }
}
