/**
 * Downloading a content by ID from peers (docs/protocol.md 7.2).
 *
 * Phases:
 * 1. **Manifest.** Given by the host, or requested from a peer that announced chunks of the
 *    content: CHUNK_REQUEST whose `chunkHash` is the content ID. The answer is accepted only if
 *    `decodeManifest(bytes, contentId)` succeeds, so a peer cannot substitute another manifest;
 *    a peer whose manifest does not hash to the ID is banned (that mismatch is certain).
 * 2. **Chunks.** A `PieceScheduler` in rarest-first mode assigns chunks to ready links that
 *    announced them (seeds, which announced every chunk, last). Each request gets its own
 *    `ChunkVerifier`; DATA goes into it, and only a verified chunk reaches `store-chunk`, the
 *    chunk server (so this device serves it onward at once) and the reorder buffer. A chunk
 *    that fails its hash is discarded: verdict STATUS(checksumMismatch) to the sender, one
 *    strike, the chunk reassigned; three strikes ban the sender.
 *
 * Offsets out of order, data past the chunk, or a STATUS(ok) whose length is not the bytes
 * received are protocol errors (the link closes; its work is reassigned). With no usable
 * source the download waits: it never fails for lack of peers.
 */
import { toHex } from '../bytes.js';
import { ChunkVerifier } from '../content/chunk-verifier.js';
import { chunkCount, chunkRange } from '../content/layout.js';
import { decodeManifest, MANIFEST_HEADER_BYTES, type Manifest } from '../content/manifest.js';
import {
  Capability,
  TransferStatus,
  type DataMessage,
  type StatusMessage,
} from '../wire/messages.js';
import { DownloadDelivery } from './download-delivery.js';
import { PieceScheduler, type SourceId } from './scheduler.js';
import type { Download, TransferContext } from './transfer-context.js';

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

export class ContentDownload implements Download {
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

  constructor(
    private readonly ctx: TransferContext,
    readonly downloadId: number,
    readonly priority: number,
    private readonly contentId: Uint8Array,
    manifest: Manifest | undefined,
    nowMs: number,
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
    const count = scheduler.pieceCount;
    for (const linkId of this.ctx.readyLinkIds()) {
      const link = this.ctx.readyLink(linkId)!;
      if ((link.remote!.capabilities & Capability.serveChunks) === 0) continue;
      if (!this.ctx.availability.knows(linkId, this.key)) continue;
      const held = this.ctx.availability.countBelow(linkId, this.key, count);
      scheduler.upsertSource(linkId, { isSeed: held === count, rttMs: link.rttMs ?? 0 });
    }
    const assignments = scheduler.assign(nowMs, {
      windowEndBytes: this.delivery!.buffer.windowEnd,
      windowStartBytes: this.delivery!.buffer.ackedOffset,
      canServe: (source, piece) =>
        source >= 0 && this.ctx.availability.has(source, this.key, piece),
      holders: (piece) => this.ctx.availability.holders(this.key, piece).length,
      otherLoad: (source) => this.ctx.otherLoad(this.downloadId, source),
    });
    for (const { piece, source } of assignments) this.sendRequest(piece, source, nowMs);
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
      this.ctx.readyLink(linkId)?.sendAfterData(message.requestId, {
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
    this.delivery!.add(range.start, verified.bytes, this.ctx.sourceName(linkId), nowMs);
    this.maybeComplete();
  }

  onLinkClosed(linkId: number, nowMs: number): void {
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
    this.delivery?.onTimer(nowMs);
    const scheduler = this.scheduler;
    if (scheduler === undefined) return;
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
    const a = this.scheduler?.nextDeadlineMs(nowMs);
    const b = this.delivery?.nextDeadlineMs();
    if (a === undefined) return b;
    if (b === undefined) return a;
    return Math.min(a, b);
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
    this.manifestRequest = undefined;
    this.ctx.event({ type: 'download:failed', downloadId: this.downloadId, reason, detail });
  }

  acknowledge(byteCount: number): void {
    this.delivery?.buffer.acknowledge(byteCount);
  }

  memoryBytes(): number {
    let total = this.delivery?.buffer.heldBytes ?? 0;
    for (const request of this.requests.values()) {
      if (request.verifier.receivedBytes > 0) total += request.verifier.expectedLength;
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
      stallFloorMs: this.ctx.settings.stallFloorMs,
      banThreshold: this.ctx.settings.banThreshold,
    });
    this.delivery = new DownloadDelivery(
      this.ctx,
      this.ctx.crypto,
      this.downloadId,
      manifest.totalBytes,
    );
    void nowMs;
    this.maybeComplete();
  }

  private maybeComplete(): void {
    const delivery = this.delivery!;
    if (this.state !== 'running' || !delivery.finished) return;
    this.state = 'done';
    this.ctx.event({
      type: 'download:complete',
      downloadId: this.downloadId,
      totalBytes: delivery.totalBytes,
      sha256: delivery.buffer.digest(),
    });
  }

  private sendRequest(piece: number, linkId: number, nowMs: number): void {
    const requestId = this.ctx.openRequest(linkId, this);
    const link = this.ctx.readyLink(linkId);
    if (requestId === undefined || link === undefined) {
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
    link.sendControl({
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
      const link = this.ctx.readyLink(linkId);
      if (link === undefined || (link.remote!.capabilities & Capability.serveChunks) === 0)
        continue;
      if ((this.manifestRetryAfterMs.get(linkId) ?? 0) > nowMs) continue;
      const requestId = this.ctx.openRequest(linkId, this);
      if (requestId === undefined) continue;
      this.manifestRequest = { linkId, requestId, parts: [], received: 0 };
      link.sendControl({
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
