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
 * Limits: at most `servingPerLinkMax` requests per link wait, are being read or have DATA
 * queued at once; the next one is answered `busy`. Answers: `error` when this device does not
 * serve chunks, `notFound` when it does not hold the chunk, `checksumMismatch` when its copy is
 * corrupt (the copy is then forgotten and a CHUNK_REMOVE sent). `removeChunks` (the host's
 * `content-removed`) sends its CHUNK_REMOVE as merged ranges, not one message per chunk.
 *
 * Test fault (`settings.corruptServedChunks`, CoreOptions.testFaults): every chunk is served
 * with one byte flipped, after the stored copy passed its check, so a real Core acts as a lying
 * peer and the requester's verification is what catches it.
 *
 * Seeding (a device that holds every chunk of a content): its upload is the swarm's only source
 * of chunks nobody else has, so while that upload has other chunks to send (a job for another
 * chunk is being sent or waits) it sends each chunk out once. An upload with nothing else to do
 * sends a chunk again at once: the copy waits behind the first one at most, no longer than a
 * relay still receiving it would take, and delays nothing others lack (bench:cluster, a 4-node
 * cluster whose owner fills at 200 Mbit/s on a 1 Gbit/s LAN: members trailed the owner by up
 * to 0.8 s when every second copy was referred to a relay, by about 0.1 s now). Then a request
 * for a chunk it sent (or is sending) to another link within the last `SEED_HOLD_MS`, which has
 * not announced it yet, is answered `notFound`: the requester skips this device for that chunk
 * for a while and fetches it from that peer once it announces it (requesters never ask a seed
 * for a chunk a usable non-seed holds). Likewise the first request of a link for a chunk this device already
 * sent out and another ready link announced is answered `notFound`: the requester's view was
 * stale (the announcement was still on its way) or it counts peers that finished as seeds too,
 * and it should ask them. This
 * is BitTorrent's super-seeding, decided where the upload is spent. Both refusals are bounded
 * (the hold in time, the second only once per link and chunk), so a peer that got a chunk and
 * went silent, or that the requester cannot use, costs a delay, never the chunk.
 *
 * Upload queue (every serving device, seed or not; upload-queue.ts): `UPLOAD_SLOTS` (one)
 * chunk is sent at a time, at the full rate of the uplink; accepted requests beyond it wait
 * (up to `UPLOAD_WAITING_BYTES`), links this device is not sending to and peers holding the
 * fewest chunks first; the rest are refused `busy` (the requester backs off this device for a
 * moment and asks other holders). Why: a link sends its streams one after another, but the
 * uplink is shared by every link with data queued, so a device serving all of its 31 peers at
 * once sends each chunk at 1/31 of its rate; every chunk then takes ~10 s to reach anyone
 * (4 MiB at 100 Mbit/s), nobody has anything to pass on, and the swarm waits on the seed. Sent
 * one at a time, each chunk arrives after one chunk time and its receiver serves it onward at
 * once. Measured (sim, swarm seed 1, 1 seed + 31 peers, worst peer over the ideal): 3 links at a
 * time with 4 MiB turns (the previous design) 1 GiB 1.17, 256 MiB 1.36; this queue 1 GiB
 * 1.05, 256 MiB 1.20. Manifest requests need no slot.
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
import { UploadQueue, type UploadJob } from './upload-queue.js';

/** How long a seed keeps a chunk it sent to one peer from the others (see the header). */
const SEED_HOLD_MS = 10_000;
/** Chunks sent at once (see the header). */
export const UPLOAD_SLOTS = 1;
/** Bytes of accepted requests that may wait for a slot (see the header). */
export const UPLOAD_WAITING_BYTES = 16 * 1024 * 1024;
/**
 * A chunk being sent over a link that flushed nothing for this long (its receiver stopped
 * reading) gives its slot to the next job; it goes on if the link drains again.
 */
export const SEND_STALL_MS = 1_000;
/**
 * A request that waited this long while later, better-ranked arrivals went first is refused
 * `busy` (its requester asks elsewhere), below the requesters' 5 s stall floor, so it cannot be
 * kept waiting for good.
 */
export const UPLOAD_WAIT_MAX_MS = 3_000;
/** Chunks sent to a link and not yet announced by it that are remembered for ranking. */
const UNANNOUNCED_PER_LINK_MAX = 64;

interface HeldContent {
  readonly manifest: Manifest;
  readonly held: Set<number>;
  manifestBytes: Uint8Array | undefined;
}

interface ChunkJob extends UploadJob {
  readonly chunkHash: Uint8Array;
  readonly key: string;
  readonly index: number;
  /** When it was accepted. */
  readonly acceptedAtMs: number;
  /** When its DATA was queued (undefined while it waits or is read). */
  queuedAtMs: number | undefined;
}

export class ChunkServer {
  private readonly contents = new Map<string, HeldContent>();
  /** chunk hash (hex) -> where it is held. */
  private readonly byHash = new Map<string, { key: string; index: number }>();
  private readonly reads = new Map<number, ChunkJob>();
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
  private readonly uploads = new UploadQueue<ChunkJob>(
    UPLOAD_SLOTS,
    UPLOAD_WAITING_BYTES,
    (job) =>
      this.isReading(job.linkId, job.requestId) ||
      (this.ctx.links.isQueued(job.linkId, job.requestId) &&
        this.nowMs < this.sendStallDeadlineMs(job)),
    (job) => this.holdingSoon(job.linkId, job.key),
    (n) => this.ctx.prng.nextInt(n),
  );
  /** link -> when it last reported bytes flushed. */
  private readonly lastFlushMs = new Map<number, number>();
  /** The latest time seen (the upload queue's stall check). */
  private nowMs = 0;
  /** link -> chunks whose sending started and that the link has not announced yet. */
  private readonly unannounced = new Map<number, Array<{ key: string; index: number }>>();
  /**
   * The verified bytes of the chunk read last, kept while a job of that chunk is being sent or
   * waits (`dropLastReadWhenDone`): a seed sending one chunk to several peers reads it (and the
   * host hashes it) once. At most one chunk is held.
   */
  private lastRead: { key: string; index: number; bytes: Uint8Array } | undefined;

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

  /**
   * The host dropped these chunks (all when `indices` is absent): they are no longer served,
   * and CHUNK_REMOVE goes to every ready link. Returns true when nothing of the content is
   * held any more (it is then forgotten, manifest included).
   */
  removeChunks(contentId: Uint8Array, indices: readonly number[] | undefined): boolean {
    const key = toHex(contentId);
    const content = this.contents.get(key);
    if (content === undefined) return true;
    const removed = (indices ?? [...content.held]).filter((index) => this.forget(key, index));
    this.sendRemove(content.manifest.contentId, removed);
    if (content.held.size > 0) return false;
    this.contents.delete(key);
    return true;
  }

  /** Whether any chunk of the content is held. */
  holdsAnyChunk(contentId: Uint8Array): boolean {
    return (this.contents.get(toHex(contentId))?.held.size ?? 0) > 0;
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
    const links = this.ctx.links;
    if (links.peer(linkId) === undefined) return;
    const answer = (status: TransferStatus, detail: string): void => {
      links.send(linkId, statusMessage(message.requestId, status, 0, detail));
    };
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
      links.stream(linkId, message.requestId, bytes, 0);
      links.send(linkId, statusMessage(message.requestId, TransferStatus.ok, bytes.length, ''));
      return;
    }
    const { key, index } = chunk!;
    const uploadNeeded = this.uploadBusyElsewhere(key, index);
    if (uploadNeeded && this.sentElsewhere(key, index, linkId, nowMs)) {
      answer(TransferStatus.notFound, 'seeding: this chunk went to another peer; ask it');
      return;
    }
    if (uploadNeeded && this.heldElsewhere(key, index, linkId)) {
      answer(TransferStatus.notFound, 'seeding: another peer announced this chunk; ask it');
      return;
    }
    const range = chunkRange(this.contents.get(key)!.manifest, index);
    const job: ChunkJob = {
      linkId,
      requestId: message.requestId,
      byteCount: range.end - range.start,
      chunkHash: message.chunkHash,
      key,
      index,
      acceptedAtMs: nowMs,
      queuedAtMs: undefined,
    };
    this.nowMs = Math.max(this.nowMs, nowMs);
    const offer = this.uploads.offer(job);
    if (offer.kind === 'busy') {
      answer(TransferStatus.busy, 'upload queue full; ask another peer or retry');
      return;
    }
    if (offer.kind === 'wait') for (const other of offer.displaced) this.refuseWaiting(other);
    active.set(message.requestId, true);
    if (this.seeds(key)) {
      const chunkKey = `${key}:${index}`;
      const sent = this.sentTo.get(chunkKey) ?? [];
      sent.push({ linkId, requestId: message.requestId, atMs: nowMs });
      this.sentTo.set(chunkKey, sent);
      this.sentOnce.add(chunkKey);
    }
    if (offer.kind === 'start') this.startRead(job);
    else this.pump();
  }

  /** A waiting job lost its place, or waited too long: it is refused `busy`. */
  private refuseWaiting(job: ChunkJob): void {
    this.serving.get(job.linkId)?.delete(job.requestId);
    this.forgetSent(job.linkId, job.requestId);
    this.ctx.links.send(
      job.linkId,
      statusMessage(job.requestId, TransferStatus.busy, 0, 'upload queue full; ask another peer'),
    );
  }

  /** Seeding: the chunk of this request did not go out after all. */
  private forgetSent(linkId: number, requestId: number): void {
    for (const [chunkKey, sent] of this.sentTo) {
      const left = sent.filter((s) => s.linkId !== linkId || s.requestId !== requestId);
      if (left.length === 0) this.sentTo.delete(chunkKey);
      else if (left.length !== sent.length) this.sentTo.set(chunkKey, left);
    }
  }

  /** A link's bytes were flushed: it is draining, and a sending job may have ended. */
  onFlushed(linkId: number, nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    // A write callback may come after the link is gone: remember only live links.
    if (this.ctx.links.peer(linkId) !== undefined) this.lastFlushMs.set(linkId, nowMs);
    this.pump();
  }

  onTimer(nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    this.pump();
  }

  /**
   * When the upload queue must look again, if jobs wait: a sending job's link will count as
   * stalled, or a waiting job will have waited too long.
   */
  nextDeadlineMs(): number | undefined {
    if (this.uploads.waitingCount === 0) return undefined;
    let min: number | undefined;
    for (const job of this.uploads.waitingJobs) {
      const at = this.waitDeadlineMs(job);
      if (at !== undefined && (min === undefined || at < min)) min = at;
    }
    for (const job of this.uploads.sendingJobs) {
      if (job.queuedAtMs === undefined) continue;
      const at = this.sendStallDeadlineMs(job);
      if (min === undefined || at < min) min = at;
    }
    return min;
  }

  /** When a waiting job is refused for waiting too long: only once later arrivals passed it. */
  private waitDeadlineMs(job: ChunkJob): number | undefined {
    return this.uploads.wasPassedOver(job) ? job.acceptedAtMs + UPLOAD_WAIT_MAX_MS : undefined;
  }

  private sendStallDeadlineMs(job: ChunkJob): number {
    const since = Math.max(job.queuedAtMs ?? this.nowMs, this.lastFlushMs.get(job.linkId) ?? 0);
    return since + SEND_STALL_MS;
  }

  /**
   * Starts the waiting chunk jobs whose turn came, and refuses those that waited too long: after
   * a flush (a sending job may have had its last frame cut), a timer (a sending job's link may
   * have stalled, or a job waited too long), or a job that ended early.
   */
  private pump(): void {
    this.dropLastReadWhenDone();
    // Called on every flush: nothing to do unless jobs wait.
    if (this.uploads.waitingCount === 0) return;
    for (const job of [...this.uploads.waitingJobs]) {
      const deadline = this.waitDeadlineMs(job);
      if (deadline === undefined || this.nowMs < deadline) continue;
      this.uploads.remove(job.linkId, job.requestId);
      this.refuseWaiting(job);
    }
    for (const job of this.uploads.next()) {
      if (this.serving.get(job.linkId)?.has(job.requestId) !== true) continue;
      this.startRead(job);
    }
  }

  /**
   * Chunks of `key` the link holds or will soon: announced, or being sent by this device and
   * not announced yet (the upload queue serves links that hold the fewest first).
   */
  private holdingSoon(linkId: number, key: string): number {
    const availability = this.ctx.availability;
    let soon = 0;
    const started = this.unannounced.get(linkId);
    if (started !== undefined) {
      const left = started.filter((c) => !availability.has(linkId, c.key, c.index));
      if (left.length === 0) this.unannounced.delete(linkId);
      else this.unannounced.set(linkId, left);
      for (const chunk of left) if (chunk.key === key) soon++;
    }
    return availability.heldCount(linkId, key) + soon;
  }

  private startRead(job: ChunkJob): void {
    const started = this.unannounced.get(job.linkId) ?? [];
    started.push({ key: job.key, index: job.index });
    // A requester that never announces must not grow this without bound.
    if (started.length > UNANNOUNCED_PER_LINK_MAX) started.shift();
    this.unannounced.set(job.linkId, started);
    const readId = this.nextReadId();
    this.reads.set(readId, job);
    const last = this.lastRead;
    if (last !== undefined && last.key === job.key && last.index === job.index) {
      this.onChunkRead(readId, last.bytes, true, this.nowMs);
      return;
    }
    this.ctx.output({
      type: 'read-chunk',
      readId,
      contentId: this.contents.get(job.key)!.manifest.contentId,
      chunkIndex: job.index,
      chunkHash: job.chunkHash,
    });
  }

  /**
   * The host answered a `read-chunk` (`verified`: it checked the bytes against the hash itself).
   * Unknown read IDs are ignored (the request ended).
   */
  onChunkRead(
    readId: number,
    bytes: Uint8Array | undefined,
    verified: boolean,
    nowMs: number,
  ): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    const read = this.reads.get(readId);
    if (read === undefined) return;
    this.reads.delete(readId);
    const links = this.ctx.links;
    const active = this.serving.get(read.linkId);
    if (
      links.peer(read.linkId) === undefined ||
      active === undefined ||
      !active.has(read.requestId)
    )
      return;
    if (
      bytes === undefined ||
      (!verified && !verifyChunk(this.ctx.crypto, read.chunkHash, bytes))
    ) {
      active.delete(read.requestId);
      this.uploads.remove(read.linkId, read.requestId);
      if (this.lastRead?.key === read.key && this.lastRead.index === read.index)
        this.lastRead = undefined;
      this.pump();
      const status =
        bytes === undefined ? TransferStatus.notFound : TransferStatus.checksumMismatch;
      if (this.forget(read.key, read.index)) {
        this.sendRemove(this.contents.get(read.key)!.manifest.contentId, [read.index]);
      }
      links.send(read.linkId, statusMessage(read.requestId, status, 0, 'stored copy unavailable'));
      return;
    }
    this.lastRead = { key: read.key, index: read.index, bytes };
    const served = this.ctx.settings.corruptServedChunks ? corrupted(bytes) : bytes;
    links.stream(read.linkId, read.requestId, served, 0);
    read.queuedAtMs = nowMs;
    links.send(read.linkId, statusMessage(read.requestId, TransferStatus.ok, bytes.length, ''));
  }

  /**
   * The requester sent CANCEL. Returns true if this module served the request. Drops it from
   * the upload queue, stops the read or the queued DATA, and answers STATUS(cancelled); a
   * request already fully sent is ignored.
   */
  onCancel(linkId: number, requestId: number, nowMs: number): boolean {
    this.nowMs = Math.max(this.nowMs, nowMs);
    const active = this.serving.get(linkId);
    if (active === undefined || !active.has(requestId)) return false;
    active.delete(requestId);
    this.forgetSent(linkId, requestId);
    const wasWaiting = this.uploads.remove(linkId, requestId);
    this.pump();
    const links = this.ctx.links;
    if (links.peer(linkId) === undefined) return true;
    let wasReading = false;
    for (const [readId, read] of this.reads) {
      if (read.linkId === linkId && read.requestId === requestId) {
        this.reads.delete(readId);
        wasReading = true;
      }
    }
    const dropped = links.drop(linkId, requestId);
    if (wasWaiting || wasReading || dropped.dropped) {
      links.send(linkId, statusMessage(requestId, TransferStatus.cancelled, dropped.sentBytes, ''));
    }
    return true;
  }

  onLinkClosed(linkId: number, nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    this.serving.delete(linkId);
    this.uploads.dropLink(linkId);
    this.unannounced.delete(linkId);
    this.lastFlushMs.delete(linkId);
    for (const referral of this.referred)
      if (referral.startsWith(`${linkId}:`)) this.referred.delete(referral);
    for (const [readId, read] of this.reads) if (read.linkId === linkId) this.reads.delete(readId);
    this.pump();
  }

  /**
   * Whether this device seeds the content, sent chunk `index` out before, another ready link
   * announced it, and `linkId` was not yet referred for this chunk (it is, now).
   */
  private heldElsewhere(key: string, index: number, linkId: number): boolean {
    if (!this.seeds(key) || !this.sentOnce.has(`${key}:${index}`)) return false;
    const referral = `${linkId}:${key}:${index}`;
    if (this.referred.has(referral)) return false;
    for (const other of this.ctx.links.ready()) {
      if (other !== linkId && this.ctx.availability.has(other, key, index)) {
        this.referred.add(referral);
        return true;
      }
    }
    return false;
  }

  /**
   * Whether the upload is sending or holding requests for chunks other than `index` of `key`.
   * Only then does sending this chunk again delay one that others may not have; an upload with
   * nothing else to do sends it at once, sooner than a peer still receiving it could.
   */
  private uploadBusyElsewhere(key: string, index: number): boolean {
    return this.uploadHas((job) => job.key !== key || job.index !== index);
  }

  /** Whether a job being sent or waiting matches. */
  private uploadHas(match: (job: ChunkJob) => boolean): boolean {
    return this.uploads.sendingJobs.some(match) || this.uploads.waitingJobs.some(match);
  }

  /**
   * Lets the last read go once no job of its chunk is being sent or waits: while one is, its
   * bytes are held for that job anyway, and a request for the same chunk arriving meanwhile
   * (peers asking a seed for a new chunk at about the same time) is sent from them.
   */
  private dropLastReadWhenDone(): void {
    const last = this.lastRead;
    if (last === undefined) return;
    if (!this.uploadHas((job) => job.key === last.key && job.index === last.index))
      this.lastRead = undefined;
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
        this.ctx.links.peer(s.linkId) !== undefined &&
        !this.ctx.availability.has(s.linkId, key, index),
    );
    if (holding.length === 0) this.sentTo.delete(chunkKey);
    else this.sentTo.set(chunkKey, holding);
    return holding.some((s) => s.linkId !== linkId);
  }

  /** Forgets `linkId`'s requests whose DATA and STATUS have been handed out. */
  private prune(linkId: number): void {
    const active = this.serving.get(linkId);
    const links = this.ctx.links;
    if (active === undefined) return;
    const ready = links.peer(linkId) !== undefined;
    for (const id of active.keys()) {
      if (
        !ready ||
        (!this.isReading(linkId, id) &&
          !links.isQueued(linkId, id) &&
          !this.uploads.isWaiting(linkId, id))
      )
        active.delete(id);
    }
  }

  private isReading(linkId: number, requestId: number): boolean {
    for (const read of this.reads.values()) {
      if (read.linkId === linkId && read.requestId === requestId) return true;
    }
    return false;
  }

  /** Stops serving a chunk; returns whether it was held. The caller sends CHUNK_REMOVE. */
  private forget(key: string, index: number): boolean {
    const content = this.contents.get(key);
    if (content === undefined || !content.held.delete(index)) return false;
    this.byHash.delete(toHex(content.manifest.chunkHashes[index]!));
    if (this.lastRead?.key === key && this.lastRead.index === index) this.lastRead = undefined;
    return true;
  }

  /** CHUNK_REMOVE of `indices` to every ready link, as merged ranges (few messages). */
  private sendRemove(contentId: Uint8Array, indices: readonly number[]): void {
    if (indices.length === 0) return;
    const groups = indicesToRangeGroups(indices);
    const key = toHex(contentId);
    for (const linkId of this.ctx.links.ready()) {
      if (!this.ctx.mayAnnounce(linkId, key)) continue;
      for (const ranges of groups) {
        this.ctx.links.send(linkId, { type: 'chunk-remove', contentId, ranges });
      }
    }
  }
}

/**
 * TEST ONLY (`settings.corruptServedChunks`): a copy of a chunk that passed its check with one
 * byte flipped, so the requester's verification fails.
 */
function corrupted(bytes: Uint8Array): Uint8Array {
  const bad = bytes.slice();
  if (bad.length > 0) bad[bad.length >> 1] = bad[bad.length >> 1]! ^ 0x55;
  return bad;
}

function counter(): () => number {
  let next = 1;
  return () => next++;
}

function statusMessage(
  requestId: number,
  status: TransferStatus,
  length: number,
  message: string,
): StatusMessage {
  return { type: 'status', requestId, status, length, message };
}
