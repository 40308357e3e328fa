/**
 * A URL download served from the pod (DESIGN.md decision 16): finding a copy of the URL that a
 * pod member (or this device) holds as content, revalidating it with the origin once, and
 * writing it to the job's sink.
 *
 * Theory of operation
 * - Lookup (`UrlLookups`): this device's own store (`urlContents`) and the pod's answer to a
 *   `lookup-url` input (the core asks every ready pod link and answers with one `url:lookup`
 *   event, which the daemon routes to `onLookup`; a link that does not answer is waited for at
 *   most URL_LOOKUP_TIMEOUT_MS, 1 s). Only copies whose pin can be revalidated count
 *   (`revalidatable`): a strong or weak ETag, or a Last-Modified date. A length-only pin names
 *   no version the origin could confirm, so it is never served from the pod.
 * - Revalidation (`revalidationOf`, then the conditional probe of http/origin-probe.ts with the
 *   requester's own headers, so the origin decides access): `If-None-Match` listing every
 *   distinct ETag the copies have (the 304's ETag says which one is current), or else
 *   `If-Modified-Since` with the newest copy's date. `matchNotModified` picks the copy the 304
 *   confirms, checking every validator the 304 and the pin both state. A 206 or 200 means the
 *   object changed (or, when it names a copy's version, `namesACopy`, that the origin ignores
 *   conditional requests): that response is the fresh download's probe, so it costs no second
 *   request.
 * - Binding (`podBinding`): a pod member's URL_ANSWER is only a claim. It can name the origin's
 *   real ETag (any member can learn it with a HEAD) and the content ID of its own bytes; the
 *   origin's 304 confirms the ETag, not the bytes. So a copy is served only when something the
 *   origin (or the user) states ties those bytes to the URL: (a) a SHA-256 or SHA-512 the 304
 *   states (Repr-Digest, x-amz-checksum-sha256; an S3 MD5 ETag does not count) or the user's
 *   `--sha256`, checked end to end over the written bytes; else (b) for a strong-ETag copy
 *   only, one sample: 16 KiB (`SAMPLE_BYTES`) at an offset drawn from crypto randomness,
 *   fetched from the origin with `If-Match: <etag>` and compared byte for byte with the copy's
 *   bytes at that offset as they are written (before they reach the sink, so a copy that
 *   fails never commits and is never recorded). A weak ETag or a Last-Modified date names no
 *   exact bytes a sample could be compared with: such a copy without a digest is not served.
 *   A sample catches a copy that differs at the sampled range: a wholesale substitution always,
 *   a copy that differs in a fraction f of its bytes with probability about f (the bound a
 *   digest removes).
 * - Serving (`serveFromPod`): a `ContentJob` of the confirmed content into the job's sink,
 *   through a `CheckedSink` that hashes every byte once as it is written, compares the sample
 *   and, before the sink may commit, checks the length the pin names, the user's `--sha256`
 *   and every digest the origin states (in the 304). A mismatch (or the content being
 *   unavailable) fails the pod attempt with one sentence naming the devices that hold the
 *   copy, and the job downloads the object fresh from the origin; the sink is left open for
 *   that (the CheckedSink never aborts it: its owner does). The chunks the failed attempt
 *   stored (content downloads keep what they verify) are removed again when the store did not
 *   hold that content before, so a copy that failed is not passed on by ID either.
 * Who owns what: `UrlLookups` owns the pending lookups; the job owns the sink.
 */
import { randomInt } from 'node:crypto';
import { equalBytes, Limits, toHex, type Manifest, type TransferEvent } from '@peapod/core';
import type { Logger } from 'pino';
import { ContentJob } from './content-job.js';
import type { JobEvent } from './download-job.js';
import { ObjectVerifier, type ExpectedDigest } from './http/digest.js';
import { parseEntityTag } from './http/entity-tag.js';
import { decodePin, describePin, type OriginPin } from './http/origin-pin.js';
import type { NotModified, RevalidationConditions } from './http/origin-probe.js';
import type { JobFactory } from './job-factory.js';
import { escalateIfInvariant } from './process-guard.js';
import type { DownloadSink } from './sinks.js';
import type { ChunkStoreApi } from './store/store-api.js';

type UrlLookupEvent = Extract<TransferEvent, { type: 'url:lookup' }>;
type UrlHolder = UrlLookupEvent['holders'][number];

/** A copy of a URL held as content, whose pin the origin can revalidate. */
export interface UrlCandidate {
  /** `self` (this device's store) or the holder's Device ID in hex. */
  readonly holder: string;
  /** The encoded pin (http/origin-pin.ts) the copy was stored under. */
  readonly validator: string;
  readonly pin: OriginPin;
  readonly contentId: Uint8Array;
}

/** Distinct ETags one If-None-Match lists at most (the first copies': this device's, newest first). */
export const REVALIDATION_ETAGS_MAX = 8;

/** Routes `lookup-url` inputs and their `url:lookup` answers. */
export class UrlLookups {
  private nextLookupId = 1;
  private readonly pending = new Map<number, (holders: readonly UrlHolder[]) => void>();

  constructor(
    private readonly feed: (input: {
      type: 'lookup-url';
      nowMs: number;
      lookupId: number;
      url: string;
    }) => void,
    private readonly store: ChunkStoreApi | undefined,
  ) {}

  /** Every revalidatable copy of `url`: this device's first (newest first), then the pod's. */
  async candidates(url: string): Promise<UrlCandidate[]> {
    const own = (this.store?.urlContents(url) ?? []).map((entry) => ({ holder: 'self', ...entry }));
    const pod = (await this.askPod(url)).map((holder) => ({
      holder: toHex(holder.deviceId),
      validator: holder.validator,
      contentId: holder.contentId,
    }));
    return [...own, ...pod].flatMap((entry) => {
      const pin = revalidatable(entry.validator);
      return pin === undefined ? [] : [{ ...entry, pin }];
    });
  }

  /** The pod's holders of `url`; none for a URL too long for URL_QUERY (8 KiB). */
  private askPod(url: string): Promise<readonly UrlHolder[]> {
    if (Buffer.byteLength(url, 'utf8') > Limits.urlBytes) return Promise.resolve([]);
    const lookupId = this.nextLookupId++;
    const answered = new Promise<readonly UrlHolder[]>((resolve) =>
      this.pending.set(lookupId, resolve),
    );
    try {
      // The answer may come at once (no link to ask), inside this call: registered first.
      this.feed({ type: 'lookup-url', nowMs: performance.now(), lookupId, url });
    } catch (error) {
      // The core refused the URL (say, a lone surrogate): look in this device's store alone.
      escalateIfInvariant(error);
      this.pending.delete(lookupId);
      return Promise.resolve([]);
    }
    return answered;
  }

  /** The core's `url:lookup` event (the daemon routes it here). */
  onLookup(event: UrlLookupEvent): void {
    const resolve = this.pending.get(event.lookupId);
    this.pending.delete(event.lookupId);
    resolve?.(event.holders);
  }
}

/** The pin of `validator` when the origin can revalidate it; undefined otherwise. */
export function revalidatable(validator: string): OriginPin | undefined {
  const decoded = decodePin(validator);
  if (decoded.kind !== 'pin') return undefined;
  const { pin } = decoded;
  if (pin.level === 'strong-etag' || pin.level === 'weak-etag') {
    return pin.etag === undefined ? undefined : pin;
  }
  return pin.level === 'last-modified' && pin.lastModified !== undefined ? pin : undefined;
}

/**
 * The conditions of the one revalidation of `candidates` (see the module comment); undefined
 * when there is nothing to revalidate.
 */
export function revalidationOf(
  candidates: readonly UrlCandidate[],
): RevalidationConditions | undefined {
  const etags: string[] = [];
  for (const { pin } of candidates) {
    if (pin.level === 'last-modified' || pin.etag === undefined) continue;
    if (!etags.includes(pin.etag) && etags.length < REVALIDATION_ETAGS_MAX) etags.push(pin.etag);
  }
  if (etags.length > 0) return { 'if-none-match': etags.join(', ') };
  const dated = candidates.find((candidate) => candidate.pin.lastModified !== undefined);
  return dated?.pin.lastModified === undefined
    ? undefined
    : { 'if-modified-since': dated.pin.lastModified };
}

/**
 * The copies a 304 confirms: every candidate of the version the 304 names (its ETag, or the one
 * version asked for), whose validators agree with each one the 304 states. Empty when the 304
 * cannot be tied to one version (then the job downloads from the origin).
 */
export function matchNotModified(
  candidates: readonly UrlCandidate[],
  conditions: RevalidationConditions,
  answer: Pick<NotModified, 'etag' | 'lastModified'>,
): UrlCandidate[] {
  const sent = parseEntityTag(answer.etag);
  if (answer.etag !== undefined && sent === undefined) return [];
  let chosen: readonly UrlCandidate[];
  if ('if-none-match' in conditions) {
    const asked = candidates.filter((c) => c.pin.level !== 'last-modified' && c.pin.etag);
    const tags = new Set(asked.map((c) => parseEntityTag(c.pin.etag)?.opaqueTag));
    // Without an ETag in the 304, only a single version asked for is certainly the one meant.
    const tag = sent?.opaqueTag ?? (tags.size === 1 ? [...tags][0] : undefined);
    chosen = asked.filter(
      (c) => tag !== undefined && parseEntityTag(c.pin.etag)?.opaqueTag === tag,
    );
  } else {
    const date = conditions['if-modified-since'];
    chosen = candidates.filter(
      (c) => c.pin.level === 'last-modified' && c.pin.lastModified === date,
    );
  }
  return chosen.filter(
    ({ pin }) =>
      (answer.lastModified === undefined ||
        pin.lastModified === undefined ||
        answer.lastModified === pin.lastModified) &&
      (sent === undefined ||
        pin.etag === undefined ||
        parseEntityTag(pin.etag)?.opaqueTag === sent.opaqueTag),
  );
}

/**
 * Whether a 206 or 200 to the revalidation names the version of one of the copies (same ETag,
 * or same Last-Modified for a dated copy): the origin ignored the condition rather than saying
 * the object changed. Such copies are still not served (only a 304 confirms one).
 */
export function namesACopy(
  candidates: readonly UrlCandidate[],
  etag: string | undefined,
  lastModified: string | undefined,
): boolean {
  const tag = parseEntityTag(etag)?.opaqueTag;
  return candidates.some(({ pin }) =>
    pin.level === 'last-modified'
      ? lastModified !== undefined && pin.lastModified === lastModified.trim()
      : tag !== undefined && parseEntityTag(pin.etag)?.opaqueTag === tag,
  );
}

/** How serving from the pod ended. */
export type PodOutcome =
  | { readonly kind: 'served'; readonly done: Extract<JobEvent, { type: 'done' }> }
  /** Why the pod's copy could not be used, as a clause: the job downloads from the origin. */
  | { readonly kind: 'failed'; readonly reason: string }
  | { readonly kind: 'cancelled' };

/** What a job served from the pod needs. */
export interface PodServing {
  /** The copies the 304 confirmed (one content; the core fetches from every holder). */
  readonly copies: readonly UrlCandidate[];
  readonly answer: NotModified;
  /** The condition sent, for the report (`If-None-Match: "v1"`). */
  readonly condition: string;
  /** The user's `--sha256`, if any. */
  readonly user: readonly ExpectedDigest[];
  /** What ties the copy's bytes to the URL (`podBinding`). */
  readonly binding: PodBinding;
}

/** Bytes of the sample a strong-ETag copy without a digest is checked with. */
export const SAMPLE_BYTES = 16 * 1024;

/** What ties a pod copy's bytes to the URL (see the module comment). */
export type PodBinding =
  | { readonly kind: 'digest'; readonly by: 'origin digest' | 'your --sha256' }
  /** A sample of the object, placed once its length is known (`sampleRange`). */
  | { readonly kind: 'sample' };

/**
 * What binds `copy` to its URL given the 304 `answer` and the user's digests; undefined when
 * nothing does (then it must not be served).
 */
export function podBinding(
  copy: Pick<UrlCandidate, 'pin'>,
  answer: Pick<NotModified, 'etag' | 'digests'>,
  user: readonly ExpectedDigest[],
): PodBinding | undefined {
  if (user.length > 0) return { kind: 'digest', by: 'your --sha256' };
  if (answer.digests.some((digest) => digest.algorithm !== 'md5')) {
    return { kind: 'digest', by: 'origin digest' };
  }
  if (copy.pin.level !== 'strong-etag' || parseEntityTag(answer.etag)?.weak === true) {
    return undefined;
  }
  return { kind: 'sample' };
}

/**
 * The sample's range in an object of `totalBytes` (> 0): min(16 KiB, totalBytes) bytes at an
 * offset `draw(n)` picks in [0, n) (crypto randomness; a parameter so tests can fix it).
 */
export function sampleRange(
  totalBytes: number,
  draw: (bound: number) => number = (bound) => randomInt(bound),
): { readonly start: number; readonly end: number } {
  const length = Math.min(SAMPLE_BYTES, totalBytes);
  const start = draw(totalBytes - length + 1);
  return { start, end: start + length };
}

/** What bound the copy, as the note says it. */
export function describeBinding(binding: PodBinding): string {
  return binding.kind === 'digest' ? binding.by : 'a 16 KiB sample checked against the origin';
}

/** The devices holding the copies, for a person: `this device`, hex Device IDs. */
function holdersOf(serving: PodServing): string {
  return [...new Set(serving.copies.map((copy) => copy.holder))]
    .map((holder) => (holder === 'self' ? 'this device' : holder))
    .join(', ');
}

/** The 'start' event's note for a job served from the pod (hex Device IDs: the API names them). */
export function podNote(serving: PodServing): string {
  const copy = serving.copies[0]!;
  return (
    `served from the pod: ${holdersOf(serving)} ${serving.copies.length > 1 ? 'hold' : 'holds'} ${describePin(copy.pin)} ` +
    `as content ${toHex(copy.contentId).slice(0, 16)}, and the origin answered 304 Not Modified to ${serving.condition}; ` +
    `bound to the URL by ${describeBinding(serving.binding)}`
  );
}

/**
 * Fetches bytes [start, end) of the version `validator` pins from the origin (If-Match for a
 * strong ETag), with the requester's headers; resolves with the bytes or a clause saying why not.
 */
export type SampleFetch = (
  start: number,
  end: number,
  validator: string,
  totalBytes: number,
) => Promise<Uint8Array | string>;

/**
 * Writes the confirmed content to `sink` (see the module comment); `emit` gets the job's
 * 'progress' events. Resolves with the 'done' event, or why the pod's copy was not used.
 */
export async function serveFromPod(
  jobs: JobFactory,
  serving: PodServing,
  sink: DownloadSink,
  signal: AbortSignal,
  emit: (event: JobEvent) => void,
  origin: {
    readonly sample: SampleFetch;
    readonly logger: Logger | undefined;
    /** The content's manifest when this device's store has it. */
    readonly manifest: Manifest | undefined;
    /** Drops what the failed attempt stored of a content the store did not hold before. */
    readonly discard: () => Promise<void>;
  },
): Promise<PodOutcome> {
  const copy = serving.copies[0]!;
  const expected = [...serving.user, ...serving.answer.digests];
  const holders = holdersOf(serving);
  // The sample is placed once the content's length is known (its manifest, before any byte):
  // the origin's 206 must state that same length (the fetch checks it), so a copy of another
  // length fails too.
  const placeSample =
    serving.binding.kind === 'sample'
      ? (totalBytes: number): SampleCheck => {
          const { start, end } = sampleRange(totalBytes);
          return {
            start,
            end,
            origin: origin.sample(start, end, copy.validator, totalBytes),
            holders,
          };
        }
      : undefined;
  const checked = new CheckedSink(
    sink,
    ObjectVerifier.create(expected, 'host'),
    copy.pin.totalBytes,
    placeSample,
  );
  const { manifest } = origin;
  if (manifest !== undefined) checked.place(manifest.totalBytes);
  const job = new SampledContentJob(
    jobs,
    { contentId: copy.contentId, sink: checked, ...(manifest === undefined ? {} : { manifest }) },
    (totalBytes) => checked.place(totalBytes),
  );
  let failure: string | undefined;
  let done: Extract<JobEvent, { type: 'done' }> | undefined;
  job.on('event', (event) => {
    if (event.type === 'progress') {
      emit(event);
    } else if (event.type === 'error') {
      failure = event.message;
    } else if (event.type === 'done' && checked.report !== undefined) {
      done = {
        type: 'done',
        totalBytes: event.totalBytes,
        sha256: checked.report.sha256Hex,
        verified: checked.report.verified,
        pooled: false,
        seconds: event.seconds,
        bySource: event.bySource,
        pinning: {
          level: copy.pin.level,
          guarantee: podGuarantee(copy, expected, serving.binding),
        },
        servedFrom: 'pod',
        revalidation: `304 Not Modified to ${serving.condition}`,
      };
    }
  });
  const onAbort = () => void job.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await job.run();
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (signal.aborted) return { kind: 'cancelled' };
  if (done !== undefined) return { kind: 'served', done };
  origin.logger?.warn(
    { url: serving.answer.url, holders, contentId: toHex(copy.contentId) },
    `a pod copy was not used: ${failure ?? 'it ended without a result'}`,
  );
  // Chunks of a copy that failed its checks are not this URL's: nothing of it stays to spread.
  if (manifest === undefined) await origin.discard();
  return {
    kind: 'failed',
    reason: `the pod's copy could not be used (${failure ?? 'it ended without a result'})`,
  };
}

/** What a copy served from the pod guarantees, as pin-plan.ts says it for the origin's pins. */
function podGuarantee(
  copy: UrlCandidate,
  expected: readonly ExpectedDigest[],
  binding: PodBinding,
): string {
  const sources = [...new Set(expected.map((digest) => digest.source))];
  return (
    `every chunk was verified against the content ID the pod holds ${describePin(copy.pin)} as, ` +
    'and the origin confirmed with 304 Not Modified that this version is current; ' +
    (binding.kind === 'sample'
      ? "a 16 KiB sample at a random offset matched the origin's own bytes of this version " +
        '(no digest of the object is known: pass --sha256 for an end-to-end check)'
      : `the whole file is also checked against ${sources.join(', ')}`)
  );
}

/** The sample a CheckedSink compares the written bytes with. */
export interface SampleCheck {
  readonly start: number;
  readonly end: number;
  /** The origin's bytes of [start, end), or why it could not give them. */
  readonly origin: Promise<Uint8Array | string>;
  /** Who holds the copy, for the sentence of a mismatch. */
  readonly holders: string;
}

/**
 * The sink of a job served from the pod: hashes each byte once as it is written and checks the
 * object before its owner's sink may commit; never aborts the sink (the job decides: fall back
 * to the origin into the same sink, or close it).
 */
export class CheckedSink implements DownloadSink {
  readonly resumeOffset = 0;
  private written = 0;
  /** Set once the checks passed, just before the commit. */
  report: { readonly sha256Hex: string; readonly verified: readonly string[] } | undefined;

  /** The sample (`place`) and the copy's bytes of its range, as written. */
  private sample: SampleCheck | undefined;
  private window: Uint8Array | undefined;
  private sampleMatched = false;

  /** `placeSample`: when given, the copy must pass a sample, placed by `place(totalBytes)`. */
  constructor(
    private readonly sink: DownloadSink,
    private readonly verifier: ObjectVerifier,
    private readonly totalBytes: number | undefined,
    private readonly placeSample?: (totalBytes: number) => SampleCheck,
  ) {}

  /** The content's length is known: place the sample (once; a later call is ignored). */
  place(totalBytes: number): void {
    if (this.placeSample === undefined || this.sample !== undefined || totalBytes <= 0) return;
    const sample = this.placeSample(totalBytes);
    // A rejection is read in `compareSample`; never an unhandled one meanwhile.
    sample.origin.catch(() => undefined);
    this.sample = sample;
    this.window = new Uint8Array(sample.end - sample.start);
  }

  async write(offset: number, bytes: Uint8Array, repair: boolean): Promise<void> {
    if (repair || offset !== this.written) {
      throw new Error('the pod delivered bytes out of order, which a content download never does');
    }
    if (this.placeSample !== undefined && this.sample === undefined) {
      throw new Error(
        "the pod's copy sent bytes before its manifest, so no sample could be placed",
      );
    }
    const end = offset + bytes.length;
    if (this.sample !== undefined && this.window !== undefined) {
      const { start: sampleStart, end: sampleEnd } = this.sample;
      const from = Math.max(offset, sampleStart);
      const to = Math.min(end, sampleEnd);
      if (from < to)
        this.window.set(bytes.subarray(from - offset, to - offset), from - sampleStart);
      // The last bytes of the sample's range are checked before they reach the sink.
      if (offset < sampleEnd && end >= sampleEnd) await this.compareSample();
    }
    await this.sink.write(offset, bytes, false);
    this.verifier.update(bytes);
    this.written += bytes.length;
    await this.sink.progress(this.written);
  }
  read(offset: number, length: number): Promise<Uint8Array | undefined> {
    return this.sink.read(offset, length);
  }
  progress(): Promise<void> {
    return Promise.resolve(); // checkpointed with each write
  }
  restart(): Promise<void> {
    this.written = 0;
    this.sampleMatched = false;
    return this.sink.restart();
  }
  async commit(): Promise<void> {
    if (this.totalBytes !== undefined && this.written !== this.totalBytes) {
      throw new Error(
        `the pod's copy is ${this.written} bytes, but the version it was stored as is ${this.totalBytes} bytes`,
      );
    }
    if (this.placeSample !== undefined && !this.sampleMatched) {
      throw new Error(`the pod's copy ended before the sampled range (${this.written} bytes)`);
    }
    const report = this.verifier.finish(undefined, this.written);
    if (!report.ok) throw new Error(report.message);
    await this.sink.commit(report.sha256Hex);
    this.report = { sha256Hex: report.sha256Hex, verified: report.verified };
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }

  /** Compares the written window with the origin's sample; throws one sentence on a mismatch. */
  private async compareSample(): Promise<void> {
    const { sample, window } = this;
    if (sample === undefined || window === undefined) return;
    const origin = await sample.origin.catch((error: unknown) => String(error));
    if (typeof origin === 'string') {
      throw new Error(`the origin's sample of it could not be fetched (${origin})`);
    }
    if (!equalBytes(origin, window)) {
      throw new Error(
        `its bytes ${sample.start}-${sample.end - 1} differ from the origin's: ` +
          `the copy ${sample.holders} answered with is not this URL's object`,
      );
    }
    this.sampleMatched = true;
  }
}

/**
 * A ContentJob that also reports its content's length when the core learns the manifest
 * (`download:manifest` comes before any chunk), so the sample can be placed before any byte.
 */
class SampledContentJob extends ContentJob {
  constructor(
    jobs: JobFactory,
    options: ConstructorParameters<typeof ContentJob>[1],
    private readonly onLength: (totalBytes: number) => void,
  ) {
    super(jobs, options);
  }

  override onCoreEvent(event: TransferEvent): void {
    if (event.type === 'download:manifest') this.onLength(event.manifest.totalBytes);
    super.onCoreEvent(event);
  }
}
