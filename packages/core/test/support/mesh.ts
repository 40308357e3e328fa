/**
 * N-core harness for the core's transfer unit tests (pair.ts, generalised): nodes joined by
 * in-memory links, a virtual clock, a store per node (answers `read-chunk`, keeps
 * `store-chunk`), a fake origin that answers `fetch-origin` from an in-memory object, and
 * per-node faults (corrupting, stalling or changing origins; muted links).
 *
 * Each node runs on the shared `HostDriver` (host-driver.ts): every input goes through
 * `input(node, x)`, which drains the core into `perform` (one exhaustive switch) and arms the
 * node's timer (`setTimer`); `advance` fires the armed timers in order on the virtual clock.
 * Answers that a real host gives later (a chunk read, a delivered acknowledgement, an origin
 * body) are actions run at the next `step`, so no input is fed from inside a drain.
 *
 * Scope: what the unit tests need to steer one code path exactly (who answers, in what order,
 * which range is corrupt), not a world model. Bandwidth, latency, loss, churn and many-node
 * runs are packages/sim's (a real network model, the same driver; it depends on this package,
 * so these tests cannot use it). `originDelayMs` gives a node's origin fetches a latency so
 * tests can shape who finishes first.
 *
 * Dials: a `connect` output whose address is `n<index>` opens a link to that node at the next
 * step (with the output's `dialId`, so the core offers the trust it asked for); any other
 * address fails (`dial-failed`). Every `bytes-received` and `timer-fired` carries a wall clock,
 * `WALL_CLOCK_EPOCH_MS + nowMs` (a gossip core requires one).
 */
import {
  Core,
  type CoreEvent,
  type CoreOptions,
  type CoreOutput,
  type CoreInput,
} from '../../src/core.js';
import { toHex } from '../../src/bytes.js';
import { HostDriver, unreachableOutput } from '../../src/host-driver.js';
import { deriveDeviceId } from '../../src/identity.js';
import { deterministicCrypto } from './deterministic-crypto.js';
import type { PeerLink } from '../../src/peer-link.js';
import type { Manifest } from '../../src/content/manifest.js';

/**
 * 'corrupt': one byte in 4096 flipped; 'corrupt-sparse': only the last byte of each range;
 * 'refuses-peers': a host whose destination policy refuses every fetch for a peer (`forPeer`)
 * at once, as a helper does for a private origin (DESIGN.md decision 14); its own are 'ok'.
 * 'stall': never answers; 'trickle': sends the first half of every range, then nothing.
 */
export type OriginMode =
  'ok' | 'corrupt' | 'corrupt-sparse' | 'stall' | 'trickle' | 'changed' | 'refuses-peers';

/** The mesh's wall clock at virtual time 0 (2026-01-01T00:00:00Z). */
export const WALL_CLOCK_EPOCH_MS = 1_767_225_600_000;

export interface NodeOptions extends Partial<CoreOptions> {
  /** How this node's origin answers. Default 'ok'. */
  readonly origin?: OriginMode;
  /** Latency of this node's origin answers. Default 0 (next step). */
  readonly originDelayMs?: number;
  /**
   * Answer `read-chunk` with `verified: true` (as a host whose store verifies every read).
   * Default false.
   */
  readonly verifiedReads?: boolean;
  /** Acknowledge every `deliver` at once (`delivered` input). Default true. */
  readonly autoAck?: boolean;
  /**
   * A lying peer: every DATA stream it queues is corrupted after its chunk server checked the
   * stored copy (the harness interposes on its links' `queueStream`).
   */
  readonly corruptServing?: boolean;
  /** Answer `read-delivered` with the output (default true); false: as a stream would. */
  readonly readDelivered?: boolean;
}

export interface MeshNode {
  readonly index: number;
  readonly core: Core;
  readonly driver: HostDriver;
  /** The deadline the driver armed (`setTimer`). */
  timerMs: number | undefined;
  readonly deviceId: Uint8Array;
  readonly options: NodeOptions;
  readonly events: CoreEvent[];
  /** content hex -> chunk index -> bytes. */
  readonly store: Map<string, Map<number, Uint8Array>>;
  /** download ID -> delivered pieces in output order (repairs flagged). */
  readonly delivered: Map<number, Array<{ offset: number; bytes: Uint8Array; repair: boolean }>>;
  /** fetch-origin outputs seen, in order. */
  readonly fetches: Array<Extract<CoreOutput, { type: 'fetch-origin' }>>;
  readonly cancelledFetches: Set<number>;
  /** Bytes of origin fetches answered (WAN use). */
  originBytes: number;
  /** `read-chunk` outputs answered (chunks served). */
  readsAnswered: number;
  originMode: OriginMode;
  /** `connect` outputs seen, in order. */
  readonly connects: Array<Extract<CoreOutput, { type: 'connect' }>>;
}

interface Action {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void;
}

export class Mesh {
  nowMs = 0;
  readonly nodes: MeshNode[] = [];
  /** The origin object fetches read from. */
  origin: Uint8Array = new Uint8Array(0);
  private readonly links = new Map<string, { open: boolean; muted: boolean }>();
  private readonly inFlight: Array<{ from: number; to: number; item: Uint8Array | 'eof' }> = [];
  private actions: Action[] = [];
  /** Bytes acknowledged by `acknowledgeDelivered`, by `${node}:${downloadId}`. */
  private readonly acked = new Map<string, number>();
  private seq = 0;

  constructor(nodeOptions: readonly NodeOptions[], seed = 1) {
    nodeOptions.forEach((options, index) => {
      const crypto = deterministicCrypto(seed * 100 + index);
      const identity = crypto.ed25519GenerateKeyPair();
      const core = new Core({
        crypto,
        identity,
        seed: seed * 100 + index,
        deviceName: `node-${index}`,
        ...options,
      });
      const node: MeshNode = {
        index,
        core,
        driver: new HostDriver(core, {
          perform: (out) => this.perform(node, out),
          setTimer: (deadlineMs) => {
            node.timerMs = deadlineMs;
          },
        }),
        timerMs: undefined,
        deviceId: deriveDeviceId(crypto, identity.publicKey),
        options,
        events: [],
        store: new Map(),
        delivered: new Map(),
        fetches: [],
        cancelledFetches: new Set(),
        originBytes: 0,
        readsAnswered: 0,
        originMode: options.origin ?? 'ok',
        connects: [],
      };
      this.nodes.push(node);
    });
  }

  /** Link ID node `at` uses for its link to node `peer`. */
  static linkId(peer: number): number {
    return peer + 1;
  }

  /** The wall clock now (see the module header). */
  get wallClockMs(): number {
    return WALL_CLOCK_EPOCH_MS + this.nowMs;
  }

  /** Node `from` dials node `to` (for the `connect` output `dialId`, when given). */
  connect(from: number, to: number, dialId?: number): void {
    this.links.set(`${from}>${to}`, { open: true, muted: false });
    this.links.set(`${to}>${from}`, { open: true, muted: false });
    this.input(to, {
      type: 'link-opened',
      nowMs: this.nowMs,
      linkId: Mesh.linkId(from),
      direction: 'inbound',
      remoteAddress: `n${from}`,
    });
    this.input(from, {
      type: 'link-opened',
      nowMs: this.nowMs,
      linkId: Mesh.linkId(to),
      direction: 'outbound',
      remoteAddress: `n${to}`,
      ...(dialId === undefined ? {} : { dialId }),
    });
    for (const [node, peer] of [
      [from, to],
      [to, from],
    ] as const) {
      if (this.nodes[node]!.options.corruptServing === true) this.corruptLink(node, peer);
    }
  }

  private corruptLink(node: number, peer: number): void {
    const links = (this.nodes[node]!.core as unknown as { links: Map<number, { link: PeerLink }> })
      .links;
    const link = links.get(Mesh.linkId(peer))!.link;
    const original = link.queueStream.bind(link);
    link.queueStream = (requestId: number, bytes: Uint8Array, baseOffset = 0): void => {
      const bad = bytes.slice();
      bad[bad.length >> 1] = bad[bad.length >> 1]! ^ 0x55;
      original(requestId, bad, baseOffset);
    };
  }

  /** Connects node 0 to every other node (a star around the requester). */
  star(): void {
    for (let i = 1; i < this.nodes.length; i++) this.connect(0, i);
  }

  /** Drops everything node `from` sends to node `to` (a stalled peer). */
  mute(from: number, to: number): void {
    const link = this.links.get(`${from}>${to}`);
    if (link !== undefined) link.muted = true;
  }

  /** The transport between two nodes breaks (both see link-closed). */
  cut(a: number, b: number): void {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const link = this.links.get(`${x}>${y}`);
      if (link === undefined || !link.open) continue;
      link.open = false;
      this.input(x, { type: 'link-closed', nowMs: this.nowMs, linkId: Mesh.linkId(y) });
    }
  }

  /** Feeds node `node`'s core one input through its host driver. */
  input(node: number, input: CoreInput): void {
    this.nodes[node]!.driver.handle(input);
  }

  /** One round: run due actions, then deliver bytes in flight. */
  step(): boolean {
    let moved = false;
    const due = this.takeDueActions();
    for (const action of due) {
      action.run();
      moved = true;
    }
    const batch = this.inFlight.splice(0);
    for (const { from, to, item } of batch) {
      moved = true;
      const link = this.links.get(`${from}>${to}`);
      if (item === 'eof') {
        const back = this.links.get(`${to}>${from}`);
        if (back?.open) {
          back.open = false;
          this.input(to, { type: 'link-closed', nowMs: this.nowMs, linkId: Mesh.linkId(from) });
        }
        continue;
      }
      if (link !== undefined && !link.muted && this.links.get(`${to}>${from}`)?.open) {
        this.input(to, {
          type: 'bytes-received',
          nowMs: this.nowMs,
          linkId: Mesh.linkId(from),
          bytes: item,
          wallClockMs: this.wallClockMs,
        });
      }
      if (link?.open) {
        this.input(from, {
          type: 'bytes-flushed',
          nowMs: this.nowMs,
          linkId: Mesh.linkId(to),
          byteCount: item.length,
        });
      }
    }
    return moved;
  }

  drive(maxSteps = 200_000): void {
    for (let i = 0; i < maxSteps; i++) if (!this.step()) return;
    throw new Error(`mesh did not settle within ${maxSteps} steps`);
  }

  /** Moves the clock forward by `ms`, firing deadlines and delayed actions in order. */
  advance(ms: number): void {
    const until = this.nowMs + ms;
    for (;;) {
      this.drive();
      let next = Infinity;
      for (const node of this.nodes) next = Math.min(next, node.timerMs ?? Infinity);
      for (const action of this.actions) next = Math.min(next, action.atMs);
      if (next > until) break;
      this.nowMs = Math.max(this.nowMs, next);
      for (const node of this.nodes) {
        const due = node.timerMs;
        if (due === undefined || due > this.nowMs) continue;
        node.timerMs = undefined; // a timer is one-shot: the driver re-arms it
        node.driver.timerFired(this.nowMs, this.wallClockMs);
      }
    }
    this.nowMs = until;
    this.drive();
  }

  /** Runs until `done()` or `limitMs` of virtual time pass. */
  runUntil(done: () => boolean, limitMs = 600_000, stepMs = 100): void {
    const end = this.nowMs + limitMs;
    this.drive();
    while (!done() && this.nowMs < end) this.advance(stepMs);
  }

  /**
   * Acknowledges (`delivered`) every byte node `node` was given for `downloadId` since the last
   * call (for nodes without `autoAck`). Returns the total acknowledged so far.
   */
  acknowledgeDelivered(node: number, downloadId: number): number {
    const total = this.deliveredBytes(node, downloadId).length;
    const acked = this.acked.get(`${node}:${downloadId}`) ?? 0;
    if (total > acked) {
      this.input(node, {
        type: 'delivered',
        nowMs: this.nowMs,
        downloadId,
        byteCount: total - acked,
      });
      this.acked.set(`${node}:${downloadId}`, total);
    }
    return total;
  }

  eventsOf<T extends CoreEvent['type']>(
    node: number,
    type: T,
  ): Array<Extract<CoreEvent, { type: T }>> {
    return this.nodes[node]!.events.filter(
      (e): e is Extract<CoreEvent, { type: T }> => e.type === type,
    );
  }

  /**
   * The output of a download: the delivered bytes, concatenated, after checking order and no
   * overlap, with repairs written over them in output order (a repair must cover bytes
   * delivered before it).
   */
  deliveredBytes(node: number, downloadId: number): Uint8Array {
    const pieces = this.nodes[node]!.delivered.get(downloadId) ?? [];
    let total = 0;
    for (const piece of pieces) {
      if (piece.repair) {
        if (piece.offset + piece.bytes.length > total)
          throw new Error(`repair at ${piece.offset} of bytes not delivered (${total} were)`);
        continue;
      }
      if (piece.offset !== total)
        throw new Error(`delivery out of order: offset ${piece.offset}, expected ${total}`);
      total += piece.bytes.length;
    }
    const out = new Uint8Array(total);
    for (const piece of pieces) out.set(piece.bytes, piece.offset);
    return out;
  }

  /** Node `node` holds the content: store + content-available. */
  seedContent(
    node: number,
    manifest: Manifest,
    data: Uint8Array,
    indices?: number[],
    published?: boolean,
  ): void {
    const key = toHex(manifest.contentId);
    const chunks = new Map<number, Uint8Array>();
    const count = manifest.chunkHashes.length;
    for (let i = 0; i < count; i++) {
      if (indices !== undefined && !indices.includes(i)) continue;
      chunks.set(
        i,
        data.slice(
          i * manifest.chunkSizeBytes,
          Math.min(data.length, (i + 1) * manifest.chunkSizeBytes),
        ),
      );
    }
    this.nodes[node]!.store.set(key, chunks);
    this.input(node, {
      type: 'content-available',
      nowMs: this.nowMs,
      manifest,
      ...(indices === undefined ? {} : { chunkIndices: indices }),
      ...(published === undefined ? {} : { published }),
    });
  }

  private later(delayMs: number, run: () => void): void {
    this.actions.push({ atMs: this.nowMs + delayMs, seq: this.seq++, run });
  }

  private takeDueActions(): Action[] {
    const due = this.actions
      .filter((a) => a.atMs <= this.nowMs)
      .sort((a, b) => a.atMs - b.atMs || a.seq - b.seq);
    if (due.length > 0) this.actions = this.actions.filter((a) => a.atMs > this.nowMs);
    return due;
  }

  private perform(node: MeshNode, out: CoreOutput): void {
    const index = node.index;
    switch (out.type) {
      case 'send': {
        const peer = out.linkId - 1;
        if (this.links.get(`${index}>${peer}`)?.open)
          this.inFlight.push({ from: index, to: peer, item: out.bytes });
        break;
      }
      case 'disconnect': {
        const peer = out.linkId - 1;
        const link = this.links.get(`${index}>${peer}`);
        if (link?.open) {
          link.open = false;
          this.inFlight.push({ from: index, to: peer, item: 'eof' });
        }
        break;
      }
      case 'event':
        node.events.push(out.event);
        break;
      case 'fetch-origin':
        node.fetches.push(out);
        this.answerFetch(node, out);
        break;
      case 'cancel-fetch':
        node.cancelledFetches.add(out.fetchId);
        break;
      case 'read-chunk': {
        const bytes = node.store.get(toHex(out.contentId))?.get(out.chunkIndex);
        node.readsAnswered++;
        const verified = node.options.verifiedReads === true;
        this.later(0, () =>
          this.input(index, {
            type: 'chunk-read',
            nowMs: this.nowMs,
            readId: out.readId,
            bytes,
            ...(verified ? { verified } : {}),
          }),
        );
        break;
      }
      case 'deliver': {
        const list = node.delivered.get(out.downloadId) ?? [];
        list.push({ offset: out.offset, bytes: out.bytes, repair: out.repair === true });
        node.delivered.set(out.downloadId, list);
        if (node.options.autoAck ?? true) {
          this.later(0, () =>
            this.input(index, {
              type: 'delivered',
              nowMs: this.nowMs,
              downloadId: out.downloadId,
              byteCount: out.bytes.length,
            }),
          );
        }
        break;
      }
      case 'read-delivered': {
        const bytes =
          (node.options.readDelivered ?? true)
            ? this.deliveredBytes(index, out.downloadId).slice(out.offset, out.offset + out.length)
            : undefined;
        this.later(0, () =>
          this.input(index, {
            type: 'delivered-read',
            nowMs: this.nowMs,
            readId: out.readId,
            bytes,
          }),
        );
        break;
      }
      case 'store-chunk': {
        const key = toHex(out.contentId);
        const chunks = node.store.get(key) ?? new Map<number, Uint8Array>();
        chunks.set(out.chunkIndex, out.bytes);
        node.store.set(key, chunks);
        break;
      }
      case 'connect': {
        node.connects.push(out);
        const target = /^n(\d+)$/.exec(out.address);
        const peer = target === null ? -1 : Number(target[1]);
        this.later(0, () => {
          const open = this.links.get(`${index}>${peer}`)?.open === true;
          if (peer >= 0 && peer < this.nodes.length && peer !== index && !open)
            this.connect(index, peer, out.dialId);
          else {
            this.input(index, {
              type: 'dial-failed',
              nowMs: this.nowMs,
              dialId: out.dialId,
              detail: open ? 'the mesh holds one link per pair' : `no node at ${out.address}`,
            });
          }
        });
        break;
      }
      default:
        unreachableOutput(out);
    }
  }

  private answerFetch(node: MeshNode, fetch: Extract<CoreOutput, { type: 'fetch-origin' }>): void {
    const mode = node.originMode;
    if (mode === 'stall') return;
    const refused = mode === 'refuses-peers' && fetch.forPeer;
    this.later(refused ? 0 : (node.options.originDelayMs ?? 0), () => {
      if (node.cancelledFetches.has(fetch.fetchId)) return;
      const handle = (input: CoreInput): void => this.input(node.index, input);
      if (refused) {
        handle({
          type: 'origin-end',
          nowMs: this.nowMs,
          fetchId: fetch.fetchId,
          outcome: 'refused',
          detail: 'refused to fetch origin.example for a pod peer: 10.0.0.1 is a private address',
        });
        return;
      }
      if (mode === 'changed') {
        handle({
          type: 'origin-end',
          nowMs: this.nowMs,
          fetchId: fetch.fetchId,
          outcome: mode,
          detail: `origin ${mode}`,
        });
        return;
      }
      const body = this.origin.slice(fetch.rangeStart, fetch.rangeEnd);
      if (mode === 'corrupt') for (let i = 0; i < body.length; i += 4096) body[i] = body[i]! ^ 0xff;
      if (mode === 'corrupt-sparse' && body.length > 0)
        body[body.length - 1] = body[body.length - 1]! ^ 0xff;
      node.originBytes += body.length;
      // In two parts, as a real body would arrive.
      const half = Math.floor(body.length / 2);
      for (const part of [body.subarray(0, half), body.subarray(half)]) {
        if (part.length > 0)
          handle({ type: 'origin-data', nowMs: this.nowMs, fetchId: fetch.fetchId, bytes: part });
        if (mode === 'trickle') return; // and then nothing, for ever
      }
      handle({
        type: 'origin-end',
        nowMs: this.nowMs,
        fetchId: fetch.fetchId,
        outcome: 'ok',
        detail: '',
      });
    });
  }
}
