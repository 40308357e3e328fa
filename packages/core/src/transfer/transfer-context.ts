/**
 * What the transfer modules (jobs, chunk server, fetch helper) may ask of the engine that owns
 * them. The engine (transfer-engine.ts) implements it: it owns request IDs per link (odd for
 * the handshake initiator, even for the responder, docs/protocol.md 7.1), fetch IDs, the output
 * queue, bans and announcements, and hands out the link port (link-port.ts), the modules' only
 * way to reach a link. Modules never touch another module's state; they talk through this
 * interface, so each stays one job.
 *
 * A *job* (`TransferJob`) is one local transfer the host started, with a kind: today a content
 * download or a URL download (`DownloadJob`: it delivers bytes the host acknowledges). The
 * engine schedules jobs by priority and routes to them the answers to their requests and
 * fetches; it assumes nothing else about them, so an upload (parts sent to helpers) or an RPC
 * stream is one more kind with its own class, made by the job factory (job-factory.ts).
 */
import type { CryptoProvider } from '../crypto-provider.js';
import type { Manifest } from '../content/manifest.js';
import type { Prng } from '../prng.js';
import type { DataMessage, HttpHeader, StatusMessage } from '../wire/messages.js';
import type { Availability } from './availability.js';
import type { LinkPort } from './link-port.js';
import type { OriginOutcome, TransferEvent, TransferOutput } from './transfer-api.js';
import type { SourceId } from './scheduler.js';

/** Receives the DATA and terminal STATUS of requests this side opened. */
export interface RequestHandler {
  onData(linkId: number, message: DataMessage, nowMs: number): void;
  onStatus(linkId: number, message: StatusMessage, nowMs: number): void;
}

/** Receives the body and end of origin fetches this side asked its host for. */
export interface FetchHandler {
  onOriginData(fetchId: number, bytes: Uint8Array, nowMs: number): void;
  onOriginEnd(fetchId: number, outcome: OriginOutcome, detail: string, nowMs: number): void;
}

/** Receives the answers to `read-delivered` outputs this side issued. */
export interface DeliveredReadHandler {
  onDeliveredRead(readId: number, bytes: Uint8Array | undefined, nowMs: number): void;
}

/** One origin range request. */
export interface FetchSpec {
  readonly url: string;
  readonly rangeStart: number;
  readonly rangeEnd: number;
  readonly validator: string;
  readonly headers: readonly HttpHeader[];
  /** On behalf of a pod peer (`fetch-origin`'s `forPeer`). */
  readonly forPeer: boolean;
  /** See the `fetch-origin` output (transfer-api.ts). */
  readonly totalBytes?: number;
}

/** Transfer tunables, resolved from CoreOptions. */
export interface TransferSettings {
  /** Bytes past the delivery point a download may assign (the memory window). */
  readonly reorderWindowBytes: number;
  /** Default piece size of URL downloads. */
  readonly pieceSizeBytes: number;
  /** Requests one link may have this side serve at once (chunks, or origin fetches). */
  readonly servingPerLinkMax: number;
  readonly stallFloorMs: number;
  readonly banThreshold: number;
  /** This device's HELLO capabilities. */
  readonly capabilities: number;
  /**
   * Gossip is on (CoreOptions.gossip): stranger links (trust 'stranger', link-port.ts) then get
   * CHUNK_ANNOUNCE / CHUNK_REMOVE only for contents they announced themselves. Pod-only work
   * (FETCH_ASSIGN, URL lookups, pooled helpers) needs trust 'pod' whether gossip is on or not.
   */
  readonly strangerRules: boolean;
  /** Minimum time between two `download:progress` events of one download. */
  readonly progressIntervalMs: number;
  /** TEST ONLY (CoreOptions.testFaults): flip a byte of every chunk served. */
  readonly corruptServedChunks: boolean;
}

export interface TransferContext {
  readonly crypto: CryptoProvider;
  readonly prng: Prng;
  readonly settings: TransferSettings;
  readonly availability: Availability;
  output(output: TransferOutput): void;
  event(event: TransferEvent): void;
  /** The ready links: send, stream, drop, peer snapshots. */
  readonly links: LinkPort;
  /** 'self' or the remote Device ID in hex. */
  sourceName(source: SourceId): string;
  /** Opens a request on a ready link: a fresh ID with this side's parity, routed to `handler`. */
  openRequest(linkId: number, handler: RequestHandler): number | undefined;
  /** Sends CANCEL; the request stays open (DATA ignored) until its terminal STATUS. */
  cancelRequest(linkId: number, requestId: number): void;
  /** Asks the host for an origin range; returns the fetch ID. */
  openFetch(handler: FetchHandler, spec: FetchSpec): number;
  /** Tells the host to stop a fetch; no more input for it is routed. */
  cancelFetch(fetchId: number): void;
  /** Forgets a fetch that ended. */
  endFetch(fetchId: number): void;
  /** Asks the host to read back delivered bytes (`read-delivered`); returns the read ID. */
  readDelivered(
    handler: DeliveredReadHandler,
    downloadId: number,
    offset: number,
    length: number,
  ): number;
  /** Forgets a read: its answer, if any, is ignored. */
  cancelRead(readId: number): void;
  /**
   * Closes the link with `banned`, reports `peer:banned`, refuses the device from now on, and
   * tells every job (`TransferJob.onDeviceBanned`).
   */
  ban(linkId: number, detail: string, nowMs: number): void;
  /** Closes the link with `protocolError`. */
  protocolError(linkId: number, detail: string, nowMs: number): void;
  /**
   * Whether this side may tell the link about content `key` (CHUNK_ANNOUNCE / CHUNK_REMOVE):
   * always, except to a stranger under `strangerRules` that never announced the content.
   */
  mayAnnounce(linkId: number, key: string): boolean;
  /** A content chunk verified: store it, serve it, announce it. */
  chunkVerified(manifest: Manifest, index: number, bytes: Uint8Array): void;
  /** Pieces `source` has in flight for jobs other than `jobId`. */
  otherLoad(jobId: number, source: SourceId): number;
}

/** Kinds of transfer jobs (see the module header for the kinds to come). */
export type TransferJobKind = 'content-download' | 'url-download';

/** What the engine asks of each job. */
export interface TransferJob extends RequestHandler {
  readonly kind: TransferJobKind;
  /** The host's ID for it (`downloadId` of `start-download`). */
  readonly jobId: number;
  /** 0 is most urgent. */
  readonly priority: number;
  /** 'running' until it completes, fails or is cancelled. */
  readonly state: 'running' | 'done' | 'failed';
  /** Hands out new work (requests, fetches). */
  schedule(nowMs: number): void;
  onLinkClosed(linkId: number, nowMs: number): void;
  /**
   * A device was banned (by any job, before its link closes): a URL download distrusts every
   * piece it accepted from it (url-repairs.ts).
   */
  onDeviceBanned?(deviceIdHex: string, nowMs: number): void;
  onTimer(nowMs: number): void;
  nextDeadlineMs(nowMs: number): number | undefined;
  /** Ends the job: cancels everything in flight, reports its failure event. */
  fail(reason: string, detail: string, nowMs: number): void;
  /** Bytes the core holds for this job. */
  memoryBytes(): number;
  /** Pieces in flight at `source` for this job. */
  inflightOf(source: SourceId): number;
}

/** A job that delivers bytes to the host (`deliver`), which acknowledges them (`delivered`). */
export interface DownloadJob extends TransferJob {
  readonly kind: 'content-download' | 'url-download';
  /** The host consumed delivered bytes. */
  acknowledge(byteCount: number): void;
}

export function isDownloadJob(job: TransferJob): job is DownloadJob {
  return job.kind === 'content-download' || job.kind === 'url-download';
}
