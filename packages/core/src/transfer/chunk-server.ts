/**
 * The serving side of chunk requests (docs/protocol.md 7.2). It knows which chunks of which
 * contents the host's store holds (from `content-available` and from chunks this core verified
 * while downloading), answers CHUNK_REQUEST by asking the host to `read-chunk`, checks the
 * stored copy against the hash (DESIGN.md decision 6: nothing corrupt is ever served), then
 * streams it as DATA followed by STATUS(ok).
 *
 * A CHUNK_REQUEST whose `chunkHash` is a held content's *ID* asks for that content's manifest:
 * the answer is `encodeManifest(manifest)` as DATA (docs/protocol.md 7.2, "Manifests by
 * request").
 *
 * Limits: at most `servingPerLinkMax` requests per link are being read or have DATA queued at
 * once; the next one is answered `busy`. Answers: `error` when this device does not serve
 * chunks, `notFound` when it does not hold the chunk, `checksumMismatch` when its copy is
 * corrupt (the copy is then forgotten and a CHUNK_REMOVE sent).
 */
import { toHex } from '../bytes.js';
import { verifyChunk } from '../content/chunk-verifier.js';
import { encodeManifest, type Manifest } from '../content/manifest.js';
import { chunkCount } from '../content/layout.js';
import {
  Capability,
  TransferStatus,
  type ChunkRequestMessage,
  type StatusMessage,
} from '../wire/messages.js';
import type { TransferContext } from './transfer-context.js';
import { indicesToRangeGroups } from './availability.js';

interface HeldContent {
  readonly manifest: Manifest;
  readonly held: Set<number>;
  manifestBytes: Uint8Array | undefined;
}

interface PendingRead {
  readonly linkId: number;
  readonly requestId: number;
  readonly chunkHash: Uint8Array;
  readonly key: string;
  readonly index: number;
}

export class ChunkServer {
  private readonly contents = new Map<string, HeldContent>();
  /** chunk hash (hex) -> where it is held. */
  private readonly byHash = new Map<string, { key: string; index: number }>();
  private readonly reads = new Map<number, PendingRead>();
  /** Requests per link whose read is pending or whose DATA may still be queued. */
  private readonly serving = new Map<number, Set<number>>();
  private nextReadId = 1;

  constructor(private readonly ctx: TransferContext) {}

  /** Records held chunks; returns the indices that are new. */
  addChunks(manifest: Manifest, indices: readonly number[] | undefined): number[] {
    const key = toHex(manifest.contentId);
    let content = this.contents.get(key);
    if (content === undefined) {
      content = { manifest, held: new Set(), manifestBytes: undefined };
      this.contents.set(key, content);
    }
    const count = chunkCount(manifest);
    const all = indices ?? Array.from({ length: count }, (_, i) => i);
    const added: number[] = [];
    for (const index of all) {
      if (!Number.isInteger(index) || index < 0 || index >= count || content.held.has(index))
        continue;
      content.held.add(index);
      this.byHash.set(toHex(manifest.chunkHashes[index]!), { key, index });
      added.push(index);
    }
    return added;
  }

  /** Whether the chunk is held. */
  holds(key: string, index: number): boolean {
    return this.contents.get(key)?.held.has(index) ?? false;
  }

  /** Every held content with its indices, for announcing to a new link. */
  heldContents(): Array<{ contentId: Uint8Array; indices: number[] }> {
    return [...this.contents.values()]
      .filter((c) => c.held.size > 0)
      .map((c) => ({ contentId: c.manifest.contentId, indices: [...c.held] }));
  }

  /** A CHUNK_REQUEST arrived (parity already checked by the engine). */
  onRequest(linkId: number, message: ChunkRequestMessage): void {
    const link = this.ctx.readyLink(linkId);
    if (link === undefined) return;
    const answer = (status: TransferStatus, detail: string): void =>
      link.sendAfterData(message.requestId, status_(message.requestId, status, 0, detail));
    if ((this.ctx.settings.capabilities & Capability.serveChunks) === 0) {
      answer(TransferStatus.error, 'this device does not serve chunks');
      return;
    }
    const hashKey = toHex(message.chunkHash);
    const manifestOf = this.contents.get(hashKey);
    const chunk = this.byHash.get(hashKey);
    if (manifestOf === undefined && chunk === undefined) {
      answer(TransferStatus.notFound, 'no verified copy');
      return;
    }
    const active = this.serving.get(linkId) ?? new Set<number>();
    this.serving.set(linkId, active);
    // Requests whose DATA and STATUS have been handed out no longer count.
    for (const id of active) {
      if (!this.isReading(linkId, id) && !link.isStreamQueued(id)) active.delete(id);
    }
    if (active.size >= this.ctx.settings.servingPerLinkMax) {
      answer(TransferStatus.busy, 'serving as many requests as allowed');
      return;
    }
    if (manifestOf !== undefined) {
      manifestOf.manifestBytes ??= encodeManifest(manifestOf.manifest);
      const bytes = manifestOf.manifestBytes;
      active.add(message.requestId);
      link.queueStream(message.requestId, bytes, 0);
      link.sendAfterData(
        message.requestId,
        status_(message.requestId, TransferStatus.ok, bytes.length, ''),
      );
      return;
    }
    const readId = this.nextReadId++;
    const { key, index } = chunk!;
    active.add(message.requestId);
    this.reads.set(readId, {
      linkId,
      requestId: message.requestId,
      chunkHash: message.chunkHash,
      key,
      index,
    });
    this.ctx.output({
      type: 'read-chunk',
      readId,
      contentId: this.contents.get(key)!.manifest.contentId,
      chunkIndex: index,
      chunkHash: message.chunkHash,
    });
  }

  /** The host answered a `read-chunk`. Unknown read IDs are ignored (the request ended). */
  onChunkRead(readId: number, bytes: Uint8Array | undefined): void {
    const read = this.reads.get(readId);
    if (read === undefined) return;
    this.reads.delete(readId);
    const link = this.ctx.readyLink(read.linkId);
    const active = this.serving.get(read.linkId);
    if (link === undefined || active === undefined || !active.has(read.requestId)) return;
    if (bytes === undefined || !verifyChunk(this.ctx.crypto, read.chunkHash, bytes)) {
      active.delete(read.requestId);
      const status =
        bytes === undefined ? TransferStatus.notFound : TransferStatus.checksumMismatch;
      this.forget(read.key, read.index);
      link.sendAfterData(
        read.requestId,
        status_(read.requestId, status, 0, 'stored copy unavailable'),
      );
      return;
    }
    link.queueStream(read.requestId, bytes, 0);
    link.sendAfterData(
      read.requestId,
      status_(read.requestId, TransferStatus.ok, bytes.length, ''),
    );
  }

  /**
   * The requester sent CANCEL. Returns true if this module served the request. Stops the read
   * or the queued DATA and answers STATUS(cancelled); a request already fully sent is ignored.
   */
  onCancel(linkId: number, requestId: number): boolean {
    const active = this.serving.get(linkId);
    if (active === undefined || !active.has(requestId)) return false;
    active.delete(requestId);
    const link = this.ctx.readyLink(linkId);
    if (link === undefined) return true;
    let wasReading = false;
    for (const [readId, read] of this.reads) {
      if (read.linkId === linkId && read.requestId === requestId) {
        this.reads.delete(readId);
        wasReading = true;
      }
    }
    const dropped = link.dropStream(requestId);
    if (wasReading || dropped.dropped) {
      link.sendAfterData(
        requestId,
        status_(requestId, TransferStatus.cancelled, dropped.sentBytes, ''),
      );
    }
    return true;
  }

  /** A requester's verdict on a chunk we served (checksumMismatch): nothing to do but log. */
  onVerdict(_linkId: number, _message: StatusMessage): void {
    // The stored copy was checked against its hash just before serving, so a mismatch verdict
    // means the requester or the link is at fault; there is nothing to re-check here.
  }

  onLinkClosed(linkId: number): void {
    this.serving.delete(linkId);
    for (const [readId, read] of this.reads) if (read.linkId === linkId) this.reads.delete(readId);
  }

  private isReading(linkId: number, requestId: number): boolean {
    for (const read of this.reads.values()) {
      if (read.linkId === linkId && read.requestId === requestId) return true;
    }
    return false;
  }

  private forget(key: string, index: number): void {
    const content = this.contents.get(key);
    if (content === undefined || !content.held.delete(index)) return;
    this.byHash.delete(toHex(content.manifest.chunkHashes[index]!));
    for (const linkId of this.ctx.readyLinkIds()) {
      const link = this.ctx.readyLink(linkId)!;
      for (const ranges of indicesToRangeGroups([index])) {
        link.sendControl({ type: 'chunk-remove', contentId: content.manifest.contentId, ranges });
      }
    }
  }
}

function status_(
  requestId: number,
  status: TransferStatus,
  length: number,
  message: string,
): StatusMessage {
  return { type: 'status', requestId, status, length, message };
}
