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
 *
 * Seeding (a device that holds every chunk of a content): its upload is the swarm's only source
 * of chunks nobody else has, so it sends each chunk out once. A request for a chunk it sent
 * (or is sending) to another link within the last `SEED_HOLD_MS`, which has not announced it
 * yet, is answered `notFound`: the requester skips this device for that chunk for a while and
 * fetches it from that peer once it announces it (requesters never ask a seed for a chunk a
 * usable non-seed holds). Likewise the first request of a link for a chunk this device already
 * sent out and another ready link announced is answered `notFound`: the requester's view was
 * stale (the announcement was still on its way) or it counts peers that finished as seeds too,
 * and it should ask them. This
 * is BitTorrent's super-seeding, decided where the upload is spent. Both refusals are bounded
 * (the hold in time, the second only once per link and chunk), so a peer that got a chunk and
 * went silent, or that the requester cannot use, costs a delay, never the chunk.
 *
 * Upload slots (every serving device, seed or not): chunks go to at most `UPLOAD_SLOTS` links
 * at once (BitTorrent's unchoke slots); a request from another link is answered `busy`, and the
 * requester backs off this device for a moment and asks other holders. Why: a link sends its
 * streams one after another, but the uplink is shared by every link with data queued, so a
 * device serving all of its 31 peers at once sends each chunk at 1/31 of its rate. Every chunk
 * then takes ~10 s to reach anyone (4 MiB at 100 Mbit/s), nobody has anything to pass on, and
 * the swarm waits on the seed (measured, swarm 256 MiB / 31 peers: peers' uplinks idle for the
 * first 10 s and 50-80 % idle after). With a few slots each chunk arrives within a few chunk
 * times and its receiver serves it onward at once. A link holds its slot while a chunk of its
 * is being read or still queued (a requester's pipeline keeps it), for `TURN_BYTES` bytes;
 * past that, when other links were refused lately, its next request is refused too and the
 * slot passes on once its queue drains (rotation, so every peer gets a turn at a seed's rare
 * chunks). Manifest requests need no slot. The slot count does not depend on the rate: a few
 * streams keep any uplink busy, and fewer streams means each arrives sooner. Measured (sim,
 * swarm seed 1, worst / median peer completion over ideal): 256 MiB / 31 peers, 4 MiB chunks:
 * no slots 2.93 / 2.81 (seed upload 1.52x), 4 slots 1.43 / 1.34, 3 slots 1.37 / 1.26, 2 slots
 * 1.31 / 1.21; 64 MiB / 15 peers, 256 KiB chunks: no slots 1.19 / 1.18, 4 slots 1.18 / 1.16,
 * 3 slots 1.20 / 1.16, 2 slots 1.28 / 1.25 (with small chunks two slots leave the uplink idle
 * whenever both holders' queues run dry between requests). Three is the compromise.
 */
import { toHex } from '../bytes.js';
import { verifyChunk } from '../content/chunk-verifier.js';
import { encodeManifest, type Manifest } from '../content/manifest.js';
import { chunkCount, chunkRange } from '../content/layout.js';
import {
  Capability,
  TransferStatus,
  type ChunkRequestMessage,
  type StatusMessage,
} from '../wire/messages.js';
import type { TransferContext } from './transfer-context.js';
import { indicesToRangeGroups } from './availability.js';

/** How long a seed keeps a chunk it sent to one peer from the others (see the header). */
const SEED_HOLD_MS = 10_000;
/** Links that may be sent chunks at once (see the header). */
export const UPLOAD_SLOTS = 3;
/**
 * Bytes a link may take in one turn while other links wait for a slot: one 4 MiB chunk, or
 * several small ones (a turn of one 256 KiB chunk lasts ~20 ms at 100 Mbit/s, too short for
 * refused requesters, who retry after ~0.5 s, to take the slot over without leaving it idle).
 */
export const TURN_BYTES = 4 * 1024 * 1024;
/** How long a link refused for want of a slot counts as waiting (requesters retry in ~0.5 s). */
const WAITING_MS = 1_000;

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
  /**
   * Requests per link whose read is pending or whose DATA may still be queued: request ID ->
   * whether it is a chunk (true) or a manifest (false).
   */
  private readonly serving = new Map<number, Map<number, boolean>>();
  /** Seeding: `${key}:${index}` -> the links it was sent to, and when. */
  private readonly sentTo = new Map<
    string,
    Array<{ linkId: number; requestId: number; atMs: number }>
  >();
  /** Seeding: `${key}:${index}` of every chunk sent out at least once. */
  private readonly sentOnce = new Set<string>();
  /** Seeding: `${linkId}:${key}:${index}` already refused once because another link held it. */
  private readonly referred = new Set<string>();
  /** Upload slots: link -> chunk bytes of its current turn (links holding a slot only). */
  private readonly turns = new Map<number, number>();
  /** Upload slots: link -> when it was last refused for want of a slot. */
  private readonly waiting = new Map<number, number>();

  constructor(
    private readonly ctx: TransferContext,
    /** Read IDs come from the engine, which shares them with content downloads' read-backs. */
    private readonly nextReadId: () => number = counter(),
  ) {}

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
  onRequest(linkId: number, message: ChunkRequestMessage, nowMs = 0): void {
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
    const active = this.serving.get(linkId) ?? new Map<number, boolean>();
    this.serving.set(linkId, active);
    this.prune(linkId);
    if (active.size >= this.ctx.settings.servingPerLinkMax) {
      answer(TransferStatus.busy, 'serving as many requests as allowed');
      return;
    }
    if (manifestOf !== undefined) {
      manifestOf.manifestBytes ??= encodeManifest(manifestOf.manifest);
      const bytes = manifestOf.manifestBytes;
      active.set(message.requestId, false);
      link.queueStream(message.requestId, bytes, 0);
      link.sendAfterData(
        message.requestId,
        status_(message.requestId, TransferStatus.ok, bytes.length, ''),
      );
      return;
    }
    const { key, index } = chunk!;
    if (this.sentElsewhere(key, index, linkId, nowMs)) {
      answer(TransferStatus.notFound, 'seeding: this chunk went to another peer; ask it');
      return;
    }
    if (this.heldElsewhere(key, index, linkId)) {
      answer(TransferStatus.notFound, 'seeding: another peer announced this chunk; ask it');
      return;
    }
    const range = chunkRange(this.contents.get(key)!.manifest, index);
    if (!this.takeSlot(linkId, range.end - range.start, nowMs)) {
      answer(TransferStatus.busy, 'all upload slots taken; ask another peer or retry');
      return;
    }
    const readId = this.nextReadId();
    active.set(message.requestId, true);
    if (this.seeds(key)) {
      const chunkKey = `${key}:${index}`;
      const sent = this.sentTo.get(chunkKey) ?? [];
      sent.push({ linkId, requestId: message.requestId, atMs: nowMs });
      this.sentTo.set(chunkKey, sent);
      this.sentOnce.add(chunkKey);
    }
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
    for (const [chunkKey, sent] of this.sentTo) {
      const left = sent.filter((s) => s.linkId !== linkId || s.requestId !== requestId);
      if (left.length === 0) this.sentTo.delete(chunkKey);
      else if (left.length !== sent.length) this.sentTo.set(chunkKey, left);
    }
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
    this.turns.delete(linkId);
    this.waiting.delete(linkId);
    for (const referral of this.referred)
      if (referral.startsWith(`${linkId}:`)) this.referred.delete(referral);
    for (const [readId, read] of this.reads) if (read.linkId === linkId) this.reads.delete(readId);
  }

  /**
   * Whether this device seeds the content, sent chunk `index` out before, another ready link
   * announced it, and `linkId` was not yet referred for this chunk (it is, now).
   */
  private heldElsewhere(key: string, index: number, linkId: number): boolean {
    if (!this.seeds(key) || !this.sentOnce.has(`${key}:${index}`)) return false;
    const referral = `${linkId}:${key}:${index}`;
    if (this.referred.has(referral)) return false;
    for (const other of this.ctx.readyLinkIds()) {
      if (other !== linkId && this.ctx.availability.has(other, key, index)) {
        this.referred.add(referral);
        return true;
      }
    }
    return false;
  }

  /** Whether this device holds every chunk of the content. */
  private seeds(key: string): boolean {
    const content = this.contents.get(key);
    return content !== undefined && content.held.size === chunkCount(content.manifest);
  }

  /**
   * Whether this device seeds the content and sent chunk `index` to a link other than `linkId`
   * that is still ready, has not announced the chunk, and got it less than `SEED_HOLD_MS` ago.
   * Entries that no longer hold are dropped as they are found.
   */
  private sentElsewhere(key: string, index: number, linkId: number, nowMs: number): boolean {
    if (!this.seeds(key)) return false;
    const chunkKey = `${key}:${index}`;
    const sent = this.sentTo.get(chunkKey);
    if (sent === undefined) return false;
    const holding = sent.filter(
      (s) =>
        nowMs - s.atMs < SEED_HOLD_MS &&
        this.ctx.readyLink(s.linkId) !== undefined &&
        !this.ctx.availability.has(s.linkId, key, index),
    );
    if (holding.length === 0) this.sentTo.delete(chunkKey);
    else this.sentTo.set(chunkKey, holding);
    return holding.some((s) => s.linkId !== linkId);
  }

  /**
   * Whether `linkId` may be sent a chunk of `byteCount` bytes now (upload slots, see the
   * header); counts it against the link's turn if so, and notes the link as waiting if not.
   */
  private takeSlot(linkId: number, byteCount: number, nowMs: number): boolean {
    const turn = this.turns.get(linkId);
    if (turn !== undefined && this.holdsSlot(linkId)) {
      if (turn < TURN_BYTES || !this.othersWaiting(linkId, nowMs)) {
        this.turns.set(linkId, turn + byteCount);
        return true;
      }
      this.waiting.set(linkId, nowMs);
      return false;
    }
    this.turns.delete(linkId);
    let used = 0;
    for (const other of this.turns.keys()) {
      this.prune(other);
      if (this.holdsSlot(other)) used++;
      else this.turns.delete(other);
    }
    if (used >= UPLOAD_SLOTS) {
      this.waiting.set(linkId, nowMs);
      return false;
    }
    this.waiting.delete(linkId);
    this.turns.set(linkId, byteCount);
    return true;
  }

  /** Whether a chunk for `linkId` is being read or still queued (it holds a slot). */
  private holdsSlot(linkId: number): boolean {
    const active = this.serving.get(linkId);
    if (active === undefined || !this.turns.has(linkId)) return false;
    for (const isChunk of active.values()) if (isChunk) return true;
    return false;
  }

  /** Whether a link other than `linkId` was refused a slot within `WAITING_MS`. */
  private othersWaiting(linkId: number, nowMs: number): boolean {
    for (const [other, atMs] of this.waiting) {
      if (nowMs - atMs >= WAITING_MS || this.ctx.readyLink(other) === undefined)
        this.waiting.delete(other);
      else if (other !== linkId) return true;
    }
    return false;
  }

  /** Forgets `linkId`'s requests whose DATA and STATUS have been handed out. */
  private prune(linkId: number): void {
    const active = this.serving.get(linkId);
    const link = this.ctx.readyLink(linkId);
    if (active === undefined) return;
    for (const id of active.keys()) {
      if (link === undefined || (!this.isReading(linkId, id) && !link.isStreamQueued(id)))
        active.delete(id);
    }
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

function counter(): () => number {
  let next = 1;
  return () => next++;
}

function status_(
  requestId: number,
  status: TransferStatus,
  length: number,
  message: string,
): StatusMessage {
  return { type: 'status', requestId, status, length, message };
}
