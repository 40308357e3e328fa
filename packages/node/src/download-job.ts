/**
 * One `peapod get` (or one pooled proxy GET) inside the daemon, from probe to verified file.
 *
 * Theory of operation
 * 1. Probe the origin once. A pooled download needs a known size, Range support and a strong
 *    ETag (DESIGN.md decision 6: every range is pinned to that version). Without them, or with
 *    pooling turned off, the job downloads from the origin alone and says why in one line.
 * 2. Pooled: the job opens its sink (which may resume a part file), then asks the core for a
 *    `url` download of [resumeOffset, size). The core assigns pieces to this device and to pod
 *    peers; `deliver` outputs reach `onDeliver`, which writes them one at a time and reports each
 *    to the core as `delivered` only once written (bounded memory: the core's reorder window).
 * 3. Every delivered byte also feeds the end-to-end verifier (the user's `--sha256`, the origin's
 *    Repr-Digest / x-amz-checksum-sha256 / S3 MD5 ETag). A repair (a lying helper's range
 *    rewritten) makes the streamed digest moot: the file is then read back and hashed again.
 * 4. The core reports `download:complete`, the job verifies, commits the file and finishes. A
 *    core failure of kind `origin-changed` or `sha256-mismatch` restarts the job as a
 *    single-source download (costs time, never correctness); others fail it with the core's
 *    detail, keeping the part file for a resume when its prefix is still trusted.
 */
import { EventEmitter } from 'node:events';
import type { TransferEvent } from '@peapod/core';
import type { ObjectVerifier } from './http/digest.js';
import type { DownloadSink } from './sinks.js';

/** What the job reports (the CLI renders it; `--json` prints the summary). */
export type JobEvent =
  | {
      readonly type: 'start';
      readonly totalBytes: number | undefined;
      readonly pooled: boolean;
      /** Why this download is not pooled, or why it could not resume; empty when neither. */
      readonly note: string;
      readonly resumeOffset: number;
    }
  | {
      readonly type: 'progress';
      readonly verifiedBytes: number;
      readonly totalBytes: number | undefined;
      readonly bySource: Readonly<Record<string, number>>;
    }
  | {
      readonly type: 'done';
      readonly totalBytes: number;
      readonly sha256: string;
      readonly verified: readonly string[];
      readonly pooled: boolean;
      readonly seconds: number;
      readonly bySource: Readonly<Record<string, number>>;
    }
  | { readonly type: 'error'; readonly message: string };

/** The parts of the daemon a job uses; see daemon.ts. */
export interface JobHost {
  /** Starts a core `url` download; returns its download ID. */
  startCoreDownload(job: DownloadJob, spec: CoreUrlSpec): number;
  cancelCoreDownload(downloadId: number): void;
  /** Tells the core that `byteCount` delivered bytes were consumed. */
  acknowledge(downloadId: number, byteCount: number): void;
  /** Plain single-source GET of [offset, end) streamed in order to `onData`. */
  fetchWhole(
    url: string,
    headers: readonly HeaderPair[],
    offset: number,
    validator: string,
    onData: (bytes: Uint8Array) => Promise<void>,
  ): Promise<void>;
}

export type HeaderPair = { readonly name: string; readonly value: string };

export interface CoreUrlSpec {
  readonly url: string;
  /** Resume point: the core downloads [startOffset, totalBytes) only. */
  readonly startOffset: number;
  /** The object's SHA-256 when known and not resuming: the core then checks it too. */
  readonly sha256?: Uint8Array;
  readonly totalBytes: number;
  readonly validator: string;
  readonly headers: readonly HeaderPair[];
}

export class DownloadJob extends EventEmitter<{ event: [JobEvent]; settled: [] }> {
  private writeChain: Promise<void> = Promise.resolve();
  private repaired = false;
  private failed = false;
  private verifiedBytes = 0;
  private bySource: Record<string, number> = {};
  private readonly startedMs = performance.now();
  downloadId: number | undefined;

  constructor(
    private readonly host: JobHost,
    readonly url: string,
    private readonly sink: DownloadSink,
    private readonly verifier: ObjectVerifier,
    private readonly plan: {
      readonly pooled: boolean;
      readonly note: string;
      readonly totalBytes: number | undefined;
      readonly validator: string;
      readonly headers: readonly HeaderPair[];
      /** SHA-256 of the whole object when the user or the origin stated one. */
      readonly sha256?: Uint8Array | undefined;
    },
  ) {
    super();
  }

  /** Runs the job; resolves when it is done or failed (see the events). */
  async run(): Promise<void> {
    const { totalBytes, pooled, note } = this.plan;
    const resumeOffset = this.sink.resumeOffset;
    this.emit('event', { type: 'start', totalBytes, pooled, note, resumeOffset });
    if (resumeOffset > 0) await this.feedPrefix(resumeOffset);
    this.verifiedBytes = resumeOffset;
    if (pooled && totalBytes !== undefined) {
      await new Promise<void>((resolve) => {
        this.once('settled', resolve);
        this.downloadId = this.host.startCoreDownload(this, {
          url: this.url,
          startOffset: resumeOffset,
          totalBytes,
          validator: this.plan.validator,
          headers: this.plan.headers,
          ...(resumeOffset === 0 && this.plan.sha256 !== undefined
            ? { sha256: this.plan.sha256 }
            : {}),
        });
      });
      return;
    }
    await this.runSingleSource(resumeOffset);
  }

  /** A `deliver` output of this job's core download. */
  onDeliver(offset: number, bytes: Uint8Array, repair: boolean): void {
    this.writeChain = this.writeChain.then(async () => {
      if (this.failed) return;
      try {
        await this.sink.write(offset, bytes, repair);
      } catch (error) {
        this.fail(error instanceof Error ? error.message : String(error));
        return;
      }
      if (repair) this.repaired = true;
      else {
        this.verifier.update(bytes);
        this.verifiedBytes = offset + bytes.length;
        await this.sink.progress(this.verifiedBytes);
      }
      if (this.downloadId !== undefined) this.host.acknowledge(this.downloadId, bytes.length);
    });
  }

  /** Reads back delivered bytes for the core (after repairs). */
  readDelivered(offset: number, length: number): Promise<Uint8Array | undefined> {
    return this.writeChain.then(() => this.sink.read(offset, length));
  }

  /** A transfer event of this job's core download. */
  onCoreEvent(event: TransferEvent): void {
    switch (event.type) {
      case 'download:progress':
        this.bySource = { ...event.bySource };
        this.emit('event', {
          type: 'progress',
          verifiedBytes: this.sink.resumeOffset + event.verifiedBytes,
          totalBytes: this.plan.totalBytes,
          bySource: this.bySource,
        });
        return;
      case 'download:complete':
        this.writeChain = this.writeChain.then(() => this.finishPooled());
        return;
      case 'download:failed':
        this.writeChain = this.writeChain.then(() => this.coreFailed(event.reason, event.detail));
        return;
      default:
        return;
    }
  }

  /** The user interrupted (or the daemon stops): keep the part file for a resume. */
  async cancel(): Promise<void> {
    if (this.downloadId !== undefined) this.host.cancelCoreDownload(this.downloadId);
    this.fail('cancelled', true);
    await this.writeChain;
  }

  private async finishPooled(): Promise<void> {
    if (this.failed) return;
    let verifier = this.verifier;
    if (this.repaired) {
      verifier = this.verifier.restart();
      const total = this.plan.totalBytes ?? 0;
      for (let offset = 0; offset < total; offset += 4 * 1024 * 1024) {
        const bytes = await this.sink.read(offset, Math.min(4 * 1024 * 1024, total - offset));
        if (bytes === undefined) break;
        verifier.update(bytes);
      }
    }
    await this.complete(verifier, true);
  }

  private async complete(verifier: ObjectVerifier, pooled: boolean): Promise<void> {
    const report = verifier.finish();
    if (!report.ok) {
      await this.sink.abort(false);
      this.fail(report.message);
      return;
    }
    await this.sink.commit(report.sha256Hex);
    this.emit('event', {
      type: 'done',
      totalBytes: this.verifiedBytes,
      sha256: report.sha256Hex,
      verified: report.verified,
      pooled,
      seconds: (performance.now() - this.startedMs) / 1000,
      bySource: this.bySource,
    });
    this.emit('settled');
  }

  private async coreFailed(reason: string, detail: string): Promise<void> {
    if (this.failed) return;
    if (reason === 'origin-changed' || reason === 'sha256-mismatch') {
      // Costs time, never correctness: start over from the origin alone.
      this.emit('event', {
        type: 'start',
        totalBytes: undefined,
        pooled: false,
        note: `pooled download stopped (${detail}); downloading from the origin alone`,
        resumeOffset: 0,
      });
      await this.runSingleSource(0, true);
      this.emit('settled');
      return;
    }
    await this.sink.abort(!this.repaired);
    this.fail(`${reason}: ${detail}`);
  }

  private async runSingleSource(offset: number, restart = false): Promise<void> {
    let verifier = this.verifier;
    if (restart) verifier = this.verifier.restart();
    this.verifiedBytes = offset;
    try {
      await this.host.fetchWhole(
        this.url,
        this.plan.headers,
        offset,
        restart ? '' : this.plan.validator,
        async (bytes) => {
          await this.sink.write(this.verifiedBytes, bytes, false);
          verifier.update(bytes);
          this.verifiedBytes += bytes.length;
          this.bySource = { self: this.verifiedBytes - offset };
          await this.sink.progress(this.verifiedBytes);
          this.emit('event', {
            type: 'progress',
            verifiedBytes: this.verifiedBytes,
            totalBytes: this.plan.totalBytes,
            bySource: this.bySource,
          });
        },
      );
    } catch (error) {
      await this.sink.abort(true);
      this.fail(error instanceof Error ? error.message : String(error));
      return;
    }
    await this.complete(verifier, false);
  }

  /** Hashes the resumed prefix from the sink, so end-to-end digests cover the whole object. */
  private async feedPrefix(length: number): Promise<void> {
    for (let offset = 0; offset < length; offset += 4 * 1024 * 1024) {
      const bytes = await this.sink.read(offset, Math.min(4 * 1024 * 1024, length - offset));
      if (bytes === undefined) return;
      this.verifier.update(bytes);
    }
  }

  private fail(message: string, quiet = false): void {
    if (this.failed) return;
    this.failed = true;
    if (!quiet) this.emit('event', { type: 'error', message });
    this.emit('settled');
  }
}
