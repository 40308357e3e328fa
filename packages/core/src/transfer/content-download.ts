/**
 * Downloading a content by ID from peers (docs/protocol.md 7.2).
 *
 * Phases:
 * 1. **Manifest.** Given by the host, or requested from a peer that announced chunks of the
 *    content: CHUNK_REQUEST whose `chunkHash` is the content ID. The answer is accepted only if
 *    `decodeManifest(bytes, contentId)` succeeds, so a peer cannot substitute another manifest;
 *    a peer whose manifest does not hash to the ID is banned (that mismatch is certain).
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
 * Offsets out of order, data past the chunk, or a STATUS(ok) whose length is not the bytes
 * received are protocol errors (the link closes; its work is reassigned). With no usable
 * source the download waits: it never fails for lack of peers.
 */
import { toHex } from '../bytes.js';
import { ChunkVerifier, verifyChunk } from '../content/chunk-verifier.js';
import { chunkCount, chunkRange } from '../content/layout.js';
import { decodeManifest, MANIFEST_HEADER_BYTES, type Manifest } from '../content/manifest.js';
import {
  Capability,
  TransferStatus,
  type DataMessage,
  type StatusMessage,
} from '../wire/messages.js';
import { DownloadDelivery } from './download-delivery.js';
import { fallbackFor } from './fallback-policy.js';
import { PieceScheduler, type SourceId } from './scheduler.js';
import type { DownloadJob, TransferContext } from './transfer-context.js';

interface ChunkRequest {
  readonly piece: number;
  readonly linkId: number;
  readonly verifier: ChunkVerifier;
}

interface ManifestRequest {
  readonly linkId: number;
  readonly requestId: number;
  readonly parts: Uint8Array[];
  received: number;
}

/** Largest manifest: 2^20 hashes plus the header. */
const MANIFEST_BYTES_MAX = MANIFEST_HEADER_BYTES + 2 ** 20 * 32;

/**
 * Sources one content download may use at once. The pooled download's K = 10 (ElioP2P) picks
 * the fastest of interchangeable sources; in a swarm sources hold different chunks, and leaving
 * out the only holders of a rare chunk would stall it. Work in flight is bounded by bytes
 * instead (`inflightBytesMax`).
 */
const SWARM_SOURCES_MAX = 64;

/** How a content download reads back a chunk it stored; the answer comes to `onChunkRead`. */
export interface ChunkReader {
  /** Emits `read-chunk` and returns its read ID. */
  read(download: ContentDownload, contentId: Uint8Array, index: number, hash: Uint8Array): number;
}

export class ContentDownload implements DownloadJob {
  readonly kind = 'content-download';
  state: 'running' | 'done' | 'failed' = 'running';
  private readonly key: string;
  private manifest: Manifest | undefined;
  private scheduler: PieceScheduler | undefined;
  private delivery: DownloadDelivery | undefined;
  /** `${linkId}:${requestId}` -> request. */
  private readonly requests = new Map<string, ChunkRequest>();
  /** `${piece}:${linkId}` -> requestId. */
  private readonly byAssignment = new Map<string, number>();
  private manifestRequest: ManifestRequest | undefined;
  private readonly manifestRetryAfterMs = new Map<number, number>();
  /** Verified chunks beyond the reorder window: stored by the host, bytes dropped -> source. */
  private readonly stored = new Map<number, string>();
  /** Read ID -> chunk being read back for delivery. */
  private readonly reads = new Map<number, number>();
  private readonly reading = new Set<number>();
  /** Something changed that may allow new assignments (see the module header). */
  private dirty = true;
  private seenRevision = -1;
  private seenOtherLoad = -1;
  private seenAckedOffset = -1;
  /** When an exclusion ends (a chunk a source refused becomes askable again). */
  private wakeMs: number | undefined;

  constructor(
    private readonly ctx: TransferContext,
    readonly jobId: number,
    readonly priority: number,
    private readonly contentId: Uint8Array,
    manifest: Manifest | undefined,
    nowMs: number,
    private readonly reader?: ChunkReader,
  ) {
    this.key = toHex(contentId);
    if (manifest !== undefined) this.begin(manifest, nowMs);
  }

  schedule(nowMs: number): void {
    if (this.state !== 'running') return;
    if (this.manifest === undefined) {
      this.requestManifest(nowMs);
      return;
    }
    const scheduler = this.scheduler!;
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
    const count = scheduler.pieceCount;
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
    this.readBack();
    const manifest = this.manifest;
    const assignments = scheduler.assign(nowMs, {
      // Any chunk may be fetched: what lies beyond the reorder window is stored, not buffered.
      windowEndBytes: manifest.totalBytes,
      windowStartBytes: 0,
      inflightBytesMax: this.inflightBytesMax(),
      canServe: (source, piece) => source >= 0 && availability.has(source, this.key, piece),
      holders: (piece) => availability.holderCount(this.key, piece),
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

  /** Whether the chunk at `range` may enter the reorder buffer now. */
  private inWindow(range: { start: number; end: number }): boolean {
    const buffer = this.delivery!.buffer;
    return range.end <= buffer.windowEnd || range.start <= buffer.ackedOffset;
  }

  /** Reads back stored chunks that the reorder window has reached. */
  private readBack(): void {
    if (this.stored.size === this.reading.size) return;
    const manifest = this.manifest!;
    const buffer = this.delivery!.buffer;
    const count = this.scheduler!.pieceCount;
    for (
      let index = Math.floor(buffer.emittedOffset / manifest.chunkSizeBytes);
      index < count;
      index++
    ) {
      const range = chunkRange(manifest, index);
      if (!this.inWindow(range)) break;
      if (!this.stored.has(index) || this.reading.has(index)) continue;
      if (this.reader === undefined) continue;
      const readId = this.reader.read(
        this,
        manifest.contentId,
        index,
        manifest.chunkHashes[index]!,
      );
      this.reads.set(readId, index);
      this.reading.add(index);
    }
  }

  /** The host answered a read-back of a stored chunk. */
  onChunkRead(readId: number, bytes: Uint8Array | undefined, nowMs: number): void {
    const piece = this.reads.get(readId);
    if (piece === undefined) return;
    this.reads.delete(readId);
    this.reading.delete(piece);
    const sourceName = this.stored.get(piece);
    if (this.state !== 'running' || sourceName === undefined) return;
    this.stored.delete(piece);
    this.dirty = true;
    const manifest = this.manifest!;
    if (bytes === undefined || !verifyChunk(this.ctx.crypto, manifest.chunkHashes[piece]!, bytes)) {
      // The host lost or damaged its copy: fetch the chunk again (it is in the window now).
      this.scheduler!.reopen(piece);
      return;
    }
    this.delivery!.add(chunkRange(manifest, piece).start, bytes, sourceName, nowMs);
    this.maybeComplete();
  }

  onData(linkId: number, message: DataMessage, nowMs: number): void {
    const manifestRequest = this.manifestRequest;
    if (manifestRequest?.linkId === linkId && manifestRequest.requestId === message.requestId) {
      if (
        message.offset !== manifestRequest.received ||
        manifestRequest.received + message.bytes.length > MANIFEST_BYTES_MAX
      ) {
        this.ctx.protocolError(linkId, 'manifest DATA out of order or too large', nowMs);
        return;
      }
      manifestRequest.parts.push(message.bytes.slice());
      manifestRequest.received += message.bytes.length;
      return;
    }
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
    const manifestRequest = this.manifestRequest;
    if (manifestRequest?.linkId === linkId && manifestRequest.requestId === message.requestId) {
      this.manifestRequest = undefined;
      this.onManifestStatus(linkId, manifestRequest, message, nowMs);
      return;
    }
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
    const manifest = this.manifest!;
    this.ctx.chunkVerified(manifest, request.piece, verified.bytes);
    const range = chunkRange(manifest, request.piece);
    if (this.inWindow(range) || this.reader === undefined) {
      this.delivery!.add(range.start, verified.bytes, this.ctx.sourceName(linkId), nowMs);
      this.maybeComplete();
    } else {
      this.stored.set(request.piece, this.ctx.sourceName(linkId));
    }
  }

  onLinkClosed(linkId: number, nowMs: number): void {
    this.dirty = true;
    if (this.manifestRequest?.linkId === linkId) this.manifestRequest = undefined;
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
    if (this.manifest === undefined) {
      let retry: number | undefined;
      for (const at of this.manifestRetryAfterMs.values()) {
        if (at > nowMs && (retry === undefined || at < retry)) retry = at;
      }
      return retry;
    }
    let min = this.scheduler?.nextDeadlineMs();
    for (const at of [this.delivery?.nextDeadlineMs(), this.wakeMs]) {
      if (at !== undefined && (min === undefined || at < min)) min = at;
    }
    return min;
  }

  fail(reason: string, detail: string, nowMs: number): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    void nowMs;
    for (const [key, request] of this.requests) {
      const requestId = Number(key.slice(key.indexOf(':') + 1));
      this.ctx.cancelRequest(request.linkId, requestId);
    }
    if (this.manifestRequest !== undefined) {
      this.ctx.cancelRequest(this.manifestRequest.linkId, this.manifestRequest.requestId);
    }
    this.requests.clear();
    this.byAssignment.clear();
    this.stored.clear();
    this.reads.clear();
    this.reading.clear();
    this.manifestRequest = undefined;
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
    for (const piece of this.reading) {
      const range = chunkRange(this.manifest!, piece);
      total += range.end - range.start;
    }
    return total + (this.manifestRequest?.received ?? 0);
  }

  inflightOf(source: SourceId): number {
    return this.scheduler?.inflightOf(source) ?? 0;
  }

  private begin(manifest: Manifest, nowMs: number): void {
    this.manifest = manifest;
    const count = chunkCount(manifest);
    this.scheduler = new PieceScheduler({
      pieceCount: count,
      pieceStart: (index) => Math.min(index * manifest.chunkSizeBytes, manifest.totalBytes),
      mode: 'rarest-first',
      prng: this.ctx.prng.fork(),
      sourcesMax: SWARM_SOURCES_MAX,
      stallFloorMs: this.ctx.settings.stallFloorMs,
      banThreshold: this.ctx.settings.banThreshold,
      queueAllowance: true,
    });
    // No running digest: every chunk was verified against the manifest, whose content ID the
    // host asked for, so a whole-object SHA-256 would be a second pass over every byte.
    this.delivery = new DownloadDelivery(this.ctx, undefined, this.jobId, manifest.totalBytes);
    void nowMs;
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
    const manifest = this.manifest!;
    const range = chunkRange(manifest, piece);
    const chunkHash = manifest.chunkHashes[piece]!;
    this.requests.set(`${linkId}:${requestId}`, {
      piece,
      linkId,
      verifier: new ChunkVerifier(this.ctx.crypto, chunkHash, range.end - range.start),
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

  private requestManifest(nowMs: number): void {
    if (this.manifestRequest !== undefined) return;
    for (const linkId of this.ctx.availability.linksKnowing(this.key)) {
      const peer = this.ctx.links.peer(linkId);
      if (peer === undefined || (peer.capabilities & Capability.serveChunks) === 0) continue;
      if ((this.manifestRetryAfterMs.get(linkId) ?? 0) > nowMs) continue;
      const requestId = this.ctx.openRequest(linkId, this);
      if (requestId === undefined) continue;
      this.manifestRequest = { linkId, requestId, parts: [], received: 0 };
      this.ctx.links.send(linkId, {
        type: 'chunk-request',
        requestId,
        chunkHash: this.contentId,
        priority: 0,
      });
      return;
    }
  }

  private onManifestStatus(
    linkId: number,
    request: ManifestRequest,
    message: StatusMessage,
    nowMs: number,
  ): void {
    if (this.state !== 'running') return;
    if (message.status !== TransferStatus.ok) {
      this.manifestRetryAfterMs.set(linkId, nowMs + 5_000);
      return;
    }
    const bytes = new Uint8Array(request.received);
    let at = 0;
    for (const part of request.parts) {
      bytes.set(part, at);
      at += part.length;
    }
    const decoded = decodeManifest(this.ctx.crypto, bytes, this.contentId);
    if (!decoded.ok) {
      this.ctx.ban(linkId, `manifest rejected: ${decoded.reason}`, nowMs);
      return;
    }
    this.begin(decoded.manifest, nowMs);
  }
}
