/**
 * One simulated node's host: the host loop of docs/architecture.md around one real `Core`, plus
 * the node's store, disk and fault switches.
 *
 * Theory of operation
 * - `input(x)` is the loop, written once: `core.handle(x)`, drain `poll()` until `undefined`
 *   carrying out each output, check the per-step invariants (download memory), then re-arm the
 *   node's one timer for `nextDeadlineMs()`. Every callback from the network, the origin, the
 *   disk or a timer calls `input` exactly once, from its own event.
 * - Outputs: `send`/`disconnect` go to the network; `fetch-origin`/`cancel-fetch` to the origin;
 *   `read-chunk` is answered with `chunk-read` after the disk delay; `deliver` (in order, or a
 *   `repair` written over an earlier range, as a file host would `pwrite` it) is checked and
 *   written by the download's `DeliveryChecker`, which keeps the output as "the content except
 *   these differing byte runs", and acknowledged with `delivered` after the disk delay;
 *   `read-delivered` is answered with `delivered-read` from that output after the disk delay;
 *   `store-chunk` is checked against the manifest and the content, then remembered by index
 *   (the bytes are regenerated from `Content` on read, so 32 nodes holding 1 GiB each cost no
 *   memory); events go to the trace and to the simulator.
 * - Timers: one virtual timer per node; a re-arm bumps a token so a stale timer event is ignored.
 * - Faults this host carries out: `corrupting` (its Core is fed origin-data and chunk-read bytes
 *   with one byte flipped: the node becomes a lying peer while its Core is honest), crash,
 *   and shutdown (its Core says GOODBYE, then the process exits a little later).
 * - A pooled URL download that fails with 'sha256-mismatch' (a lie no spot check caught) is
 *   restarted as a plain single-source download, as the Node host does: it costs time, never
 *   correctness. `activeDownloadId` names the download whose completion counts.
 * - Any exception from the Core is a `Violation` ('core-did-not-throw').
 */
import {
  Capability,
  Core,
  deriveDeviceId,
  toHex,
  type KeyPair,
  type Manifest,
  type Prng,
} from '@peapod/core';
import type { Content, ContentDigest } from './content.js';
import {
  asSimCore,
  type DownloadSource,
  type SimCore,
  type SimCoreEvent,
  type SimInput,
  type SimOutput,
} from './contract.js';
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
}

export interface NodeHostOptions {
  readonly index: number;
  readonly seed: number;
  readonly podSecret: Uint8Array | undefined;
  readonly deviceName: string;
}

const TIMER_SPIN_LIMIT = 10_000;

export class NodeHost implements NetworkEndpoint, OriginClient {
  readonly index: number;
  readonly core: SimCore;
  readonly identity: KeyPair;
  readonly deviceIdHex: string;
  /** 'up', 'left' (shut down or crashed). */
  state: 'up' | 'left' = 'up';
  corrupting = false;
  readonly storedChunks = new Set<number>();
  readonly downloads = new Map<number, DeliveryChecker>();
  /** The download whose completion the run waits for (a fallback replaces the first). */
  activeDownloadId = 1;
  /** Pooled downloads restarted from the origin alone after 'sha256-mismatch'. */
  fallbacks = 0;
  private readonly sources = new Map<number, DownloadSource>();
  /** Largest `downloadMemoryBytes` seen, over all downloads. */
  maxDownloadMemoryBytes = 0;
  /** Bytes this node's host fed its Core from the origin. */
  originBytes = 0;
  corruptedPieces = 0;
  private readonly activeFetches = new Set<number>();
  private readonly prng: Prng;
  private timerToken = 0;
  private timerAtMs: number | undefined;
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
    this.deviceIdHex = toHex(deriveDeviceId(crypto, this.identity.publicKey));
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
    this.core = asSimCore(core);
  }

  get alive(): boolean {
    return this.state === 'up';
  }

  /** The host loop: one input, drain, check, re-arm. */
  input(input: SimInput): void {
    if (!this.alive) return;
    try {
      this.core.handle(input);
      for (let out = this.core.poll(); out !== undefined; out = this.core.poll()) {
        this.perform(out);
        if (!this.alive) return;
      }
    } catch (error) {
      if (error instanceof Violation) throw error;
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      throw new Violation('core-did-not-throw', `node ${this.index} on ${input.type}: ${text}`);
    }
    this.checkMemory();
    this.rearm();
  }

  // ---- NetworkEndpoint ----
  onLinkOpened(linkId: number, direction: 'inbound' | 'outbound', remoteAddress: string): void {
    this.input({ type: 'link-opened', nowMs: this.now, linkId, direction, remoteAddress });
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

  private perform(out: SimOutput): void {
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
        // This host feeds no `peer-discovered`, so the core never asks it to dial.
        throw new Error(`unexpected connect output for dial ${out.dialId}`);
      default: {
        const unreachable: never = out;
        throw new Error(`unhandled output ${JSON.stringify(unreachable)}`);
      }
    }
  }

  private onEvent(event: SimCoreEvent): void {
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
        // The sim never resumes, so the core always gives a digest (none fails the check).
        checker.onComplete(event.totalBytes, event.sha256 ?? new Uint8Array(0), ctx.digest.sha256);
        ctx.trace.note(this.now, this.index, `download:complete ${event.downloadId}`);
        ctx.onDownloadEnd(this.index, event.downloadId, 'complete', '');
        break;
      }
      case 'download:failed': {
        ctx.trace.note(this.now, this.index, `download:failed ${event.reason}: ${event.detail}`);
        const source = this.sources.get(event.downloadId);
        if (
          event.reason === 'sha256-mismatch' &&
          source?.kind === 'url' &&
          source.pooled !== false &&
          event.downloadId === this.activeDownloadId
        ) {
          // The Node host's fallback: discard the output, fetch from the origin alone.
          this.fallbacks++;
          const next = event.downloadId + 1;
          ctx.queue.schedule(this.now, 'fallback', this.index, next, () =>
            this.startDownload(next, { ...source, pooled: false }),
          );
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
      case 'peer:banned':
        ctx.trace.note(this.now, this.index, `peer:banned ${toHex(event.deviceId).slice(0, 8)}`);
        ctx.onBanned(this.index, toHex(event.deviceId), event.detail);
        break;
      default: {
        const unreachable: never = event;
        throw new Error(`unhandled event ${JSON.stringify(unreachable)}`);
      }
    }
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

  private rearm(): void {
    const deadline = this.core.nextDeadlineMs();
    if (deadline === this.timerAtMs) return;
    const token = ++this.timerToken;
    this.timerAtMs = deadline;
    if (deadline === undefined) return;
    const atMs = Math.max(deadline, this.now);
    this.ctx.queue.schedule(atMs, 'timer', this.index, 0, () => {
      if (token !== this.timerToken || !this.alive) return;
      this.timerAtMs = undefined;
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
      this.input({ type: 'timer-fired', nowMs: this.now });
    });
  }
}
