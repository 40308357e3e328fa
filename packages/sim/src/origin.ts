/**
 * The origin: an HTTP server holding one object, answering the range requests that Cores ask
 * their hosts to make (`fetch-origin`).
 *
 * Theory of operation
 * - The object's bytes come from `Content` (a function of the seed), so nothing is stored.
 * - Each client node has one server queue at the origin, serving that client's open fetches
 *   round-robin in pieces of at most 64 KiB cut at 64 KiB boundaries (so a piece is usually a
 *   shared content block, not a copy). The per-client rate is the client's WAN downlink rate
 *   (the per-client limit), optionally capped by an equal share of the origin's total capacity
 *   among the clients streaming now, and divided by a "slow" factor while that fault is active.
 *   A piece then crosses one WAN latency and the client's WAN downlink (shared with any WAN peer
 *   links) before the host feeds it to its Core as `origin-data`.
 * - A fetch waits time-to-first-byte plus one latency before its first piece. Error modes:
 *   `5xx` (the fetch ends with outcome 'error' instead of starting), `reset` (the body stops
 *   after a random number of bytes: 'error'), and `change` (from a time on the object is a new
 *   version: every later fetch ends 'changed', as a 412 to If-Match or a 200 to If-Range would).
 * - `origin-end` travels behind the last piece through the same path, so it never overtakes data.
 */
import type { Prng } from '@peapod/core';
import type { Content } from './content.js';
import { CONTENT_BLOCK_BYTES } from './content.js';
import type { EventQueue } from './event-queue.js';
import { serialiseMs, type Network } from './network.js';

/** The object and how the server behaves. */
export interface OriginSpec {
  readonly url: string;
  readonly etag: string;
  readonly ttfbMs: number;
  /** Total egress capacity in bit/s shared by all clients; undefined: unlimited. */
  readonly capacityBps?: number;
}

/** Fault knobs (set by the fault plan; all off by default). */
export interface OriginFaults {
  /** Chance per fetch, per million, of a 5xx before the body. */
  errorStartPpm: number;
  /** Chance per fetch, per million, of a reset somewhere in the body. */
  resetPpm: number;
  /** From this time on, the object is a new version. */
  changeAtMs: number | undefined;
  /** Per client node: rate divisor while slow (1 = normal). */
  readonly slowFactor: Map<number, number>;
}

/** The host side of a client: called in events, in order per fetch. */
export interface OriginClient {
  onOriginData(fetchId: number, bytes: Uint8Array): void;
  onOriginEnd(fetchId: number, outcome: 'ok' | 'changed' | 'error', detail: string): void;
}

interface Fetch {
  readonly client: number;
  readonly fetchId: number;
  readonly end: number;
  next: number;
  readonly resetAt: number;
  cancelled: boolean;
}

interface ClientQueue {
  readonly fetches: Fetch[];
  cursor: number;
  busy: boolean;
}

export class Origin {
  readonly faults: OriginFaults = {
    errorStartPpm: 0,
    resetPpm: 0,
    changeAtMs: undefined,
    slowFactor: new Map(),
  };
  /** Body bytes sent, all clients. */
  servedBytes = 0;
  fetchCount = 0;
  private readonly clients = new Map<number, ClientQueue>();
  private readonly byKey = new Map<string, Fetch>();

  constructor(
    readonly spec: OriginSpec,
    private readonly content: Content,
    private readonly queue: EventQueue,
    private readonly network: Network,
    private readonly prng: Prng,
    private readonly hosts: (node: number) => OriginClient,
  ) {}

  /** The validator current now (changes when the object does). */
  currentEtag(): string {
    const change = this.faults.changeAtMs;
    return change !== undefined && this.queue.nowMs >= change
      ? `${this.spec.etag}-v2`
      : this.spec.etag;
  }

  /** A client's host performs `fetch-origin`. */
  startFetch(
    client: number,
    fetchId: number,
    url: string,
    rangeStart: number,
    rangeEnd: number,
    validator: string,
  ): void {
    this.fetchCount++;
    const latencyMs = this.network.spec(client, 'wan').latencyMs;
    const startAt = this.queue.nowMs + this.spec.ttfbMs + 2 * latencyMs;
    const errorStart = this.prng.nextInt(1_000_000) < this.faults.errorStartPpm;
    const reset = this.prng.nextInt(1_000_000) < this.faults.resetPpm;
    const length = Math.max(0, rangeEnd - rangeStart);
    const resetAt = reset && length > 1 ? rangeStart + 1 + this.prng.nextInt(length - 1) : Infinity;
    const fetch: Fetch = {
      client,
      fetchId,
      end: rangeEnd,
      next: rangeStart,
      resetAt,
      cancelled: false,
    };
    this.byKey.set(`${client}:${fetchId}`, fetch);
    this.queue.schedule(startAt, 'origin-start', client, fetchId, () => {
      if (fetch.cancelled) return;
      let failure: ['changed' | 'error', string] | undefined;
      if (url !== this.spec.url) failure = ['error', `404 Not Found: ${url}`];
      else if (rangeStart < 0 || rangeEnd > this.content.totalBytes || rangeStart >= rangeEnd) {
        failure = ['error', `416 Range Not Satisfiable: [${rangeStart}, ${rangeEnd})`];
      } else if (this.currentEtag() !== this.spec.etag) {
        failure = [
          'changed',
          validator === '' ? '200 instead of 206: the object changed' : '412 Precondition Failed',
        ];
      } else if (validator !== '' && validator !== this.spec.etag) {
        failure = ['changed', `412 Precondition Failed: validator ${validator}`];
      } else if (errorStart) failure = ['error', '503 Service Unavailable'];
      if (failure !== undefined) {
        this.finish(fetch, failure[0], failure[1]);
        return;
      }
      const queue = this.clientQueue(client);
      queue.fetches.push(fetch);
      this.kick(queue, client);
    });
  }

  /** A client's host performs `cancel-fetch` (or the client died). */
  cancel(client: number, fetchId: number): void {
    const fetch = this.byKey.get(`${client}:${fetchId}`);
    if (fetch === undefined) return;
    fetch.cancelled = true;
    this.byKey.delete(`${client}:${fetchId}`);
  }

  /** Cancels every fetch of a client (it crashed). */
  cancelAll(client: number): void {
    for (const [key, fetch] of this.byKey) {
      if (fetch.client === client) {
        fetch.cancelled = true;
        this.byKey.delete(key);
      }
    }
  }

  private clientQueue(client: number): ClientQueue {
    let queue = this.clients.get(client);
    if (queue === undefined) {
      queue = { fetches: [], cursor: 0, busy: false };
      this.clients.set(client, queue);
    }
    return queue;
  }

  private rateBps(client: number): number {
    let rate = this.network.spec(client, 'wan').downBps;
    const capacity = this.spec.capacityBps;
    if (capacity !== undefined) {
      let streaming = 0;
      for (const queue of this.clients.values()) if (queue.fetches.length > 0) streaming++;
      rate = Math.min(rate, capacity / Math.max(1, streaming));
    }
    return rate / (this.faults.slowFactor.get(client) ?? 1);
  }

  private kick(queue: ClientQueue, client: number): void {
    if (queue.busy) return;
    // Drop finished and cancelled fetches.
    for (let i = queue.fetches.length - 1; i >= 0; i--) {
      const f = queue.fetches[i]!;
      if (f.cancelled || f.next >= f.end) queue.fetches.splice(i, 1);
    }
    if (queue.fetches.length === 0) return;
    queue.cursor %= queue.fetches.length;
    const fetch = queue.fetches[queue.cursor]!;
    queue.cursor++;
    const start = fetch.next;
    const blockEnd = (Math.floor(start / CONTENT_BLOCK_BYTES) + 1) * CONTENT_BLOCK_BYTES;
    const end = Math.min(fetch.end, blockEnd, fetch.resetAt);
    fetch.next = end;
    queue.busy = true;
    const doneMs = this.queue.nowMs + serialiseMs(end - start, this.rateBps(client));
    this.queue.schedule(doneMs, 'origin-piece', client, end - start, () => {
      queue.busy = false;
      if (!fetch.cancelled && this.network.isAlive(client)) {
        const bytes = this.content.slice(start, end);
        this.servedBytes += bytes.length;
        const latencyMs = this.network.spec(client, 'wan').latencyMs;
        this.queue.schedule(
          this.queue.nowMs + latencyMs,
          'origin-wire',
          client,
          bytes.length,
          () => {
            this.network.throughDownlink(client, 'wan', bytes.length, () => {
              if (!fetch.cancelled) this.hosts(client).onOriginData(fetch.fetchId, bytes);
            });
          },
        );
        if (end >= fetch.resetAt) this.finish(fetch, 'error', 'connection reset by peer mid-body');
        else if (end >= fetch.end) this.finish(fetch, 'ok', '');
      }
      this.kick(queue, client);
    });
  }

  /** Sends `origin-end` behind whatever is already on its way. */
  private finish(fetch: Fetch, outcome: 'ok' | 'changed' | 'error', detail: string): void {
    fetch.next = fetch.end;
    this.byKey.delete(`${fetch.client}:${fetch.fetchId}`);
    const latencyMs = this.network.spec(fetch.client, 'wan').latencyMs;
    this.queue.schedule(this.queue.nowMs + latencyMs, 'origin-wire', fetch.client, 0, () => {
      this.network.throughDownlink(fetch.client, 'wan', 0, () => {
        if (!fetch.cancelled) this.hosts(fetch.client).onOriginEnd(fetch.fetchId, outcome, detail);
      });
    });
  }
}
