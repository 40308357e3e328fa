/**
 * Segments of a fill in progress, so members can fetch an object while it is still arriving
 * from the origin (cluster.ts, `gateway.segment`).
 *
 * Theory of operation
 * - A fill cuts its object into segments of `SEGMENT_CHUNKS` chunks of `OBJECT_CHUNK_BYTES`.
 *   When a segment's last chunk is written, the fill records the segment as a content of its own
 *   in the store: its manifest is those chunks' hashes (no second hash pass: chunk boundaries
 *   are the object's), its chunks reference the fill's file, and it is mapped to the URL
 *   `<key>#segment-<i>` so eviction finds it again. The core is told (`content-available`),
 *   so members fetch it by content ID like any content, verified against its manifest.
 * - A `SegmentFeed` per key holds the fill's response head and the manifests so far;
 *   `segment(i)` resolves when segment i exists, or with undefined when the fill failed or has
 *   no such segment. Feeds outlive their fill (a member may lag behind the origin) until the
 *   key is evicted or replaced, and at most `FEEDS_MAX` are kept (oldest first out).
 */
import type { Manifest } from '@peapod/core';
import type { StoredResponse } from './object-cache.js';

/**
 * The chunk size of the gateway's objects, and the chunks per segment. A member is one segment
 * behind the fill, and the last segment is fetched after the origin's last byte, so both set
 * how far members trail the owner. bench:cluster (4 gateways, 256 MiB, a 200 Mbit/s origin),
 * three runs each, the last client against the origin limit, with the owner sending each
 * segment to every member (chunk-server.ts: its upload has nothing else to send): 4 MiB chunks
 * one per segment 1.09-1.10x, 2 MiB chunks 1.07-1.08x. (Before that seeding rule: 4 MiB chunks
 * two per segment 1.10-1.15x, one 1.09-1.12x.)
 */
export const OBJECT_CHUNK_BYTES = 2 * 1024 * 1024;
export const SEGMENT_CHUNKS = 1;
const FEEDS_MAX = 1024;

/** What a member needs to answer a client before the object is whole. */
export interface FillHead extends StoredResponse {
  readonly totalBytes: number;
}

export class SegmentFeed {
  readonly manifests: Manifest[] = [];
  state: 'filling' | 'done' | 'failed' = 'filling';
  private waiters: Array<() => void> = [];

  constructor(
    readonly key: string,
    readonly head: FillHead,
    readonly segmentBytes: number,
  ) {}

  get segmentCount(): number {
    return Math.ceil(this.head.totalBytes / this.segmentBytes);
  }

  /** Segment `index`'s manifest once it exists; undefined when it never will. */
  async segment(index: number): Promise<Manifest | undefined> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.segmentCount) return undefined;
    while (this.manifests[index] === undefined && this.state === 'filling')
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.manifests[index];
  }

  added(manifest: Manifest): void {
    this.manifests.push(manifest);
    this.wake();
  }

  ended(state: 'done' | 'failed'): void {
    this.state = state;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** The feeds by key, bounded, and who waits for a feed to begin. */
export class SegmentFeeds {
  private readonly feeds = new Map<string, SegmentFeed>();
  private readonly waiting = new Map<string, Array<(feed: SegmentFeed) => void>>();

  get(key: string): SegmentFeed | undefined {
    return this.feeds.get(key);
  }

  /** `feed` resolves with the next feed that begins for `key`; `cancel` stops waiting. */
  next(key: string): { feed: Promise<SegmentFeed>; cancel: () => void } {
    let waiter: (feed: SegmentFeed) => void = () => undefined;
    const feed = new Promise<SegmentFeed>((resolve) => (waiter = resolve));
    const list = this.waiting.get(key) ?? [];
    list.push(waiter);
    this.waiting.set(key, list);
    const cancel = () => {
      const rest = (this.waiting.get(key) ?? []).filter((w) => w !== waiter);
      if (rest.length === 0) this.waiting.delete(key);
      else this.waiting.set(key, rest);
    };
    return { feed, cancel };
  }

  begin(feed: SegmentFeed): void {
    this.feeds.get(feed.key)?.ended('failed');
    this.feeds.delete(feed.key);
    this.feeds.set(feed.key, feed);
    if (this.feeds.size > FEEDS_MAX) this.feeds.delete(this.feeds.keys().next().value!);
    const waiters = this.waiting.get(feed.key) ?? [];
    this.waiting.delete(feed.key);
    for (const wake of waiters) wake(feed);
  }

  /** A feed that is not filling any more is dropped with its key. */
  drop(key: string): void {
    const feed = this.feeds.get(key);
    if (feed !== undefined && feed.state !== 'filling') this.feeds.delete(key);
  }
}

/** The URL a segment content is mapped to in the store. */
export function segmentUrl(key: string, index: number): string {
  return `${key}#segment-${index}`;
}
