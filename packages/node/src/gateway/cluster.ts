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
 *   (`gateway.fill`), so when the owner leaves (its link closes) or refuses, the next takes over,
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
import { fromHex, toHex, type Manifest } from '@peapod/core';
import { ContentJob, type ContentJobEvent } from '../content-job.js';
import type { JobFactory } from '../job-factory.js';
import { RpcRefusal, type PodRpc } from '../pod-rpc.js';
import type { DownloadSink } from '../sinks.js';
import type { ChunkStoreApi } from '../store/store-api.js';
import { replayedHeaders } from './object-cache.js';
import type { CachedObject } from './object-index.js';

export const LOOKUP_METHOD = 'gateway.lookup';
export const FILL_METHOD = 'gateway.fill';
/** RPC_ERROR of `gateway.fill` for a key the owner has no route for. */
export const RPC_ERROR_NOT_ROUTED = 0x0101;
/** RPC_ERROR of `gateway.fill` when the origin gave no cacheable object. */
export const RPC_ERROR_NOT_CACHED = 0x0102;
const LOOKUP_TIMEOUT_MS = 1_000;
/** A fill is as long as the origin takes; a link that closes ends the wait at once. */
const FILL_TIMEOUT_MS = 30 * 60_000;
const KEY_MAX_BYTES = 16 * 1024;

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

/** What this device's gateway offers members. */
export interface ClusterHandlers {
  /** The whole object held for `key`, or undefined. */
  held(key: string): CachedObject | undefined;
  /** Fills `key` from the origin (joining a fill in progress); undefined when not stored. */
  fill(key: string): Promise<CachedObject | undefined> | 'not-routed';
  /** An object's age now, ms. */
  ageMs(object: CachedObject): number;
}

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
    private readonly store: Pick<ChunkStoreApi, 'manifest' | 'heldIndices'>,
    /** Resolves once every chunk the core delivered so far is in the store. */
    private readonly storeWritesSettled: () => Promise<unknown>,
  ) {}

  /** Answers members' `gateway.lookup` and `gateway.fill` from `handlers`. */
  serve(handlers: ClusterHandlers): void {
    this.rpc.handle(LOOKUP_METHOD, async (body) => {
      const key = decodeKey(body);
      const object = handlers.held(key);
      return encodeJson({ object: object === undefined ? null : describe(object, handlers) });
    });
    this.rpc.handle(FILL_METHOD, async (body) => {
      const key = decodeKey(body);
      const filled = handlers.fill(key);
      if (filled === 'not-routed')
        throw new RpcRefusal(RPC_ERROR_NOT_ROUTED, `no route here leads to ${key}`);
      const object = await filled;
      if (object === undefined)
        throw new RpcRefusal(
          RPC_ERROR_NOT_CACHED,
          `the origin gave no cacheable object for ${key}`,
        );
      return encodeJson({ object: describe(object, handlers) });
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

  /** Asks `owner` to fill `key`; undefined when it refused, failed or left. */
  async askFill(owner: string, key: string): Promise<PeerObject | undefined> {
    try {
      return parseObject(
        await this.rpc.call(owner, FILL_METHOD, encodeKey(key), FILL_TIMEOUT_MS),
        owner,
      );
    } catch {
      return undefined;
    }
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
