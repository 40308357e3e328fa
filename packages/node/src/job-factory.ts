/**
 * The job factory: turns a `peapod get` request (or a poolable proxy GET) into a running
 * `DownloadJob`, and is the `JobHost` every job talks to.
 *
 * Theory of operation
 * - `probe` asks the origin once, through this device's own link, bounded by the stall timeout.
 * - `create` probes, plans (http/pin-plan.ts: pooled, single source and why, or refused before
 *   any byte is fetched), opens the sink (a file that may resume, or a stream) and builds the
 *   job with the digests the object must have (the user's `--sha256` first, then the origin's).
 *   A resumed file's prefix is hashed as the sink checks it on open (one read).
 * - `proxyJob` builds the job of a poolable proxy GET from its probe and plan (proxy-policy.ts).
 * - As `JobHost`: a core `url` download gets a download ID (the job is found by it for the core's
 *   outputs and events: `jobOf`, `onCoreEvent`), `attempt` passes through as the job gives it;
 *   inputs go to `feed` (the host's driver: queued while the host drains).
 * Nothing here decides policy: the plan comes from pin-plan.ts, the fallback from the core.
 */
import type { ServerResponse } from 'node:http';
import { type CoreInput, type DownloadSource, type TransferEvent } from '@peapod/core';
import type { GetRequest } from './api-client.js';
import { DownloadJob, type HeaderPair, type JobHost } from './download-job.js';
import { ObjectVerifier, userSha256, type ExpectedDigest } from './http/digest.js';
import { probeOrigin, type OriginDescription } from './http/origin-probe.js';
import { fetchWhole, lengthlessNote, probeStalled } from './http/origin-whole.js';
import { planFromProbe, type JobPlan } from './http/pin-plan.js';
import type { BandwidthLimits } from './rate-limit.js';
import { FileSink, StreamSink, type DownloadSink } from './sinks.js';

/** A job that runs a core download: the host routes that download's outputs and events to it. */
export interface CoreJob {
  onDeliver(offset: number, bytes: Uint8Array, repair: boolean): void;
  readDelivered(offset: number, length: number): Promise<Uint8Array | undefined>;
  onCoreEvent(event: TransferEvent): void;
  /** Stops the job (the daemon stops, the client left); what is on disk stays for a resume. */
  cancel(): Promise<void>;
}

export interface JobFactoryOptions {
  /** The host's `input`. */
  readonly feed: (input: CoreInput) => void;
  readonly stallTimeoutMs: number;
  /** Source address of this device's origin requests; default: any. */
  readonly originAddress: string | undefined;
  readonly limits: BandwidthLimits;
}

export class JobFactory {
  private readonly jobs = new Map<number, CoreJob>();
  private nextDownloadId = 1;
  private readonly host: JobHost;

  constructor(private readonly options: JobFactoryOptions) {
    const { feed, stallTimeoutMs, originAddress, limits } = options;
    this.host = {
      startCoreDownload: (job, spec) => {
        const downloadId = this.nextDownloadId++;
        this.jobs.set(downloadId, job);
        feed({
          type: 'start-download',
          nowMs: performance.now(),
          downloadId,
          source: { kind: 'url', pooled: true, stallTimeoutMs, ...spec },
        });
        return downloadId;
      },
      cancelCoreDownload: (downloadId) => {
        this.jobs.delete(downloadId);
        feed({ type: 'cancel-download', nowMs: performance.now(), downloadId });
      },
      acknowledge: (downloadId, byteCount) =>
        feed({ type: 'delivered', nowMs: performance.now(), downloadId, byteCount }),
      fetchWhole: (url, headers, offset, validator, onData, signal) =>
        fetchWhole(url, headers, offset, validator, onData, {
          stallTimeoutMs,
          localAddress: originAddress,
          limiter: limits.download,
          signal,
        }),
      replan: async (url, headers, user, strict, signal) => {
        const probe = await this.probe(url, headers, signal);
        return { plan: planFromProbe(probe, user, { pool: true, strict }), digests: probe.digests };
      },
    };
  }

  /** The running job of a core download, if any. */
  jobOf(downloadId: number): CoreJob | undefined {
    return this.jobs.get(downloadId);
  }

  /**
   * Starts a core content download for `job` (`peapod fetch`, a URL served from the pod);
   * returns its download ID. `stallTimeoutMs` defaults to the daemon's.
   */
  startContentDownload(
    job: CoreJob,
    source: Omit<Extract<DownloadSource, { kind: 'content' }>, 'kind'>,
  ): number {
    const downloadId = this.nextDownloadId++;
    this.jobs.set(downloadId, job);
    this.options.feed({
      type: 'start-download',
      nowMs: performance.now(),
      downloadId,
      source: { kind: 'content', stallTimeoutMs: this.options.stallTimeoutMs, ...source },
    });
    return downloadId;
  }

  /** Stops a core download (content or URL) and forgets its job. */
  cancelCoreDownload(downloadId: number): void {
    this.jobs.delete(downloadId);
    this.options.feed({ type: 'cancel-download', nowMs: performance.now(), downloadId });
  }

  /** Tells the core that `byteCount` delivered bytes of a download were consumed. */
  acknowledge(downloadId: number, byteCount: number): void {
    this.options.feed({ type: 'delivered', nowMs: performance.now(), downloadId, byteCount });
  }

  /** A transfer event of the core: to the job of its download. */
  onCoreEvent(event: TransferEvent): void {
    if ('downloadId' in event) this.jobs.get(event.downloadId)?.onCoreEvent(event);
  }

  /** The job ended: its download ID routes nothing any more. */
  forget(job: { readonly downloadId: number | undefined }): void {
    if (job.downloadId !== undefined) this.jobs.delete(job.downloadId);
  }

  /** Cancels every running job (the daemon stops; part files stay). */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.jobs.values()].map((job) => job.cancel()));
  }

  /** Probes the origin and plans the job: pooled, or single source and why. */
  async create(request: GetRequest, stream: ServerResponse | undefined): Promise<DownloadJob> {
    const probe = await this.probe(request.url, request.headers);
    const user: ExpectedDigest[] = request.sha256 === undefined ? [] : [userSha256(request.sha256)];
    // A wrong --sha256 or --strict without a pin it accepts fail here, before any byte is fetched.
    const plan = planFromProbe(probe, user, {
      pool: request.pool,
      strict: request.strict === true,
    });
    if (plan.kind === 'refused') throw new Error(plan.reason);
    const notPoolable =
      plan.kind === 'single'
        ? ((request.pool ? lengthlessNote(probe) : undefined) ?? plan.reason)
        : undefined;
    const expected = [...user, ...probe.digests];
    // The core checks a SHA-256 too (and audits the helpers when it fails): the first known one.
    const sha256 = expected.find((digest) => digest.algorithm === 'sha-256')?.digest;
    // A resumed part file's prefix: hashed here as the sink checks it, read once.
    const prefix = ObjectVerifier.create(expected, 'host');
    const sink: DownloadSink =
      stream === undefined
        ? await FileSink.open(
            request.output,
            {
              url: probe.url,
              validator: probe.validator ?? '',
              totalBytes: probe.totalBytes ?? -1,
            },
            { force: request.force === true },
            (bytes) => prefix.update(bytes),
          )
        : new StreamSink(
            stream,
            (sha256) => stream.addTrailers({ 'x-peapod-result': `ok sha256=${sha256}` }),
            () => undefined, // the job's error event ends the response with an error trailer
          );
    const resumeNote = sink instanceof FileSink ? sink.resumeNote : '';
    return new DownloadJob(
      this.host,
      probe.url,
      sink,
      expected,
      {
        pooled: notPoolable === undefined,
        note: [notPoolable === undefined ? '' : `not pooled: ${notPoolable}`, resumeNote]
          .filter((line) => line !== '')
          .join('; '),
        totalBytes: probe.totalBytes,
        validator: probe.validator ?? '',
        pinStrength: plan.kind === 'pooled' ? plan.pinStrength : 'weak',
        pinning: plan.pinning,
        headers: request.headers,
        sha256,
        strict: request.strict === true,
      },
      sink.resumeOffset > 0 ? prefix : undefined,
    );
  }

  /** The job of a poolable proxy GET, streamed to `res` (proxy-policy.ts). */
  proxyJob(
    probe: OriginDescription,
    plan: Extract<JobPlan, { kind: 'pooled' }>,
    res: ServerResponse,
    headers: readonly HeaderPair[],
  ): DownloadJob {
    return new DownloadJob(this.host, probe.url, new StreamSink(res), probe.digests, {
      pooled: true,
      note: '',
      totalBytes: plan.totalBytes,
      validator: plan.validator,
      pinStrength: plan.pinStrength,
      pinning: plan.pinning,
      headers,
    });
  }

  /** The origin's description, through this device's own link; a clear error if it fails. */
  async probe(
    url: string,
    headers: readonly HeaderPair[],
    signal?: AbortSignal,
  ): Promise<OriginDescription> {
    const { stallTimeoutMs, originAddress } = this.options;
    // The probe reads only the head: the stall timeout bounds all of it.
    const stalled = AbortSignal.timeout(stallTimeoutMs);
    const probe = await probeOrigin(url, {
      headers,
      signal: signal === undefined ? stalled : AbortSignal.any([signal, stalled]),
      ...(originAddress === undefined ? {} : { localAddress: originAddress }),
    });
    if (probe.kind === 'failed' && stalled.aborted) {
      throw new Error(probeStalled(url, stallTimeoutMs));
    }
    if (probe.kind === 'failed') throw new Error(probe.detail);
    return probe;
  }
}
