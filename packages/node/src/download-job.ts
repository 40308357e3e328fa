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
 * 3. Digests (BRIEF interface 2): the end-to-end checks (the user's `--sha256`, the origin's
 *    Repr-Digest / x-amz-checksum-sha256 / S3 MD5 ETag) take the object's SHA-256 from the
 *    core's `download:complete.sha256` (its digest of what it delivered, after any repair from
 *    its one read-back): a pooled download from byte 0 hashes SHA-256 nowhere here. Only other
 *    algorithms (MD5 for an ETag, sha-512) are hashed here, from the delivered bytes; after a
 *    repair, from the core's read-back as the job answers it (`read-delivered`), or, if that
 *    did not cover the object, by reading the output back once. A resume (the core starts at
 *    `startOffset` > 0 and cannot know the whole object's digest) and a single-source download
 *    hash everything here, once: the prefix as the sink checked it on open, then each new byte.
 * 4. The core reports `download:complete`, the job verifies, commits the file and finishes. A
 *    `download:failed` carries the core's fallback (its fallback-policy.ts), which the job
 *    carries out and never re-decides:
 *    `repin` re-probes (`JobHost.replan`) and downloads the new version pooled from byte 0,
 *    pinned to it, as the next `attempt`, saying so in a note (when the new version cannot be
 *    pooled, it goes on as `origin-only`); `origin-only` restarts the job as a single-source
 *    download from byte 0 (costs time, never correctness), saying why; `none` fails it with the
 *    core's detail, keeping the part file for a resume when its prefix is still trusted.
 *    After `origin-changed` the digests of the first probe describe the old version: the new
 *    one is verified against the user's `--sha256` and the digests its own response states.
 * 5. Resume: the core counts `deliver` and `read-delivered` offsets from its `startOffset`
 *    (transfer-api.ts); the job adds the resume offset back before touching the sink.
 * 6. `cancel` (the CLI went away, the daemon stops) stops the core download or the
 *    single-source fetch (its next chunk is refused) and closes the sink, keeping the part file.
 * 7. Containment: nothing one job meets (a full disk, a directory as output, an origin that
 *    lies or resets) may escape it. Every step runs in `run()`'s try or on `writeChain`, whose
 *    steps go through `chain()`; any error there ends this job alone (`failWith`: the core
 *    download stops, the sink closes, one `error` event), and `settled` comes only after the
 *    sink is closed, so the output file is free again when `run()` resolves. A broken
 *    invariant (PEAPOD_ERR_ASSERTION) is not contained: it is a PeaPod bug, so it is rethrown
 *    to the process (process-guard.ts), which logs it and exits.
 */
import { EventEmitter } from 'node:events';
import type { DownloadFallback, TransferEvent } from '@peapod/core';
import { ObjectVerifier, type ExpectedDigest } from './http/digest.js';
import type { WholeFetchResult } from './http/origin-whole.js';
import { escalateIfInvariant } from './process-guard.js';
import { pinningOf, type JobPlan, type Pinning } from './http/pin-plan.js';
import { podNote, type PodOutcome, type PodServing } from './pod-source.js';
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
      /** `pod`: a pod member's copy, revalidated with the origin (pod-source.ts). */
      readonly servedFrom?: 'pod';
    }
  | {
      readonly type: 'progress';
      readonly verifiedBytes: number;
      readonly totalBytes: number | undefined;
      readonly bySource: Readonly<Record<string, number>>;
      /** Display label of each `bySource` key, `laptop (MFQWCYL)` (the daemon adds it). */
      readonly sourceNames?: Readonly<Record<string, string>>;
    }
  | {
      readonly type: 'done';
      readonly totalBytes: number;
      readonly sha256: string;
      readonly verified: readonly string[];
      readonly pooled: boolean;
      readonly seconds: number;
      readonly bySource: Readonly<Record<string, number>>;
      /** As in `progress`. */
      readonly sourceNames?: Readonly<Record<string, string>>;
      /** As in 'start', for the download that finished (after a restart, the new version's). */
      readonly pinning: Pinning;
      /** `pod`: the bytes came from the pod (`bySource` names who sent them), not the origin. */
      readonly servedFrom?: 'pod';
      /** How the origin confirmed the pod's copy: `304 Not Modified to If-None-Match: "v1"`. */
      readonly revalidation?: string;
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

/** What a job does besides downloading from the origin (job-factory.ts sets them). */
export interface JobExtras {
  /**
   * A pod member's copy the origin confirmed (304): served first (pod-source.ts); if it cannot
   * be used, the job probes again and downloads from the origin into the same sink.
   */
  readonly pod?: {
    readonly serving: PodServing;
    serve(
      sink: DownloadSink,
      signal: AbortSignal,
      emit: (event: JobEvent) => void,
    ): Promise<PodOutcome>;
  };
  /**
   * After the output is committed, before 'done': keep it as content of the URL at the
   * version it holds (`validator`: the pin; '' for a single-source download of the probed
   * version). Never called when the version is unknown (the object changed mid-way and the
   * rest came from the origin alone). `source`: `pod` for the pod's copy (`JobExtras.pod`),
   * `origin` for a download from the origin (also after a pod copy was not used). A rejection
   * is the hook's to report; the job ignores it.
   */
  readonly record?:
    | ((validator: string, totalBytes: number, source: 'pod' | 'origin') => Promise<void>)
    | undefined;
}

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
  /** Fallbacks carried out before this download (0 the first; BRIEF interface 1). */
  readonly attempt: number;
}

type DownloadFailedEvent = Extract<TransferEvent, { type: 'download:failed' }>;

/** Least time between two progress events of a single-source download (as the core's). */
const PROGRESS_INTERVAL_MS = 250;

export class DownloadJob extends EventEmitter<{ event: [JobEvent]; settled: [] }> {
  private writeChain: Promise<void> = Promise.resolve();
  private repaired = false;
  /** The job stopped (failed or cancelled): no more writes, no second error. */
  private failed = false;
  private cancelled = false;
  private settledOnce = false;
  /** Object offset of the core download's byte 0 (the resume offset). */
  private coreStartOffset = 0;
  private verifiedBytes = 0;
  private bySource: Record<string, number> = {};
  private readonly startedMs = performance.now();
  private readonly aborted = new AbortController();
  /** Serving the pod's copy (`JobExtras.pod`), while it runs. */
  private podRun: Promise<PodOutcome> | undefined;
  /** The output is the version `plan.validator` names (`JobExtras.record`). */
  private versionKnown = true;
  /** Fallbacks carried out so far: the next core download's `attempt`. */
  private attempt = 0;
  /** What the end-to-end checks are fed; see `runSteps`. */
  private verifier: ObjectVerifier;
  /** The verifier's state at the core download's byte 0 (after a resumed prefix). */
  private base: ObjectVerifier;
  /** Hashes the core's read-back after a repair, in order (`readDelivered`). */
  private readBack: { verifier: ObjectVerifier; next: number; chain: Promise<void> } | undefined;
  downloadId: number | undefined;

  /**
   * `expected`: the digests the object must have. `prefix`: when the sink resumes, a host
   * verifier (ObjectVerifier 'host') already fed the sink's prefix (FileSink.open's `onPrefix`);
   * without it the job reads the prefix back once to hash it.
   */
  constructor(
    private readonly host: JobHost,
    readonly url: string,
    private readonly sink: DownloadSink,
    private expected: readonly ExpectedDigest[],
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
    private readonly prefix?: ObjectVerifier,
    private readonly extras: JobExtras = {},
  ) {
    super();
    this.verifier = ObjectVerifier.create(expected, 'host');
    this.base = this.verifier;
  }

  /** The object's size when the origin stated it. */
  get totalBytes(): number | undefined {
    return this.plan.totalBytes;
  }

  /** Runs the job; resolves when it is done or failed (see the events). */
  async run(): Promise<void> {
    try {
      await this.runSteps();
    } catch (error) {
      await this.failWith(error, true);
    }
  }

  private async runSteps(): Promise<void> {
    if (this.extras.pod !== undefined && !(await this.runFromPod(this.extras.pod))) return;
    const { totalBytes, pooled, note, pinning } = this.plan;
    const resumeOffset = this.sink.resumeOffset;
    this.emit('event', { type: 'start', totalBytes, pooled, note, resumeOffset, pinning });
    const coreHashes = pooled && totalBytes !== undefined && resumeOffset === 0;
    if (resumeOffset > 0) this.verifier = this.prefix ?? (await this.hashPrefix(resumeOffset));
    else this.verifier = ObjectVerifier.create(this.expected, coreHashes ? 'core' : 'host');
    this.base = this.verifier.copy();
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

  /**
   * Serves the pod's copy (pod-source.ts). False when that ended the job (served, or
   * cancelled); true when it could not be used and the job goes on from the origin, with a
   * fresh probe's plan and the sink started over.
   */
  private async runFromPod(pod: NonNullable<JobExtras['pod']>): Promise<boolean> {
    const { serving } = pod;
    const copy = serving.copies[0]!;
    this.emit('event', {
      type: 'start',
      totalBytes: this.plan.totalBytes,
      pooled: false,
      note: podNote(serving),
      resumeOffset: 0,
      pinning: this.plan.pinning,
      servedFrom: 'pod',
    });
    const run = pod.serve(this.sink, this.aborted.signal, (event) => this.emit('event', event));
    this.podRun = run;
    const outcome = await run;
    if (outcome.kind === 'cancelled' || this.cancelled) {
      // `cancel` closes the sink and settles: `run` resolves after that, as on every path.
      if (!this.settledOnce) await new Promise<void>((resolve) => this.once('settled', resolve));
      return false;
    }
    if (outcome.kind === 'served') {
      this.verifiedBytes = outcome.done.totalBytes;
      await this.extras
        .record?.(copy.validator, outcome.done.totalBytes, 'pod')
        .catch(() => undefined);
      this.emit('event', outcome.done);
      this.settle();
      return false;
    }
    const user = userExpectations(this.expected);
    const { plan, digests } = await this.host.replan(
      this.url,
      this.plan.headers,
      user,
      this.plan.strict ?? false,
      this.aborted.signal,
    );
    if (plan.kind === 'refused') throw new Error(plan.reason);
    await this.sink.restart();
    this.expected = [...user, ...digests];
    const fresh = `${outcome.reason}; downloading it from the origin`;
    this.plan =
      plan.kind === 'pooled'
        ? {
            ...this.plan,
            pooled: true,
            note: fresh,
            totalBytes: plan.totalBytes,
            validator: plan.validator,
            pinStrength: plan.pinStrength,
            pinning: plan.pinning,
            sha256: this.expected.find((digest) => digest.algorithm === 'sha-256')?.digest,
          }
        : {
            ...this.plan,
            pooled: false,
            note: `${fresh}; not pooled: ${plan.reason}`,
            totalBytes: undefined,
            validator: '',
            pinning: plan.pinning,
          };
    // A single source's version is the fresh probe's, whose headers the recorder never saw.
    if (plan.kind !== 'pooled') this.versionKnown = false;
    return true;
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
      attempt: this.attempt,
      ...(startOffset === 0 && this.plan.sha256 !== undefined ? { sha256: this.plan.sha256 } : {}),
    });
  }

  /** A `deliver` output of this job's core download. */
  onDeliver(coreOffset: number, bytes: Uint8Array, repair: boolean): void {
    const offset = this.coreStartOffset + coreOffset;
    this.chain(async () => {
      if (this.failed) return;
      await this.sink.write(offset, bytes, repair);
      if (repair) this.repaired = true;
      else {
        this.verifier.update(bytes);
        this.verifiedBytes = offset + bytes.length;
        await this.sink.progress(this.verifiedBytes);
      }
      if (this.downloadId !== undefined) this.host.acknowledge(this.downloadId, bytes.length);
    });
  }

  /**
   * Reads back delivered bytes for the core (after repairs). The core asks for its whole range
   * in order from 0; the algorithms only this job hashes (MD5, sha-512, all on a resume) are fed
   * the same bytes, in that order, so the output is read back once.
   */
  readDelivered(coreOffset: number, length: number): Promise<Uint8Array | undefined> {
    const read = this.writeChain.then(() =>
      this.sink.read(this.coreStartOffset + coreOffset, length),
    );
    if (!this.base.hashing) return read;
    if (coreOffset === 0) {
      this.readBack = { verifier: this.base.copy(), next: 0, chain: Promise.resolve() };
    }
    const readBack = this.readBack;
    if (readBack !== undefined) {
      readBack.chain = readBack.chain.then(async () => {
        const bytes = await read.catch(() => undefined);
        if (bytes === undefined || coreOffset !== readBack.next) readBack.next = -1;
        else {
          readBack.verifier.update(bytes);
          readBack.next += bytes.length;
        }
      });
    }
    return read;
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
        // Undefined for a resume (the core saw only the tail): the job hashed it all then.
        this.chain(() => this.finishPooled(event.sha256));
        return;
      case 'download:failed':
        this.chain(() => this.coreFailed(event));
        return;
      default:
        return;
    }
  }

  /** The user interrupted (or the daemon stops): keep the part file for a resume. */
  async cancel(): Promise<void> {
    if (this.failed || this.cancelled) return;
    this.cancelled = true; // what fails from here on is the cancel's doing: no error event
    if (this.downloadId !== undefined) this.host.cancelCoreDownload(this.downloadId);
    this.aborted.abort(); // a single-source fetch stops at once, even if the origin stalls
    await this.podRun; // the pod's content job closes its writes first (it never rejects)
    await this.writeChain;
    await this.failWith(new Error('cancelled'), true);
  }

  /** Runs `step` after the writes before it; an error in it ends this job (never rejects). */
  private chain(step: () => Promise<void>): void {
    this.writeChain = this.writeChain
      .then(step)
      .catch((error: unknown) => this.failWith(error, true));
  }

  /** `sha256`: the core's, of its range as delivered (after repairs, as read back). */
  private async finishPooled(sha256: Uint8Array | undefined): Promise<void> {
    if (this.failed) return;
    let verifier = this.verifier;
    if (this.repaired && this.base.hashing) {
      // What the streamed hashes saw is moot: the core's read-back fed a fresh copy, if whole.
      const total = this.plan.totalBytes ?? 0;
      const coreBytes = total - this.coreStartOffset;
      await this.readBack?.chain;
      if (this.readBack !== undefined && this.readBack.next === coreBytes) {
        verifier = this.readBack.verifier;
      } else {
        verifier = this.base.copy();
        await this.readInto(verifier, this.coreStartOffset, total);
      }
    }
    await this.complete(verifier, true, verifier.sha256By === 'core' ? sha256 : undefined);
  }

  private async complete(
    verifier: ObjectVerifier,
    pooled: boolean,
    sha256?: Uint8Array,
  ): Promise<void> {
    const report = verifier.finish(sha256, this.verifiedBytes);
    if (!report.ok) {
      await this.failWith(new Error(report.message), false);
      return;
    }
    try {
      await this.sink.commit(report.sha256Hex);
    } catch (error) {
      await this.failWith(error, true); // verified bytes: a re-run resumes from the part file
      return;
    }
    if (this.versionKnown) {
      await this.extras
        .record?.(this.plan.validator, this.verifiedBytes, 'origin')
        .catch(() => undefined);
    }
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
    this.settle();
  }

  /** The core download failed: carry out the core's fallback (`download:failed.fallback`). */
  private async coreFailed(event: DownloadFailedEvent): Promise<void> {
    if (this.failed) return;
    const { reason, detail } = event;
    let fallback: DownloadFallback = event.fallback;
    let why = fallback.action === 'none' ? detail : `${detail}; ${fallback.reason}`;
    if (fallback.action === 'repin') {
      this.attempt += 1;
      const restarted = await this.restartPooled(detail);
      if (restarted === true || this.failed) return; // restarted, or cancelled meanwhile
      // The new version cannot be pooled: the repin goes on from the origin alone.
      fallback = { action: 'origin-only', reason: restarted };
      why = `${detail}; ${restarted}`;
    }
    if (fallback.action === 'origin-only') {
      this.attempt += 1;
      // Costs time, never correctness: start over from the origin alone.
      const user = userExpectations(this.expected).map((digest) => digest.source);
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
        await this.failWith(error, false);
        return;
      }
      // It ends in complete() or failWith(), which settle the job.
      if (reason === 'origin-changed') this.versionKnown = false; // the new version is unpinned
      await this.runSingleSource(0, reason === 'origin-changed' ? 'changed' : 'again');
      return;
    }
    // A stall's detail is a whole sentence that names who stalled (stall-watch.ts).
    await this.failWith(
      new Error(reason === 'stalled' ? detail : `${reason}: ${detail}`),
      !this.repaired,
    );
  }

  /**
   * After the first change: probe again and download the new version pooled, pinned to it
   * (DESIGN.md decision 6). True when the new download started; otherwise why not, as a clause.
   */
  private async restartPooled(detail: string): Promise<true | string> {
    const user = userExpectations(this.expected);
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
    this.expected = expected;
    this.verifier = ObjectVerifier.create(expected, 'core');
    this.base = this.verifier.copy();
    this.readBack = undefined;
    this.coreStartOffset = 0;
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
    const user = userExpectations(this.expected);
    let verifier =
      mode === 'first'
        ? this.verifier
        : mode === 'again'
          ? ObjectVerifier.create(this.expected, 'host')
          : ObjectVerifier.create(user, 'host');
    this.verifiedBytes = offset;
    let lastProgressMs = -Infinity;
    let result: WholeFetchResult;
    try {
      result = await this.host.fetchWhole(
        this.url,
        this.plan.headers,
        offset,
        mode === 'first' ? this.plan.validator : '',
        async (bytes) => {
          if (this.failed || this.cancelled) throw new Error('cancelled');
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
      await this.failWith(error, true);
      return;
    }
    if (mode === 'changed' && result.digests.length > 0) {
      const stated = ObjectVerifier.create([...user, ...result.digests], 'host');
      if (await this.readInto(stated, 0, this.verifiedBytes)) verifier = stated;
    }
    await this.complete(verifier, false);
  }

  /** Feeds `verifier` the sink's bytes [start, end); false if the sink cannot be read back. */
  private async readInto(verifier: ObjectVerifier, start: number, end: number): Promise<boolean> {
    for (let offset = start; offset < end; offset += READ_BACK_BYTES) {
      const bytes = await this.sink.read(offset, Math.min(READ_BACK_BYTES, end - offset));
      if (bytes === undefined) return false;
      verifier.update(bytes);
    }
    return true;
  }

  /** A host verifier fed the resumed prefix from the sink (when the sink did not feed one). */
  private async hashPrefix(length: number): Promise<ObjectVerifier> {
    const verifier = ObjectVerifier.create(this.expected, 'host');
    await this.readInto(verifier, 0, length);
    return verifier;
  }

  /**
   * Ends the job with `error` unless it already ended: stops the core download or the fetch,
   * closes the sink (`keep`: its part file stays for a resume), then reports one `error` event
   * (none after a cancel) and settles. Never rejects, except to escalate a broken invariant.
   */
  private async failWith(error: unknown, keep: boolean): Promise<void> {
    escalateIfInvariant(error);
    if (this.failed) return;
    this.failed = true;
    if (this.downloadId !== undefined) this.host.cancelCoreDownload(this.downloadId);
    this.aborted.abort();
    await this.sink.abort(keep).catch(() => undefined);
    if (!this.cancelled) {
      const message = error instanceof Error ? error.message : String(error);
      this.emit('event', { type: 'error', message });
    }
    this.settle();
  }

  private settle(): void {
    if (this.settledOnce) return;
    this.settledOnce = true;
    this.emit('settled');
  }
}

/** Read size when the job reads its output back. */
const READ_BACK_BYTES = 4 * 1024 * 1024;

/**
 * The user's own expectations (`--sha256`): they still hold after the object changed, unlike
 * the digests the origin stated for its old version.
 */
function userExpectations(expected: readonly ExpectedDigest[]): ExpectedDigest[] {
  return expected.filter((digest) => digest.source === '--sha256');
}
