/**
 * The gossip simulation's network: many real `GossipEngine`s joined by simulated links.
 *
 * Theory of operation
 * - One node per index. Its address is an IPv4 literal made from the index (node 258 is
 *   10.2.1.0), its port is `GOSSIP_SIM_PORT`; a `dial` output naming that address and port
 *   reaches that node while it is live. Every node keeps its own engine (its own identity, its
 *   own PRNG child stream, its own wall clock: the simulated time plus a fixed per-node skew of
 *   up to +-2 s, well inside the +-30 s the engines accept).
 * - Links come only from the engines' `dial` outputs. A link gets one latency, drawn once from
 *   [latencyMinMs, latencyMaxMs] (a TCP link keeps its frames in order, so the latency is per link,
 *   not per frame). Setting one up costs the TCP handshake and Noise XX: the dialler's engine gets
 *   `linkUp` after 4 one-way latencies, the dialled node's after 5 (it reads XX's third message);
 *   a frame the dialler sends on `linkUp` therefore reaches a node that already knows the link.
 *   A dial to a node that is not live (or to no node) just never completes, as a dial to a dead
 *   host times out; the engine has no other signal.
 * - A `send` is lost with probability `lossRate` (drawn per frame), else delivered after the
 *   link's latency, unless the receiver's end of the link went down or the receiver left
 *   meanwhile (frames sent before a close still arrive, before the `linkDown`, as on TCP). The frame's body is
 *   copied when sent, as a socket would, so no engine can see another's buffer change.
 * - A `close` output closes the link at once for the closer (its engine gets `linkDown` as the
 *   next event) and one latency later for the other end. A node that leaves (`leave`) vanishes:
 *   its engine is dropped, and every neighbour gets `linkDown` one latency later.
 * - Every engine call goes through `drive`, which drains the engine's outputs and arms one timer
 *   event at its next deadline (the shared-driver contract of STYLE.md section 2): a stale timer
 *   event is ignored by its token, an early one is harmless (the engine finds nothing due).
 * - The engines share one peer-record cache (record-cache.ts): a record is decoded, hashed and
 *   verified once for the whole simulation, and every table holding it holds the same object. A
 *   record's decoding and validity depend on its bytes alone, so each engine gets what its own
 *   cache would give; this only spares the one core the simulation runs on (and its memory).
 * - Observers see every `send` (before loss), every engine event and every dial, so metrics and
 *   the IP-sharing invariant are computed from the engines' own outputs.
 */
import type { Prng } from '@peapod/core';
import {
  deriveDeviceId,
  GossipEngine,
  PeerRecordCache,
  type CryptoProvider,
  type GossipEngineOptions,
  type GossipEvent,
  type GossipFrameMessage,
  type GossipSelf,
  type GossipSettings,
  type KeyPair,
} from '@peapod/core';
import type { EventQueue } from './event-queue.js';

/** Records the shared cache remembers per generation: every live node's, with room for updates. */
const SHARED_RECORDS_MAX = 1 << 18;

/** The port every simulated node listens on. */
export const GOSSIP_SIM_PORT = 7000;

/** What the simulator needs of an engine (the real `GossipEngine` is the one the CLI uses). */
export type SimGossipEngine = Pick<
  GossipEngine,
  | 'linkUp'
  | 'linkDown'
  | 'receive'
  | 'timer'
  | 'nextDeadlineMs'
  | 'setSelf'
  | 'announce'
  | 'announceContent'
  | 'addRecords'
  | 'ownRecord'
  | 'snapshot'
  | 'takeOutput'
  | 'counters'
>;

export type GossipEngineFactory = (options: GossipEngineOptions) => SimGossipEngine;

export const realGossipEngine: GossipEngineFactory = (options) => new GossipEngine(options);

export interface GossipNetworkObserver {
  onSend(node: number, linkId: number, frame: GossipFrameMessage): void;
  onEvent(node: number, event: GossipEvent): void;
  /** `target` is the node at that address, undefined when no node has it. */
  onDial(node: number, address: string, target: number | undefined): void;
}

export interface GossipNetworkOptions {
  readonly queue: EventQueue;
  readonly prng: Prng;
  readonly crypto: CryptoProvider;
  readonly lossRate: number;
  readonly latencyMinMs: number;
  readonly latencyMaxMs: number;
  /** Wall clock (Unix ms) at simulated time 0. */
  readonly wallClockEpochMs: number;
  readonly settings: Partial<GossipSettings>;
  readonly observer: GossipNetworkObserver;
  readonly engineFactory?: GossipEngineFactory;
}

export interface SimGossipNode {
  readonly index: number;
  readonly address: string;
  readonly identity: KeyPair;
  readonly deviceId: Uint8Array;
  readonly broadcast: boolean;
  self: GossipSelf;
  engine: SimGossipEngine | undefined;
  readonly joinedAtMs: number;
  leftAtMs: number | undefined;
  /** Links whose `linkUp` this node's engine has had and that are not closed. */
  readonly links: Set<number>;
  readonly clockSkewMs: number;
  timerAtMs: number;
  timerToken: number;
  timerFiredAtMs: number;
}

interface SimLink {
  readonly id: number;
  /** The dialler. */
  readonly a: number;
  readonly b: number;
  readonly latencyMs: number;
  closed: boolean;
}

export interface GossipNetworkCounters {
  sends: number;
  delivered: number;
  lost: number;
  /** Frames sent on, or arriving at, a link that had closed (or a node that had left). */
  droppedClosed: number;
  dials: number;
  /** Dials to no node, to the dialler itself, or to a node that was not live. */
  dialsFailed: number;
  linksOpened: number;
  closes: number;
  /** Engine timer calls that left the deadline in the past (re-armed 1 ms later). */
  timerSpins: number;
}

/**
 * Node index -> its address: 10.x.y.z with the index's low 16 bits in x.y, so consecutive nodes
 * sit in different /24s, as peers across the internet mostly do (the engine caps inbound links
 * per /24); 2^24 nodes at most.
 */
export function gossipSimAddress(index: number): string {
  return `10.${index & 0xff}.${(index >>> 8) & 0xff}.${(index >>> 16) & 0xff}`;
}

/** The node index an address names, or undefined when it is not a simulated address. */
export function gossipSimIndex(address: string): number | undefined {
  const match = /^10\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (match === null) return undefined;
  const [a, b, c] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (a > 255 || b > 255 || c > 255) return undefined;
  return (c << 16) | (b << 8) | a;
}

export class GossipNetwork {
  readonly nodes: SimGossipNode[] = [];
  readonly counters: GossipNetworkCounters = {
    sends: 0,
    delivered: 0,
    lost: 0,
    droppedClosed: 0,
    dials: 0,
    dialsFailed: 0,
    linksOpened: 0,
    closes: 0,
    timerSpins: 0,
  };
  private readonly links = new Map<number, SimLink>();
  private nextLinkId = 1;
  private readonly lossThreshold: number;
  private readonly factory: GossipEngineFactory;
  /** One record cache for every engine (they share `crypto`), as one device's would be its own. */
  readonly records: PeerRecordCache;

  constructor(private readonly options: GossipNetworkOptions) {
    this.lossThreshold = Math.floor(options.lossRate * 0x1_0000_0000);
    this.factory = options.engineFactory ?? realGossipEngine;
    this.records = new PeerRecordCache(options.crypto, SHARED_RECORDS_MAX);
  }

  get nowMs(): number {
    return this.options.queue.nowMs;
  }

  wallClockMs(node: SimGossipNode): number {
    return this.options.wallClockEpochMs + this.nowMs + node.clockSkewMs;
  }

  /** A new live node with a new identity; its engine has had no input yet. */
  addNode(self: Omit<GossipSelf, 'addresses' | 'listenPort'>, identity: KeyPair): SimGossipNode {
    const index = this.nodes.length;
    const address = gossipSimAddress(index);
    const fullSelf: GossipSelf = { ...self, addresses: [address], listenPort: GOSSIP_SIM_PORT };
    const engine = this.factory({
      crypto: this.options.crypto,
      identity,
      prng: this.options.prng.fork(),
      self: fullSelf,
      settings: this.options.settings,
      records: this.records,
    });
    const node: SimGossipNode = {
      index,
      address,
      identity,
      deviceId: deriveDeviceId(this.options.crypto, identity.publicKey),
      broadcast: self.broadcast,
      self: fullSelf,
      engine,
      joinedAtMs: this.nowMs,
      leftAtMs: undefined,
      links: new Set(),
      clockSkewMs: this.options.prng.nextInt(4001) - 2000,
      timerAtMs: Number.POSITIVE_INFINITY,
      timerToken: 0,
      timerFiredAtMs: Number.NEGATIVE_INFINITY,
    };
    this.nodes.push(node);
    return node;
  }

  isLive(index: number): boolean {
    return this.nodes[index]?.engine !== undefined;
  }

  /** Runs `call` on a live node's engine, then carries out its outputs and arms its timer. */
  drive(
    index: number,
    call: (engine: SimGossipEngine, nowMs: number, wallClockMs: number) => void,
  ): void {
    const node = this.nodes[index];
    const engine = node?.engine;
    if (node === undefined || engine === undefined) return;
    call(engine, this.nowMs, this.wallClockMs(node));
    this.drain(node, engine);
  }

  /** The node crashes away: its engine is dropped, its neighbours see `linkDown`. */
  leave(index: number): void {
    const node = this.nodes[index];
    if (node?.engine === undefined) return;
    node.engine = undefined;
    node.leftAtMs = this.nowMs;
    for (const linkId of node.links) {
      const link = this.links.get(linkId);
      if (link !== undefined) this.closeLink(link, index);
    }
    node.links.clear();
  }

  /** Open links (both ends up) per live node. */
  linkCounts(): number[] {
    const perNode = new Map<number, number>();
    for (const link of this.openLinks()) {
      perNode.set(link.a, (perNode.get(link.a) ?? 0) + 1);
      perNode.set(link.b, (perNode.get(link.b) ?? 0) + 1);
    }
    const counts: number[] = [];
    for (const node of this.nodes) {
      if (node.engine !== undefined) counts.push(perNode.get(node.index) ?? 0);
    }
    return counts;
  }

  private *openLinks(): Generator<SimLink> {
    for (const link of this.links.values()) {
      if (this.nodes[link.a]!.links.has(link.id) && this.nodes[link.b]!.links.has(link.id)) {
        yield link;
      }
    }
  }

  /** Connected components of the live overlay (union-find over open links). */
  components(): number {
    const parent = new Int32Array(this.nodes.length).map((_, i) => i);
    const find = (i: number): number => {
      while (parent[i] !== i) {
        parent[i] = parent[parent[i]!]!;
        i = parent[i]!;
      }
      return i;
    };
    for (const link of this.openLinks()) parent[find(link.a)] = find(link.b);
    let count = 0;
    for (const node of this.nodes)
      if (node.engine !== undefined && find(node.index) === node.index) count++;
    return count;
  }

  private drain(node: SimGossipNode, engine: SimGossipEngine): void {
    for (let output = engine.takeOutput(); output !== undefined; output = engine.takeOutput()) {
      switch (output.type) {
        case 'send':
          this.onSend(node, output.linkId, output.frame);
          break;
        case 'dial':
          this.onDial(node, output.address, output.port);
          break;
        case 'close':
          this.onClose(node, output.linkId);
          break;
        case 'event':
          this.options.observer.onEvent(node.index, output.event);
          break;
        default: {
          const never: never = output;
          throw new Error(`gossip sim: unknown engine output ${JSON.stringify(never)}`);
        }
      }
      if (node.engine === undefined) return; // an observer made it leave (never in a scenario)
    }
    this.armTimer(node, engine);
  }

  private armTimer(node: SimGossipNode, engine: SimGossipEngine): void {
    let deadline = engine.nextDeadlineMs();
    if (deadline === undefined) return;
    if (deadline < this.nowMs) deadline = this.nowMs;
    // An engine whose timer ran at this instant and still names it: 1 ms later, never a loop.
    const spin = deadline <= node.timerFiredAtMs;
    if (spin) deadline = node.timerFiredAtMs + 1;
    if (deadline >= node.timerAtMs) return;
    if (spin) this.counters.timerSpins++;
    node.timerAtMs = deadline;
    const token = ++node.timerToken;
    this.options.queue.schedule(deadline, 'gossip-timer', node.index, 0, () => {
      if (node.timerToken !== token || node.engine === undefined) return;
      node.timerAtMs = Number.POSITIVE_INFINITY;
      node.timerFiredAtMs = this.nowMs;
      this.drive(node.index, (e, now, wall) => e.timer(now, wall));
    });
  }

  private onSend(node: SimGossipNode, linkId: number, frame: GossipFrameMessage): void {
    this.counters.sends++;
    this.options.observer.onSend(node.index, linkId, frame);
    const link = this.links.get(linkId);
    if (link === undefined || !node.links.has(linkId)) {
      this.counters.droppedClosed++;
      return;
    }
    if (this.options.prng.nextU32() < this.lossThreshold) {
      this.counters.lost++;
      return;
    }
    const target = link.a === node.index ? link.b : link.a;
    const copy: GossipFrameMessage = { type: 'gossip', code: frame.code, body: frame.body.slice() };
    this.options.queue.schedule(this.nowMs + link.latencyMs, 'gossip-frame', target, linkId, () => {
      const receiver = this.nodes[target]!;
      if (receiver.engine === undefined || !receiver.links.has(linkId)) {
        this.counters.droppedClosed++;
        return;
      }
      this.counters.delivered++;
      this.drive(target, (e, now, wall) => e.receive(linkId, copy, now, wall));
    });
  }

  private onDial(node: SimGossipNode, address: string, port: number): void {
    this.counters.dials++;
    const targetIndex = gossipSimIndex(address);
    const target =
      targetIndex !== undefined && targetIndex < this.nodes.length ? targetIndex : undefined;
    this.options.observer.onDial(node.index, address, target);
    if (target === undefined || target === node.index || port !== GOSSIP_SIM_PORT) {
      this.counters.dialsFailed++;
      return;
    }
    const span = this.options.latencyMaxMs - this.options.latencyMinMs + 1;
    const link: SimLink = {
      id: this.nextLinkId++,
      a: node.index,
      b: target,
      latencyMs: this.options.latencyMinMs + this.options.prng.nextInt(span),
      closed: false,
    };
    const queue = this.options.queue;
    queue.schedule(this.nowMs + 4 * link.latencyMs, 'gossip-dialled', node.index, link.id, () => {
      const dialler = this.nodes[link.a]!;
      const dialled = this.nodes[link.b]!;
      if (dialler.engine === undefined) return;
      if (dialled.engine === undefined) {
        this.counters.dialsFailed++;
        return;
      }
      this.links.set(link.id, link);
      this.counters.linksOpened++;
      // Scheduled before the dialler's engine runs, so the dialled end knows the link before
      // any frame the dialler sends on it arrives (same instant, earlier sequence number).
      queue.schedule(this.nowMs + link.latencyMs, 'gossip-accepted', link.b, link.id, () => {
        if (link.closed) return;
        const accepter = this.nodes[link.b]!;
        if (accepter.engine === undefined) {
          this.closeLink(link, link.b);
          return;
        }
        accepter.links.add(link.id);
        this.drive(link.b, (e, now, wall) =>
          e.linkUp(link.id, dialler.deviceId, now, wall, {
            outbound: false,
            address: dialler.address,
          }),
        );
      });
      dialler.links.add(link.id);
      this.drive(link.a, (e, now, wall) =>
        e.linkUp(link.id, dialled.deviceId, now, wall, {
          outbound: true,
          address: dialled.address,
        }),
      );
    });
  }

  private onClose(node: SimGossipNode, linkId: number): void {
    const link = this.links.get(linkId);
    if (link === undefined || !node.links.has(linkId)) return;
    this.counters.closes++;
    node.links.delete(linkId);
    if (!link.closed) this.closeLink(link, node.index);
    this.options.queue.schedule(this.nowMs, 'gossip-closed', node.index, linkId, () => {
      this.drive(node.index, (e, now) => e.linkDown(linkId, now));
    });
  }

  /**
   * Marks the link closed; the end other than `by` gets `linkDown` one latency later, after the
   * frames `by` sent before closing (a TCP close delivers what was sent first).
   */
  private closeLink(link: SimLink, by: number): void {
    link.closed = true;
    const other = link.a === by ? link.b : link.a;
    if (!this.nodes[other]!.links.has(link.id)) {
      this.links.delete(link.id);
      return;
    }
    this.options.queue.schedule(
      this.nowMs + link.latencyMs,
      'gossip-link-down',
      other,
      link.id,
      () => {
        this.links.delete(link.id);
        const remote = this.nodes[other]!;
        if (!remote.links.delete(link.id)) return;
        this.drive(other, (e, now) => e.linkDown(link.id, now));
      },
    );
  }
}
