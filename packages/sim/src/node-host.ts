/**
 * One simulated node's host: the core's `HostDriver` around one real `Core`, plus the node's
 * store, disk and fault switches.
 *
 * Theory of operation
 * - `input(x)` hands the input to the driver (core.ts's loop, written once in host-driver.ts):
 *   `handle`, drain `poll()` carrying out each output in `perform`, then `afterDrain` checks the
 *   per-step invariants (download memory) and the driver arms the node's one timer
 *   (`setTimer`). Every callback from the network, the origin, the disk, discovery or a timer
 *   calls `input` exactly once, from its own event.
 * - `perform` is one exhaustive switch over the core's outputs, ending in `unreachableOutput`:
 *   `send`/`disconnect` go to the network; `connect` (the core's peer table decided to dial) to
 *   the simulator, which opens a link with the `dialId` or reports `dial-failed`;
 *   `fetch-origin`/`cancel-fetch` to the origin; `read-chunk` is answered with `chunk-read`
 *   after the disk delay; `deliver` (in order, or a `repair` written over an earlier range, as a
 *   file host would `pwrite` it) is checked and written by the download's `DeliveryChecker`,
 *   which keeps the output as "the content except these differing byte runs", and acknowledged
 *   with `delivered` after the disk delay; `read-delivered` is answered with `delivered-read`
 *   from that output after the disk delay; `store-chunk` is checked against the manifest and
 *   the content, then remembered by index (the bytes are regenerated from `Content` on read, so
 *   32 nodes holding 1 GiB each cost no memory); events go to the trace and to the simulator.
 * - Timers: one virtual timer per node; a re-arm bumps a token so a stale timer event is ignored.
 * - Faults this host carries out: `corrupting` (its Core is fed origin-data and chunk-read bytes
 *   with one byte flipped: the node becomes a lying peer while its Core is honest), crash,
 *   and shutdown (its Core says GOODBYE, then the process exits a little later).
 * - A failed download's fallback is the core's decision (`download:failed.fallback`); `carryOutFallback` is the
 *   one place it is carried out: 'repin' probes the origin again and starts a pooled download
 *   pinned to its current version, 'origin-only' starts a single-source download from the
 *   origin, each with the attempt count one higher. `activeDownloadId` names the download whose
 *   completion counts.
 * - Any exception from the Core is a `Violation` ('core-did-not-throw').
 */
import {
  Capability,
  Core,
  HostDriver,
  deriveDeviceId,
  toHex,
  unreachableOutput,
  type CoreEvent,
  type CoreInput,
  type CoreOutput,
  type DownloadFallback,
  type DownloadSource,
  type KeyPair,
  type Manifest,
  type PeerSource,
  type Prng,
} from '@peapod/core';
import type { Content, ContentDigest } from './content.js';
import type { DiscoveryNode } from './discovery.js';
import type { EventQueue } from './event-queue.js';
import {
  DeliveryChecker,
  Violation,
  checkMemory,
  checkSend,
  checkStoredChunk,
} from './invariants.js';
import type { Network, NetworkEndpoint } from './network.js';
import type { Origin, OriginClient } from './origin.js';
import { createSeededCryptoProvider } from './seeded-crypto.js';
import type { Trace } from './trace.js';

/** What a host needs from the world around it. */
export interface HostContext {
  readonly queue: EventQueue;
  readonly network: Network;
  readonly origin: Origin | undefined;
  readonly content: Content;
  readonly digest: ContentDigest;
  /** The content's manifest (content-by-ID scenarios). */
  readonly manifest: Manifest | undefined;
  readonly trace: Trace;
  readonly memoryBoundBytes: number;
  /** Disk rate for chunk reads and delivered acknowledgements; undefined: instant. */
  readonly diskBps: number | undefined;
  onDownloadEnd(
    node: number,
    downloadId: number,
    outcome: 'complete' | 'failed',
    detail: string,
  ): void;
  onLinkEvent(node: number, linkId: number, up: boolean): void;
  onBanned(node: number, deviceIdHex: string, detail: string): void;
  /** The node's Core asked to dial `address:port` (a `connect` output). */
  dial(node: number, dialId: number, address: string, port: number): void;
}

export interface NodeHostOptions {
  readonly index: number;
  readonly seed: number;
  readonly podSecret: Uint8Array | undefined;
  readonly deviceName: string;
  /** How this node learns of others ('lan' beacons in a pod, 'manual' addresses otherwise). */
  readonly discoverySource: PeerSource;
}

const TIMER_SPIN_LIMIT = 10_000;

export class NodeHost implements NetworkEndpoint, OriginClient, DiscoveryNode {
  readonly index: number;
  readonly core: Core;
  readonly identity: KeyPair;
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  /** 'up', 'left' (shut down or crashed). */
  state: 'up' | 'left' = 'up';
  corrupting = false;
  readonly storedChunks = new Set<number>();
  readonly downloads = new Map<number, DeliveryChecker>();
  /** The download whose completion the run waits for (a fallback replaces the first). */
  activeDownloadId = 1;
  /** Fallbacks carried out (a new download after a failed one). */
  fallbacks = 0;
  private readonly sources = new Map<number, DownloadSource>();
  /** Largest `downloadMemoryBytes` seen, over all downloads. */
  maxDownloadMemoryBytes = 0;
  /** Bytes this node's host fed its Core from the origin. */
  originBytes = 0;
  corruptedPieces = 0;
  private readonly activeFetches = new Set<number>();
  private readonly prng: Prng;
  private readonly driver: HostDriver;
  private readonly discoverySource: PeerSource;
  private timerToken = 0;
  private spins = 0;
  private spinAtMs = -1;
  private diskBusyUntilMs = 0;

  constructor(
    private readonly ctx: HostContext,
    options: NodeHostOptions,
    prng: Prng,
  ) {
    this.index = options.index;
    this.prng = prng;
    const crypto = createSeededCryptoProvider(options.seed);
    this.identity = crypto.ed25519GenerateKeyPair();
    this.deviceId = deriveDeviceId(crypto, this.identity.publicKey);
    this.deviceIdHex = toHex(this.deviceId);
    this.discoverySource = options.discoverySource;
    const core = new Core({
      crypto,
      identity: this.identity,
      seed: options.seed,
      deviceName: options.deviceName,
      // Pod members fetch origin ranges for each other (FETCH_ASSIGN); everyone serves chunks.
      capabilities:
        Capability.serveChunks |
        Capability.rpc |
        (options.podSecret === undefined ? 0 : Capability.fetchOrigin),
      ...(options.podSecret === undefined ? {} : { podSecret: options.podSecret }),
    });
    this.core = core;
    this.driver = new HostDriver(core, {
      perform: (output) => this.perform(output),
      setTimer: (deadlineMs) => this.setTimer(deadlineMs),
      afterDrain: () => this.checkMemory(),
    });
  }

  get alive(): boolean {
    return this.state === 'up';
  }

  /** One input through the driver (drain, check, re-arm); a dead node takes none. */
  input(input: CoreInput): void {
    if (!this.alive) return;
    this.guarded(input.type, () => this.driver.handle(input));
  }

  /** Runs the driver; an exception from the Core (not a Violation) is 'core-did-not-throw'. */
  private guarded(inputType: string, run: () => void): void {
    try {
      run();
    } catch (error) {
      if (error instanceof Violation) throw error;
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      throw new Violation('core-did-not-throw', `node ${this.index} on ${inputType}: ${text}`);
    }
  }

  // ---- DiscoveryNode ----
  discovered(deviceId: Uint8Array, address: string, port: number): void {
    const source = this.discoverySource;
    this.input({ type: 'peer-discovered', nowMs: this.now, deviceId, address, port, source });
  }

  // ---- NetworkEndpoint ----
  onLinkOpened(
    linkId: number,
    direction: 'inbound' | 'outbound',
    remoteAddress: string,
    dialId: number | undefined,
  ): void {
    this.input({
      type: 'link-opened',
      nowMs: this.now,
      linkId,
      direction,
      remoteAddress,
      ...(dialId === undefined ? {} : { dialId }),
    });
  }
  onDialFailed(dialId: number, detail: string): void {
    this.input({ type: 'dial-failed', nowMs: this.now, dialId, detail });
  }
  onBytes(linkId: number, bytes: Uint8Array): void {
    this.input({ type: 'bytes-received', nowMs: this.now, linkId, bytes });
  }
  onFlushed(linkId: number, byteCount: number): void {
    this.input({ type: 'bytes-flushed', nowMs: this.now, linkId, byteCount });
  }
  onLinkClosed(linkId: number): void {
    this.input({ type: 'link-closed', nowMs: this.now, linkId });
  }

  // ---- OriginClient ----
  onOriginData(fetchId: number, bytes: Uint8Array): void {
    if (!this.activeFetches.has(fetchId)) return;
    this.originBytes += bytes.length;
    this.input({ type: 'origin-data', nowMs: this.now, fetchId, bytes: this.maybeCorrupt(bytes) });
  }
  onOriginEnd(fetchId: number, outcome: 'ok' | 'changed' | 'error', detail: string): void {
    if (!this.activeFetches.delete(fetchId)) return;
    this.input({ type: 'origin-end', nowMs: this.now, fetchId, outcome, detail });
  }

  // ---- commands from the scenario ----
  startDownload(downloadId: number, source: DownloadSource): void {
    this.downloads.set(
      downloadId,
      new DeliveryChecker(this.index, downloadId, this.ctx.content, source.kind),
    );
    this.sources.set(downloadId, source);
    this.activeDownloadId = downloadId;
    this.input({ type: 'start-download', nowMs: this.now, downloadId, source });
  }

  /** The checker of the download whose completion counts. */
  get activeChecker(): DeliveryChecker | undefined {
    return this.downloads.get(this.activeDownloadId);
  }

  contentAvailable(): void {
    const manifest = this.manifest();
    for (let i = 0; i < manifest.chunkHashes.length; i++) this.storedChunks.add(i);
    this.input({ type: 'content-available', nowMs: this.now, manifest });
  }

  /** The Core says GOODBYE on every link; the process exits `exitAfterMs` later. */
  shutdown(exitAfterMs: number): void {
    this.input({ type: 'shutdown', nowMs: this.now });
    this.state = 'left';
    this.timerToken++;
    this.ctx.origin?.cancelAll(this.index);
    this.ctx.queue.schedule(this.now + exitAfterMs, 'exit', this.index, 0, () => {
      this.ctx.network.crash(this.index, 'reset');
    });
  }

  /** The process dies at once ('reset': the kernel resets its sockets; 'vanish': power loss). */
  crash(mode: 'reset' | 'vanish'): void {
    this.state = 'left';
    this.timerToken++;
    this.ctx.network.crash(this.index, mode);
    this.ctx.origin?.cancelAll(this.index);
  }

  private get now(): number {
    return this.ctx.queue.nowMs;
  }

  private manifest(): Manifest {
    const manifest = this.ctx.manifest;
    if (manifest === undefined) throw new Error('this scenario has no manifest');
    return manifest;
  }

  /** Carries out one output: the one exhaustive switch. */
  private perform(out: CoreOutput): void {
    if (!this.alive) return;
    const ctx = this.ctx;
    switch (out.type) {
      case 'send':
        checkSend(this.index, out.linkId, out.bytes.length);
        ctx.network.send(this.index, out.linkId, out.bytes);
        break;
      case 'disconnect':
        ctx.network.close(this.index, out.linkId);
        ctx.onLinkEvent(this.index, out.linkId, false);
        break;
      case 'event':
        this.onEvent(out.event);
        break;
      case 'fetch-origin': {
        const origin = ctx.origin;
        this.activeFetches.add(out.fetchId);
        if (origin === undefined) {
          const fetchId = out.fetchId;
          ctx.queue.schedule(this.now, 'origin-none', this.index, fetchId, () => {
            this.onOriginEnd(fetchId, 'error', 'no origin in this scenario');
          });
          break;
        }
        origin.startFetch(
          this.index,
          out.fetchId,
          out.url,
          out.rangeStart,
          out.rangeEnd,
          out.validator,
        );
        break;
      }
      case 'cancel-fetch':
        this.activeFetches.delete(out.fetchId);
        ctx.origin?.cancel(this.index, out.fetchId);
        break;
      case 'read-chunk': {
        const readId = out.readId;
        const index = out.chunkIndex;
        const known =
          ctx.manifest !== undefined &&
          toHex(out.contentId) === toHex(ctx.manifest.contentId) &&
          this.storedChunks.has(index);
        const size = ctx.digest.chunkSizeBytes;
        const start = index * size;
        const end = Math.min(ctx.content.totalBytes, start + size);
        ctx.queue.schedule(
          this.diskDone(known ? end - start : 0),
          'disk-read',
          this.index,
          index,
          () => {
            const bytes = known ? this.maybeCorrupt(ctx.content.slice(start, end)) : undefined;
            this.input({ type: 'chunk-read', nowMs: this.now, readId, bytes });
          },
        );
        break;
      }
      case 'deliver': {
        const checker = this.downloads.get(out.downloadId);
        if (checker === undefined) {
          throw new Violation(
            'delivery-in-order-exactly-once',
            `node ${this.index}: deliver for unknown download ${out.downloadId}`,
          );
        }
        const repair = out.repair === true;
        checker.onDeliver(out.offset, out.bytes, repair);
        if (repair) {
          ctx.trace.note(
            this.now,
            this.index,
            `repair ${out.downloadId} [${out.offset}, ${out.offset + out.bytes.length})`,
          );
        }
        const downloadId = out.downloadId;
        const byteCount = out.bytes.length;
        ctx.queue.schedule(this.diskDone(byteCount), 'delivered', this.index, byteCount, () => {
          this.input({ type: 'delivered', nowMs: this.now, downloadId, byteCount });
        });
        break;
      }
      case 'read-delivered': {
        const checker = this.downloads.get(out.downloadId);
        if (checker === undefined) {
          throw new Violation(
            'read-within-output',
            `node ${this.index}: read-delivered for unknown download ${out.downloadId}`,
          );
        }
        const { readId, offset, length } = out;
        // Checked now (the range must have been delivered); read when the disk gets to it, so
        // the answer holds every write before it, like a host's serialized file I/O.
        checker.checkRead(offset, length);
        ctx.queue.schedule(this.diskDone(length), 'disk-read-back', this.index, readId, () => {
          const bytes = checker.read(offset, length);
          this.input({ type: 'delivered-read', nowMs: this.now, readId, bytes });
        });
        break;
      }
      case 'store-chunk':
        checkStoredChunk(
          this.index,
          ctx.content,
          ctx.digest.chunkSizeBytes,
          ctx.digest.chunkHashes,
          out.chunkIndex,
          out.chunkHash,
          out.bytes,
        );
        this.storedChunks.add(out.chunkIndex);
        break;
      case 'connect':
        ctx.dial(this.index, out.dialId, out.address, out.port);
        break;
      default:
        unreachableOutput(out);
    }
  }

  private onEvent(event: CoreEvent): void {
    const ctx = this.ctx;
    switch (event.type) {
      case 'peer:connect':
        ctx.trace.note(
          this.now,
          this.index,
          `peer:connect link ${event.linkId} ${event.direction}`,
        );
        ctx.onLinkEvent(this.index, event.linkId, true);
        break;
      case 'peer:disconnect':
        ctx.trace.note(
          this.now,
          this.index,
          `peer:disconnect link ${event.linkId} reason ${event.reason} by ${event.by}: ${event.detail}`,
        );
        ctx.onLinkEvent(this.index, event.linkId, false);
        break;
      case 'peer:rtt':
      case 'peer:message':
      case 'download:progress':
        break;
      case 'download:complete': {
        const checker = this.downloads.get(event.downloadId);
        if (checker === undefined) {
          throw new Violation(
            'complete-after-all-bytes',
            `node ${this.index}: download:complete for unknown download ${event.downloadId}`,
          );
        }
        // The sim never resumes, so a URL download always has a digest (none fails the check);
        // a content download has none (verified chunk by chunk against its manifest).
        const isContent = this.sources.get(event.downloadId)?.kind === 'content';
        const sha256 = event.sha256 ?? (isContent ? undefined : new Uint8Array(0));
        checker.onComplete(event.totalBytes, sha256, ctx.digest.sha256);
        ctx.trace.note(this.now, this.index, `download:complete ${event.downloadId}`);
        ctx.onDownloadEnd(this.index, event.downloadId, 'complete', '');
        break;
      }
      case 'download:failed': {
        ctx.trace.note(this.now, this.index, `download:failed ${event.reason}: ${event.detail}`);
        const source = this.sources.get(event.downloadId);
        const fallback = event.fallback;
        if (
          fallback.action !== 'none' &&
          source !== undefined &&
          event.downloadId === this.activeDownloadId
        ) {
          this.carryOutFallback(event.downloadId, source, fallback);
          break;
        }
        ctx.onDownloadEnd(
          this.index,
          event.downloadId,
          'failed',
          `${event.reason}: ${event.detail}`,
        );
        break;
      }
      case 'url:lookup':
        // The simulator's scenarios start content and URL downloads directly; none looks a URL up.
        break;
      case 'download:manifest':
        // The simulated store keeps chunks by hash; it needs no manifest before them.
        break;
      case 'peer:banned':
        ctx.trace.note(this.now, this.index, `peer:banned ${toHex(event.deviceId).slice(0, 8)}`);
        ctx.onBanned(this.index, toHex(event.deviceId), event.detail);
        break;
      case 'gossip:peer':
      case 'gossip:content':
      case 'gossip:accepted':
      case 'gossip:rejected':
        // These cores run without gossip; the gossip scenario drives the engine directly.
        break;
      default: {
        const unreachable: never = event;
        throw new Error(`unhandled event ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /**
   * The one place a fallback is carried out: a new download replaces the failed one, pinned to
   * the origin's current version (the probe), pooled ('repin') or from the origin alone
   * ('origin-only'), one attempt later.
   */
  private carryOutFallback(
    failedId: number,
    source: DownloadSource,
    fallback: Exclude<DownloadFallback, { action: 'none' }>,
  ): void {
    if (source.kind !== 'url') return;
    this.fallbacks++;
    this.ctx.trace.note(this.now, this.index, `fallback ${fallback.action}: ${fallback.reason}`);
    const next = failedId + 1;
    this.ctx.queue.schedule(this.now, 'fallback', this.index, next, () => {
      const validator = this.ctx.origin?.currentEtag() ?? source.validator;
      this.startDownload(next, {
        ...source,
        validator,
        pooled: fallback.action === 'repin',
        attempt: (source.attempt ?? 0) + 1,
      });
    });
  }

  /** When a disk operation of `bytes` started now would finish (FIFO at `diskBps`). */
  private diskDone(bytes: number): number {
    const rate = this.ctx.diskBps;
    if (rate === undefined) return this.now;
    const start = Math.max(this.now, this.diskBusyUntilMs);
    this.diskBusyUntilMs = start + (bytes * 8000) / rate;
    return this.diskBusyUntilMs;
  }

  /** A corrupting host flips one byte (in a copy: content blocks are shared). */
  private maybeCorrupt(bytes: Uint8Array): Uint8Array {
    if (!this.corrupting || bytes.length === 0) return bytes;
    const copy = bytes.slice();
    const at = this.prng.nextInt(copy.length);
    copy[at] = copy[at]! ^ (1 + this.prng.nextInt(255));
    this.corruptedPieces++;
    return copy;
  }

  private checkMemory(): void {
    const measure = this.core.downloadMemoryBytes;
    if (measure === undefined) return;
    for (const [downloadId, checker] of this.downloads) {
      if (checker.completed) continue;
      const bytes = measure.call(this.core, downloadId);
      if (bytes > this.maxDownloadMemoryBytes) this.maxDownloadMemoryBytes = bytes;
      checkMemory(this.index, downloadId, bytes, this.ctx.memoryBoundBytes);
    }
  }

  /** The driver's timer: one virtual timer event per arm; a stale one is ignored. */
  private setTimer(deadline: number | undefined): void {
    const token = ++this.timerToken;
    if (deadline === undefined) return;
    const atMs = Math.max(deadline, this.now);
    this.ctx.queue.schedule(atMs, 'timer', this.index, 0, () => {
      if (token !== this.timerToken || !this.alive) return;
      if (this.now === this.spinAtMs) {
        if (++this.spins > TIMER_SPIN_LIMIT) {
          throw new Violation(
            'timer-progress',
            `node ${this.index}: ${TIMER_SPIN_LIMIT} timer firings at ${this.now} ms without time passing`,
          );
        }
      } else {
        this.spinAtMs = this.now;
        this.spins = 0;
      }
      this.guarded('timer-fired', () => this.driver.timerFired(this.now));
    });
  }
}
