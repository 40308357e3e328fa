/**
 * A pooled URL download (docs/protocol.md 7.3; seed 000's bandwidth pooling). The object is cut
 * into pieces (`pieceSizeBytes`, default 4 MiB; the last one shorter). A `PieceScheduler` in
 * in-order mode assigns them to `SELF_SOURCE` (a `fetch-origin` output through this device's own
 * link) and to ready pod peers that advertise `fetchOrigin` (FETCH_ASSIGN; they fetch through
 * their own WAN and stream DATA back). Every fetch carries the validator, so all pieces come
 * from one object version; a helper's `originChanged` or this device's `changed` fails the
 * download with reason 'origin-changed' (the host then falls back to a single-source download).
 *
 * Integrity without a manifest: the whole object is the integrity unit (DESIGN.md decision 6).
 * - Pieces this device fetched itself are trusted as much as the origin is.
 * - A helper's piece is **spot checked** before it is accepted: this device fetches a
 *   PRNG-chosen sample range of it (16-32 KiB) from the origin itself and compares. A mismatch
 *   is an integrity failure: the piece is discarded and refetched elsewhere, and the helper gets
 *   strikes (all `banThreshold` at once when a strong pin (`pinStrength`) ties the version to one
 *   sequence of bytes, so the mismatch cannot be an origin change; one otherwise).
 * - A spot check does not catch a corruption outside its sample, so a sparse liar passes some.
 *   Hence **repair on ban**: every accepted piece remembers its source (`pieceSource`, one small
 *   integer per piece). When a helper is banned (by a spot check of this download or for any
 *   other reason while it runs; or caught with certainty after its link already closed), every
 *   piece accepted from it is *suspect*. A suspect piece still in the reorder buffer is taken
 *   out of it (its place is a gap again); one already delivered stays with the host for now.
 *   Suspects are refetched before any new piece (at most `REPAIRS_INFLIGHT_MAX` at a time, one
 *   per source, from self or other helpers with the usual spot checks) and go back into the
 *   buffer, or to the host as `deliver` with `repair: true` (it overwrites the range in place).
 * - End to end: without repairs, the running SHA-256 of the delivered bytes is the digest.
 *   After a repair it is void, so once every byte is delivered and no piece is suspect the
 *   output is read back from the host (`OutputReadBack`, bounded slices) and hashed. With
 *   `sha256`, a mismatch starts an **audit** (once): this device refetches every piece a helper
 *   gave, one helper after another in turn, and compares each with the helper's copy (its
 *   SHA-256 was kept: 32 bytes per helper piece). A difference convicts the helper: banned, all
 *   its pieces repaired as above. Then the output is read back and checked again; a mismatch
 *   now fails the download with 'sha256-mismatch' (the host then discards the output and falls
 *   back to a plain single-source download); a host that cannot read back fails it with
 *   'output-unreadable'.
 * What is guaranteed: with a digest, the output is exact or the download fails, and a helper
 * whose bytes differed is banned. Without one, a helper caught by a spot check costs only time
 * (its pieces are repaired); a helper whose corruption escapes every sample goes unnoticed:
 * only an end-to-end digest can catch it. An audit costs the helpers' share of the object again,
 * through this device's own link. Spot checks cost sample bytes / piece bytes of extra WAN
 * traffic on this device (at most 0.8 % with 4 MiB pieces). The sample is fetched while the
 * helper fetches the piece, so a piece is normally judged the moment its last byte arrives
 * (waiting one origin round trip for the sample after it held every helper piece, and with it
 * the in-order window, that long). A repair costs the suspect pieces again, plus one read of
 * the whole output from the host's disk.
 *
 * Pipelining is just in time (the scheduler's `justInTime`): a source gets its next piece only
 * when its current one is about to end. An origin serves a client's concurrent ranges side by
 * side, so two pieces assigned at once would each take twice as long; with 8 sources x 2
 * pieces x 4 MiB the 64 MiB window then held nothing but work in flight, and every source
 * waited for the slowest piece.
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
import { OutputReadBack, type ReadBackOwner } from './output-readback.js';
import { PieceScheduler, SELF_SOURCE, type SourceId } from './scheduler.js';
import type { Download, FetchHandler, TransferContext } from './transfer-context.js';

/** What a URL download needs to know about its object. */
export interface UrlSource {
  readonly url: string;
  readonly totalBytes: number;
  /** Object byte where this download starts (resume); its own offsets count from here. */
  readonly startOffset: number;
  readonly validator: string;
  /** See DownloadSource `pinStrength` (transfer-api.ts). */
  readonly pinStrength: 'strong' | 'weak';
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
/**
 * Suspect pieces being refetched at once (one per source). Repairs of delivered ranges lie
 * outside the memory window, so this bounds what they add to it: 4 pieces (16 MiB by default).
 */
const REPAIRS_INFLIGHT_MAX = 4;

/** One assignment's bytes as they arrive. */
interface PieceTransfer {
  readonly piece: number;
  readonly source: SourceId;
  /** Fetch ID (self) or request ID (helper). */
  readonly id: number;
  /** A refetch of a suspect piece (not the scheduler's: it tracks no progress of its own). */
  readonly repair: boolean;
  buffer: Uint8Array | undefined;
  received: number;
  /** Last time bytes arrived (repairs: their stall check). */
  lastProgressMs: number;
  /** A helper's piece: its spot check, whose sample is fetched while the helper fetches. */
  spot: SpotCheck | undefined;
}

/**
 * The spot check of a helper's piece. The sample is fetched from the origin as soon as the
 * piece is assigned (the helper never learns where it lies), so when the helper's last byte
 * arrives the check usually needs nothing more: the piece is judged at once instead of one
 * origin round trip later, which would hold it (and the in-order window) that long.
 */
interface SpotCheck {
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
  sample: Uint8Array;
  received: number;
  attempts: number;
}

/** A piece accepted from a banned helper, until a checked copy replaces it. */
interface Suspect {
  readonly piece: number;
  /** Already delivered: the copy goes out as a repair; else into the reorder buffer. */
  readonly emitted: boolean;
  /** The source refetching or spot checking it. */
  holder: SourceId | undefined;
  /** Sources that failed to give it (they are not asked again). */
  readonly excluded: Set<SourceId>;
  /**
   * An audit (after an end-to-end mismatch): this device refetches the piece itself and
   * compares it with what the helper gave (`sha256`); only a difference makes it a repair.
   */
  readonly audit?: { readonly sha256: Uint8Array; readonly helper: string; readonly order: number };
}

export class UrlDownload implements Download, FetchHandler, ReadBackOwner {
  state: 'running' | 'done' | 'failed' = 'running';
  private readonly scheduler: PieceScheduler;
  private readonly delivery: DownloadDelivery;
  private readonly pieceCount: number;
  /** Bytes this download delivers: the object from `startOffset` on. */
  private readonly length: number;
  /** Self fetches by fetch ID. */
  private readonly selfFetches = new Map<number, PieceTransfer>();
  /** Helper requests by `${linkId}:${requestId}`. */
  private readonly helperRequests = new Map<string, PieceTransfer>();
  /** Every live spot check (of pieces in flight at helpers, or received and not judged yet). */
  private readonly spotChecks = new Set<SpotCheck>();
  /** Spot checks whose sample fetch is running, by fetch ID. */
  private readonly spotFetches = new Map<number, SpotCheck>();
  private selfErrorStreak = 0;
  /** Links that refused FETCH_ASSIGN outright (capability, policy). */
  private readonly refusedBy = new Set<number>();
  /** Per piece: 0 for self (or not accepted), else 1 + index into `helperNames`. */
  private readonly pieceSource: Int32Array;
  private readonly helperNames: string[] = [];
  private readonly helperIndex = new Map<string, number>();
  /** Devices caught lying (banned): nothing more is taken from them. */
  private readonly distrusted = new Set<string>();
  private readonly suspects = new Map<number, Suspect>();
  /** True once a delivered range was repaired: the running digest is void. */
  private repairedDelivered = false;
  /** SHA-256 of each accepted helper piece, for an audit after an end-to-end mismatch. */
  private readonly helperPieceHashes = new Map<number, Uint8Array>();
  private audited = false;
  private readBack: OutputReadBack | undefined;

  constructor(
    private readonly ctx: TransferContext,
    readonly downloadId: number,
    readonly priority: number,
    private readonly source: UrlSource,
  ) {
    const { pieceSizeBytes } = source;
    const totalBytes = source.totalBytes - source.startOffset; // this download's own length
    this.length = totalBytes;
    this.pieceCount = Math.ceil(totalBytes / pieceSizeBytes);
    this.pieceSource = new Int32Array(this.pieceCount);
    this.scheduler = new PieceScheduler({
      pieceCount: this.pieceCount,
      pieceStart: (index) => Math.min(index * pieceSizeBytes, totalBytes),
      mode: 'in-order',
      prng: ctx.prng.fork(),
      stallFloorMs: ctx.settings.stallFloorMs,
      banThreshold: ctx.settings.banThreshold,
      justInTime: true,
    });
    this.scheduler.upsertSource(SELF_SOURCE);
    this.delivery = new DownloadDelivery(ctx, ctx.crypto, downloadId, totalBytes);
    // An empty object is complete at once.
    if (this.delivery.finished) this.finish(this.delivery.buffer.digest(), 0);
  }

  schedule(nowMs: number): void {
    if (this.state !== 'running') return;
    if (this.source.pooled && this.ctx.settings.podLinks) {
      for (const linkId of this.ctx.readyLinkIds()) {
        const link = this.ctx.readyLink(linkId)!;
        if (
          (link.remote!.capabilities & Capability.fetchOrigin) === 0 ||
          this.refusedBy.has(linkId) ||
          this.distrusted.has(toHex(link.remote!.deviceId))
        )
          continue;
        this.scheduler.upsertSource(linkId, { rttMs: link.rttMs ?? 0 });
      }
    }
    // Suspect pieces first: their slots count as load, so new pieces take what is left.
    this.assignRepairs(nowMs);
    if (this.state !== 'running') return;
    const assignments = this.scheduler.assign(nowMs, {
      windowEndBytes: this.delivery.buffer.windowEnd,
      windowStartBytes: this.delivery.buffer.ackedOffset,
      canServe: (source) => source === SELF_SOURCE || !this.refusedBy.has(source),
      otherLoad: (source) => this.ctx.otherLoad(this.downloadId, source) + this.repairLoad(source),
    });
    for (const { piece, source } of assignments) this.start(piece, source, nowMs, false);
  }

  /** A device was banned: everything accepted from it is suspect (see the module header). */
  onDeviceBanned(deviceIdHex: string, nowMs: number): void {
    this.distrust(deviceIdHex, nowMs);
  }

  // --- self fetches (pieces, repairs and spot samples) ---

  onOriginData(fetchId: number, bytes: Uint8Array, nowMs: number): void {
    const spot = this.spotFetches.get(fetchId);
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
    if (!this.write(transfer, bytes, nowMs)) {
      this.ctx.cancelFetch(fetchId);
      this.selfFetches.delete(fetchId);
      this.selfError(transfer, 'the origin sent more than the range', nowMs);
      return;
    }
    if (!transfer.repair) this.scheduler.progress(transfer.piece, SELF_SOURCE, bytes.length, nowMs);
  }

  onOriginEnd(
    fetchId: number,
    outcome: 'ok' | 'changed' | 'error',
    detail: string,
    nowMs: number,
  ): void {
    this.ctx.endFetch(fetchId);
    const spot = this.spotFetches.get(fetchId);
    if (spot !== undefined) {
      if (outcome === 'changed') {
        this.fail('origin-changed', `the origin object changed: ${detail}`, nowMs);
      } else if (outcome === 'error' || spot.received !== spot.sample.length) {
        this.spotFailed(spot, nowMs);
      } else {
        this.spotFetches.delete(fetchId);
        spot.sampleState = 'ready';
        this.judge(spot, nowMs);
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
      this.selfError(transfer, outcome === 'error' ? detail : 'the body ended early', nowMs);
      return;
    }
    this.selfErrorStreak = 0;
    if (transfer.repair) {
      this.repairChecked(transfer.piece, transfer.buffer!, 'self', nowMs);
      return;
    }
    const losers = this.scheduler.received(transfer.piece, SELF_SOURCE, nowMs);
    this.cancelLosers(transfer.piece, losers);
    this.scheduler.accept(transfer.piece);
    this.deliverPiece(transfer.piece, transfer.buffer!, 'self', nowMs);
  }

  // --- helpers ---

  onData(linkId: number, message: DataMessage, nowMs: number): void {
    const transfer = this.helperRequests.get(`${linkId}:${message.requestId}`);
    if (transfer === undefined) return;
    const expected = this.source.startOffset + this.pieceStart(transfer.piece) + transfer.received;
    if (message.offset !== expected || !this.write(transfer, message.bytes, nowMs)) {
      this.ctx.protocolError(
        linkId,
        `FETCH DATA at ${message.offset}; expected ${expected} within the range`,
        nowMs,
      );
      return;
    }
    if (!transfer.repair)
      this.scheduler.progress(transfer.piece, linkId, message.bytes.length, nowMs);
  }

  onStatus(linkId: number, message: StatusMessage, nowMs: number): void {
    const key = `${linkId}:${message.requestId}`;
    const transfer = this.helperRequests.get(key);
    if (transfer === undefined) return;
    this.helperRequests.delete(key);
    const piece = transfer.piece;
    if (this.state !== 'running') return;
    const suspect = transfer.repair ? this.suspects.get(piece) : undefined;
    if (
      message.status !== TransferStatus.ok ||
      (transfer.repair ? suspect?.holder !== linkId : !this.scheduler.isAssigned(piece, linkId))
    )
      this.discardSpot(transfer);
    if (transfer.repair ? suspect?.holder !== linkId : !this.scheduler.isAssigned(piece, linkId))
      return;
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
      case TransferStatus.cancelled:
        if (suspect !== undefined) this.requeue(suspect, undefined);
        else
          this.scheduler.fail(
            piece,
            linkId,
            message.status === TransferStatus.busy ? 'busy' : 'cancelled',
            nowMs,
          );
        return;
      case TransferStatus.error:
        if (suspect !== undefined) this.requeue(suspect, linkId);
        this.refusedBy.add(linkId);
        this.scheduler.removeSource(linkId, nowMs);
        return;
      default:
        if (suspect !== undefined) this.requeue(suspect, linkId);
        else this.scheduler.fail(piece, linkId, 'error', nowMs);
        return;
    }
    const length = this.pieceLength(piece);
    if (message.length !== length || transfer.received !== length) {
      this.ctx.protocolError(
        linkId,
        `STATUS(ok) after ${transfer.received} of ${length} bytes`,
        nowMs,
      );
      this.discardSpot(transfer);
      return;
    }
    if (suspect === undefined) {
      const losers = this.scheduler.received(piece, linkId, nowMs);
      this.cancelLosers(piece, losers);
    }
    const spot = transfer.spot!;
    spot.bytes = transfer.buffer!;
    this.judge(spot, nowMs);
  }

  onLinkClosed(linkId: number, nowMs: number): void {
    for (const [key, transfer] of this.helperRequests) {
      if (transfer.source !== linkId) continue;
      this.helperRequests.delete(key);
      this.discardSpot(transfer);
      const suspect = transfer.repair ? this.suspects.get(transfer.piece) : undefined;
      if (suspect?.holder === linkId) this.requeue(suspect, linkId);
    }
    this.refusedBy.delete(linkId);
    this.scheduler.removeSource(linkId, nowMs);
    // A piece awaiting its spot check stays: the check does not need the helper.
  }

  onTimer(nowMs: number): void {
    if (this.state !== 'running') return;
    this.delivery.onTimer(nowMs);
    this.scheduler.endBackoffs(nowMs);
    for (const source of this.scheduler.stalled(nowMs)) {
      for (const { piece, source: holder } of this.scheduler.assignments()) {
        if (holder !== source) continue;
        this.cancelAssignment(piece, source);
        this.scheduler.fail(piece, source, 'stall', nowMs);
      }
    }
    for (const transfer of this.repairTransfers()) {
      if (nowMs < this.repairStallDeadlineMs(transfer)) continue;
      this.cancelTransfer(transfer);
      const suspect = this.suspects.get(transfer.piece);
      if (suspect !== undefined) this.requeue(suspect, transfer.source);
    }
  }

  nextDeadlineMs(_nowMs: number): number | undefined {
    if (this.state !== 'running') return undefined;
    let min = this.scheduler.nextDeadlineMs();
    const consider = (at: number | undefined): void => {
      if (at !== undefined && (min === undefined || at < min)) min = at;
    };
    consider(this.delivery.nextDeadlineMs());
    for (const transfer of this.repairTransfers()) consider(this.repairStallDeadlineMs(transfer));
    return min;
  }

  fail(reason: string, detail: string, nowMs: number): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    void nowMs;
    for (const fetchId of [...this.selfFetches.keys(), ...this.spotFetches.keys()])
      this.ctx.cancelFetch(fetchId);
    for (const transfer of this.helperRequests.values())
      this.ctx.cancelRequest(transfer.source, transfer.id);
    this.selfFetches.clear();
    this.spotChecks.clear();
    this.spotFetches.clear();
    this.helperRequests.clear();
    this.readBack?.cancel();
    this.readBack = undefined;
    this.ctx.event({ type: 'download:failed', downloadId: this.downloadId, reason, detail });
  }

  acknowledge(byteCount: number): void {
    this.delivery.buffer.acknowledge(byteCount);
  }

  memoryBytes(): number {
    let total = this.delivery.buffer.heldBytes + (this.readBack?.memoryBytes ?? 0);
    for (const transfer of [...this.selfFetches.values(), ...this.helperRequests.values()]) {
      total += transfer.buffer?.length ?? 0;
    }
    // A spot check's piece bytes are the transfer's buffer until the piece arrived.
    for (const spot of this.spotChecks) total += (spot.bytes?.length ?? 0) + spot.sample.length;
    return total;
  }

  inflightOf(source: SourceId): number {
    return this.scheduler.inflightOf(source) + this.repairLoad(source);
  }

  // --- read-back (after repairs) ---

  onReadBackDone(sha256: Uint8Array, nowMs: number): void {
    this.readBack = undefined;
    if (this.state !== 'running') return;
    void nowMs;
    this.finish(sha256, nowMs);
  }

  onReadBackFailed(detail: string, nowMs: number): void {
    this.readBack = undefined;
    this.fail('output-unreadable', detail, nowMs);
  }

  /** Where `piece` starts, as an offset of this download (object offset - `startOffset`). */
  private pieceStart(piece: number): number {
    return Math.min(piece * this.source.pieceSizeBytes, this.length);
  }

  private pieceLength(piece: number): number {
    return this.pieceStart(piece + 1) - this.pieceStart(piece);
  }

  /** Appends bytes to an assignment's buffer; false if they pass the piece's end. */
  private write(transfer: PieceTransfer, bytes: Uint8Array, nowMs: number): boolean {
    const length = this.pieceLength(transfer.piece);
    if (transfer.received + bytes.length > length) return false;
    transfer.buffer ??= new Uint8Array(length);
    transfer.buffer.set(bytes, transfer.received);
    transfer.received += bytes.length;
    transfer.lastProgressMs = nowMs;
    return true;
  }

  private start(piece: number, source: SourceId, nowMs: number, repair: boolean): boolean {
    const rangeStart = this.source.startOffset + this.pieceStart(piece);
    const rangeEnd = this.source.startOffset + this.pieceStart(piece + 1);
    const transfer = (id: number): PieceTransfer => ({
      piece,
      source,
      id,
      repair,
      buffer: undefined,
      received: 0,
      lastProgressMs: nowMs,
      spot: undefined,
    });
    if (source === SELF_SOURCE) {
      const fetchId = this.ctx.openFetch(this, this.fetchSpec(rangeStart, rangeEnd));
      this.selfFetches.set(fetchId, transfer(fetchId));
      return true;
    }
    const link = this.ctx.readyLink(source);
    const requestId = link === undefined ? undefined : this.ctx.openRequest(source, this);
    if (link === undefined || requestId === undefined) {
      if (!repair) this.scheduler.fail(piece, source, 'error', nowMs);
      return false;
    }
    const helperTransfer = transfer(requestId);
    this.helperRequests.set(`${source}:${requestId}`, helperTransfer);
    link.sendControl({
      type: 'fetch-assign',
      requestId,
      url: this.source.url,
      rangeStart,
      rangeEnd,
      validator: this.source.validator,
      headers: this.source.headers,
    });
    helperTransfer.spot = this.startSpotCheck(piece, source, repair);
    return true;
  }

  private fetchSpec(rangeStart: number, rangeEnd: number) {
    return {
      url: this.source.url,
      rangeStart,
      rangeEnd,
      validator: this.source.validator,
      headers: this.source.headers,
      totalBytes: this.source.totalBytes,
    };
  }

  /** Cancels the scheduler's assignment of `piece` to `source` (never a repair). */
  private cancelAssignment(piece: number, source: SourceId): void {
    const matches = (t: PieceTransfer): boolean =>
      !t.repair && t.piece === piece && t.source === source;
    for (const transfer of [...this.selfFetches.values(), ...this.helperRequests.values()]) {
      if (matches(transfer)) this.cancelTransfer(transfer);
    }
  }

  private cancelTransfer(transfer: PieceTransfer): void {
    if (transfer.source === SELF_SOURCE) {
      this.selfFetches.delete(transfer.id);
      this.ctx.cancelFetch(transfer.id);
      return;
    }
    this.helperRequests.delete(`${transfer.source}:${transfer.id}`);
    this.discardSpot(transfer);
    this.ctx.cancelRequest(transfer.source, transfer.id);
  }

  /** A helper's transfer ended without its piece: its spot check is no longer needed. */
  private discardSpot(transfer: PieceTransfer): void {
    const spot = transfer.spot;
    if (spot === undefined) return;
    transfer.spot = undefined;
    this.spotChecks.delete(spot);
    if (spot.sampleState === 'fetching') {
      this.spotFetches.delete(spot.fetchId);
      this.ctx.cancelFetch(spot.fetchId);
    }
  }

  private cancelLosers(piece: number, losers: readonly SourceId[]): void {
    for (const loser of losers) this.cancelAssignment(piece, loser);
  }

  private selfError(transfer: PieceTransfer, detail: string, nowMs: number): void {
    const suspect = transfer.repair ? this.suspects.get(transfer.piece) : undefined;
    if (suspect !== undefined) this.requeue(suspect, undefined);
    else if (!transfer.repair) this.scheduler.fail(transfer.piece, SELF_SOURCE, 'error', nowMs);
    this.selfErrorStreak++;
    if (this.selfErrorStreak >= SELF_ERRORS_MAX) {
      this.fail(
        'origin-error',
        `${SELF_ERRORS_MAX} origin requests failed in a row; last: ${detail}`,
        nowMs,
      );
    }
  }

  /** Draws the sample of a piece just assigned to a helper and starts fetching it. */
  private startSpotCheck(piece: number, source: SourceId, repair: boolean): SpotCheck {
    const length = this.pieceLength(piece);
    const sampleLength = Math.min(
      length,
      SPOT_MIN_BYTES + this.ctx.prng.nextInt(SPOT_EXTRA_BYTES + 1),
    );
    const offset = this.ctx.prng.nextInt(length - sampleLength + 1);
    const sampleStart = this.pieceStart(piece) + offset;
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
    this.spotChecks.add(spot);
    this.issueSpotFetch(spot);
    return spot;
  }

  private issueSpotFetch(spot: SpotCheck): void {
    spot.attempts++;
    spot.received = 0;
    const base = this.source.startOffset;
    spot.fetchId = this.ctx.openFetch(
      this,
      this.fetchSpec(base + spot.sampleStart, base + spot.sampleEnd),
    );
    this.spotFetches.set(spot.fetchId, spot);
  }

  private spotFailed(spot: SpotCheck, nowMs: number): void {
    this.spotFetches.delete(spot.fetchId);
    if (this.state !== 'running') return;
    if (spot.attempts < SPOT_ATTEMPTS_MAX) {
      this.issueSpotFetch(spot);
      return;
    }
    // The origin would not give the sample: the piece cannot be checked, so it is refetched.
    spot.sampleState = 'failed';
    this.judge(spot, nowMs);
  }

  /** Judges a spot check once both the helper's piece and the sample (or its failure) are here. */
  private judge(spot: SpotCheck, nowMs: number): void {
    if (this.state !== 'running' || spot.bytes === undefined || spot.sampleState === 'fetching')
      return;
    this.spotChecks.delete(spot);
    if (spot.sampleState === 'failed' || this.distrusted.has(spot.sourceName)) {
      this.dropSpotChecked(spot, nowMs);
      return;
    }
    this.spotDone(spot, spot.bytes, nowMs);
  }

  /** A piece whose check could not vouch for it goes back to be fetched again. */
  private dropSpotChecked(spot: SpotCheck, nowMs: number): void {
    if (!spot.repair) {
      this.scheduler.reject(spot.piece, spot.source, 0, nowMs);
      return;
    }
    const suspect = this.suspects.get(spot.piece);
    if (suspect?.holder === spot.source) this.requeue(suspect, spot.source);
  }

  private spotDone(spot: SpotCheck, bytes: Uint8Array, nowMs: number): void {
    const offset = spot.sampleStart - this.pieceStart(spot.piece);
    const claimed = bytes.subarray(offset, offset + spot.sample.length);
    if (!equalBytes(claimed, spot.sample)) {
      // With a strong pin the version is exactly one sequence of bytes: certainly a lie.
      const certain = this.source.pinStrength === 'strong';
      const weight = certain ? this.ctx.settings.banThreshold : 1;
      // For a repair the piece stays done in the scheduler; only the strikes count.
      const { banned } = this.scheduler.reject(spot.piece, spot.source, weight, nowMs);
      if (spot.repair) {
        const suspect = this.suspects.get(spot.piece);
        if (suspect?.holder === spot.source) this.requeue(suspect, spot.source);
      }
      if (banned || certain) {
        const detail = `piece ${spot.piece} failed its spot check against the origin`;
        // Bans the link if it is still up (every download hears onDeviceBanned); distrust the
        // device here too, in case its link is already gone.
        this.ctx.ban(spot.source, detail, nowMs);
        this.distrust(spot.sourceName, nowMs);
      }
      return;
    }
    if (spot.repair) {
      this.repairChecked(spot.piece, bytes, spot.sourceName, nowMs);
      return;
    }
    this.scheduler.accept(spot.piece);
    this.deliverPiece(spot.piece, bytes, spot.sourceName, nowMs);
  }

  private deliverPiece(piece: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    this.pieceSource[piece] = this.sourceIndex(sourceName);
    this.rememberHelperPiece(piece, bytes, sourceName);
    this.delivery.add(this.pieceStart(piece), bytes, sourceName, nowMs);
    this.maybeComplete(nowMs);
  }

  // --- repairs ---

  /** 0 for self, else 1 + the helper's index in `helperNames` (added on first use). */
  private sourceIndex(sourceName: string): number {
    if (sourceName === 'self') return 0;
    let index = this.helperIndex.get(sourceName);
    if (index === undefined) {
      index = this.helperNames.length + 1;
      this.helperNames.push(sourceName);
      this.helperIndex.set(sourceName, index);
    }
    return index;
  }

  /**
   * `deviceIdHex` lied: take nothing more from it, drop its pieces awaiting a check, and make
   * every piece accepted from it suspect.
   */
  private distrust(deviceIdHex: string, nowMs: number): void {
    if (this.state !== 'running' || this.distrusted.has(deviceIdHex)) return;
    this.distrusted.add(deviceIdHex);
    // Pieces received from it and awaiting their sample are dropped; those still in flight end
    // with its link (or are dropped by `judge` if their bytes still come).
    for (const spot of [...this.spotChecks]) {
      if (spot.sourceName !== deviceIdHex || spot.bytes === undefined) continue;
      this.spotChecks.delete(spot);
      if (spot.sampleState === 'fetching') {
        this.spotFetches.delete(spot.fetchId);
        this.ctx.cancelFetch(spot.fetchId);
      }
      this.dropSpotChecked(spot, nowMs);
    }
    const index = this.helperIndex.get(deviceIdHex);
    if (index === undefined) return;
    let found = false;
    for (let piece = 0; piece < this.pieceCount; piece++) {
      if (this.pieceSource[piece] !== index) continue;
      found = true;
      const start = this.pieceStart(piece);
      const emitted = start < this.delivery.buffer.emittedOffset;
      this.delivery.withdraw(start, this.pieceLength(piece), deviceIdHex);
      this.pieceSource[piece] = 0;
      this.suspects.set(piece, { piece, emitted, holder: undefined, excluded: new Set() });
    }
    if (found && this.readBack !== undefined) {
      // The output is about to change again: read it back once the repairs are done.
      this.readBack.cancel();
      this.readBack = undefined;
    }
  }

  /** A suspect goes back to wait for a source; `exclude` (a helper) is not asked again. */
  private requeue(suspect: Suspect, exclude: SourceId | undefined): void {
    suspect.holder = undefined;
    if (exclude !== undefined && exclude !== SELF_SOURCE) suspect.excluded.add(exclude);
  }

  /** Repair transfers in flight at `source`. */
  private repairLoad(source: SourceId): number {
    let load = 0;
    for (const suspect of this.suspects.values()) if (suspect.holder === source) load++;
    return load;
  }

  private repairTransfers(): PieceTransfer[] {
    if (this.suspects.size === 0) return [];
    return [...this.selfFetches.values(), ...this.helperRequests.values()].filter((t) => t.repair);
  }

  private repairStallDeadlineMs(transfer: PieceTransfer): number {
    return transfer.lastProgressMs + this.scheduler.stallTimeoutMs(transfer.source);
  }

  /**
   * Starts refetches of suspect pieces, before any new piece: held ones first (they block
   * delivery), then delivered ones, lowest offset first; at most `REPAIRS_INFLIGHT_MAX` at once,
   * one per source, each to the fastest usable source that has not failed it.
   */
  private assignRepairs(nowMs: number): void {
    if (this.suspects.size === 0) return;
    let inflight = 0;
    const waiting: Suspect[] = [];
    for (const suspect of this.suspects.values()) {
      if (suspect.holder !== undefined) inflight++;
      else waiting.push(suspect);
    }
    if (waiting.length === 0 || inflight >= REPAIRS_INFLIGHT_MAX) return;
    waiting.sort(
      (a, b) =>
        Number(a.emitted) - Number(b.emitted) ||
        (a.audit?.order ?? -1) - (b.audit?.order ?? -1) ||
        a.piece - b.piece,
    );
    const sources = [SELF_SOURCE, ...this.ctx.readyLinkIds()].filter((source) =>
      this.canRepair(source),
    );
    sources.sort(
      (a, b) =>
        this.scheduler.throughputOf(b) - this.scheduler.throughputOf(a) ||
        (a === SELF_SOURCE ? -1 : b === SELF_SOURCE ? 1 : a - b),
    );
    const busy = new Set<SourceId>();
    for (const suspect of this.suspects.values())
      if (suspect.holder !== undefined) busy.add(suspect.holder);
    for (const suspect of waiting) {
      if (inflight >= REPAIRS_INFLIGHT_MAX) break;
      const source = sources.find(
        (s) =>
          !busy.has(s) &&
          !suspect.excluded.has(s) &&
          (suspect.audit === undefined || s === SELF_SOURCE),
      );
      if (source === undefined) continue;
      if (!this.start(suspect.piece, source, nowMs, true)) {
        suspect.excluded.add(source);
        continue;
      }
      suspect.holder = source;
      busy.add(source);
      inflight++;
    }
  }

  /** Whether `source` may refetch suspect pieces: self, or a usable, trusted helper. */
  private canRepair(source: SourceId): boolean {
    if (source === SELF_SOURCE) return true;
    const link = this.ctx.readyLink(source);
    return (
      this.source.pooled &&
      link?.remote !== undefined &&
      this.scheduler.hasSource(source) &&
      !this.scheduler.isBanned(source) &&
      !this.refusedBy.has(source) &&
      !this.distrusted.has(toHex(link.remote.deviceId))
    );
  }

  /** A suspect piece's new copy passed its check (or came from self): put it in place. */
  private repairChecked(piece: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    const suspect = this.suspects.get(piece);
    if (suspect === undefined || this.distrusted.has(sourceName)) return;
    this.suspects.delete(piece);
    if (suspect.audit !== undefined) {
      if (equalBytes(this.ctx.crypto.sha256(bytes), suspect.audit.sha256)) {
        this.maybeComplete(nowMs);
        return;
      }
      // The helper's copy differs from this device's own: it lied. Everything it gave becomes
      // suspect (this piece too), and this copy repairs this piece at once.
      this.convict(suspect.audit.helper, `piece ${piece} differs from the origin's (audit)`, nowMs);
      if (!this.suspects.has(piece)) return;
      this.repairChecked(piece, bytes, sourceName, nowMs);
      return;
    }
    this.pieceSource[piece] = this.sourceIndex(sourceName);
    this.rememberHelperPiece(piece, bytes, sourceName);
    if (suspect.emitted) {
      this.repairedDelivered = true;
      this.delivery.repair(this.pieceStart(piece), bytes, sourceName, nowMs);
    } else {
      this.delivery.add(this.pieceStart(piece), bytes, sourceName, nowMs);
    }
    this.maybeComplete(nowMs);
  }

  private maybeComplete(nowMs: number): void {
    if (this.state !== 'running' || !this.delivery.finished || this.suspects.size > 0) return;
    if (!this.repairedDelivered) {
      this.finish(this.delivery.buffer.digest(), nowMs);
      return;
    }
    if (this.readBack !== undefined) return;
    this.readBack = new OutputReadBack(this.ctx, this, this.downloadId, this.length);
    this.readBack.start(nowMs);
  }

  /**
   * The end-to-end digest failed: before giving up, audit. Every piece a helper gave is
   * refetched by this device (trusted) and compared with the helper's copy, one helper after
   * another in turn, so a liar is found early; a difference convicts the helper (banned, all its
   * pieces repaired). Afterwards the output is read back and checked again. Once per download.
   * Returns false when there is nothing to audit.
   */
  private startAudit(nowMs: number): boolean {
    if (this.audited || this.helperPieceHashes.size === 0) return false;
    this.audited = true;
    this.repairedDelivered = true; // the output is read back again after the audit
    const turns = new Map<number, number>();
    for (const [piece, sha256] of this.helperPieceHashes) {
      const index = this.pieceSource[piece]!;
      const turn = turns.get(index) ?? 0;
      turns.set(index, turn + 1);
      const helper = this.helperNames[index - 1]!;
      this.suspects.set(piece, {
        piece,
        emitted: true,
        holder: undefined,
        excluded: new Set(),
        audit: { sha256, helper, order: turn * this.pieceCount + piece },
      });
    }
    this.assignRepairs(nowMs);
    return true;
  }

  /** `deviceIdHex` gave bytes that differ from the origin's: ban its link and distrust it. */
  private convict(deviceIdHex: string, detail: string, nowMs: number): void {
    for (const linkId of this.ctx.readyLinkIds()) {
      const remote = this.ctx.readyLink(linkId)?.remote;
      if (remote !== undefined && toHex(remote.deviceId) === deviceIdHex) {
        this.ctx.ban(linkId, detail, nowMs);
      }
    }
    this.distrust(deviceIdHex, nowMs);
  }

  /** Keeps the SHA-256 of a helper's accepted piece (32 bytes per piece) for an audit. */
  private rememberHelperPiece(piece: number, bytes: Uint8Array, sourceName: string): void {
    if (sourceName === 'self') this.helperPieceHashes.delete(piece);
    else this.helperPieceHashes.set(piece, this.ctx.crypto.sha256(bytes));
  }

  private finish(digest: Uint8Array, nowMs: number): void {
    const expected = this.source.sha256;
    if (expected !== undefined && !equalBytes(digest, expected) && this.startAudit(nowMs)) return;
    if (expected !== undefined && !equalBytes(digest, expected)) {
      this.state = 'failed';
      this.ctx.event({
        type: 'download:failed',
        downloadId: this.downloadId,
        reason: 'sha256-mismatch',
        detail:
          `the ${this.repairedDelivered ? 'output (read back after repairs)' : 'delivered bytes'} ` +
          `hash to ${toHex(digest)}, not the expected ${toHex(expected)}; ` +
          (this.audited ? 'an audit of every helper piece found no liar; ' : '') +
          'discard them and retry without pooling',
      });
      return;
    }
    this.state = 'done';
    this.ctx.event({
      type: 'download:complete',
      downloadId: this.downloadId,
      totalBytes: this.length,
      sha256: digest,
    });
  }
}
