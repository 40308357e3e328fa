/**
 * One `peapod get` (or one pooled proxy GET) inside the daemon, from probe to verified file.
 *
 * Theory of operation
 * 1. Probe the origin once. A pooled download needs a known size and Range support; every range
 *    is pinned to the probed version by the strongest validator the origin gives (DESIGN.md
 *    decision 6, http/origin-pin.ts), and the plan's `pinning` (level and guarantee) is in the
 *    'start' and 'done' events. Without them, or with pooling turned off, the job downloads from
 *    the origin alone and says why in one line.
 * 2. Pooled: the job opens its sink (which may resume a part file), then asks the core for a
 *    `url` download of [resumeOffset, size). The core assigns pieces to this device and to pod
 *    peers; `deliver` outputs reach `onDeliver`, which writes them one at a time and reports each
 *    to the core as `delivered` only once written (bounded memory: the core's reorder window).
 * 3. Every delivered byte also feeds the end-to-end verifier (the user's `--sha256`, the origin's
 *    Repr-Digest / x-amz-checksum-sha256 / S3 MD5 ETag). A repair (a lying helper's range
 *    rewritten) makes the streamed digest moot: the file is then read back and hashed again.
 * 4. The core reports `download:complete`, the job verifies, commits the file and finishes. The
 *    first `origin-changed` re-probes (`JobHost.replan`) and downloads the new version pooled
 *    from byte 0, pinned to it, saying so in a note; a second one, a new version that cannot be
 *    pooled, or a `sha256-mismatch` restart the job as a single-source download from byte 0
 *    (costs time, never correctness), saying why; others fail it with the core's detail,
 *    keeping the part file for a resume when its prefix is still trusted.
 *    After `origin-changed` the digests of the first probe describe the old version: the new
 *    one is verified against the user's `--sha256` and the digests its own response states.
 * 5. Resume: the core counts `deliver` and `read-delivered` offsets from its `startOffset`
 *    (transfer-api.ts); the job adds the resume offset back before touching the sink.
 * 6. `cancel` (the CLI went away, the daemon stops) stops the core download or the
 *    single-source fetch (its next chunk is refused) and closes the sink, keeping the part file.
 */
import { EventEmitter } from 'node:events';
import type { TransferEvent } from '@peapod/core';
import { ObjectVerifier, type ExpectedDigest } from './http/digest.js';
import type { WholeFetchResult } from './http/origin-whole.js';
import { pinningOf, type JobPlan, type Pinning } from './http/pin-plan.js';
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
      /** How the bytes are tied to one version of the object, and what that guarantees. */
      readonly pinning: Pinning;
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
      /** As in 'start', for the download that finished (after a restart, the new version's). */
      readonly pinning: Pinning;
    }
  | { readonly type: 'error'; readonly message: string };

/** The parts of the daemon a job uses; see daemon.ts. */
export interface JobHost {
  /** Starts a core `url` download; returns its download ID. */
  startCoreDownload(job: DownloadJob, spec: CoreUrlSpec): number;
  cancelCoreDownload(downloadId: number): void;
  /** Tells the core that `byteCount` delivered bytes were consumed. */
  acknowledge(downloadId: number, byteCount: number): void;
  /**
   * Plain single-source GET of [offset, end) streamed in order to `onData` (a rejection from
   * `onData` stops it); resolves with the digests the response states.
   */
  fetchWhole(
    url: string,
    headers: readonly HeaderPair[],
    offset: number,
    validator: string,
    onData: (bytes: Uint8Array) => Promise<void>,
    signal: AbortSignal,
  ): Promise<WholeFetchResult>;
  /**
   * Probes the origin again after the object changed and plans the download of the new
   * version (pin-plan.ts `planFromProbe`, with the user's own digests); rejects with a sentence
   * when the probe fails or `signal` aborts it (the job was cancelled).
   */
  replan(
    url: string,
    headers: readonly HeaderPair[],
    user: readonly ExpectedDigest[],
    strict: boolean,
    signal: AbortSignal,
  ): Promise<{ readonly plan: JobPlan; readonly digests: readonly ExpectedDigest[] }>;
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
  readonly pinStrength: 'strong' | 'weak';
  readonly headers: readonly HeaderPair[];
}

/** Least time between two progress events of a single-source download (as the core's). */
const PROGRESS_INTERVAL_MS = 250;

export class DownloadJob extends EventEmitter<{ event: [JobEvent]; settled: [] }> {
  private writeChain: Promise<void> = Promise.resolve();
  private repaired = false;
  private failed = false;
  /** Object offset of the core download's byte 0 (the resume offset). */
  private coreStartOffset = 0;
  /** True while a single-source fetch runs: it, not the core, must stop on cancel. */
  private singleSource = false;
  private verifiedBytes = 0;
  private bySource: Record<string, number> = {};
  private readonly startedMs = performance.now();
  private readonly aborted = new AbortController();
  /** Pooled restarts after the object changed (at most one; see `coreFailed`). */
  private restarts = 0;
  downloadId: number | undefined;

  constructor(
    private readonly host: JobHost,
    readonly url: string,
    private readonly sink: DownloadSink,
    private verifier: ObjectVerifier,
    private plan: {
      readonly pooled: boolean;
      readonly note: string;
      readonly totalBytes: number | undefined;
      readonly validator: string;
      readonly pinStrength: 'strong' | 'weak';
      readonly pinning: Pinning;
      readonly headers: readonly HeaderPair[];
      /** SHA-256 of the whole object when the user or the origin stated one. */
      readonly sha256?: Uint8Array | undefined;
      /** `--strict`: a restart after a change must pool with a strong pin or a known digest. */
      readonly strict?: boolean;
    },
  ) {
    super();
  }

  /** Runs the job; resolves when it is done or failed (see the events). */
  async run(): Promise<void> {
    const { totalBytes, pooled, note, pinning } = this.plan;
    const resumeOffset = this.sink.resumeOffset;
    this.emit('event', { type: 'start', totalBytes, pooled, note, resumeOffset, pinning });
    if (resumeOffset > 0) await this.feedPrefix(resumeOffset);
    this.verifiedBytes = resumeOffset;
    if (pooled && totalBytes !== undefined) {
      await new Promise<void>((resolve) => {
        this.once('settled', resolve);
        this.startPooled(resumeOffset, totalBytes);
      });
      return;
    }
    await this.runSingleSource(resumeOffset);
  }

  /** Starts (or, after a change, restarts) the core download of [startOffset, totalBytes). */
  private startPooled(startOffset: number, totalBytes: number): void {
    this.coreStartOffset = startOffset;
    this.downloadId = this.host.startCoreDownload(this, {
      url: this.url,
      startOffset,
      totalBytes,
      validator: this.plan.validator,
      pinStrength: this.plan.pinStrength,
      headers: this.plan.headers,
      ...(startOffset === 0 && this.plan.sha256 !== undefined ? { sha256: this.plan.sha256 } : {}),
    });
  }

  /** A `deliver` output of this job's core download. */
  onDeliver(coreOffset: number, bytes: Uint8Array, repair: boolean): void {
    const offset = this.coreStartOffset + coreOffset;
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
  readDelivered(coreOffset: number, length: number): Promise<Uint8Array | undefined> {
    return this.writeChain.then(() => this.sink.read(this.coreStartOffset + coreOffset, length));
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
    if (this.failed) return;
    if (this.downloadId !== undefined) this.host.cancelCoreDownload(this.downloadId);
    this.fail('cancelled', true);
    this.aborted.abort(); // a single-source fetch stops at once, even if the origin stalls
    await this.writeChain;
    // A single-source fetch refuses its next chunk and then closes the sink itself.
    if (!this.singleSource) await this.sink.abort(true);
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
      // The digests this file was actually checked against (after a change, the new version's).
      pinning: pinningOf(
        this.plan.pinning.level,
        report.checks.map((check) => check.source),
      ),
    });
    this.emit('settled');
  }

  private async coreFailed(reason: string, detail: string): Promise<void> {
    if (this.failed) return;
    let why = detail;
    if (reason === 'origin-changed' && this.restarts === 0) {
      this.restarts += 1;
      const restarted = await this.restartPooled(detail);
      if (restarted === true || this.failed) return; // restarted, or cancelled meanwhile
      why = `${detail}; ${restarted}`;
    } else if (reason === 'origin-changed') {
      why = `${detail}; it changed a second time`;
    }
    if (reason === 'origin-changed' || reason === 'sha256-mismatch') {
      // Costs time, never correctness: start over from the origin alone.
      const user = userExpectations(this.verifier).map((digest) => digest.source);
      this.plan = { ...this.plan, pinning: pinningOf('single-source', user) };
      this.emit('event', {
        type: 'start',
        totalBytes: undefined,
        pooled: false,
        note: `pooled download stopped (${why}); downloading from the origin alone`,
        resumeOffset: 0,
        pinning: this.plan.pinning,
      });
      try {
        await this.sink.restart(); // the old version's bytes (or a longer tail) must not stay
      } catch (error) {
        await this.sink.abort(false);
        this.fail(error instanceof Error ? error.message : String(error));
        return;
      }
      await this.runSingleSource(0, reason === 'origin-changed' ? 'changed' : 'again');
      this.emit('settled');
      return;
    }
    await this.sink.abort(!this.repaired);
    this.fail(`${reason}: ${detail}`);
  }

  /**
   * After the first change: probe again and download the new version pooled, pinned to it
   * (DESIGN.md decision 6). True when the new download started; otherwise why not, as a clause.
   */
  private async restartPooled(detail: string): Promise<true | string> {
    const user = userExpectations(this.verifier);
    let replanned;
    try {
      replanned = await this.host.replan(
        this.url,
        this.plan.headers,
        user,
        this.plan.strict ?? false,
        this.aborted.signal,
      );
    } catch (error) {
      return `probing it again failed (${error instanceof Error ? error.message : String(error)})`;
    }
    const { plan, digests } = replanned;
    if (plan.kind !== 'pooled') return `its new version cannot be pooled: ${plan.reason}`;
    if (this.failed) return 'cancelled';
    try {
      await this.sink.restart(); // the old version's bytes (or a longer tail) must not stay
    } catch (error) {
      return `the output could not start over (${error instanceof Error ? error.message : String(error)})`;
    }
    const expected = [...user, ...digests];
    this.verifier = new ObjectVerifier(expected);
    this.plan = {
      ...this.plan,
      totalBytes: plan.totalBytes,
      validator: plan.validator,
      pinStrength: plan.pinStrength,
      pinning: plan.pinning,
      sha256: expected.find((digest) => digest.algorithm === 'sha-256')?.digest,
    };
    this.repaired = false;
    this.verifiedBytes = 0;
    this.bySource = {};
    this.emit('event', {
      type: 'start',
      totalBytes: plan.totalBytes,
      pooled: true,
      note: `the object changed during the pooled download (${detail}); downloading its new version pooled, pinned by ${plan.pinning.level}`,
      resumeOffset: 0,
      pinning: plan.pinning,
    });
    if (this.downloadId !== undefined) this.host.cancelCoreDownload(this.downloadId); // ended
    this.startPooled(0, plan.totalBytes);
    return true;
  }

  /**
   * The object from the origin alone, from `offset`. `again`: from 0 after the pooled bytes
   * failed the object's SHA-256 (same version, same expectations). `changed`: from 0 after the
   * object changed; only the user's `--sha256` still applies while streaming, and the digests
   * the new response states are checked by reading the file back at the end.
   */
  private async runSingleSource(
    offset: number,
    mode: 'first' | 'again' | 'changed' = 'first',
  ): Promise<void> {
    const user = userExpectations(this.verifier);
    let verifier =
      mode === 'first'
        ? this.verifier
        : mode === 'again'
          ? this.verifier.restart()
          : new ObjectVerifier(user);
    this.verifiedBytes = offset;
    this.singleSource = true;
    let lastProgressMs = -Infinity;
    let result: WholeFetchResult;
    try {
      result = await this.host.fetchWhole(
        this.url,
        this.plan.headers,
        offset,
        mode === 'first' ? this.plan.validator : '',
        async (bytes) => {
          if (this.failed) throw new Error('cancelled');
          await this.sink.write(this.verifiedBytes, bytes, false);
          verifier.update(bytes);
          this.verifiedBytes += bytes.length;
          this.bySource = { self: this.verifiedBytes - offset };
          await this.sink.progress(this.verifiedBytes);
          // At most one event per PROGRESS_INTERVAL_MS (a read is ~64 KiB: thousands a second
          // on a fast link), like the core's download:progress; `done` carries the final count.
          const now = performance.now();
          if (now - lastProgressMs < PROGRESS_INTERVAL_MS) return;
          lastProgressMs = now;
          this.emit('event', {
            type: 'progress',
            verifiedBytes: this.verifiedBytes,
            totalBytes: this.plan.totalBytes,
            bySource: this.bySource,
          });
        },
        this.aborted.signal,
      );
    } catch (error) {
      await this.sink.abort(true);
      this.fail(error instanceof Error ? error.message : String(error));
      return;
    }
    if (mode === 'changed' && result.digests.length > 0) {
      const stated = new ObjectVerifier([...user, ...result.digests]);
      if (await this.readBack(stated, this.verifiedBytes)) verifier = stated;
    }
    await this.complete(verifier, false);
  }

  /** Feeds `verifier` the sink's bytes [0, length); false if the sink cannot be read back. */
  private async readBack(verifier: ObjectVerifier, length: number): Promise<boolean> {
    for (let offset = 0; offset < length; offset += 4 * 1024 * 1024) {
      const bytes = await this.sink.read(offset, Math.min(4 * 1024 * 1024, length - offset));
      if (bytes === undefined) return false;
      verifier.update(bytes);
    }
    return true;
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

/**
 * The user's own expectations (`--sha256`) among a verifier's: they still hold after the object
 * changed, unlike the digests the origin stated for its old version. ObjectVerifier keeps its
 * list private; a fresh copy's report lists every expectation with its source.
 */
function userExpectations(verifier: ObjectVerifier): ExpectedDigest[] {
  return verifier
    .restart()
    .finish()
    .checks.filter((check) => check.source === '--sha256')
    .map(({ algorithm, digest, source }) => ({ algorithm, digest, source }));
}
