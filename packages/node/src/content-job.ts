/**
 * One content download inside the daemon (`peapod fetch ID`, a URL served from the pod): a core
 * `content` download whose verified bytes go to a sink.
 *
 * Theory of operation
 * - `run` starts the core download through `JobFactory.startContentDownload` (with the manifest
 *   when the store has it, and the `--only` chunk selection) and resolves once the job ended
 *   and its sink is closed. It never rejects for what the job meets (a full disk, a sink that
 *   cannot write, an unavailable content): those end the job with one `error` event.
 * - The core verifies every chunk against the manifest before it delivers it. `deliver` outputs
 *   are written to the sink one at a time, in order, on `writeChain`, and each is acknowledged
 *   (`jobs.acknowledge`) only once written, so memory stays bounded by the core's window.
 *   Offsets are content offsets; with a chunk selection the skipped ranges are never delivered.
 * - `download:progress` becomes a `progress` event, `download:complete` commits the sink (after
 *   every write before it) and emits `done`; `download:failed` aborts the sink, keeping what it
 *   wrote (the chunks are in the store, so a re-run reads them back instead of fetching them).
 * - `cancel` (the client left, the daemon stops) stops the core download and closes the sink,
 *   emitting no event.
 * The `start` event carries the content's size; `selectedBytes` is what this job fetches (the
 * whole content, or the bytes of the chunks `--only` chose).
 */
import { EventEmitter } from 'node:events';
import { type IndexRange, type Manifest, type TransferEvent, toHex } from '@peapod/core';
import type { CoreJob, JobFactory } from './job-factory.js';
import { escalateIfInvariant } from './process-guard.js';
import type { DownloadSink } from './sinks.js';

export interface ContentJobOptions {
  readonly contentId: Uint8Array;
  /** When the store has it (otherwise the core asks the pod for it). */
  readonly manifest?: Manifest;
  /** `--only`: fetch and deliver only these chunks. Default: every chunk. */
  readonly chunks?: readonly IndexRange[];
  /** sinks.ts FileSink/StreamSink, or a TreeSink (tree-sink.ts). */
  readonly sink: DownloadSink;
}

/** What the job reports (the CLI renders it; `--json` prints the summary). */
export type ContentJobEvent =
  | {
      readonly type: 'start';
      readonly contentId: string;
      /** The content's size; 0 until the manifest is known when the store had none. */
      readonly totalBytes: number;
      readonly selectedBytes: number;
      /** Where the bytes go: the file, or the directory of the tree (the daemon adds it). */
      readonly output?: string;
    }
  | {
      readonly type: 'progress';
      readonly verifiedBytes: number;
      readonly totalBytes: number;
      readonly bySource: Record<string, number>;
      /** Display label of each `bySource` key (the daemon adds it). */
      readonly sourceNames?: Record<string, string>;
    }
  | {
      readonly type: 'done';
      readonly contentId: string;
      readonly totalBytes: number;
      readonly seconds: number;
      readonly bySource: Record<string, number>;
      readonly sourceNames?: Record<string, string>;
    }
  | { readonly type: 'error'; readonly message: string }
  /** The API's, never the job's: what the daemon waits for before the job starts. */
  | { readonly type: 'waiting'; readonly message: string };

/**
 * One content download, from the core to a sink (module comment). `run` resolves once the job
 * ended and its sink closed; the events say how.
 */
export class ContentJob extends EventEmitter<{ event: [ContentJobEvent] }> implements CoreJob {
  private writeChain: Promise<void> = Promise.resolve();
  /** The job ended (done, failed or cancelled): no more writes, no second event. */
  private ended = false;
  private cancelled = false;
  private settle: () => void = () => undefined;
  private readonly settled = new Promise<void>((resolve) => (this.settle = resolve));
  private readonly startedMs = performance.now();
  private readonly contentIdHex: string;
  private bySource: Record<string, number> = {};
  downloadId: number | undefined;

  constructor(
    private readonly jobs: JobFactory,
    private readonly options: ContentJobOptions,
  ) {
    super();
    this.contentIdHex = toHex(options.contentId);
  }

  /** Runs the job; resolves when it is done or failed (see the events), its sink closed. */
  async run(): Promise<void> {
    const { contentId, manifest, chunks } = this.options;
    const totalBytes = manifest?.totalBytes ?? 0;
    this.emit('event', {
      type: 'start',
      contentId: this.contentIdHex,
      totalBytes,
      selectedBytes:
        manifest === undefined
          ? 0
          : chunks === undefined
            ? totalBytes
            : selectedBytes(manifest, chunks),
    });
    try {
      this.downloadId = this.jobs.startContentDownload(this, {
        contentId,
        ...(manifest === undefined ? {} : { manifest }),
        ...(chunks === undefined ? {} : { chunks }),
      });
    } catch (error) {
      await this.failWith(error);
    }
    await this.settled;
  }

  /** A `deliver` output of this job's core download (content offsets). */
  onDeliver(offset: number, bytes: Uint8Array, repair: boolean): void {
    this.chain(async () => {
      if (this.ended) return;
      await this.options.sink.write(offset, bytes, repair);
      if (this.downloadId !== undefined) this.jobs.acknowledge(this.downloadId, bytes.length);
    });
  }

  /** A content download never repairs, so the core never reads back; answered anyway. */
  readDelivered(offset: number, length: number): Promise<Uint8Array | undefined> {
    return this.writeChain.then(() => this.options.sink.read(offset, length));
  }

  /** A transfer event of this job's core download. */
  onCoreEvent(event: TransferEvent): void {
    switch (event.type) {
      case 'download:progress':
        this.bySource = { ...event.bySource };
        this.emit('event', {
          type: 'progress',
          verifiedBytes: event.verifiedBytes,
          totalBytes: event.totalBytes,
          bySource: this.bySource,
        });
        return;
      case 'download:complete':
        this.chain(() => this.complete(event.totalBytes));
        return;
      case 'download:failed':
        this.chain(() => this.failWith(new Error(failureSentence(event.reason, event.detail))));
        return;
      default:
        return;
    }
  }

  /** Ends the job with `message` (the store cannot keep its chunks, the content was removed). */
  fail(message: string): void {
    this.chain(() => this.failWith(new Error(message)));
  }

  /** The user interrupted (or the daemon stops): close the sink, no event. */
  async cancel(): Promise<void> {
    if (this.ended || this.cancelled) return;
    this.cancelled = true;
    if (this.downloadId !== undefined) this.jobs.cancelCoreDownload(this.downloadId);
    await this.writeChain;
    await this.failWith(new Error('cancelled'));
  }

  /** Runs `step` after the writes before it; an error in it ends this job (never rejects). */
  private chain(step: () => Promise<void>): void {
    this.writeChain = this.writeChain.then(step).catch((error: unknown) => this.failWith(error));
  }

  private async complete(totalBytes: number): Promise<void> {
    if (this.ended) return;
    try {
      await this.options.sink.commit('');
    } catch (error) {
      await this.failWith(error);
      return;
    }
    this.ended = true;
    this.jobs.forget(this);
    this.emit('event', {
      type: 'done',
      contentId: this.contentIdHex,
      totalBytes,
      seconds: (performance.now() - this.startedMs) / 1000,
      bySource: this.bySource,
    });
    this.settle();
  }

  /**
   * Ends the job with `error` unless it already ended: stops the core download, closes the sink
   * (keeping what it wrote), then one `error` event (none after a cancel). Never rejects, except
   * to escalate a broken invariant.
   */
  private async failWith(error: unknown): Promise<void> {
    escalateIfInvariant(error);
    if (this.ended) return;
    this.ended = true;
    if (this.downloadId !== undefined) this.jobs.cancelCoreDownload(this.downloadId);
    await this.options.sink.abort(true).catch(() => undefined);
    if (!this.cancelled) {
      const message = error instanceof Error ? error.message : String(error);
      this.emit('event', { type: 'error', message });
    }
    this.settle();
  }
}

/**
 * Bytes of the chosen chunks (the last chunk may be short).
 * @example
 * // A content of 131082 bytes in chunks of 64 KiB: chunks 1 and 2 hold 65546 of them.
 * selectedBytes(manifest, [{ start: 1, end: 3 }]); // => 65546
 */
export function selectedBytes(manifest: Manifest, chunks: readonly IndexRange[]): number {
  let total = 0;
  for (const range of chunks) {
    for (let index = range.start; index < range.end; index += 1) {
      const start = index * manifest.chunkSizeBytes;
      total += Math.max(0, Math.min(manifest.totalBytes, start + manifest.chunkSizeBytes) - start);
    }
  }
  return total;
}

/** The core's failure as one sentence (its 'unavailable' and 'stalled' details say what to do). */
function failureSentence(reason: string, detail: string): string {
  if (reason === 'unavailable') return `unavailable: ${detail}`;
  return reason === 'stalled' ? detail : `${reason}: ${detail}`;
}
