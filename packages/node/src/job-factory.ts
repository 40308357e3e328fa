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
 * - Pod copies (DESIGN.md decision 16; with a store, `urlContent`): before the plain probe,
 *   `revalidate` looks the URL up (this device's store and the pod, pod-source.ts) and sends the
 *   one conditional probe. A 304 makes the job one served from the pod (`podServing`); a 206 or
 *   200 is the probe of the fresh download, so it costs no second request. A 304 serves a copy
 *   only when something binds its bytes to the URL (pod-source.ts `podBinding`: a digest, or a
 *   16 KiB sample of a strong-ETag version, fetched here with `If-Match` through this device's
 *   link, `sampleFetch`); otherwise the get downloads fresh, saying why. With --no-pool, or
 *   for a private request (url-content.ts `privateRequestReason`: credentials, userinfo, a
 *   presigned URL), the pod is not asked and the download is not kept. Any other completed
 *   file download is kept as content (url-content.ts).
 * - As `JobHost`: a core `url` download gets a download ID (the job is found by it for the core's
 *   outputs and events: `jobOf`, `onCoreEvent`), `attempt` passes through as the job gives it;
 *   inputs go to `feed` (the host's driver: queued while the host drains).
 * Nothing here decides policy: the plan comes from pin-plan.ts, the fallback from the core.
 */
import type { ServerResponse } from 'node:http';
import { type CoreInput, type DownloadSource, type TransferEvent } from '@peapod/core';
import type { GetRequest } from './api-client.js';
import { DownloadJob, type HeaderPair, type JobExtras, type JobHost } from './download-job.js';
import { ObjectVerifier, userSha256, type ExpectedDigest } from './http/digest.js';
import { describePin, encodePin, pinFromResponse, pinStrength } from './http/origin-pin.js';
import {
  probeConditional,
  probeOrigin,
  type OriginDescription,
  type OriginProbe,
} from './http/origin-probe.js';
import { fetchWhole, lengthlessNote, probeStalled } from './http/origin-whole.js';
import { pinningOf, planFromProbe, type JobPlan } from './http/pin-plan.js';
import { OriginFetcher } from './http/origin-fetcher.js';
import {
  matchNotModified,
  namesACopy,
  podBinding,
  revalidationOf,
  serveFromPod,
  UrlLookups,
  type PodServing,
  type SampleFetch,
} from './pod-source.js';
import type { BandwidthLimits } from './rate-limit.js';
import { FileSink, StreamSink, type DownloadSink } from './sinks.js';
import { privateRequestReason, redactedUrl, UrlContentRecorder } from './url-content.js';
import { createNodeCryptoProvider } from './node-crypto-provider.js';
import type { ChunkStoreApi } from './store/store-api.js';
import type { Logger } from 'pino';

/** What the pod's copies of a URL came to (`JobFactory.revalidate`). */
export type PodCheck =
  /**
   * No copy the origin could revalidate (or a 304 that named none of them, or confirmed one
   * nothing binds to the URL, which `note` then says): probe as usual.
   */
  | { readonly kind: 'none'; readonly note?: string }
  /** The origin confirmed a copy (304): serve it from the pod. */
  | { readonly kind: 'unchanged'; readonly serving: PodServing }
  /**
   * A 206 or 200: this is the fresh download's probe. `note` says the object changed, or is ''
   * when the answer names a copy's version (an origin that ignores conditional requests).
   */
  | { readonly kind: 'probed'; readonly probe: OriginDescription; readonly note: string };

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
  /** Set by `useStore`: the pod's copies of URLs, and keeping downloads as content. */
  private urlContent:
    | { lookups: UrlLookups; recorder: UrlContentRecorder; logger: Logger; store: ChunkStoreApi }
    | undefined;
  /** Fetches the samples of pod copies (`sampleFetch`), created with the store. */
  private sampler: OriginFetcher | undefined;
  private nextSampleId = 1;

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

  /**
   * The daemon opened its chunk store (and told the core its URL mappings): from now on gets
   * look for pod copies first and keep what they download (url-content.ts).
   */
  useStore(store: ChunkStoreApi, logger: Logger): void {
    const { feed } = this.options;
    const crypto = createNodeCryptoProvider();
    this.urlContent = {
      lookups: new UrlLookups(feed, store),
      recorder: new UrlContentRecorder({ store, feed, crypto, logger }),
      logger,
      store,
    };
    const { originAddress, limits } = this.options;
    this.sampler = new OriginFetcher({
      socketsPerHostMax: 2,
      ...(limits.download === undefined ? {} : { limiter: limits.download }),
      ...(originAddress === undefined ? {} : { localAddress: originAddress }),
    });
  }

  /**
   * The SampleFetch of a copy of `url` (pod-source.ts): one pinned range GET through this
   * device's own link, with the requester's `headers`, bounded by the stall timeout.
   */
  private sampleFetch(url: string, headers: readonly HeaderPair[]): SampleFetch {
    return (start, end, validator, totalBytes) => {
      const sampler = this.sampler;
      if (sampler === undefined) return Promise.resolve('no origin fetcher is running');
      const fetchId = this.nextSampleId++;
      const parts: Uint8Array[] = [];
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          sampler.cancel(fetchId);
          resolve(`the origin sent nothing for ${this.options.stallTimeoutMs / 1000} s`);
        }, this.options.stallTimeoutMs);
        sampler.start(
          {
            fetchId,
            forPeer: false,
            url,
            rangeStart: start,
            rangeEnd: end,
            validator,
            headers,
            totalBytes,
          },
          {
            onData: (bytes) => parts.push(bytes),
            onEnd: (outcome, detail) => {
              clearTimeout(timer);
              resolve(
                outcome === 'ok' ? new Uint8Array(Buffer.concat(parts)) : `${outcome}: ${detail}`,
              );
            },
          },
        );
      });
    };
  }

  /** The core's answer to a URL lookup (the daemon routes `url:lookup` here). */
  onUrlLookup(event: Extract<TransferEvent, { type: 'url:lookup' }>): void {
    this.urlContent?.lookups.onLookup(event);
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
    this.sampler?.close();
  }

  /**
   * Probes the origin (after the pod's copies, see the module comment) and plans the job:
   * served from the pod, pooled, or single source and why.
   */
  async create(request: GetRequest, stream: ServerResponse | undefined): Promise<DownloadJob> {
    const user: ExpectedDigest[] = request.sha256 === undefined ? [] : [userSha256(request.sha256)];
    // --strict pools only what is proven one version: so is a pod copy (a strong ETag or a digest).
    const strongOnly = request.strict === true && user.length === 0;
    // --no-pool and private requests stay on this device: no lookup, nothing kept.
    const privacy = request.pool
      ? privateRequestReason(request.url, request.headers)
      : 'pooling is off (--no-pool)';
    const shared = privacy === undefined;
    if (privacy !== undefined && stream === undefined) {
      this.urlContent?.logger.info(
        { url: redactedUrl(request.url) },
        `not kept for the pod: ${privacy}`,
      );
    }
    const check: PodCheck = shared
      ? await this.revalidate(request.url, request.headers, user, strongOnly)
      : { kind: 'none' };
    if (check.kind === 'unchanged') return this.podJob(request, check.serving, stream);
    const probe =
      check.kind === 'probed' ? check.probe : await this.probe(request.url, request.headers);
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
    const podNote = check.note ?? '';
    return new DownloadJob(
      this.host,
      probe.url,
      sink,
      expected,
      {
        pooled: notPoolable === undefined,
        note: [podNote, notPoolable === undefined ? '' : `not pooled: ${notPoolable}`, resumeNote]
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
      stream === undefined && shared ? { record: this.recorder(request, probe) } : {},
    );
  }

  /**
   * The pod's copies of `url` and the one revalidation of them with the origin, carrying the
   * requester's own `headers` (so the origin decides access); see PodCheck.
   */
  async revalidate(
    url: string,
    headers: readonly HeaderPair[],
    user: readonly ExpectedDigest[],
    strongOnly = false,
  ): Promise<PodCheck> {
    const lookups = this.urlContent?.lookups;
    if (lookups === undefined || privateRequestReason(url, headers) !== undefined) {
      return { kind: 'none' };
    }
    const candidates = (await lookups.candidates(url)).filter(
      (copy) => !strongOnly || copy.pin.level === 'strong-etag',
    );
    const conditions = revalidationOf(candidates);
    if (conditions === undefined) return { kind: 'none' };
    const [name, value] = Object.entries(conditions)[0]!;
    const condition = `${name === 'if-none-match' ? 'If-None-Match' : 'If-Modified-Since'}: ${value}`;
    const answer = await this.ask(url, (options) => probeConditional(url, conditions, options), {
      headers,
    });
    if (answer.kind === 'described') {
      const etag = answer.rawHeaders.find(
        (_, i, raw) => i % 2 === 1 && /^etag$/i.test(raw[i - 1]!),
      );
      const changed = !namesACopy(candidates, etag, answer.lastModified);
      return {
        kind: 'probed',
        probe: answer,
        note: changed
          ? `the pod's copies are not current (the origin answered ${answer.status} to ${condition}), so the new version comes from the origin`
          : '',
      };
    }
    const confirmed = matchNotModified(candidates, conditions, answer);
    const first = confirmed[0];
    if (first === undefined) return { kind: 'none' };
    // One content: every holder of it serves (the core fetches from all of them).
    const copies = confirmed.filter((copy) =>
      Buffer.from(copy.contentId).equals(Buffer.from(first.contentId)),
    );
    const binding = podBinding(first, answer, user);
    if (binding === undefined) {
      return {
        kind: 'none',
        note:
          `the pod holds a copy ${describePin(first.pin)} the origin confirmed, but with no digest ` +
          `from the origin nothing ties its bytes to this URL, so it comes from the origin`,
      };
    }
    return { kind: 'unchanged', serving: { copies, answer, condition, user, binding } };
  }

  /** A job that serves the pod's copy into the get's output (its fallback: the origin). */
  private async podJob(
    request: GetRequest,
    serving: PodServing,
    stream: ServerResponse | undefined,
  ): Promise<DownloadJob> {
    const copy = serving.copies[0]!;
    const sink: DownloadSink =
      stream === undefined
        ? await FileSink.open(
            request.output,
            {
              url: serving.answer.url,
              validator: copy.validator,
              totalBytes: copy.pin.totalBytes ?? -1,
            },
            { force: request.force === true },
          )
        : new StreamSink(
            stream,
            (sha256) => stream.addTrailers({ 'x-peapod-result': `ok sha256=${sha256}` }),
            () => undefined,
          );
    if (sink.resumeOffset > 0) await sink.restart(); // the pod's copy is written from byte 0
    const extras: JobExtras = {
      pod: {
        serving,
        serve: (target, signal, emit) =>
          serveFromPod(
            this,
            serving,
            target,
            signal,
            emit,
            this.originChecks(serving, request.headers),
          ),
      },
      ...(stream === undefined
        ? { record: this.recorder(request, undefined, copy.contentId) }
        : {}),
    };
    return this.servedJob(serving, sink, request.headers, request.strict === true, extras);
  }

  /** The job of a poolable proxy GET served from the pod, streamed to `res` (proxy-policy.ts). */
  podProxyJob(
    serving: PodServing,
    res: ServerResponse,
    headers: readonly HeaderPair[],
  ): DownloadJob {
    const extras: JobExtras = {
      pod: {
        serving,
        serve: (target, signal, emit) =>
          serveFromPod(this, serving, target, signal, emit, this.originChecks(serving, headers)),
      },
    };
    return this.servedJob(serving, new StreamSink(res), headers, false, extras);
  }

  /** How a job served from the pod reaches the origin for its sample, and where it logs. */
  private originChecks(serving: PodServing, headers: readonly HeaderPair[]) {
    const { contentId } = serving.copies[0]!;
    const store = this.urlContent?.store;
    return {
      sample: this.sampleFetch(serving.answer.url, headers),
      logger: this.urlContent?.logger,
      manifest: store?.manifest(contentId),
      discard: async () => {
        if (store === undefined || !(await store.remove(contentId).catch(() => false))) return;
        this.options.feed({ type: 'content-removed', nowMs: performance.now(), contentId });
      },
    };
  }

  private servedJob(
    serving: PodServing,
    sink: DownloadSink,
    headers: readonly HeaderPair[],
    strict: boolean,
    extras: JobExtras,
  ): DownloadJob {
    const copy = serving.copies[0]!;
    const expected = [...serving.user, ...serving.answer.digests];
    return new DownloadJob(
      this.host,
      serving.answer.url,
      sink,
      expected,
      {
        pooled: false,
        note: '',
        totalBytes: copy.pin.totalBytes,
        validator: copy.validator,
        pinStrength: pinStrength(copy.pin),
        pinning: pinningOf(
          copy.pin.level,
          expected.map((digest) => digest.source),
        ),
        headers,
        strict,
      },
      undefined,
      extras,
    );
  }

  /**
   * The `record` hook of a file download: keeps it as content of the URL the user asked for.
   * A single source's validator ('') is the probed version's pin, from the probe's headers (the
   * GET that followed it had no precondition; a change in between would need a digest to see).
   */
  private recorder(
    request: GetRequest,
    probe: OriginDescription | undefined,
    expectedContentId?: Uint8Array,
  ): JobExtras['record'] {
    const recorder = this.urlContent?.recorder;
    if (recorder === undefined) return undefined;
    return async (validator, totalBytes, source) => {
      const version = validator !== '' ? validator : probe && probedValidator(probe, totalBytes);
      if (version === undefined || version === '') return;
      await recorder.record({
        url: request.url,
        validator: version,
        path: request.output,
        headers: request.headers,
        // A fresh download after a pod copy was not used is the origin's: no expectation.
        ...(expectedContentId === undefined || source === 'origin' ? {} : { expectedContentId }),
      });
    };
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
    return this.ask(url, (options) => probeOrigin(url, options), { headers, signal });
  }

  /** One probe through this device's own link, bounded by the stall timeout; throws its failure. */
  private async ask<T extends { readonly kind: string }>(
    url: string,
    send: (options: {
      headers: readonly HeaderPair[];
      signal: AbortSignal;
      localAddress?: string;
    }) => Promise<T | Extract<OriginProbe, { kind: 'failed' }>>,
    request: { readonly headers: readonly HeaderPair[]; readonly signal?: AbortSignal | undefined },
  ): Promise<Exclude<T, { kind: 'failed' }>> {
    const { stallTimeoutMs, originAddress } = this.options;
    // The probe reads only the head: the stall timeout bounds all of it.
    const stalled = AbortSignal.timeout(stallTimeoutMs);
    const { signal } = request;
    const answer = await send({
      headers: request.headers,
      signal: signal === undefined ? stalled : AbortSignal.any([signal, stalled]),
      ...(originAddress === undefined ? {} : { localAddress: originAddress }),
    });
    if (answer.kind === 'failed' && stalled.aborted) {
      throw new Error(probeStalled(url, stallTimeoutMs));
    }
    if (answer.kind === 'failed') throw new Error((answer as { detail: string }).detail);
    return answer as Exclude<T, { kind: 'failed' }>;
  }
}

/** The pin of the version a probe described, for a single-source download of `totalBytes`. */
function probedValidator(probe: OriginDescription, totalBytes: number): string {
  if (probe.validator !== undefined) return probe.validator;
  const headers: Record<string, string> = {};
  for (let i = 0; i + 1 < probe.rawHeaders.length; i += 2) {
    headers[probe.rawHeaders[i]!.toLowerCase()] ??= probe.rawHeaders[i + 1]!;
  }
  return encodePin(pinFromResponse(headers, totalBytes));
}
