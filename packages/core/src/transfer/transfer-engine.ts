/**
 * The transfer engine: everything the Core does with chunks, fetches and downloads, behind the
 * `TransferInput` / `TransferOutput` contract (transfer-api.ts). The Core feeds it transfer
 * inputs, link lifecycle (ready, closed) and the transfer messages links receive; it queues
 * transfer outputs and events that the Core's `poll()` returns.
 *
 * It owns the shared machinery (`TransferContext`): request IDs per link with the handshake
 * parity (initiator odd, responder even, docs/protocol.md 7.1) and the routing of DATA/STATUS
 * to the request's owner; fetch IDs and the routing of `origin-data` / `origin-end`; bans (a
 * banned device's links are closed with `banned` and refused from then on); announcements
 * (CHUNK_ANNOUNCE of held chunks to every ready link, at once for new chunks and when a link
 * becomes ready); with gossip on (`strangerRules`), a stranger link hears of a content only
 * after it announced that content itself (content IDs are capabilities: never listed to
 * strangers unasked), and a content download sends its interest (an announcement of what it
 * holds, maybe no ranges) to every stranger link that serves chunks; the link port (link-port.ts) the modules reach links through, with a
 * per-link estimate of the DATA throughput. The work lives in its own modules: `ChunkServer`
 * (serving), `FetchHelper` (fetching for a pod peer) and the jobs the host started
 * (`TransferJob`, made by job-factory.ts: `ContentDownload`, `UrlDownload`, each with a
 * `PieceScheduler`).
 *
 * Jobs are scheduled in priority order (lower number first) after every input, each seeing the
 * pipeline slots the more urgent ones took.
 */
import { toHex } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import type { Manifest } from '../content/manifest.js';
import { invalidArgument, PeapodError } from '../errors.js';
import type { Prng } from '../prng.js';
import { ReasonCode } from '../wire/reason-codes.js';
import type { StatusMessage, WireMessage } from '../wire/messages.js';
import { Capability } from '../wire/messages.js';
import { Availability, indicesToRangeGroups } from './availability.js';
import { ChunkServer } from './chunk-server.js';
import { ContentDownload, type ChunkReader } from './content-download.js';
import { FetchHelper } from './fetch-helper.js';
import { createDownloadJob } from './job-factory.js';
import { ThroughputMeter, type LinkDirectory, type LinkPort } from './link-port.js';
import { SELF_SOURCE, type SourceId } from './scheduler.js';
import {
  isDownloadJob,
  type DeliveredReadHandler,
  type FetchHandler,
  type FetchSpec,
  type RequestHandler,
  type TransferContext,
  type TransferJob,
  type TransferSettings,
} from './transfer-context.js';
import type { TransferEvent, TransferInput, TransferOutput } from './transfer-api.js';
import { UrlIndex } from './url-index.js';

/** Messages the Core hands to the engine instead of `peer:message`. */
export const TRANSFER_MESSAGE_TYPES: ReadonlySet<WireMessage['type']> = new Set([
  'chunk-request',
  'data',
  'status',
  'cancel',
  'chunk-announce',
  'chunk-remove',
  'url-query',
  'url-answer',
  'fetch-assign',
]);

/** Engine outputs: transfer outputs and transfer events. */
export type EngineOutput =
  TransferOutput | { readonly type: 'event'; readonly event: TransferEvent };

interface OpenRequest {
  readonly handler: RequestHandler;
  cancelled: boolean;
}

interface LinkRequests {
  nextId: number;
  readonly open: Map<number, OpenRequest>;
}

export class TransferEngine {
  private readonly outputs: EngineOutput[] = [];
  private outputHead = 0;
  private readonly availability = new Availability();
  private readonly server: ChunkServer;
  private readonly helper: FetchHelper;
  /** Jobs the host started, by job ID. */
  private readonly jobs = new Map<number, TransferJob>();
  private readonly requests = new Map<number, LinkRequests>();
  private readonly fetches = new Map<number, FetchHandler>();
  private nextFetchId = 1;
  /** Read IDs are shared by the chunk server and content downloads' read-backs. */
  private nextReadId = 1;
  private readonly downloadReads = new Map<number, ContentDownload>();
  private readonly reader: ChunkReader;
  /** Open `read-delivered` reads (pooled URL read-back after repairs) by read ID. */
  private readonly deliveredReads = new Map<number, DeliveredReadHandler>();
  private nextDeliveredReadId = 1;
  private readonly bannedDevices = new Set<string>();
  private readonly context: TransferContext;
  private readonly throughput = new ThroughputMeter();
  private readonly urls: UrlIndex;
  /** Stranger links this device told of its interest in a content: link -> content keys. */
  private readonly interestSent = new Map<number, Set<string>>();

  constructor(
    crypto: CryptoProvider,
    prng: Prng,
    readonly settings: TransferSettings,
    private readonly links: LinkDirectory,
  ) {
    this.context = this.makeContext(crypto, prng);
    this.server = new ChunkServer(this.context, () => this.nextReadId++);
    this.reader = {
      holds: (key, index) => this.server.holds(key, index),
      read: (download, contentId, chunkIndex, chunkHash) => {
        const readId = this.nextReadId++;
        this.downloadReads.set(readId, download);
        this.outputs.push({ type: 'read-chunk', readId, contentId, chunkIndex, chunkHash });
        return readId;
      },
    };
    this.helper = new FetchHelper(this.context);
    // Any held chunk counts (url-index.ts).
    this.urls = new UrlIndex(this.context, (contentId) => this.server.holdsAnyChunk(contentId));
  }

  /** Next queued output, if any. */
  takeOutput(): EngineOutput | undefined {
    if (this.outputHead >= this.outputs.length) {
      if (this.outputs.length > 0) {
        this.outputs.length = 0;
        this.outputHead = 0;
      }
      return undefined;
    }
    return this.outputs[this.outputHead++];
  }

  /** Handles a transfer input. @throws PeapodError on host misuse. */
  handle(input: TransferInput): void {
    const nowMs = input.nowMs;
    switch (input.type) {
      case 'start-download':
        if (this.jobs.has(input.downloadId)) {
          throw new PeapodError(
            'PEAPOD_ERR_INVALID_STATE',
            `download ${input.downloadId} is already running`,
          );
        }
        this.jobs.set(input.downloadId, createDownloadJob(this.context, input, this.reader, nowMs));
        if (input.source.kind === 'content') {
          for (const linkId of this.context.links.ready())
            this.sendInterest(linkId, input.source.contentId);
        }
        break;
      case 'cancel-download':
        this.jobs.get(input.downloadId)?.fail('cancelled', 'cancelled by the host', nowMs);
        this.jobs.delete(input.downloadId);
        break;
      case 'delivered': {
        const job = this.jobs.get(input.downloadId);
        if (job !== undefined && isDownloadJob(job)) job.acknowledge(input.byteCount);
        break;
      }
      case 'origin-data':
        this.fetches.get(input.fetchId)?.onOriginData(input.fetchId, input.bytes, nowMs);
        break;
      case 'origin-end':
        this.fetches
          .get(input.fetchId)
          ?.onOriginEnd(input.fetchId, input.outcome, input.detail, nowMs);
        this.fetches.delete(input.fetchId);
        break;
      case 'chunk-read': {
        const download = this.downloadReads.get(input.readId);
        const verified = input.verified === true;
        if (download === undefined)
          this.server.onChunkRead(input.readId, input.bytes, verified, nowMs);
        else {
          this.downloadReads.delete(input.readId);
          download.onChunkRead(input.readId, input.bytes, verified, nowMs);
        }
        break;
      }
      case 'delivered-read': {
        const handler = this.deliveredReads.get(input.readId);
        this.deliveredReads.delete(input.readId);
        handler?.onDeliveredRead(input.readId, input.bytes, nowMs);
        break;
      }
      case 'content-available':
        this.chunksHeld(input.manifest, input.chunkIndices);
        break;
      case 'content-removed':
        this.localChunksRemoved(input.contentId, input.chunkIndices);
        this.urls.forgetContent(
          input.contentId,
          this.server.removeChunks(input.contentId, input.chunkIndices),
        );
        break;
      case 'url-content':
        this.urls.map(input.url, input.validator, input.contentId);
        break;
      case 'lookup-url':
        this.urls.lookup(input.lookupId, input.url, nowMs);
        break;
      default: {
        const unreachable: never = input;
        invalidArgument('input.type', `unknown transfer input ${JSON.stringify(unreachable)}`);
      }
    }
    this.afterEvent(nowMs);
  }

  /** A link finished HELLO. */
  onLinkReady(linkId: number, deviceId: Uint8Array, nowMs: number): void {
    if (this.bannedDevices.has(toHex(deviceId))) {
      this.links.close(linkId, ReasonCode.banned, 'this device was banned', nowMs);
      return;
    }
    const peer = this.links.peer(linkId);
    if (peer === undefined) return;
    this.requests.set(linkId, { nextId: peer.direction === 'outbound' ? 1 : 2, open: new Map() });
    for (const { contentId, indices } of this.server.heldContents()) {
      if (!this.context.mayAnnounce(linkId, toHex(contentId))) continue;
      for (const ranges of indicesToRangeGroups(indices))
        this.links.send(linkId, { type: 'chunk-announce', contentId, ranges });
    }
    for (const job of this.jobs.values()) {
      if (job instanceof ContentDownload && job.state === 'running')
        this.sendInterest(linkId, job.contentId);
    }
    this.afterEvent(nowMs);
  }

  /**
   * The content stops being published (core.ts): each stranger link that mentioned it (so it
   * knows the ID) hears CHUNK_REMOVE of every held chunk, and its downloads stop counting on
   * this device. Call while the core still lets strangers hear of the content.
   */
  withdrawFromStrangers(contentId: Uint8Array): void {
    const key = toHex(contentId);
    const held = this.server.heldContents().find((c) => toHex(c.contentId) === key);
    if (held === undefined) return;
    const groups = indicesToRangeGroups(held.indices);
    for (const linkId of this.context.links.ready()) {
      if (!this.isRestricted(linkId) || !this.availability.mentioned(linkId, key)) continue;
      for (const ranges of groups)
        this.links.send(linkId, { type: 'chunk-remove', contentId, ranges });
    }
  }

  /** Whether `linkId` is a stranger link under the stranger rules (transfer-context.ts). */
  private isRestricted(linkId: number): boolean {
    return this.settings.strangerRules && this.links.peer(linkId)?.trust === 'stranger';
  }

  /**
   * A content download's interest, once per stranger link that serves chunks: CHUNK_ANNOUNCE
   * of the chunks held (no ranges when none), which lets that stranger announce its own.
   */
  private sendInterest(linkId: number, contentId: Uint8Array): void {
    const peer = this.context.links.peer(linkId);
    if (peer === undefined || !this.isRestricted(linkId)) return;
    if ((peer.capabilities & Capability.serveChunks) === 0) return;
    const key = toHex(contentId);
    let sent = this.interestSent.get(linkId);
    if (sent === undefined) {
      sent = new Set();
      this.interestSent.set(linkId, sent);
    }
    if (sent.has(key)) return;
    sent.add(key);
    this.announceHeld(linkId, contentId, true);
  }

  /** CHUNK_ANNOUNCE of the held chunks of `contentId` on one link (`orEmpty`: even of none). */
  private announceHeld(linkId: number, contentId: Uint8Array, orEmpty: boolean): void {
    const key = toHex(contentId);
    const held = this.server.heldContents().find((c) => toHex(c.contentId) === key);
    const groups = held === undefined ? [] : indicesToRangeGroups(held.indices);
    if (groups.length === 0 && orEmpty) groups.push([]);
    for (const ranges of groups)
      this.links.send(linkId, { type: 'chunk-announce', contentId, ranges });
  }

  /** A link closed: its requests fail, its fetches stop, its availability is forgotten. */
  onLinkClosed(linkId: number, nowMs: number): void {
    this.requests.delete(linkId);
    this.interestSent.delete(linkId);
    this.throughput.forget(linkId);
    this.availability.dropLink(linkId);
    this.server.onLinkClosed(linkId, nowMs);
    this.helper.onLinkClosed(linkId);
    this.urls.onLinkClosed(linkId);
    for (const job of this.jobs.values()) job.onLinkClosed(linkId, nowMs);
    this.afterEvent(nowMs);
  }

  /** A transfer message from a ready link (one of TRANSFER_MESSAGE_TYPES). */
  onMessage(linkId: number, message: WireMessage, nowMs: number): void {
    const peer = this.links.peer(linkId);
    const table = this.requests.get(linkId);
    if (peer === undefined || table === undefined) return;
    const ownParity = peer.direction === 'outbound' ? 1 : 0;
    const isOwn = (requestId: number): boolean => requestId % 2 === ownParity;
    switch (message.type) {
      case 'chunk-request':
      case 'fetch-assign':
        if (isOwn(message.requestId)) {
          this.links.close(
            linkId,
            ReasonCode.protocolError,
            `request ID ${message.requestId} has the wrong parity`,
            nowMs,
          );
          break;
        }
        if (message.type === 'chunk-request') this.server.onRequest(linkId, message, nowMs);
        else this.helper.onAssign(linkId, message);
        break;
      case 'cancel':
        if (!isOwn(message.requestId)) {
          if (!this.server.onCancel(linkId, message.requestId, nowMs))
            this.helper.onCancel(linkId, message.requestId);
        }
        break;
      case 'data': {
        const open = isOwn(message.requestId) ? table.open.get(message.requestId) : undefined;
        if (open === undefined) {
          this.links.close(
            linkId,
            ReasonCode.protocolError,
            `DATA for request ${message.requestId}, not open`,
            nowMs,
          );
          break;
        }
        this.throughput.received(linkId, message.bytes.length, nowMs);
        if (!open.cancelled) open.handler.onData(linkId, message, nowMs);
        break;
      }
      case 'status':
        // Not ours: a requester's verdict on a chunk this device served (checksumMismatch).
        // The stored copy was checked against its hash just before serving, so the requester
        // or the link is at fault; there is nothing to re-check.
        if (isOwn(message.requestId)) this.onTerminalStatus(linkId, table, message, nowMs);
        break;
      case 'chunk-announce': {
        // A stranger's first word of a content is its interest: answer it with what is held.
        const answer =
          this.isRestricted(linkId) &&
          !this.availability.mentioned(linkId, toHex(message.contentId));
        this.availability.announce(linkId, message.contentId, message.ranges);
        if (answer) this.announceHeld(linkId, message.contentId, false);
        break;
      }
      case 'chunk-remove':
        this.availability.remove(linkId, message.contentId, message.ranges);
        break;
      case 'url-query':
        this.urls.onQuery(linkId, message);
        break;
      case 'url-answer':
        this.urls.onAnswer(linkId, message);
        break;
      default:
        break;
    }
    this.afterEvent(nowMs);
  }

  /**
   * A link's bytes were flushed: a chunk being served may have had its last frame cut, which
   * frees an upload slot for a waiting request.
   */
  onFlushed(linkId: number, nowMs: number): void {
    this.server.onFlushed(linkId, nowMs);
  }

  onTimer(nowMs: number): void {
    this.server.onTimer(nowMs);
    this.urls.onTimer(nowMs);
    for (const job of this.jobs.values()) {
      const due = job.nextDeadlineMs(nowMs);
      if (due !== undefined && due <= nowMs) job.onTimer(nowMs);
    }
    this.afterEvent(nowMs);
  }

  nextDeadlineMs(nowMs: number): number | undefined {
    let min: number | undefined = this.server.nextDeadlineMs();
    const lookupDue = this.urls.nextDeadlineMs();
    if (lookupDue !== undefined && (min === undefined || lookupDue < min)) min = lookupDue;
    for (const job of this.jobs.values()) {
      const due = job.nextDeadlineMs(nowMs);
      if (due !== undefined && (min === undefined || due < min)) min = due;
    }
    return min;
  }

  /** Bytes the core holds for a download (0 when unknown or finished). */
  downloadMemoryBytes(downloadId: number): number {
    return this.jobs.get(downloadId)?.memoryBytes() ?? 0;
  }

  private onTerminalStatus(
    linkId: number,
    table: LinkRequests,
    message: StatusMessage,
    nowMs: number,
  ): void {
    const open = table.open.get(message.requestId);
    if (open === undefined) return; // a STATUS for nothing open: ignore (it may have crossed a close)
    table.open.delete(message.requestId);
    if (!open.cancelled) open.handler.onStatus(linkId, message, nowMs);
  }

  /** Drops finished jobs and hands out new work, most urgent job first. */
  private afterEvent(nowMs: number): void {
    for (const [id, job] of this.jobs) if (job.state !== 'running') this.jobs.delete(id);
    const ordered = [...this.jobs.values()].sort(
      (a, b) => a.priority - b.priority || a.jobId - b.jobId,
    );
    for (const job of ordered) job.schedule(nowMs);
    for (const [id, job] of this.jobs) if (job.state !== 'running') this.jobs.delete(id);
  }

  /**
   * Chunks the host holds: serve and announce the new ones, and tell the content's downloads
   * (they read them back instead of fetching them).
   */
  private chunksHeld(manifest: Manifest, indices: readonly number[] | undefined): void {
    const added = this.server.addChunks(manifest, indices);
    if (added.length === 0) return;
    const key = toHex(manifest.contentId);
    for (const linkId of this.context.links.ready()) {
      if (!this.context.mayAnnounce(linkId, key)) continue;
      for (const ranges of indicesToRangeGroups(added)) {
        this.links.send(linkId, { type: 'chunk-announce', contentId: manifest.contentId, ranges });
      }
    }
    for (const download of this.contentDownloads(toHex(manifest.contentId)))
      download.onChunksHeld(added);
  }

  /** The host dropped chunks (`content-removed`): the content's downloads stop counting on them. */
  private localChunksRemoved(contentId: Uint8Array, indices: readonly number[] | undefined): void {
    for (const download of this.contentDownloads(toHex(contentId)))
      download.onChunksRemoved(indices);
  }

  /** The running downloads of content `key`. */
  private contentDownloads(key: string): ContentDownload[] {
    const out: ContentDownload[] = [];
    for (const job of this.jobs.values()) {
      if (job instanceof ContentDownload && job.state === 'running' && job.contentKey === key)
        out.push(job);
    }
    return out;
  }

  private makeContext(crypto: CryptoProvider, prng: Prng): TransferContext {
    return {
      crypto,
      prng,
      settings: this.settings,
      availability: this.availability,
      output: (output) => {
        this.outputs.push(output);
      },
      event: (event) => {
        this.outputs.push({ type: 'event', event });
      },
      links: this.makePort(),
      sourceName: (source) => {
        if (source === SELF_SOURCE) return 'self';
        return this.links.peer(source)?.deviceIdHex ?? `link-${source}`;
      },
      openRequest: (linkId, handler) => {
        const table = this.requests.get(linkId);
        if (table === undefined || this.links.peer(linkId) === undefined) return undefined;
        // Skip IDs still open (after a wrap of the u32 space).
        for (let tries = 0; tries < 1_000; tries++) {
          const id = table.nextId;
          table.nextId =
            table.nextId + 2 > 0xffff_ffff ? (table.nextId % 2 === 1 ? 1 : 2) : table.nextId + 2;
          if (!table.open.has(id)) {
            table.open.set(id, { handler, cancelled: false });
            return id;
          }
        }
        return undefined;
      },
      cancelRequest: (linkId, requestId) => {
        const open = this.requests.get(linkId)?.open.get(requestId);
        if (open === undefined || open.cancelled) return;
        open.cancelled = true;
        this.links.send(linkId, { type: 'cancel', requestId });
      },
      openFetch: (handler: FetchHandler, spec: FetchSpec) => {
        const fetchId = this.nextFetchId++;
        this.fetches.set(fetchId, handler);
        this.outputs.push({ type: 'fetch-origin', fetchId, ...spec });
        return fetchId;
      },
      cancelFetch: (fetchId) => {
        if (!this.fetches.delete(fetchId)) return;
        this.outputs.push({ type: 'cancel-fetch', fetchId });
      },
      endFetch: (fetchId) => {
        this.fetches.delete(fetchId);
      },
      readDelivered: (handler, downloadId, offset, length) => {
        const readId = this.nextDeliveredReadId++;
        this.deliveredReads.set(readId, handler);
        this.outputs.push({ type: 'read-delivered', readId, downloadId, offset, length });
        return readId;
      },
      cancelRead: (readId) => {
        this.deliveredReads.delete(readId);
      },
      ban: (linkId, detail, nowMs) => {
        const peer = this.links.peer(linkId);
        if (peer === undefined) return;
        this.bannedDevices.add(peer.deviceIdHex);
        this.outputs.push({
          type: 'event',
          event: {
            type: 'peer:banned',
            deviceId: peer.deviceId,
            reason: ReasonCode.banned,
            detail,
          },
        });
        for (const job of this.jobs.values()) job.onDeviceBanned?.(peer.deviceIdHex, nowMs);
        this.links.close(linkId, ReasonCode.banned, detail, nowMs);
      },
      protocolError: (linkId, detail, nowMs) => {
        this.links.close(linkId, ReasonCode.protocolError, detail, nowMs);
      },
      mayAnnounce: (linkId, key) =>
        !this.isRestricted(linkId) || this.availability.mentioned(linkId, key),
      chunkVerified: (manifest, index, bytes) => {
        this.outputs.push({
          type: 'store-chunk',
          contentId: manifest.contentId,
          chunkIndex: index,
          chunkHash: manifest.chunkHashes[index]!,
          bytes,
        });
        this.chunksHeld(manifest, [index]);
      },
      otherLoad: (jobId, source: SourceId) => {
        let load = 0;
        for (const job of this.jobs.values()) {
          if (job.jobId !== jobId) load += job.inflightOf(source);
        }
        return load;
      },
    };
  }

  /**
   * The modules' link port: a link counts as ready for transfers once the engine saw it become
   * ready (`onLinkReady`), and its snapshot carries the engine's DATA throughput estimate.
   */
  private makePort(): LinkPort {
    const links = this.links;
    const isReady = (linkId: number): boolean => this.requests.has(linkId);
    return {
      send: (linkId, message) => isReady(linkId) && links.send(linkId, message),
      stream: (linkId, requestId, bytes, baseOffset) => {
        if (isReady(linkId)) links.stream(linkId, requestId, bytes, baseOffset);
      },
      drop: (linkId, requestId) =>
        isReady(linkId) ? links.drop(linkId, requestId) : { dropped: false, sentBytes: 0 },
      isQueued: (linkId, requestId) => isReady(linkId) && links.isQueued(linkId, requestId),
      ready: () => links.ready().filter(isReady),
      peer: (linkId) => {
        const peer = isReady(linkId) ? links.peer(linkId) : undefined;
        return peer === undefined
          ? undefined
          : { ...peer, throughputBps: this.throughput.bytesPerSecond(linkId) };
      },
    };
  }
}
