/**
 * Downloading a content by ID from peers (docs/protocol.md 7.2).
 *
 * Phases:
 * 1. **Manifest.** Given by the host, or requested from a peer that announced chunks of the
 *    content and checked against the content ID (manifest-fetch.ts).
 * 2. **Chunks.** A `PieceScheduler` in rarest-first mode assigns chunks to ready links that
 *    announced them. A chunk that a usable non-seed holds is never asked of a seed, so a seed
 *    spends its upload on the chunks only it has. Each request gets its own `ChunkVerifier`;
 *    DATA goes into it, and only a verified chunk reaches `store-chunk`, the chunk server (so
 *    this device serves it onward at once) and delivery. A chunk that fails its hash is
 *    discarded: verdict STATUS(checksumMismatch) to the sender, one strike, the chunk
 *    reassigned; three strikes ban the sender.
 * 3. **Delivery.** Chunks are fetched in swarm order (rarest first, anywhere in the content),
 *    not delivery order: a swarm only works if peers fetch different chunks and pass them on
 *    (BitTorrent's lesson). Memory stays bounded all the same. A verified chunk inside the
 *    reorder window goes to the reorder buffer; one beyond it is only stored (the host keeps
 *    it: `store-chunk`) and its bytes are dropped. When the delivery point comes near, the
 *    chunk is read back (`read-chunk`), checked against its hash again and delivered; a copy
 *    the host lost or that fails the check sends the chunk back to the scheduler. Memory is
 *    thus the reorder window plus the requests in flight, which `inflightBytesMax` bounds.
 *
 * Rescheduling after every input would cost a full rarest-first pass per DATA frame, so the
 * download reschedules only when something it depends on changed: a request ended, a link
 * closed, a timer fired, availability or the delivery window moved, or another download's load
 * on our sources changed.
 *
 * **Selection** (`DownloadSource.chunks`): only the chosen chunks are fetched and delivered,
 * at their content offsets; the download counts in pieces, the selected chunks laid end to
 * end (chunk-selection.ts), so scheduler, buffer and progress need no special case.
 *
 * **Chunks this device holds** (the chunk server has them: `content-available` before or during
 * the download, or another download verified them) are not fetched: they count as stored, with
 * source 'self', and are read back and verified when the delivery point comes near, like the
 * chunks stored beyond the window. A read-back that fails, or a `content-removed` for a chunk
 * not yet read back, makes the chunk fetchable from peers again. A re-run download thus resumes
 * where the last one stopped.
 *
 * Offsets out of order, data past the chunk, or a STATUS(ok) whose length is not the bytes
 * received are protocol errors (the link closes; its work is reassigned). With no usable
 * source the download waits; with a `stallTimeoutMs` it fails 'unavailable' once nothing was
 * verified for that long while a needed chunk (or the manifest) is held by no ready link
 * (unavailable-watch.ts).
 */
import { toHex } from '../bytes.js';
import { ChunkVerifier, verifyChunk } from '../content/chunk-verifier.js';
import { chunkCount } from '../content/layout.js';
import type { Manifest } from '../content/manifest.js';
import {
  Capability,
  TransferStatus,
  type DataMessage,
  type IndexRange,
  type StatusMessage,
} from '../wire/messages.js';
import { ChunkSelection } from './chunk-selection.js';
import { DownloadDelivery } from './download-delivery.js';
import { fallbackFor } from './fallback-policy.js';
import { ManifestFetch } from './manifest-fetch.js';
import { PieceScheduler, SELF_SOURCE, type SourceId } from './scheduler.js';
import { StoredPieces } from './stored-pieces.js';
import type { DownloadJob, TransferContext } from './transfer-context.js';
import { unavailableDetail, UnavailableWatch } from './unavailable-watch.js';

interface ChunkRequest {
  readonly piece: number;
  readonly linkId: number;
  readonly verifier: ChunkVerifier;
}

/**
 * Sources one content download may use at once. The pooled download's K = 10 (ElioP2P) picks
 * the fastest of interchangeable sources; in a swarm sources hold different chunks, and leaving
 * out the only holders of a rare chunk would stall it. Work in flight is bounded by bytes
 * instead (`inflightBytesMax`).
 */
const SWARM_SOURCES_MAX = 64;

/**
 * The host's chunk store as a content download sees it: what this device holds (the chunk
 * server's record), and reading a chunk back; the answer comes to `onChunkRead`.
 */
export interface ChunkReader {
  /** Whether this device holds chunk `index` of the content `key` (hex). */
  holds(key: string, index: number): boolean;
  /** Emits `read-chunk` and returns its read ID. */
  read(download: ContentDownload, contentId: Uint8Array, index: number, hash: Uint8Array): number;
}

/** What the host chose beyond the content (`DownloadSource`, checked by the job factory). */
export interface ContentDownloadOptions {
  readonly manifest: Manifest | undefined;
  /** Valid for the manifest's chunk count (the factory requires the manifest with it). */
  readonly chunks: readonly IndexRange[] | undefined;
  readonly stallTimeoutMs: number | undefined;
}

export class ContentDownload implements DownloadJob {
  readonly kind = 'content-download';
  state: 'running' | 'done' | 'failed' = 'running';
  /** The content ID in hex. */
  private readonly key: string;
  private manifest: Manifest | undefined;
  /** Set with the manifest: pieces <-> chunk indices. */
  private selection: ChunkSelection | undefined;
  private scheduler: PieceScheduler | undefined;
  private delivery: DownloadDelivery | undefined;
  /** `${linkId}:${requestId}` -> request. */
  private readonly requests = new Map<string, ChunkRequest>();
  /** `${piece}:${linkId}` -> requestId. */
  private readonly byAssignment = new Map<string, number>();
  private readonly manifestFetch: ManifestFetch;
  /** Pieces the host holds, to be read back for delivery. */
  private readonly stored = new StoredPieces();
  /** Pieces this device came to hold while they were in flight from peers (see `onChunksHeld`). */
  private readonly heldInFlight = new Set<number>();
  /** Something changed that may allow new assignments (see the module header). */
  private dirty = true;
  private seenRevision = -1;
  private seenOtherLoad = -1;
  private seenAckedOffset = -1;
  /** When an exclusion ends (a chunk a source refused becomes askable again). */
  private wakeMs: number | undefined;
  private readonly chunks: readonly IndexRange[] | undefined;
  private readonly watch: UnavailableWatch | undefined;

  constructor(
    private readonly ctx: TransferContext,
    readonly jobId: number,
    readonly priority: number,
    readonly contentId: Uint8Array,
    options: ContentDownloadOptions,
    nowMs: number,
    private readonly reader: ChunkReader,
  ) {
    this.key = toHex(contentId);
    this.manifestFetch = new ManifestFetch(ctx, contentId, this.key, (manifest, at) => {
      // The host learns it before any chunk (its store indexes chunks by it; a tree's file
      // table says where the bytes go).
      ctx.event({ type: 'download:manifest', downloadId: jobId, manifest });
      this.begin(manifest, at);
    });
    this.chunks = options.chunks;
    this.watch =
      options.stallTimeoutMs === undefined
        ? undefined
        : new UnavailableWatch(options.stallTimeoutMs, nowMs);
    if (options.manifest !== undefined) this.begin(options.manifest, nowMs);
  }

  /** The content ID in hex. */
  get contentKey(): string {
    return this.key;
  }

  schedule(nowMs: number): void {
    if (this.state !== 'running') return;
    this.checkUnavailable(nowMs);
    if (this.state !== 'running') return;
    if (this.manifest === undefined) {
      this.manifestFetch.ask(nowMs);
      return;
    }
    const scheduler = this.scheduler!;
    const selection = this.selection!;
    const buffer = this.delivery!.buffer;
    const availability = this.ctx.availability;
    const linkIds = this.ctx.links.ready();
    let otherLoad = 0;
    for (const linkId of linkIds) otherLoad += this.ctx.otherLoad(this.jobId, linkId);
    if (
      !this.dirty &&
      availability.revision === this.seenRevision &&
      otherLoad === this.seenOtherLoad &&
      buffer.ackedOffset === this.seenAckedOffset
    ) {
      return;
    }
    this.dirty = false;
    this.seenOtherLoad = otherLoad;
    this.seenAckedOffset = buffer.ackedOffset;
    const count = chunkCount(this.manifest);
    if (availability.revision !== this.seenRevision) {
      this.seenRevision = availability.revision;
      for (const linkId of linkIds) {
        const peer = this.ctx.links.peer(linkId);
        if (peer === undefined || (peer.capabilities & Capability.serveChunks) === 0) continue;
        if (!availability.knows(linkId, this.key)) continue;
        const held = availability.countBelow(linkId, this.key, count);
        scheduler.upsertSource(linkId, { isSeed: held === count, rttMs: peer.rttMs ?? 0 });
      }
    }
    this.takeHeldInFlight(nowMs);
    this.readBack();
    const assignments = scheduler.assign(nowMs, {
      // Any chunk may be fetched: what lies beyond the reorder window is stored, not buffered.
      windowEndBytes: selection.totalBytes,
      windowStartBytes: 0,
      inflightBytesMax: this.inflightBytesMax(),
      canServe: (source, piece) =>
        source >= 0 && availability.has(source, this.key, selection.chunkOf(piece)),
      holders: (piece) => availability.holderCount(this.key, selection.chunkOf(piece)),
      otherLoad: (source) => this.ctx.otherLoad(this.jobId, source),
    });
    for (const { piece, source } of assignments) this.sendRequest(piece, source, nowMs);
    this.wakeMs = scheduler.nextExclusionEndMs(nowMs);
  }

  /**
   * Bytes of chunk requests in flight: three eighths of the reorder window (24 MiB of 64), at
   * least two chunks, so window plus requests stay within the download's memory bound.
   */
  private inflightBytesMax(): number {
    const chunk = this.manifest!.chunkSizeBytes;
    return Math.max(2 * chunk, Math.floor((this.ctx.settings.reorderWindowBytes * 3) / 8));
  }

  /** Bytes of piece `piece`. */
  private pieceBytes(piece: number): number {
    const selection = this.selection!;
    return selection.pieceStart(piece + 1) - selection.pieceStart(piece);
  }

  /** Whether piece `piece` may enter the reorder buffer now. */
  private inWindow(piece: number): boolean {
    const buffer = this.delivery!.buffer;
    const start = this.selection!.pieceStart(piece);
    return start + this.pieceBytes(piece) <= buffer.windowEnd || start <= buffer.ackedOffset;
  }

  /** Reads back stored pieces that the reorder window has reached. */
  private readBack(): void {
    if (!this.stored.anyUnread) return;
    const manifest = this.manifest!;
    const selection = this.selection!;
    const buffer = this.delivery!.buffer;
    const count = selection.count;
    for (
      let piece = Math.floor(buffer.emittedOffset / manifest.chunkSizeBytes);
      piece < count;
      piece++
    ) {
      if (!this.inWindow(piece)) break;
      if (!this.stored.isUnread(piece)) continue;
      const index = selection.chunkOf(piece);
      const readId = this.reader.read(
        this,
        manifest.contentId,
        index,
        manifest.chunkHashes[index]!,
      );
      this.stored.readStarted(readId, piece);
    }
  }

  /**
   * This device now holds these chunks (the chunk server took them: `content-available`, or a
   * download verified them): the pending ones among the selected are read back, not fetched.
   */
  onChunksHeld(indices: readonly number[]): void {
    const selection = this.selection;
    if (this.state !== 'running' || selection === undefined) return;
    for (const index of indices) {
      const piece = selection.pieceOf(index);
      if (piece === undefined || this.markHeld(piece) || this.scheduler!.isDone(piece)) continue;
      // In flight from a peer: cancelled at the next scheduling pass, which has the time.
      this.heldInFlight.add(piece);
      this.dirty = true;
    }
  }

  /** Cancels the peer fetches of pieces this device came to hold; they are read back instead. */
  private takeHeldInFlight(nowMs: number): void {
    if (this.heldInFlight.size === 0) return;
    const scheduler = this.scheduler!;
    for (const { piece, source } of scheduler.assignments()) {
      if (!this.heldInFlight.has(piece)) continue;
      this.cancelAssignment(piece, source);
      scheduler.fail(piece, source, 'cancelled', nowMs);
    }
    for (const piece of this.heldInFlight) this.markHeld(piece);
    this.heldInFlight.clear();
  }

  /**
   * The host dropped these chunks (`content-removed`; all when `indices` is undefined): stored
   * pieces among them that are not being read back are fetched from peers again.
   */
  onChunksRemoved(indices: readonly number[] | undefined): void {
    const selection = this.selection;
    if (this.state !== 'running' || selection === undefined) return;
    const removed = indices === undefined ? undefined : new Set(indices);
    for (const piece of this.heldInFlight) {
      if (removed === undefined || removed.has(selection.chunkOf(piece)))
        this.heldInFlight.delete(piece);
    }
    const dropped = this.stored.drop(
      (piece) => removed === undefined || removed.has(selection.chunkOf(piece)),
    );
    for (const piece of dropped) this.scheduler!.reopen(piece);
    if (dropped.length > 0) this.dirty = true;
  }

  /**
   * A pending piece this device holds: stored, to be read back (source 'self'). Returns false
   * when the piece is not pending.
   */
  private markHeld(piece: number): boolean {
    if (!this.scheduler!.markHeld(piece)) return false;
    this.stored.add(piece, this.ctx.sourceName(SELF_SOURCE));
    this.dirty = true;
    return true;
  }

  /** The host answered a read-back of a stored chunk (`verified`: checked by the host). */
  onChunkRead(
    readId: number,
    bytes: Uint8Array | undefined,
    verified: boolean,
    nowMs: number,
  ): void {
    const read = this.stored.answered(readId);
    if (read === undefined || this.state !== 'running') return;
    const { piece, sourceName } = read;
    this.dirty = true;
    const hash = this.manifest!.chunkHashes[this.selection!.chunkOf(piece)]!;
    if (bytes === undefined || (!verified && !verifyChunk(this.ctx.crypto, hash, bytes))) {
      // The host lost or damaged its copy: fetch the chunk again (it is in the window now).
      this.scheduler!.reopen(piece);
      return;
    }
    this.watch?.verified(nowMs);
    this.delivery!.add(this.selection!.pieceStart(piece), bytes, sourceName, nowMs);
    this.maybeComplete();
  }

  onData(linkId: number, message: DataMessage, nowMs: number): void {
    const request = this.requests.get(`${linkId}:${message.requestId}`);
    if (request === undefined) return;
    const result = request.verifier.write(message.offset, message.bytes);
    if (!result.ok) {
      this.ctx.protocolError(linkId, `chunk ${request.piece}: ${result.detail}`, nowMs);
      return;
    }
    this.scheduler!.progress(request.piece, linkId, message.bytes.length, nowMs);
  }

  onStatus(linkId: number, message: StatusMessage, nowMs: number): void {
    const requestKey = `${linkId}:${message.requestId}`;
    const request = this.requests.get(requestKey);
    if (request === undefined) return;
    this.dirty = true;
    this.requests.delete(requestKey);
    this.byAssignment.delete(`${request.piece}:${linkId}`);
    const scheduler = this.scheduler!;
    if (this.state !== 'running' || !scheduler.isAssigned(request.piece, linkId)) return;
    switch (message.status) {
      case TransferStatus.ok:
        break;
      case TransferStatus.busy:
        scheduler.fail(request.piece, linkId, 'busy', nowMs);
        return;
      case TransferStatus.notFound:
        scheduler.fail(request.piece, linkId, 'not-found', nowMs);
        return;
      case TransferStatus.cancelled:
        scheduler.fail(request.piece, linkId, 'cancelled', nowMs);
        return;
      default:
        scheduler.fail(request.piece, linkId, 'error', nowMs);
        return;
    }
    if (message.length !== request.verifier.receivedBytes) {
      this.ctx.protocolError(
        linkId,
        `STATUS length ${message.length} is not the bytes sent`,
        nowMs,
      );
      return;
    }
    const verified = request.verifier.finish();
    if (!verified.ok) {
      this.ctx.links.send(linkId, {
        type: 'status',
        requestId: message.requestId,
        status: TransferStatus.checksumMismatch,
        length: request.verifier.receivedBytes,
        message: verified.detail.slice(0, 200),
      });
      const { banned } = scheduler.reject(request.piece, linkId, 1, nowMs);
      if (banned) this.ctx.ban(linkId, `chunks failed verification (${verified.reason})`, nowMs);
      return;
    }
    const losers = scheduler.received(request.piece, linkId, nowMs);
    for (const loser of losers) this.cancelAssignment(request.piece, loser);
    scheduler.accept(request.piece);
    this.watch?.verified(nowMs);
    // Stored (and so served onward) before anything else sees it.
    this.ctx.chunkVerified(this.manifest!, this.selection!.chunkOf(request.piece), verified.bytes);
    if (this.inWindow(request.piece)) {
      const start = this.selection!.pieceStart(request.piece);
      this.delivery!.add(start, verified.bytes, this.ctx.sourceName(linkId), nowMs);
      this.maybeComplete();
    } else {
      this.stored.add(request.piece, this.ctx.sourceName(linkId));
    }
  }

  onLinkClosed(linkId: number, nowMs: number): void {
    this.dirty = true;
    this.manifestFetch.onLinkClosed(linkId);
    for (const [key, request] of this.requests) {
      if (request.linkId !== linkId) continue;
      this.requests.delete(key);
      this.byAssignment.delete(`${request.piece}:${linkId}`);
    }
    this.scheduler?.removeSource(linkId, nowMs);
  }

  onTimer(nowMs: number): void {
    if (this.state !== 'running') return;
    // A wake (an exclusion ended) only asks for a fresh scheduling pass.
    this.dirty = true;
    this.wakeMs = undefined;
    this.delivery?.onTimer(nowMs);
    const scheduler = this.scheduler;
    if (scheduler === undefined) return;
    scheduler.endBackoffs(nowMs);
    for (const source of scheduler.stalled(nowMs)) {
      for (const { piece, source: holder } of scheduler.assignments()) {
        if (holder !== source) continue;
        this.cancelAssignment(piece, source);
        scheduler.fail(piece, source, 'stall', nowMs);
      }
    }
  }

  nextDeadlineMs(nowMs: number): number | undefined {
    if (this.state !== 'running') return undefined;
    let min = this.watch?.deadlineMs();
    const consider = (at: number | undefined): void => {
      if (at !== undefined && (min === undefined || at < min)) min = at;
    };
    if (this.manifest === undefined) {
      consider(this.manifestFetch.nextRetryMs(nowMs));
      return min;
    }
    consider(this.scheduler?.nextDeadlineMs());
    consider(this.delivery?.nextDeadlineMs());
    consider(this.wakeMs);
    return min;
  }

  /** Fails the download 'unavailable' when its watch says so (see the module header). */
  private checkUnavailable(nowMs: number): void {
    const watch = this.watch;
    if (watch === undefined || !watch.due(nowMs, this.ctx.availability.revision)) return;
    const detail = unavailableDetail(
      this.ctx,
      this.key,
      this.selection === undefined
        ? undefined
        : {
            selection: this.selection,
            // A piece this device came to hold while it was in flight needs no peer either.
            isDone: (piece) => this.scheduler!.isDone(piece) || this.heldInFlight.has(piece),
          },
    );
    if (detail !== undefined) this.fail('unavailable', detail, nowMs);
  }

  fail(reason: string, detail: string, nowMs: number): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    void nowMs;
    for (const [key, request] of this.requests) {
      const requestId = Number(key.slice(key.indexOf(':') + 1));
      this.ctx.cancelRequest(request.linkId, requestId);
    }
    this.manifestFetch.cancel();
    this.requests.clear();
    this.byAssignment.clear();
    this.stored.clear();
    this.heldInFlight.clear();
    this.ctx.event({
      type: 'download:failed',
      downloadId: this.jobId,
      reason,
      detail,
      fallback: fallbackFor({ kind: 'content', pooled: false, attempt: 0, reason }),
    });
  }

  acknowledge(byteCount: number): void {
    this.delivery?.buffer.acknowledge(byteCount);
  }

  memoryBytes(): number {
    let total = this.delivery?.buffer.heldBytes ?? 0;
    for (const request of this.requests.values()) {
      if (request.verifier.receivedBytes > 0) total += request.verifier.expectedLength;
    }
    for (const piece of this.stored.readingPieces()) total += this.pieceBytes(piece);
    return total + this.manifestFetch.receivedBytes;
  }

  inflightOf(source: SourceId): number {
    return this.scheduler?.inflightOf(source) ?? 0;
  }

  private begin(manifest: Manifest, nowMs: number): void {
    this.manifest = manifest;
    const selection = new ChunkSelection(manifest, this.chunks);
    this.selection = selection;
    this.scheduler = new PieceScheduler({
      pieceCount: selection.count,
      pieceStart: (piece) => selection.pieceStart(piece),
      mode: 'rarest-first',
      prng: this.ctx.prng.fork(),
      sourcesMax: SWARM_SOURCES_MAX,
      stallFloorMs: this.ctx.settings.stallFloorMs,
      banThreshold: this.ctx.settings.banThreshold,
      queueAllowance: true,
    });
    // No running digest: every chunk was verified against the manifest, whose content ID the
    // host asked for, so a whole-object SHA-256 would be a second pass over every byte.
    this.delivery = new DownloadDelivery(
      this.ctx,
      undefined,
      this.jobId,
      selection.totalBytes,
      (position) => selection.contentOffset(position),
    );
    this.watch?.verified(nowMs);
    for (let piece = 0; piece < selection.count; piece++) {
      if (this.reader.holds(this.key, selection.chunkOf(piece))) this.markHeld(piece);
    }
    this.maybeComplete();
  }

  private maybeComplete(): void {
    const delivery = this.delivery!;
    if (this.state !== 'running' || !delivery.finished) return;
    this.state = 'done';
    this.ctx.event({
      type: 'download:complete',
      downloadId: this.jobId,
      totalBytes: delivery.totalBytes,
      sha256: delivery.buffer.digest(),
    });
  }

  private sendRequest(piece: number, linkId: number, nowMs: number): void {
    const requestId = this.ctx.openRequest(linkId, this);
    if (requestId === undefined) {
      this.scheduler!.fail(piece, linkId, 'error', nowMs);
      return;
    }
    const chunkHash = this.manifest!.chunkHashes[this.selection!.chunkOf(piece)]!;
    this.requests.set(`${linkId}:${requestId}`, {
      piece,
      linkId,
      verifier: new ChunkVerifier(this.ctx.crypto, chunkHash, this.pieceBytes(piece)),
    });
    this.byAssignment.set(`${piece}:${linkId}`, requestId);
    this.ctx.links.send(linkId, {
      type: 'chunk-request',
      requestId,
      chunkHash,
      priority: Math.min(255, this.priority),
    });
  }

  private cancelAssignment(piece: number, linkId: number): void {
    const requestId = this.byAssignment.get(`${piece}:${linkId}`);
    if (requestId === undefined) return;
    this.byAssignment.delete(`${piece}:${linkId}`);
    this.requests.delete(`${linkId}:${requestId}`);
    this.ctx.cancelRequest(linkId, requestId);
  }
}
