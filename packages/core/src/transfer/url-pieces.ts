/**
 * The pieces of a pooled URL download (url-download.ts): where each piece lies in the object,
 * the origin range request for it, and the assignments in flight: how one starts (a self
 * fetch, or FETCH_ASSIGN to a helper with its spot check started at once), how one is
 * cancelled, and its bytes as they arrive.
 *
 * Geometry (`PieceLayout`): the download covers object bytes `[startOffset, totalBytes)`; its
 * own offsets count from `startOffset` (offset 0 is object byte `startOffset`), and it is cut
 * into pieces of `pieceSizeBytes` (the last one shorter). Fetch specs and FETCH_ASSIGN ranges
 * are object offsets.
 *
 * Assignments (`PieceTransfers`): one per (piece, source) fetching it, a self fetch by fetch ID
 * or a helper's request by link and request ID; their answers go to the download, which looks
 * up here the assignment they belong to. Each assembles its bytes into one buffer of the
 * piece's length, allocated at the first byte (`write`): the one copy a piece's bytes make in
 * the transfer code, from the frame or origin chunk the host handed in (a view that is only
 * valid during that input) into memory the download owns until the host acknowledges it.
 */
import type { HttpHeader } from '../wire/messages.js';
import { SELF_SOURCE, type SourceId } from './scheduler.js';
import type {
  FetchHandler,
  FetchSpec,
  RequestHandler,
  TransferContext,
} from './transfer-context.js';
import type { SpotCheck, SpotChecks } from './url-spot-checks.js';

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
  /** No movement for this long fails the download with 'stalled' (stall-watch.ts). */
  readonly stallTimeoutMs: number;
  /** Fallbacks already carried out for this object (fallback-policy.ts). */
  readonly attempt: number;
}

export class PieceLayout {
  /** Bytes this download delivers: the object from `startOffset` on. */
  readonly length: number;
  readonly pieceCount: number;

  constructor(readonly source: UrlSource) {
    this.length = source.totalBytes - source.startOffset;
    this.pieceCount = Math.ceil(this.length / source.pieceSizeBytes);
  }

  /** Where `piece` starts, as an offset of this download (object offset - `startOffset`). */
  start(piece: number): number {
    return Math.min(piece * this.source.pieceSizeBytes, this.length);
  }

  lengthOf(piece: number): number {
    return this.start(piece + 1) - this.start(piece);
  }

  /** The piece holding download offset `offset` (the last piece for the end). */
  pieceAt(offset: number): number {
    return Math.min(Math.floor(offset / this.source.pieceSizeBytes), this.pieceCount - 1);
  }

  /** The origin request for download offsets `[start, end)`. */
  fetchSpec(start: number, end: number): FetchSpec {
    const base = this.source.startOffset;
    return {
      url: this.source.url,
      rangeStart: base + start,
      rangeEnd: base + end,
      validator: this.source.validator,
      headers: this.source.headers,
      forPeer: false,
      totalBytes: this.source.totalBytes,
    };
  }
}

/** One assignment's bytes as they arrive. */
export interface PieceTransfer {
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
}

/** The assignments in flight: self fetches by fetch ID, helper requests by link and ID. */
export class PieceTransfers {
  private readonly selfFetches = new Map<number, PieceTransfer>();
  private readonly helperRequests = new Map<string, PieceTransfer>();
  /** The spot check of each helper assignment in flight. */
  private readonly spotOf = new Map<PieceTransfer, SpotCheck>();

  constructor(
    private readonly ctx: TransferContext,
    private readonly layout: PieceLayout,
    private readonly spots: SpotChecks,
    /** The download: it hears the fetches' and requests' answers. */
    private readonly handler: FetchHandler & RequestHandler,
  ) {}

  /**
   * Starts fetching `piece` from `source`: a `fetch-origin` for self, or FETCH_ASSIGN to a
   * helper (with the piece's spot check, whose sample is fetched meanwhile). False when the
   * helper's link cannot take a request.
   */
  start(piece: number, source: SourceId, repair: boolean, nowMs: number): boolean {
    const spec = this.layout.fetchSpec(this.layout.start(piece), this.layout.start(piece + 1));
    if (source === SELF_SOURCE) {
      this.add(piece, source, this.ctx.openFetch(this.handler, spec), repair, nowMs);
      return true;
    }
    const requestId = this.ctx.openRequest(source, this.handler);
    if (requestId === undefined) return false;
    const transfer = this.add(piece, source, requestId, repair, nowMs);
    this.ctx.links.send(source, {
      type: 'fetch-assign',
      requestId,
      url: spec.url,
      rangeStart: spec.rangeStart,
      rangeEnd: spec.rangeEnd,
      validator: spec.validator,
      headers: spec.headers,
    });
    this.spotOf.set(transfer, this.spots.start(piece, source, repair));
    return true;
  }

  /** Stops an assignment: cancels its fetch, or its request and spot check. */
  cancel(transfer: PieceTransfer): void {
    this.remove(transfer);
    if (transfer.source === SELF_SOURCE) {
      this.ctx.cancelFetch(transfer.id);
      return;
    }
    this.discardSpot(transfer);
    this.ctx.cancelRequest(transfer.source, transfer.id);
  }

  /** Cancels the scheduler's assignment of `piece` to `source` (never a repair). */
  cancelAssignment(piece: number, source: SourceId): void {
    for (const transfer of this.all()) {
      if (!transfer.repair && transfer.piece === piece && transfer.source === source)
        this.cancel(transfer);
    }
  }

  /** Stops everything (the download ended). */
  cancelAll(): void {
    for (const transfer of this.all()) {
      if (transfer.source === SELF_SOURCE) this.ctx.cancelFetch(transfer.id);
      else this.ctx.cancelRequest(transfer.source, transfer.id);
    }
    this.selfFetches.clear();
    this.helperRequests.clear();
    this.spotOf.clear();
    this.spots.clear();
  }

  /** A helper's transfer ended without its piece: its spot check is no longer needed. */
  discardSpot(transfer: PieceTransfer): void {
    const spot = this.spotOf.get(transfer);
    if (spot === undefined) return;
    this.spotOf.delete(transfer);
    this.spots.discard(spot);
  }

  /** A helper's piece arrived whole: hands its spot check over to be judged. */
  takeSpot(transfer: PieceTransfer): SpotCheck | undefined {
    const spot = this.spotOf.get(transfer);
    this.spotOf.delete(transfer);
    return spot;
  }

  private add(
    piece: number,
    source: SourceId,
    id: number,
    repair: boolean,
    nowMs: number,
  ): PieceTransfer {
    const transfer: PieceTransfer = {
      piece,
      source,
      id,
      repair,
      buffer: undefined,
      received: 0,
      lastProgressMs: nowMs,
    };
    if (source === SELF_SOURCE) this.selfFetches.set(id, transfer);
    else this.helperRequests.set(`${source}:${id}`, transfer);
    return transfer;
  }

  self(fetchId: number): PieceTransfer | undefined {
    return this.selfFetches.get(fetchId);
  }

  helper(linkId: number, requestId: number): PieceTransfer | undefined {
    return this.helperRequests.get(`${linkId}:${requestId}`);
  }

  /** Forgets an assignment (ended, cancelled). False when it was not in flight. */
  remove(transfer: PieceTransfer): boolean {
    return transfer.source === SELF_SOURCE
      ? this.selfFetches.delete(transfer.id)
      : this.helperRequests.delete(`${transfer.source}:${transfer.id}`);
  }

  /** Every assignment in flight (a snapshot: safe to remove while iterating). */
  all(): PieceTransfer[] {
    return [...this.selfFetches.values(), ...this.helperRequests.values()];
  }

  /** Helper assignments on `linkId`. */
  onLink(linkId: number): PieceTransfer[] {
    return [...this.helperRequests.values()].filter((t) => t.source === linkId);
  }

  /** Appends bytes to an assignment's buffer; false if they pass the piece's end. */
  write(transfer: PieceTransfer, bytes: Uint8Array, nowMs: number): boolean {
    const length = this.layout.lengthOf(transfer.piece);
    if (transfer.received + bytes.length > length) return false;
    transfer.buffer ??= new Uint8Array(length);
    transfer.buffer.set(bytes, transfer.received);
    transfer.received += bytes.length;
    transfer.lastProgressMs = nowMs;
    return true;
  }

  /** Bytes the assignments' buffers hold. */
  memoryBytes(): number {
    let total = 0;
    for (const transfer of this.all()) total += transfer.buffer?.length ?? 0;
    return total;
  }
}
