/**
 * A pooled URL download (docs/protocol.md 7.3; seed 000's bandwidth pooling). The object is cut
 * into pieces (`pieceSizeBytes`, default 4 MiB; the last one shorter). A `PieceScheduler` in
 * in-order mode assigns them to `SELF_SOURCE` (a `fetch-origin` output through this device's own
 * link) and to ready pod peers that advertise `fetchOrigin` (FETCH_ASSIGN; they fetch through
 * their own WAN and stream DATA back). Every fetch carries the validator, so all pieces come
 * from one object version; a helper's `originChanged` or this device's `changed` fails the
 * download with reason 'origin-changed' (the host then falls back to a single-source download).
 *
 * Integrity without a manifest:
 * - Pieces this device fetched itself are trusted as much as the origin is.
 * - A helper's piece is **spot checked** before it is accepted: this device fetches a
 *   PRNG-chosen sample range of it (16-32 KiB) from the origin itself and compares. A mismatch
 *   is an integrity failure: the piece is discarded and refetched elsewhere, and the helper gets
 *   strikes (all `banThreshold` at once when a validator pins the version, so the mismatch cannot
 *   be an origin change; one otherwise).
 * - End to end: with `sha256`, the SHA-256 of all delivered bytes must match, or the download
 *   fails with reason 'sha256-mismatch' (the host must then discard what it received).
 * A spot check does not catch a corruption outside its sample; only the end-to-end digest does.
 * Its cost is sample bytes / piece bytes of extra WAN traffic on this device (at most 0.8 % with
 * 4 MiB pieces).
 *
 * Liveness: `SELF_SOURCE` is always a source, so the download never waits on peers. Five origin
 * errors in a row on this device's own fetches fail it with reason 'origin-error'.
 */
import { equalBytes, toHex } from '../bytes.js';
import {
  Capability,
  TransferStatus,
  type DataMessage,
  type HttpHeader,
  type StatusMessage,
} from '../wire/messages.js';
import { DownloadDelivery } from './download-delivery.js';
import { PieceScheduler, SELF_SOURCE, type SourceId } from './scheduler.js';
import type { Download, FetchHandler, TransferContext } from './transfer-context.js';

/** What a URL download needs to know about its object. */
export interface UrlSource {
  readonly url: string;
  readonly totalBytes: number;
  readonly validator: string;
  readonly headers: readonly HttpHeader[];
  readonly sha256: Uint8Array | undefined;
  readonly pieceSizeBytes: number;
  readonly pooled: boolean;
}

/** Spot-check sample length: 16 KiB plus up to 16 KiB more, drawn per piece. */
const SPOT_MIN_BYTES = 16 * 1024;
const SPOT_EXTRA_BYTES = 16 * 1024;
const SPOT_ATTEMPTS_MAX = 3;
const SELF_ERRORS_MAX = 5;

/** One assignment's bytes as they arrive. */
interface PieceTransfer {
  readonly piece: number;
  readonly source: SourceId;
  /** Fetch ID (self) or request ID (helper). */
  readonly id: number;
  buffer: Uint8Array | undefined;
  received: number;
}

/** A helper's piece waiting for its spot check. */
interface SpotCheck {
  readonly piece: number;
  readonly source: SourceId;
  readonly bytes: Uint8Array;
  readonly sampleStart: number;
  readonly sampleEnd: number;
  fetchId: number;
  sample: Uint8Array;
  received: number;
  attempts: number;
}

export class UrlDownload implements Download, FetchHandler {
  state: 'running' | 'done' | 'failed' = 'running';
  private readonly scheduler: PieceScheduler;
  private readonly delivery: DownloadDelivery;
  private readonly pieceCount: number;
  /** Self fetches by fetch ID. */
  private readonly selfFetches = new Map<number, PieceTransfer>();
  /** Helper requests by `${linkId}:${requestId}`. */
  private readonly helperRequests = new Map<string, PieceTransfer>();
  private readonly spotChecks = new Map<number, SpotCheck>();
  private selfErrorStreak = 0;
  /** Links that refused FETCH_ASSIGN outright (capability, policy). */
  private readonly refusedBy = new Set<number>();

  constructor(
    private readonly ctx: TransferContext,
    readonly downloadId: number,
    readonly priority: number,
    private readonly source: UrlSource,
  ) {
    const { totalBytes, pieceSizeBytes } = source;
    this.pieceCount = Math.ceil(totalBytes / pieceSizeBytes);
    this.scheduler = new PieceScheduler({
      pieceCount: this.pieceCount,
      pieceStart: (index) => Math.min(index * pieceSizeBytes, totalBytes),
      mode: 'in-order',
      prng: ctx.prng.fork(),
      stallFloorMs: ctx.settings.stallFloorMs,
      banThreshold: ctx.settings.banThreshold,
    });
    this.scheduler.upsertSource(SELF_SOURCE);
    this.delivery = new DownloadDelivery(ctx, ctx.crypto, downloadId, totalBytes);
    this.maybeComplete();
  }

  schedule(nowMs: number): void {
    if (this.state !== 'running') return;
    if (this.source.pooled && this.ctx.settings.podLinks) {
      for (const linkId of this.ctx.readyLinkIds()) {
        const link = this.ctx.readyLink(linkId)!;
        if (
          (link.remote!.capabilities & Capability.fetchOrigin) === 0 ||
          this.refusedBy.has(linkId)
        )
          continue;
        this.scheduler.upsertSource(linkId, { rttMs: link.rttMs ?? 0 });
      }
    }
    const assignments = this.scheduler.assign(nowMs, {
      windowEndBytes: this.delivery.buffer.windowEnd,
      windowStartBytes: this.delivery.buffer.ackedOffset,
      canServe: (source) => source === SELF_SOURCE || !this.refusedBy.has(source),
      otherLoad: (source) => this.ctx.otherLoad(this.downloadId, source),
    });
    for (const { piece, source } of assignments) this.start(piece, source, nowMs);
  }

  // --- self fetches (pieces and spot samples) ---

  onOriginData(fetchId: number, bytes: Uint8Array, nowMs: number): void {
    const spot = this.spotChecks.get(fetchId);
    if (spot !== undefined) {
      if (spot.received + bytes.length > spot.sample.length) {
        this.ctx.cancelFetch(fetchId);
        this.spotFailed(spot, nowMs);
        return;
      }
      spot.sample.set(bytes, spot.received);
      spot.received += bytes.length;
      return;
    }
    const transfer = this.selfFetches.get(fetchId);
    if (transfer === undefined) return;
    if (!this.write(transfer, bytes)) {
      this.ctx.cancelFetch(fetchId);
      this.selfFetches.delete(fetchId);
      this.selfError(transfer.piece, 'the origin sent more than the range', nowMs);
      return;
    }
    this.scheduler.progress(transfer.piece, SELF_SOURCE, bytes.length, nowMs);
  }

  onOriginEnd(
    fetchId: number,
    outcome: 'ok' | 'changed' | 'error',
    detail: string,
    nowMs: number,
  ): void {
    this.ctx.endFetch(fetchId);
    const spot = this.spotChecks.get(fetchId);
    if (spot !== undefined) {
      if (outcome === 'changed') {
        this.fail('origin-changed', `the origin object changed: ${detail}`, nowMs);
      } else if (outcome === 'error' || spot.received !== spot.sample.length) {
        this.spotFailed(spot, nowMs);
      } else {
        this.spotDone(spot, nowMs);
      }
      return;
    }
    const transfer = this.selfFetches.get(fetchId);
    if (transfer === undefined) return;
    this.selfFetches.delete(fetchId);
    if (outcome === 'changed') {
      this.fail('origin-changed', `the origin object changed: ${detail}`, nowMs);
      return;
    }
    if (outcome === 'error' || transfer.received !== this.pieceLength(transfer.piece)) {
      this.selfError(transfer.piece, outcome === 'error' ? detail : 'the body ended early', nowMs);
      return;
    }
    this.selfErrorStreak = 0;
    const losers = this.scheduler.received(transfer.piece, SELF_SOURCE, nowMs);
    this.cancelLosers(transfer.piece, losers);
    this.scheduler.accept(transfer.piece);
    this.deliverPiece(transfer.piece, transfer.buffer!, 'self', nowMs);
  }

  // --- helpers ---

  onData(linkId: number, message: DataMessage, nowMs: number): void {
    const transfer = this.helperRequests.get(`${linkId}:${message.requestId}`);
    if (transfer === undefined) return;
    const expected = this.pieceStart(transfer.piece) + transfer.received;
    if (message.offset !== expected || !this.write(transfer, message.bytes)) {
      this.ctx.protocolError(
        linkId,
        `FETCH DATA at ${message.offset}; expected ${expected} within the range`,
        nowMs,
      );
      return;
    }
    this.scheduler.progress(transfer.piece, linkId, message.bytes.length, nowMs);
  }

  onStatus(linkId: number, message: StatusMessage, nowMs: number): void {
    const key = `${linkId}:${message.requestId}`;
    const transfer = this.helperRequests.get(key);
    if (transfer === undefined) return;
    this.helperRequests.delete(key);
    const piece = transfer.piece;
    if (this.state !== 'running' || !this.scheduler.isAssigned(piece, linkId)) return;
    switch (message.status) {
      case TransferStatus.ok:
        break;
      case TransferStatus.originChanged:
        this.fail(
          'origin-changed',
          `a helper saw the origin object change: ${message.message}`,
          nowMs,
        );
        return;
      case TransferStatus.busy:
        this.scheduler.fail(piece, linkId, 'busy', nowMs);
        return;
      case TransferStatus.cancelled:
        this.scheduler.fail(piece, linkId, 'cancelled', nowMs);
        return;
      case TransferStatus.error:
        this.refusedBy.add(linkId);
        this.scheduler.removeSource(linkId, nowMs);
        return;
      default:
        this.scheduler.fail(piece, linkId, 'error', nowMs);
        return;
    }
    const length = this.pieceLength(piece);
    if (message.length !== length || transfer.received !== length) {
      this.ctx.protocolError(
        linkId,
        `STATUS(ok) after ${transfer.received} of ${length} bytes`,
        nowMs,
      );
      return;
    }
    const losers = this.scheduler.received(piece, linkId, nowMs);
    this.cancelLosers(piece, losers);
    this.startSpotCheck(piece, linkId, transfer.buffer!);
  }

  onLinkClosed(linkId: number, nowMs: number): void {
    for (const [key, transfer] of this.helperRequests) {
      if (transfer.source === linkId) this.helperRequests.delete(key);
    }
    this.refusedBy.delete(linkId);
    this.scheduler.removeSource(linkId, nowMs);
    // A piece awaiting its spot check stays: the check does not need the helper.
  }

  onTimer(nowMs: number): void {
    if (this.state !== 'running') return;
    this.delivery.onTimer(nowMs);
    for (const source of this.scheduler.stalled(nowMs)) {
      for (const { piece, source: holder } of this.scheduler.assignments()) {
        if (holder !== source) continue;
        this.cancelAssignment(piece, source);
        this.scheduler.fail(piece, source, 'stall', nowMs);
      }
    }
  }

  nextDeadlineMs(nowMs: number): number | undefined {
    if (this.state !== 'running') return undefined;
    const a = this.scheduler.nextDeadlineMs(nowMs);
    const b = this.delivery.nextDeadlineMs();
    if (a === undefined) return b;
    if (b === undefined) return a;
    return Math.min(a, b);
  }

  fail(reason: string, detail: string, nowMs: number): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    void nowMs;
    for (const fetchId of [...this.selfFetches.keys(), ...this.spotChecks.keys()])
      this.ctx.cancelFetch(fetchId);
    for (const transfer of this.helperRequests.values())
      this.ctx.cancelRequest(transfer.source, transfer.id);
    this.selfFetches.clear();
    this.spotChecks.clear();
    this.helperRequests.clear();
    this.ctx.event({ type: 'download:failed', downloadId: this.downloadId, reason, detail });
  }

  acknowledge(byteCount: number): void {
    this.delivery.buffer.acknowledge(byteCount);
  }

  memoryBytes(): number {
    let total = this.delivery.buffer.heldBytes;
    for (const transfer of [...this.selfFetches.values(), ...this.helperRequests.values()]) {
      total += transfer.buffer?.length ?? 0;
    }
    for (const spot of this.spotChecks.values()) total += spot.bytes.length + spot.sample.length;
    return total;
  }

  inflightOf(source: SourceId): number {
    return this.scheduler.inflightOf(source);
  }

  private pieceStart(piece: number): number {
    return Math.min(piece * this.source.pieceSizeBytes, this.source.totalBytes);
  }

  private pieceLength(piece: number): number {
    return this.pieceStart(piece + 1) - this.pieceStart(piece);
  }

  /** Appends bytes to an assignment's buffer; false if they pass the piece's end. */
  private write(transfer: PieceTransfer, bytes: Uint8Array): boolean {
    const length = this.pieceLength(transfer.piece);
    if (transfer.received + bytes.length > length) return false;
    transfer.buffer ??= new Uint8Array(length);
    transfer.buffer.set(bytes, transfer.received);
    transfer.received += bytes.length;
    return true;
  }

  private start(piece: number, source: SourceId, nowMs: number): void {
    const rangeStart = this.pieceStart(piece);
    const rangeEnd = this.pieceStart(piece + 1);
    if (source === SELF_SOURCE) {
      const fetchId = this.ctx.openFetch(this, this.fetchSpec(rangeStart, rangeEnd));
      this.selfFetches.set(fetchId, { piece, source, id: fetchId, buffer: undefined, received: 0 });
      return;
    }
    const link = this.ctx.readyLink(source);
    const requestId = link === undefined ? undefined : this.ctx.openRequest(source, this);
    if (link === undefined || requestId === undefined) {
      this.scheduler.fail(piece, source, 'error', nowMs);
      return;
    }
    this.helperRequests.set(`${source}:${requestId}`, {
      piece,
      source,
      id: requestId,
      buffer: undefined,
      received: 0,
    });
    link.sendControl({
      type: 'fetch-assign',
      requestId,
      url: this.source.url,
      rangeStart,
      rangeEnd,
      validator: this.source.validator,
      headers: this.source.headers,
    });
  }

  private fetchSpec(rangeStart: number, rangeEnd: number) {
    return {
      url: this.source.url,
      rangeStart,
      rangeEnd,
      validator: this.source.validator,
      headers: this.source.headers,
    };
  }

  private cancelAssignment(piece: number, source: SourceId): void {
    if (source === SELF_SOURCE) {
      for (const [fetchId, transfer] of this.selfFetches) {
        if (transfer.piece !== piece) continue;
        this.selfFetches.delete(fetchId);
        this.ctx.cancelFetch(fetchId);
      }
      return;
    }
    for (const [key, transfer] of this.helperRequests) {
      if (transfer.piece !== piece || transfer.source !== source) continue;
      this.helperRequests.delete(key);
      this.ctx.cancelRequest(source, transfer.id);
    }
  }

  private cancelLosers(piece: number, losers: readonly SourceId[]): void {
    for (const loser of losers) this.cancelAssignment(piece, loser);
  }

  private selfError(piece: number, detail: string, nowMs: number): void {
    this.scheduler.fail(piece, SELF_SOURCE, 'error', nowMs);
    this.selfErrorStreak++;
    if (this.selfErrorStreak >= SELF_ERRORS_MAX) {
      this.fail(
        'origin-error',
        `${SELF_ERRORS_MAX} origin requests failed in a row; last: ${detail}`,
        nowMs,
      );
    }
  }

  private startSpotCheck(piece: number, source: SourceId, bytes: Uint8Array): void {
    const length = bytes.length;
    const sampleLength = Math.min(
      length,
      SPOT_MIN_BYTES + this.ctx.prng.nextInt(SPOT_EXTRA_BYTES + 1),
    );
    const offset = this.ctx.prng.nextInt(length - sampleLength + 1);
    const sampleStart = this.pieceStart(piece) + offset;
    const spot: SpotCheck = {
      piece,
      source,
      bytes,
      sampleStart,
      sampleEnd: sampleStart + sampleLength,
      fetchId: 0,
      sample: new Uint8Array(sampleLength),
      received: 0,
      attempts: 0,
    };
    this.issueSpotFetch(spot);
  }

  private issueSpotFetch(spot: SpotCheck): void {
    spot.attempts++;
    spot.received = 0;
    spot.fetchId = this.ctx.openFetch(this, this.fetchSpec(spot.sampleStart, spot.sampleEnd));
    this.spotChecks.set(spot.fetchId, spot);
  }

  private spotFailed(spot: SpotCheck, nowMs: number): void {
    this.spotChecks.delete(spot.fetchId);
    if (this.state !== 'running') return;
    if (spot.attempts < SPOT_ATTEMPTS_MAX) {
      this.issueSpotFetch(spot);
      return;
    }
    // The origin would not give the sample: the piece cannot be checked, so it is refetched.
    this.scheduler.reject(spot.piece, spot.source, 0, nowMs);
  }

  private spotDone(spot: SpotCheck, nowMs: number): void {
    this.spotChecks.delete(spot.fetchId);
    if (this.state !== 'running') return;
    const offset = spot.sampleStart - this.pieceStart(spot.piece);
    const claimed = spot.bytes.subarray(offset, offset + spot.sample.length);
    if (!equalBytes(claimed, spot.sample)) {
      const weight = this.source.validator === '' ? 1 : this.ctx.settings.banThreshold;
      const { banned } = this.scheduler.reject(spot.piece, spot.source, weight, nowMs);
      if (banned) {
        this.ctx.ban(
          spot.source,
          `piece ${spot.piece} failed its spot check against the origin`,
          nowMs,
        );
      }
      return;
    }
    this.scheduler.accept(spot.piece);
    this.deliverPiece(spot.piece, spot.bytes, this.ctx.sourceName(spot.source), nowMs);
  }

  private deliverPiece(piece: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    this.delivery.add(this.pieceStart(piece), bytes, sourceName, nowMs);
    this.maybeComplete();
  }

  private maybeComplete(): void {
    if (this.state !== 'running' || !this.delivery.finished) return;
    const digest = this.delivery.buffer.digest();
    const expected = this.source.sha256;
    if (expected !== undefined && !equalBytes(digest, expected)) {
      this.state = 'failed';
      this.ctx.event({
        type: 'download:failed',
        downloadId: this.downloadId,
        reason: 'sha256-mismatch',
        detail:
          `the delivered bytes hash to ${toHex(digest)}, not the expected ${toHex(expected)}; ` +
          'discard them and retry without pooling',
      });
      return;
    }
    this.state = 'done';
    this.ctx.event({
      type: 'download:complete',
      downloadId: this.downloadId,
      totalBytes: this.source.totalBytes,
      sha256: digest,
    });
  }
}
