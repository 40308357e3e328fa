/**
 * Sharing the gateway's cache between the daemons of one pod (a cluster is a pod: its members
 * share the pod secret, so they trust each other's answers as hints and verify every byte).
 *
 * Theory of operation
 * - Members are the ready pod links that advertise RPC (pod-rpc.ts); there is no control plane.
 * - On a miss, `find(key)` asks every member (`gateway.lookup`, 1 s at most) which object it
 *   holds whole for the key: the stored response head, its age now, and the content ID. The
 *   newest response is used when fresh; when it must be revalidated and members hold several
 *   versions, one conditional request names all their ETags and the origin's 304 says which
 *   is current (as RFC 9111 4.3.2 selects among stored responses). The bytes are then fetched by content ID with the core's content
 *   download (`transfer`), from every member that announces chunks of it, in parallel (the
 *   core's swarm: the best sources get the most requests, a stalled or leaving one is replaced
 *   and its chunk asked again elsewhere), each chunk verified against the manifest, whose hash
 *   is the content ID. So a member that lies costs time, never a wrong byte.
 * - Nobody holds it: the key's owner fills it. Owners are ranked by rendezvous hashing,
 *   SHA-256(device ID || key), highest first, over the members and this device, so every member
 *   with the same view picks the same owner and concurrent misses anywhere cost one origin
 *   fetch. `owners(key)` lists the ranking down to this device; the caller asks each in turn
 *   (`gateway.segment`), so when the owner leaves (its link closes) or refuses, the next takes over,
 *   and this device fills itself when it comes first.
 * - An owner fills only keys its own route table maps to an origin (endpoint mode), with its
 *   own credentials: a member cannot make it fetch an address the operator did not route, and
 *   no client's credentials travel to another device. A forward-mode key is filled by the device
 *   that missed it.
 * - Access is the caller's (cached-get.ts): a credentialed request, or a private or stale peer
 *   object, is revalidated with the origin, with the client's request, before a peer's copy is
 *   used.
 * - Answers from members are checked like any network input: a malformed one is no answer.
 */
import { createHash } from 'node:crypto';
import { computeContentId, fromHex, toHex, type CryptoProvider, type Manifest } from '@peapod/core';
import { ContentJob, type ContentJobEvent } from '../content-job.js';
import type { JobFactory } from '../job-factory.js';
import { RpcFailed, RpcRefusal, type PodRpc } from '../pod-rpc.js';
import type { DownloadSink } from '../sinks.js';
import type { ChunkStoreApi } from '../store/store-api.js';
import { replayedHeaders } from './object-cache.js';
import type { CachedObject } from './object-index.js';
import type { FillHead } from './segment-feed.js';

export const LOOKUP_METHOD = 'gateway.lookup';
export const SEGMENT_METHOD = 'gateway.segment';
/** RPC_ERROR of `gateway.segment` for a key the owner has no route for. */
export const RPC_ERROR_NOT_ROUTED = 0x0101;
/** RPC_ERROR of `gateway.segment` when the origin gave no cacheable object (or no such segment). */
export const RPC_ERROR_NOT_CACHED = 0x0102;
const LOOKUP_TIMEOUT_MS = 1_000;
/** A fill is as long as the origin takes; a link that closes ends the wait at once. */
const FILL_TIMEOUT_MS = 30 * 60_000;
const KEY_MAX_BYTES = 16 * 1024;
/** Segments fetched at once by one request (each up to a segment in memory until its turn). */
const SEGMENT_WINDOW = 8;

/** A segment's bytes, in order, each chunk verified against `manifest`. */
export interface VerifiedSegment {
  readonly parts: readonly Uint8Array[];
  readonly manifest: Manifest;
}

/** A member's object for a key, as its answer described it. */
export interface PeerObject {
  readonly holder: string;
  readonly contentId: Uint8Array;
  readonly totalBytes: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly responseDateMs: number;
  /** Its age at the holder when it answered (the holder's Age), ms. */
  readonly ageMs: number;
  readonly private: boolean;
}

/** A segment of a fill in progress (segment-feed.ts), as the owner describes it. */
export interface OwnerSegment {
  readonly head: FillHead;
  readonly segmentBytes: number;
  readonly manifest: Manifest;
}

/** What this device's gateway offers members. */
export interface ClusterHandlers {
  /** The whole object held for `key`, or undefined. */
  held(key: string): CachedObject | undefined;
  /**
   * Segment `index` of `key`, filling it from the origin when no fill runs (joining one in
   * progress); the whole object when it is held and no segments are (a small object);
   * undefined when nothing was stored.
   */
  segment(
    key: string,
    index: number,
  ): Promise<OwnerSegment | { whole: CachedObject } | undefined | 'not-routed'>;
  /** An object's age now, ms. */
  ageMs(object: CachedObject): number;
}

/** A member's answer to `gateway.segment`. */
export type SegmentAnswer =
  | { readonly kind: 'whole'; readonly object: PeerObject }
  | ({ readonly kind: 'segment'; readonly index: number } & OwnerSegment);

/** Bytes fetched from one member, and how long the transfer took. */
export interface PeerTransferFigures {
  readonly bySource: Readonly<Record<string, number>>;
  readonly seconds: number;
}

export class ClusterSharing {
  constructor(
    private readonly rpc: PodRpc,
    private readonly jobs: JobFactory,
    private readonly selfId: Uint8Array,
    private readonly store: Pick<
      ChunkStoreApi,
      'manifest' | 'heldIndices' | 'addContent' | 'remove'
    >,
    private readonly crypto: CryptoProvider,
    /** Resolves once every chunk the core delivered so far is in the store. */
    private readonly storeWritesSettled: () => Promise<unknown>,
  ) {}

  /** Answers members' `gateway.lookup` and `gateway.segment` from `handlers`. */
  serve(handlers: ClusterHandlers): void {
    this.rpc.handle(LOOKUP_METHOD, async (body) => {
      const key = decodeKey(body);
      const object = handlers.held(key);
      return encodeJson({ object: object === undefined ? null : describe(object, handlers) });
    });
    this.rpc.handle(SEGMENT_METHOD, async (body) => {
      const key = decodeKey(body);
      const index = (parseJson(body) as { index?: unknown }).index;
      if (!Number.isSafeInteger(index) || (index as number) < 0)
        throw new RpcRefusal(0x0103, 'the request names no segment index');
      const answer = await handlers.segment(key, index as number);
      if (answer === 'not-routed')
        throw new RpcRefusal(RPC_ERROR_NOT_ROUTED, `no route here leads to ${key}`);
      if (answer === undefined)
        throw new RpcRefusal(RPC_ERROR_NOT_CACHED, `no cacheable object (or segment) for ${key}`);
      if ('whole' in answer) return encodeJson({ object: describe(answer.whole, handlers) });
      const { head, segmentBytes, manifest } = answer;
      return encodeJson({
        segment: {
          index,
          segmentBytes,
          totalBytes: head.totalBytes,
          headers: head.headers,
          responseDateMs: head.responseDateMs,
          ageMs: head.ageMs + Math.max(0, Date.now() - head.responseDateMs),
          private: head.private,
          chunkSizeBytes: manifest.chunkSizeBytes,
          chunkHashes: manifest.chunkHashes.map((hash) => toHex(hash)),
        },
      });
    });
  }

  /**
   * The versions members hold whole for `key`, one per content, newest response first (module
   * comment); empty when none does.
   */
  async find(key: string): Promise<PeerObject[]> {
    const body = encodeKey(key);
    const answers = await Promise.all(
      this.rpc.members().map((id) =>
        this.rpc
          .call(toHex(id), LOOKUP_METHOD, body, LOOKUP_TIMEOUT_MS)
          .then((reply) => parseObject(reply, toHex(id)))
          .catch(() => undefined),
      ),
    );
    const byContent = new Map<string, PeerObject>();
    for (const answer of answers)
      if (answer !== undefined && !byContent.has(toHex(answer.contentId)))
        byContent.set(toHex(answer.contentId), answer);
    return [...byContent.values()].sort((a, b) => b.responseDateMs - a.responseDateMs);
  }

  /** Device hexes ranked above this device for `key`, best first (module comment). */
  owners(key: string): string[] {
    const self = toHex(this.selfId);
    const ranked = [this.selfId, ...this.rpc.members()]
      .map((id) => ({ hex: toHex(id), score: rendezvousScore(id, key) }))
      .sort((a, b) => Buffer.compare(b.score, a.score));
    const above: string[] = [];
    for (const { hex } of ranked) {
      if (hex === self) break;
      above.push(hex);
    }
    return above;
  }

  /**
   * Asks `owner` for segment `index` of `key` (it fills the key when no fill runs);
   * 'uncacheable' when the owner's fill got nothing it could store, undefined when it refused
   * otherwise, failed or left.
   */
  async segment(
    owner: string,
    key: string,
    index: number,
  ): Promise<SegmentAnswer | 'uncacheable' | undefined> {
    try {
      const body = encodeJson({ key, index });
      const reply = await this.rpc.call(owner, SEGMENT_METHOD, body, FILL_TIMEOUT_MS);
      return parseSegmentAnswer(this.crypto, reply, owner, index);
    } catch (error) {
      // The origin's answer could not be cached: the next owner would fetch it for nothing.
      if (index === 0 && error instanceof RpcFailed && error.code === RPC_ERROR_NOT_CACHED)
        return 'uncacheable';
      return undefined;
    }
  }

  /**
   * The bytes of segments 0 to `count - 1` of `key` (segment 0 is `first`), in order. Up to
   * `SEGMENT_WINDOW` segments are asked for and fetched at once, each kept in memory until its
   * turn (so memory is at most the window's segments); it ends early at the first segment that
   * cannot be had (the owner left, a transfer failed), with a sentence saying why. `forget`:
   * drop each segment from the store once fetched (this gateway does not cache the object).
   */
  async *segmentBytes(
    owner: string,
    key: string,
    first: Extract<SegmentAnswer, { kind: 'segment' }>,
    count: number,
    forget: boolean,
    onDone: (figures: PeerTransferFigures) => void,
  ): AsyncGenerator<VerifiedSegment, string | undefined> {
    const fetches: Array<Promise<VerifiedSegment | string>> = [];
    const start = (index: number): void => {
      const answer = index === 0 ? Promise.resolve(first) : this.segment(owner, key, index);
      fetches[index] = answer
        .then(async (segment) => {
          if (typeof segment !== 'object' || segment.kind !== 'segment')
            return `the owner gave no segment ${index}`;
          if (segment.segmentBytes !== first.segmentBytes)
            return `the owner's segment ${index} has another size`;
          const parts: Uint8Array[] = [];
          // No copy: a delivered chunk's bytes are its own buffer, which nothing changes.
          const failure = await this.transferSegment(
            segment.manifest,
            (bytes) => {
              parts.push(bytes);
              return Promise.resolve();
            },
            onDone,
          );
          if (forget) void this.forget(segment.manifest.contentId).catch(() => undefined);
          return failure === undefined
            ? { parts, manifest: segment.manifest }
            : `segment ${index}: ${failure}`;
        })
        .catch((error: unknown) => `segment ${index}: ${String(error)}`);
    };
    for (let index = 0; index < Math.min(count, SEGMENT_WINDOW); index++) start(index);
    for (let index = 0; index < count; index++) {
      const segment = await fetches[index]!;
      if (index + SEGMENT_WINDOW < count) start(index + SEGMENT_WINDOW);
      if (typeof segment === 'string') return segment;
      yield segment;
    }
    return undefined;
  }

  /**
   * Fetches segment `manifest` by content ID from the members, handing its verified bytes to
   * `onBytes` in order; undefined once all were handed over, else why not.
   */
  async transferSegment(
    manifest: Manifest,
    onBytes: (bytes: Uint8Array) => Promise<void>,
    onDone: (figures: PeerTransferFigures) => void,
  ): Promise<string | undefined> {
    if (this.store.manifest(manifest.contentId) === undefined)
      this.store.addContent(manifest, { kind: 'fetched' }, { pinned: false });
    const sink = new CallbackSink(onBytes);
    const job = new ContentJob(this.jobs, { contentId: manifest.contentId, manifest, sink });
    let done: Extract<ContentJobEvent, { type: 'done' }> | undefined;
    let failure = 'the transfer ended early';
    job.on('event', (event) => {
      if (event.type === 'done') done = event;
      if (event.type === 'error') failure = event.message;
    });
    await job.run();
    if (done === undefined || sink.written !== manifest.totalBytes) return failure;
    onDone({ bySource: done.bySource, seconds: done.seconds });
    return undefined;
  }

  /** Removes a content this gateway fetched only to pass it on. */
  async forget(contentId: Uint8Array): Promise<void> {
    await this.storeWritesSettled();
    await this.store.remove(contentId);
  }

  /**
   * Fetches `object`'s content by ID from the members into the store (chunks verified against
   * the manifest); the manifest once every chunk is stored, else undefined.
   */
  async transfer(
    object: PeerObject,
    onDone: (figures: PeerTransferFigures) => void,
  ): Promise<Manifest | undefined> {
    const job = new ContentJob(this.jobs, { contentId: object.contentId, sink: new DiscardSink() });
    let done: Extract<ContentJobEvent, { type: 'done' }> | undefined;
    job.on('event', (event) => {
      if (event.type === 'done') done = event;
    });
    await job.run();
    if (done === undefined) return undefined;
    onDone({ bySource: done.bySource, seconds: done.seconds });
    await this.storeWritesSettled();
    const manifest = this.store.manifest(object.contentId);
    if (manifest === undefined || manifest.totalBytes !== object.totalBytes) return undefined;
    const held = this.store.heldIndices(object.contentId).length;
    return held === manifest.chunkHashes.length ? manifest : undefined;
  }
}

/** The 32-byte rendezvous score of `deviceId` for `key`. */
export function rendezvousScore(deviceId: Uint8Array, key: string): Buffer {
  return createHash('sha256').update(deviceId).update(key, 'utf8').digest();
}

/** Hands a content download's verified bytes on, in order. */
class CallbackSink implements DownloadSink {
  readonly resumeOffset = 0;
  written = 0;
  constructor(private readonly onBytes: (bytes: Uint8Array) => Promise<void>) {}
  async write(offset: number, bytes: Uint8Array, repair: boolean): Promise<void> {
    if (repair || offset !== this.written)
      throw new Error('out-of-order bytes cannot be passed on');
    this.written += bytes.length;
    await this.onBytes(bytes);
  }
  read(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  progress(): Promise<void> {
    return Promise.resolve();
  }
  restart(): Promise<void> {
    return Promise.reject(new Error('a segment cannot start over once passed on'));
  }
  commit(): Promise<void> {
    return Promise.resolve();
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }
}

/** The content download's bytes are in the store already (the core stores each verified chunk). */
class DiscardSink implements DownloadSink {
  readonly resumeOffset = 0;
  write(): Promise<void> {
    return Promise.resolve();
  }
  read(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  progress(): Promise<void> {
    return Promise.resolve();
  }
  restart(): Promise<void> {
    return Promise.resolve();
  }
  commit(): Promise<void> {
    return Promise.resolve();
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }
}

function describe(object: CachedObject, handlers: ClusterHandlers): Record<string, unknown> {
  return {
    contentId: toHex(object.contentId),
    totalBytes: object.totalBytes,
    headers: object.headers,
    etag: object.etag ?? null,
    lastModified: object.lastModified ?? null,
    responseDateMs: object.responseDateMs,
    ageMs: handlers.ageMs(object),
    private: object.private,
  };
}

function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value));
}

function encodeKey(key: string): Uint8Array {
  return encodeJson({ key });
}

function decodeKey(body: Uint8Array): string {
  const key = (parseJson(body) as { key?: unknown } | undefined)?.key;
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > KEY_MAX_BYTES)
    throw new RpcRefusal(0x0103, 'the request names no key');
  return key;
}

function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return undefined;
  }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A `gateway.segment` answer, checked (the manifest must hash to its content ID). */
export function parseSegmentAnswer(
  crypto: CryptoProvider,
  body: Uint8Array,
  holder: string,
  index: number,
): SegmentAnswer | undefined {
  const whole = parseObject(body, holder);
  if (whole !== undefined) return { kind: 'whole', object: whole };
  const reply = parseJson(body) as { segment?: Record<string, unknown> } | undefined;
  const o = reply?.segment;
  if (o === null || typeof o !== 'object') return undefined;
  const head = parseObject(
    encodeJson({ object: { ...o, contentId: '00'.repeat(32), etag: null, lastModified: null } }),
    holder,
  );
  const { segmentBytes, chunkSizeBytes, chunkHashes } = o;
  if (head === undefined || o['index'] !== index) return undefined;
  if (!Number.isSafeInteger(segmentBytes) || !Number.isSafeInteger(chunkSizeBytes))
    return undefined;
  if (
    !Array.isArray(chunkHashes) ||
    !chunkHashes.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h))
  )
    return undefined;
  const start = index * (segmentBytes as number);
  if ((segmentBytes as number) <= 0 || start >= head.totalBytes) return undefined;
  const layout = {
    totalBytes: Math.min(segmentBytes as number, head.totalBytes - start),
    chunkSizeBytes: chunkSizeBytes as number,
  };
  const hashes = (chunkHashes as string[]).map((h) => fromHex(h)!);
  let contentId: Uint8Array;
  try {
    contentId = computeContentId(crypto, layout, hashes);
  } catch {
    return undefined;
  }
  return {
    kind: 'segment',
    index,
    segmentBytes: segmentBytes as number,
    head: {
      totalBytes: head.totalBytes,
      headers: head.headers,
      responseDateMs: head.responseDateMs,
      ageMs: head.ageMs,
      private: head.private,
    },
    manifest: { contentId, ...layout, chunkHashes: hashes },
  };
}

/** A member's answer, checked field by field; undefined when it holds nothing or is malformed. */
export function parseObject(body: Uint8Array, holder: string): PeerObject | undefined {
  const reply = parseJson(body) as { object?: unknown } | undefined;
  const o = reply?.object as Record<string, unknown> | null | undefined;
  if (o === null || typeof o !== 'object') return undefined;
  const { contentId, totalBytes, headers, etag, lastModified, responseDateMs, ageMs } = o;
  const id =
    typeof contentId === 'string' && /^[0-9a-f]{64}$/.test(contentId)
      ? fromHex(contentId)
      : undefined;
  if (id === undefined) return undefined;
  if (!Number.isSafeInteger(totalBytes) || (totalBytes as number) <= 0) return undefined;
  if (
    !Number.isSafeInteger(responseDateMs) ||
    !Number.isSafeInteger(ageMs) ||
    (ageMs as number) < 0
  )
    return undefined;
  if (!Array.isArray(headers) || headers.length > 100) return undefined;
  const pairs: [string, string][] = [];
  for (const pair of headers as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2) return undefined;
    const [name, value] = pair as unknown[];
    if (typeof name !== 'string' || typeof value !== 'string') return undefined;
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value) || value.length > 8192)
      return undefined;
    pairs.push([name, value]);
  }
  const optional = (v: unknown): string | undefined | false =>
    v === null ? undefined : typeof v === 'string' && HEADER_VALUE.test(v) ? v : false;
  const e = optional(etag);
  const l = optional(lastModified);
  if (e === false || l === false) return undefined;
  return {
    holder,
    contentId: id,
    totalBytes: totalBytes as number,
    // Only what a hit replays: a member cannot make this gateway send other fields.
    headers: replayedHeaders(pairs),
    etag: e,
    lastModified: l,
    responseDateMs: responseDateMs as number,
    ageMs: ageMs as number,
    private: o['private'] === true,
  };
}
