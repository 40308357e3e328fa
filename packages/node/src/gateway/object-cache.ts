/**
 * The gateway's cache of whole objects: L2 is the daemon's chunk store (every read verified
 * against the chunk's SHA-256), L1 a byte-bounded memory cache of verified chunks in front of it.
 *
 * Theory of operation
 * - Filling: while a 200 response streams to the client, `ObjectFill.write` appends each piece to
 *   a spool file in the gateway's objects directory and feeds the core's `Chunker` (one SHA-256
 *   pass). Writes run off the event loop, one after another at their own offsets; the caller
 *   awaits each beside the piece's send to the client, so memory stays bounded by one network
 *   read and a disk that throttles writers does not block the event loop. A member's segments,
 *   verified against their manifests on arrival, go in by `writeVerified` with no second hash
 *   pass (a segment is whole chunks, so its hashes are the object's). `finish`
 *   (the body ended with the length the origin announced) renames the spool to
 *   `<hex content ID>`, records the manifest in the store as a URL content (origin `url`, the
 *   key and validator), references each chunk in that file, and writes the index row. Any
 *   failure (a cut body, a full disk) drops the spool: the client's response is unaffected.
 * - Reading: `read(object, start, end)` yields the range's bytes chunk by chunk: from L1 when it
 *   holds the chunk, else from the store, which verifies it (a copy that fails is dropped, and
 *   the read answers undefined: the caller serves the request from the origin instead). L1 is
 *   filled with what was read.
 * - A fill longer than one segment publishes each segment as the chunks complete it
 *   (segment-feed.ts): `feedOf(key, fill)` and `segment(manifest)` let a concurrent miss read the
 *   fill from the store while it runs, and members of a cluster fetch them by content ID.
 * - Eviction (L2): after each fill, while the objects' bytes exceed the budget, the object with
 *   the lowest `(hits + 1) / size` aged by half per hour since its last use goes (recency,
 *   frequency and size, as GreedyDual-Size-Frequency weighs them): its store content and file.
 * - After a crash (at construction): unfinished spools and object files no index row names are
 *   deleted; an index row whose content the store lost is a miss (`held`), replaced by the next fill.
 * - Keys are bound to the version: a key holds one version, replaced when the origin sends
 *   another (`put` returns the replaced content, which is removed here).
 */
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writev } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CHUNK_COUNT_MAX,
  Chunker,
  computeContentId,
  toHex,
  type CryptoProvider,
  type Manifest,
} from '@peapod/core';
import {
  OBJECT_CHUNK_BYTES,
  SEGMENT_CHUNKS,
  SegmentFeed,
  segmentUrl,
  type SegmentFeeds,
} from './segment-feed.js';
import type { ChunkStoreApi, ContentOrigin } from '../store/store-api.js';
import type { CachedObject, ObjectIndex } from './object-index.js';

/** L1: what the object cache needs of a memory cache (memory-cache.ts). */
export interface ChunkMemory {
  get(key: string): Uint8Array | undefined;
  set(key: string, bytes: Uint8Array): unknown;
  delete(key: string): void;
}

export interface ObjectCacheOptions {
  readonly store: ChunkStoreApi;
  readonly index: ObjectIndex;
  /** Where object files live (`<data dir>/gateway/objects`). */
  readonly objectsDir: string;
  readonly crypto: CryptoProvider;
  /** Bytes of cached objects kept at most. */
  readonly budgetBytes: number;
  readonly memory?: ChunkMemory;
  /** Wall clock, Unix ms. */
  readonly nowMs: () => number;
  readonly onEvicted?: (layer: 'memory' | 'store', object: CachedObject) => void;
  /**
   * A fill (or a segment of one, segment-feed.ts) was stored: its content can be served to
   * members (the core is told).
   */
  readonly onFilled?: (manifest: Manifest) => void;
  /** Fills longer than one segment publish their segments here (read by concurrent misses). */
  readonly feeds?: SegmentFeeds;
  /** A chunk was read for a response: from L1 (`memory`) or from the store (then put in L1). */
  readonly onChunkRead?: (layer: 'memory' | 'store', bytes: number) => void;
}

/** The response fields kept with an object and replayed on a hit. */
const REPLAYED =
  /^(content-type|etag|last-modified|cache-control|expires|content-encoding|content-disposition|content-language|x-amz-(?!request-id|id-2).*)$/;

/** Which of a response's fields are replayed from the cache. */
export function replayedHeaders(
  headers: readonly (readonly [string, string])[],
): [string, string][] {
  return headers
    .map(([name, value]) => [name.toLowerCase(), value] as [string, string])
    .filter(([name]) => REPLAYED.test(name));
}

const HOUR_MS = 60 * 60 * 1000;

/** A response as the cache keeps it. */
export interface StoredResponse {
  readonly headers: readonly (readonly [string, string])[];
  readonly responseDateMs: number;
  readonly ageMs: number;
  /** Fetched with credentials (see object-index.ts `private`). */
  readonly private: boolean;
}

function urlOrigin(key: string, response: StoredResponse): ContentOrigin {
  const headers = replayedHeaders(response.headers);
  const validator =
    headers.find(([n]) => n === 'etag')?.[1] ?? headers.find(([n]) => n === 'last-modified')?.[1];
  return { kind: 'url', url: key, validator: validator ?? '' };
}

export class ObjectCache {
  private spoolSerial = 0;

  constructor(private readonly options: ObjectCacheOptions) {
    mkdirSync(options.objectsDir, { recursive: true });
    this.removeLeftovers();
  }

  /**
   * After a crash: spool files of fills that never finished, and object files no index row
   * names (a kill between the rename and the index write), are deleted. Only this process
   * uses the directory: the daemon holds the store's lock.
   */
  private removeLeftovers(): void {
    const { objectsDir, index } = this.options;
    for (const name of readdirSync(objectsDir)) {
      const orphan =
        name.startsWith('.spool-') ||
        (/^[0-9a-f]{64}$/.test(name) && !index.contentInUse(Buffer.from(name, 'hex')));
      if (orphan) rmSync(join(objectsDir, name), { force: true });
    }
  }

  lookup(key: string): CachedObject | undefined {
    return this.options.index.get(key);
  }

  /** A revalidation confirmed the stored version (the origin's `Date`, Unix ms). */
  refreshed(key: string, responseDateMs: number): void {
    this.options.index.refreshed(key, responseDateMs, this.options.nowMs());
  }

  /** A hit (for eviction's frequency and recency). */
  used(key: string): void {
    this.options.index.used(key, this.options.nowMs());
  }

  /** Starts caching a 200 response for `key` whose body is `totalBytes` long. */
  begin(key: string, totalBytes: number, response: StoredResponse): ObjectFill | undefined {
    if (
      totalBytes <= 0 ||
      totalBytes > this.options.budgetBytes ||
      totalBytes > CHUNK_COUNT_MAX * OBJECT_CHUNK_BYTES
    )
      return undefined;
    const path = join(this.options.objectsDir, `.spool-${process.pid}-${++this.spoolSerial}`);
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch {
      return undefined;
    }
    const segmentBytes = SEGMENT_CHUNKS * OBJECT_CHUNK_BYTES;
    let feed: SegmentFeed | undefined;
    if (this.options.feeds !== undefined && totalBytes > segmentBytes) {
      feed = new SegmentFeed(key, { ...response, totalBytes }, segmentBytes);
      this.options.feeds.begin(feed);
    }
    return new ObjectFill(this, this.options, key, totalBytes, response, path, fd, feed);
  }

  /**
   * The feed of `key`'s running fill, once it has begun (the fill's response head arrived);
   * undefined when `fill` ends first or there are no feeds.
   */
  async feedOf(key: string, fill: Promise<unknown>): Promise<SegmentFeed | undefined> {
    const feeds = this.options.feeds;
    const running = feeds?.get(key);
    if (running?.state === 'filling') return running;
    if (feeds === undefined) return undefined;
    const next = feeds.next(key);
    try {
      return await Promise.race([next.feed, fill.then(() => undefined)]);
    } finally {
      next.cancel();
    }
  }

  /** A segment's bytes (segment-feed.ts) from the store, chunk by chunk, each verified. */
  async *segment(manifest: Manifest): AsyncGenerator<Uint8Array, void, undefined> {
    for (let index = 0; index < manifest.chunkHashes.length; index++) {
      const chunk = await this.options.store.readChunk(manifest.contentId, index);
      if (chunk === undefined) throw new Error('a segment of the running fill is no longer held');
      this.options.onChunkRead?.('store', chunk.length);
      yield chunk;
    }
  }

  /**
   * The bytes [start, end) of `object`, chunk by chunk, verified; undefined once a chunk is
   * not held or fails its check (the object is then dropped from the index).
   */
  async *read(
    object: CachedObject,
    start: number,
    end: number,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const { store, memory } = this.options;
    const hex = toHex(object.contentId);
    const manifest = store.manifest(object.contentId);
    if (manifest === undefined) throw this.missing(object);
    const size = manifest.chunkSizeBytes;
    for (let index = Math.floor(start / size); index * size < end; index++) {
      const memoryKey = `${hex}:${index}`;
      let chunk = memory?.get(memoryKey);
      if (chunk === undefined) {
        chunk = await store.readChunk(object.contentId, index);
        if (chunk === undefined) throw this.missing(object);
        memory?.set(memoryKey, chunk);
        this.options.onChunkRead?.('store', chunk.length);
      } else {
        this.options.onChunkRead?.('memory', chunk.length);
      }
      const from = Math.max(0, start - index * size);
      const to = Math.min(chunk.length, end - index * size);
      yield chunk.subarray(from, to);
    }
  }

  /** Contents (hex) the store held whole when last asked; `chunksDropped` forgets them. */
  private readonly whole = new Set<string>();

  /** Whether the store holds every chunk of `object` (checked before answering 200 from cache). */
  held(object: CachedObject): boolean {
    const hex = toHex(object.contentId);
    if (this.whole.has(hex)) return true;
    const manifest = this.options.store.manifest(object.contentId);
    const held =
      manifest !== undefined &&
      this.options.store.heldIndices(object.contentId).length === manifest.chunkHashes.length;
    if (held) this.whole.add(hex);
    return held;
  }

  /** The store dropped chunks of `contentId` (its `onChunksDropped`). */
  chunksDropped(contentId: Uint8Array): void {
    this.whole.delete(toHex(contentId));
  }

  private missing(object: CachedObject): CacheMissing {
    this.chunksDropped(object.contentId);
    return new CacheMissing(object);
  }

  /** Drops `key` (its content too, when no other key uses it). */
  async evict(key: string): Promise<boolean> {
    const object = this.options.index.get(key);
    if (object === undefined) return false;
    this.options.index.remove(key);
    await this.dropContent(object.contentId);
    await this.dropSegments(key, new Set());
    this.options.feeds?.drop(key);
    this.options.onEvicted?.('store', object);
    return true;
  }

  /** Records a finished fill and keeps the cache in its budget. */
  async commit(
    key: string,
    manifest: Manifest,
    path: string,
    response: StoredResponse,
  ): Promise<CachedObject> {
    const { store } = this.options;
    store.addContent(manifest, urlOrigin(key, response), { pinned: false });
    store.referenceChunks(
      manifest.contentId,
      manifest.chunkHashes.map((_, i) => ({ index: i, path, offset: i * manifest.chunkSizeBytes })),
    );
    this.options.onFilled?.(manifest);
    return this.record(key, manifest, response);
  }

  /**
   * Records an object whose content the store already holds whole (fetched from members by
   * content ID, cluster.ts) and keeps the cache in its budget.
   */
  async adopt(key: string, manifest: Manifest, response: StoredResponse): Promise<CachedObject> {
    this.options.store.addContent(manifest, urlOrigin(key, response), { pinned: false });
    return this.record(key, manifest, response);
  }

  private async record(
    key: string,
    manifest: Manifest,
    response: StoredResponse,
  ): Promise<CachedObject> {
    const { index } = this.options;
    const headers = replayedHeaders(response.headers);
    const nowMs = this.options.nowMs();
    const replaced = index.put(
      {
        key,
        contentId: manifest.contentId,
        totalBytes: manifest.totalBytes,
        headers,
        etag: headers.find(([n]) => n === 'etag')?.[1],
        lastModified: headers.find(([n]) => n === 'last-modified')?.[1],
        storedAtMs: nowMs,
        responseDateMs: response.responseDateMs,
        ageAtStoreMs: response.ageMs,
        private: response.private,
      },
      nowMs,
    );
    if (replaced !== undefined) {
      await this.dropContent(replaced);
      const current = this.options.feeds?.get(key);
      const keep = new Set(
        current?.state === 'done' ? current.manifests.map((m) => toHex(m.contentId)) : [],
      );
      await this.dropSegments(key, keep);
    }
    await this.keepBudget(key);
    return index.get(key)!;
  }

  /** Removes the store's segment contents of `key` (segment-feed.ts) but those in `keep`. */
  async dropSegments(key: string, keep: ReadonlySet<string>): Promise<void> {
    const { store } = this.options;
    for (let i = 0; ; i++) {
      const versions = store.urlContents(segmentUrl(key, i));
      if (versions.length === 0) return;
      for (const { contentId } of versions)
        if (!keep.has(toHex(contentId))) await store.remove(contentId);
    }
  }

  private async dropContent(contentId: Uint8Array): Promise<void> {
    if (this.options.index.contentInUse(contentId)) return;
    this.chunksDropped(contentId);
    const manifest = this.options.store.manifest(contentId);
    if (manifest !== undefined)
      for (let i = 0; i < manifest.chunkHashes.length; i++)
        this.options.memory?.delete(`${toHex(contentId)}:${i}`);
    await this.options.store.remove(contentId);
    rmSync(join(this.options.objectsDir, toHex(contentId)), { force: true });
  }

  private async keepBudget(keep: string): Promise<void> {
    const { index } = this.options;
    while (index.totalBytes() > this.options.budgetBytes) {
      const nowMs = this.options.nowMs();
      let victim: CachedObject | undefined;
      let lowest = Number.POSITIVE_INFINITY;
      for (const object of index.all()) {
        if (object.key === keep) continue;
        const weight =
          ((object.hits + 1) / object.totalBytes) *
          Math.pow(0.5, Math.max(0, nowMs - object.lastUsedMs) / HOUR_MS);
        if (weight < lowest) {
          lowest = weight;
          victim = object;
        }
      }
      if (victim === undefined) return;
      await this.evict(victim.key);
    }
  }
}

/** A cached object's bytes are gone or failed their check: serve from the origin. */
export class CacheMissing extends Error {
  override readonly name = 'CacheMissing';
  constructor(readonly object: CachedObject) {
    super(`the cached copy of ${object.key} is no longer whole`);
  }
}

/** One 200 response being written into the cache while it streams to the client. */
export class ObjectFill {
  /** Hashes the bytes written as they come; made at the first such write (chunk-aligned). */
  private chunker: Chunker | undefined;
  /** The hashes of the chunks completed so far: verified segments', then the chunker's. */
  private readonly chunkHashes: Uint8Array[] = [];
  /** Chunks the chunker completed. */
  private hashedChunks = 0;
  /** Bytes accepted (their writes queued in order). */
  private written = 0;
  /** Bytes in the spool file. */
  private durable = 0;
  /** The last queued write: writes run one after another, at their own offsets. */
  private writing: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(
    private readonly cache: ObjectCache,
    private readonly options: ObjectCacheOptions,
    readonly key: string,
    readonly totalBytes: number,
    private readonly response: StoredResponse,
    private readonly spoolPath: string,
    private fd: number | undefined,
    private readonly feed?: SegmentFeed,
  ) {}

  /** Records segment `index` (its chunks' hashes) as a content referencing `path`. */
  private addSegment(index: number, chunkHashes: Uint8Array[], path: string): Manifest {
    const { store, crypto } = this.options;
    const segmentBytes = this.feed!.segmentBytes;
    const start = index * segmentBytes;
    const layout = {
      totalBytes: Math.min(segmentBytes, this.totalBytes - start),
      chunkSizeBytes: OBJECT_CHUNK_BYTES,
    };
    const manifest: Manifest = {
      contentId: computeContentId(crypto, layout, chunkHashes),
      ...layout,
      chunkHashes,
    };
    const url = segmentUrl(this.key, index);
    store.addContent(manifest, { kind: 'url', url, validator: this.validator }, { pinned: false });
    this.referenceSegment(manifest, index, path);
    store.mapUrl(url, this.validator, manifest.contentId);
    return manifest;
  }

  private referenceSegment(manifest: Manifest, index: number, path: string): void {
    const start = index * this.feed!.segmentBytes;
    this.options.store.referenceChunks(
      manifest.contentId,
      manifest.chunkHashes.map((_, j) => ({
        index: j,
        path,
        offset: start + j * manifest.chunkSizeBytes,
      })),
    );
  }

  private get validator(): string {
    const headers = replayedHeaders(this.response.headers);
    return (
      headers.find(([n]) => n === 'etag')?.[1] ??
      headers.find(([n]) => n === 'last-modified')?.[1] ??
      ''
    );
  }

  /** Publishes every segment whose chunks are hashed and in the file (all when `last`). */
  private publishSegments(last: boolean): void {
    const feed = this.feed;
    if (feed === undefined || feed.state !== 'filling') return;
    const ready = last
      ? this.chunkHashes.length
      : Math.min(this.chunkHashes.length, Math.floor(this.durable / OBJECT_CHUNK_BYTES));
    for (;;) {
      const index = feed.manifests.length;
      const from = index * SEGMENT_CHUNKS;
      const to = Math.min(from + SEGMENT_CHUNKS, ready);
      if (from >= ready || (to - from < SEGMENT_CHUNKS && !last)) return;
      const manifest = this.addSegment(index, this.chunkHashes.slice(from, to), this.spoolPath);
      this.options.onFilled?.(manifest);
      feed.added(manifest);
    }
  }

  /**
   * Appends the next bytes, hashing them here; resolves once they are in the file. Never
   * rejects: a failed fill only stops caching.
   */
  write(bytes: Uint8Array): Promise<void> {
    // A chunker starts on a chunk boundary (after whole verified segments), so its chunks are
    // the object's.
    if (this.chunker === undefined && this.written % OBJECT_CHUNK_BYTES !== 0) this.abort();
    if (!this.accept(bytes.length)) return this.writing;
    this.chunker ??= new Chunker(this.options.crypto, { chunkSizeBytes: OBJECT_CHUNK_BYTES });
    for (const chunk of this.chunker.push(bytes)) {
      this.chunkHashes.push(chunk.hash);
      this.hashedChunks++;
    }
    return this.queue([bytes]);
  }

  /**
   * Appends the bytes of a segment `manifest` already verified (a member's), with no second hash
   * pass: its chunks are this object's when it starts on a chunk boundary of the same size
   * before any hashed write. Else its bytes are hashed as `write` does.
   */
  writeVerified(parts: readonly Uint8Array[], manifest: Manifest): Promise<void> {
    const aligned =
      this.chunker === undefined &&
      manifest.chunkSizeBytes === OBJECT_CHUNK_BYTES &&
      this.written % OBJECT_CHUNK_BYTES === 0 &&
      parts.reduce((sum, part) => sum + part.length, 0) === manifest.totalBytes;
    if (!aligned) {
      for (const part of parts) void this.write(part);
      return this.writing;
    }
    if (!this.accept(manifest.totalBytes)) return this.writing;
    this.chunkHashes.push(...manifest.chunkHashes);
    return this.queue(parts);
  }

  /** Counts `length` more bytes in, or fails the fill when they pass the announced length. */
  private accept(length: number): boolean {
    if (this.failed || this.fd === undefined) return false;
    if (this.written + length > this.totalBytes) {
      this.abort();
      return false;
    }
    this.written += length;
    return true;
  }

  /** Writes `parts` after every earlier write, at the offset they were accepted at. */
  private queue(parts: readonly Uint8Array[]): Promise<void> {
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    const position = this.written - length;
    this.writing = this.writing.then(async () => {
      if (this.failed || this.fd === undefined) return;
      try {
        await writeAll(this.fd, parts, position);
        this.durable = position + length;
        this.publishSegments(false);
      } catch {
        this.abort();
      }
    });
    return this.writing;
  }

  /** The body ended: commits when it was whole; undefined when nothing was cached. */
  async finish(): Promise<CachedObject | undefined> {
    await this.writing;
    if (this.failed || this.fd === undefined || this.written !== this.totalBytes) {
      this.abort();
      return undefined;
    }
    try {
      // Cleared first: a close that fails has released the descriptor all the same.
      const fd = this.fd;
      this.fd = undefined;
      closeSync(fd);
      // The chunker's last chunk, when short, is not among those `push` completed.
      if (this.chunker !== undefined)
        this.chunkHashes.push(...this.chunker.finish().chunkHashes.slice(this.hashedChunks));
      const layout = { totalBytes: this.totalBytes, chunkSizeBytes: OBJECT_CHUNK_BYTES };
      const manifest: Manifest = {
        contentId: computeContentId(this.options.crypto, layout, this.chunkHashes),
        ...layout,
        chunkHashes: this.chunkHashes,
      };
      this.publishSegments(true);
      const path = join(this.options.objectsDir, toHex(manifest.contentId));
      renameSync(this.spoolPath, path);
      // The segments' chunks follow the file to its new name (the same offsets).
      this.feed?.manifests.forEach((segment, index) => this.referenceSegment(segment, index, path));
      const object = await this.cache.commit(this.key, manifest, path, this.response);
      this.feed?.ended('done');
      return object;
    } catch {
      this.abort();
      return undefined;
    }
  }

  /** Stops caching and drops the spool (after the write in flight, which holds the file). */
  abort(): void {
    if (this.feed !== undefined && this.feed.state === 'filling') {
      this.feed.ended('failed');
      void this.cache.dropSegments(this.key, new Set()).catch(() => undefined);
    }
    if (this.failed) return;
    this.failed = true;
    const fd = this.fd;
    this.fd = undefined;
    void this.writing.then(() => {
      if (fd !== undefined) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
      }
      try {
        rmSync(this.spoolPath, { force: true });
      } catch {
        // A read-only or failing disk: the next start removes leftover spools.
      }
    });
  }
}

const writevAt = promisify(writev);

/** Writes every byte of `parts` to `fd` from `position` on (a short write is continued). */
async function writeAll(fd: number, parts: readonly Uint8Array[], position: number): Promise<void> {
  const rest = [...parts];
  let at = position;
  while (rest.length > 0) {
    let done = (await writevAt(fd, rest, at)).bytesWritten;
    if (done === 0) throw new Error('the disk took no bytes');
    at += done;
    while (rest.length > 0 && done >= rest[0]!.length) done -= rest.shift()!.length;
    if (done > 0) rest[0] = rest[0]!.subarray(done);
  }
}
