/**
 * The network model: reliable, in-order byte pipes (TCP semantics, which the Core's record
 * framing needs) between simulated nodes, with bandwidth, fair sharing, latency, loss,
 * partitions and resets.
 *
 * Theory of operation
 * - Every node has two interfaces: `lan` (pod peers on one switch) and `wan` (its internet
 *   access: internet peers and the origin). An interface has an uplink rate, a downlink rate
 *   (bit/s) and a one-way latency to the switch/core network. A link between nodes A and B runs
 *   over one kind of interface; its one-way latency is `A.latency + B.latency`.
 * - A link is two `Pipe`s, one per direction. `send` appends one segment (one Core `send`
 *   output, at most 2 + 65535 bytes) to the sending pipe.
 * - Fair sharing, packet by packet: each interface's uplink is one server that serialises one
 *   segment at a time at the uplink rate, taking the next segment from its pipes in
 *   round-robin order (a byte-fair scheduler for the equal-sized segments the Core produces,
 *   i.e. fair queueing; over many segments it converges to max-min fair shares of the uplink).
 *   The receiver's downlink is a FIFO server at the downlink rate. A flow therefore gets the
 *   minimum of its fair share at both ends. Chosen over a fluid max-min model because it is
 *   exact at the granularity the Core sees (it observes whole records), it needs no global
 *   re-solve at every flow change, and it costs three heap operations per 64 KiB record:
 *   cheap next to the AEAD seal+open of the same record (1 GiB x 32 nodes is ~1.6 M records).
 * - `bytes-flushed` is reported when a segment finishes serialising on the sender's uplink:
 *   the moment the bytes "leave the sender's queue". The Core's 256 KiB send window therefore
 *   paces DATA exactly as a socket's write callbacks would.
 * - Receive window: a pipe holds at most `receiveWindowBytes` (default 4 MiB) that were
 *   serialised but not yet read by the receiving host. A node that stops reading (the stall
 *   fault) thus fills the window, the sender's uplink skips that pipe, flushes stop, and the
 *   sending Core's own send window closes: TCP backpressure, end to end.
 * - Loss is modelled as retransmission delay: a lost segment arrives one RTO
 *   (200 ms + 2 x latency, Linux's minimum RTO plus a round trip) late, and, because a pipe is
 *   in order, so does everything behind it (head-of-line blocking).
 * - Partition "stall": the link's pipes stop: uplinks skip them and segments already on the
 *   wire are held; on heal they are retransmitted (arrive after one latency). Partition
 *   "break": both sides see `link-closed` (a reset); queued bytes are lost.
 * - Close: a Core's `disconnect` appends a FIN after the bytes already queued; the remote sees
 *   `link-closed` when the FIN arrives. A crashed node's links reset (the remote sees
 *   `link-closed` one latency later); a vanished node (power loss) sends nothing more, and its
 *   peers learn only by their idle timeout.
 * - Dials: `connect` carries the dialler's `dialId` (the Core's `connect` output), and every dial
 *   ends in exactly one of `onLinkOpened(..., dialId)` or `onDialFailed(dialId)`: refused one
 *   round trip after the SYN when the target's process is gone (its kernel answers RST), after
 *   `CONNECT_TIMEOUT_MS` when the machine vanished, and at once when the link breaks (a broken
 *   partition) before the dialler saw it open.
 * - The network never calls an endpoint synchronously from an API call: every callback runs in
 *   its own event, so a host loop is never re-entered.
 */
import type { Prng } from '@peapod/core';
import type { EventQueue } from './event-queue.js';

export type InterfaceKind = 'lan' | 'wan';

/** One interface's parameters. */
export interface InterfaceSpec {
  readonly upBps: number;
  readonly downBps: number;
  readonly latencyMs: number;
}

/** What the network tells a node's host. Each call runs in its own event. */
export interface NetworkEndpoint {
  /** `dialId`: the dial this outbound link answers (undefined for inbound links). */
  onLinkOpened(
    linkId: number,
    direction: 'inbound' | 'outbound',
    remoteAddress: string,
    dialId: number | undefined,
  ): void;
  /** A dial the endpoint asked for (`connect`) did not open a link. */
  onDialFailed(dialId: number, detail: string): void;
  onBytes(linkId: number, bytes: Uint8Array): void;
  onFlushed(linkId: number, byteCount: number): void;
  onLinkClosed(linkId: number): void;
}

/** Bytes a FIN is charged on the wire. */
const FIN_BYTES = 40;
const MIN_RTO_MS = 200;
/** Linux's connect timeout (6 SYN retransmissions): a dial to a vanished machine fails then. */
export const CONNECT_TIMEOUT_MS = 127_000;

interface Segment {
  /** undefined: FIN. */
  readonly bytes: Uint8Array | undefined;
  readonly size: number;
}

class Uplink {
  readonly pipes: Pipe[] = [];
  cursor = 0;
  busy = false;
  constructor(
    readonly node: number,
    readonly spec: InterfaceSpec,
  ) {}
}

class Downlink {
  busyUntilMs = 0;
  constructor(readonly spec: InterfaceSpec) {}
}

class Pipe {
  readonly queue: Segment[] = [];
  head = 0;
  inFlightBytes = 0;
  lastArrivalMs = 0;
  /** Segments on the wire when a partition began; retransmitted on heal. */
  readonly held: Segment[] = [];
  /** Segments that arrived while the receiver was not reading. */
  readonly unread: Segment[] = [];
  /** The sending side closed (disconnect) or the link reset: no more sends accepted. */
  senderClosed = false;
  /** The receiving side's socket is closed: arrivals are discarded. */
  receiverClosed = false;
  /** Bytes carried (for reports). */
  deliveredBytes = 0;

  constructor(
    readonly link: Link,
    readonly from: number,
    readonly to: number,
    readonly fromLinkId: number,
    readonly toLinkId: number,
    readonly uplink: Uplink,
    readonly downlink: Downlink,
  ) {}

  get queuedSegments(): number {
    return this.queue.length - this.head;
  }
}

/** A bidirectional link between two nodes. */
export class Link {
  /** 'open' from creation; 'reset' after a break or a crash; 'closed' when both FINs are done. */
  state: 'opening' | 'open' | 'reset' = 'opening';
  partitioned = false;
  lossPpm = 0;
  jitterMs = 0;
  forward!: Pipe;
  backward!: Pipe;

  constructor(
    readonly id: number,
    readonly a: number,
    readonly b: number,
    readonly kind: InterfaceKind,
    readonly latencyMs: number,
    /** The dialler's (node `a`'s) dial ID. */
    readonly dialId: number | undefined,
  ) {}

  /** Bytes carried in both directions. */
  get carriedBytes(): number {
    return this.forward.deliveredBytes + this.backward.deliveredBytes;
  }
}

interface NodeNet {
  readonly endpoint: NetworkEndpoint;
  readonly uplinks: Record<InterfaceKind, Uplink>;
  readonly downlinks: Record<InterfaceKind, Downlink>;
  readonly pipesByLinkId: Map<number, Pipe>;
  nextLinkId: number;
  alive: boolean;
  /** Crashed with 'vanish': the machine is gone, so nothing answers a SYN. */
  vanished: boolean;
  reading: boolean;
  /** Bytes this node's uplinks serialised, per interface kind. */
  readonly sentBytes: Record<InterfaceKind, number>;
}

export interface NetworkOptions {
  readonly receiveWindowBytes?: number;
}

export class Network {
  private readonly nodes: NodeNet[] = [];
  readonly links: Link[] = [];
  private readonly receiveWindowBytes: number;

  constructor(
    private readonly queue: EventQueue,
    private readonly prng: Prng,
    options: NetworkOptions = {},
  ) {
    this.receiveWindowBytes = options.receiveWindowBytes ?? 4 * 1024 * 1024;
  }

  /** Adds a node; returns its index. */
  addNode(endpoint: NetworkEndpoint, lan: InterfaceSpec, wan: InterfaceSpec): number {
    const id = this.nodes.length;
    this.nodes.push({
      endpoint,
      uplinks: { lan: new Uplink(id, lan), wan: new Uplink(id, wan) },
      downlinks: { lan: new Downlink(lan), wan: new Downlink(wan) },
      pipesByLinkId: new Map(),
      nextLinkId: 1,
      alive: true,
      vanished: false,
      reading: true,
      sentBytes: { lan: 0, wan: 0 },
    });
    return id;
  }

  /** The interface parameters of a node. */
  spec(node: number, kind: InterfaceKind): InterfaceSpec {
    return this.node(node).uplinks[kind].spec;
  }

  /** Bytes a node's uplink of `kind` serialised so far. */
  sentBytes(node: number, kind: InterfaceKind): number {
    return this.node(node).sentBytes[kind];
  }

  /**
   * `a` dials `b` for its dial `dialId`: `b` sees `link-opened` after one latency (the SYN), `a`
   * after two (SYN-ACK); or `a` sees `onDialFailed` (see the module header).
   */
  connect(a: number, b: number, kind: InterfaceKind, dialId?: number): Link {
    const na = this.node(a);
    const nb = this.node(b);
    const latencyMs = na.uplinks[kind].spec.latencyMs + nb.uplinks[kind].spec.latencyMs;
    const link = new Link(this.links.length, a, b, kind, latencyMs, dialId);
    const aLinkId = na.nextLinkId++;
    const bLinkId = nb.nextLinkId++;
    link.forward = new Pipe(link, a, b, aLinkId, bLinkId, na.uplinks[kind], nb.downlinks[kind]);
    link.backward = new Pipe(link, b, a, bLinkId, aLinkId, nb.uplinks[kind], na.downlinks[kind]);
    na.uplinks[kind].pipes.push(link.forward);
    nb.uplinks[kind].pipes.push(link.backward);
    na.pipesByLinkId.set(aLinkId, link.forward);
    nb.pipesByLinkId.set(bLinkId, link.backward);
    this.links.push(link);
    const now = this.queue.nowMs;
    this.queue.schedule(now + latencyMs, 'link-open-in', b, bLinkId, () => {
      if (link.state !== 'opening') return;
      if (!nb.alive) {
        link.state = 'reset';
        link.forward.senderClosed = link.backward.senderClosed = true;
        if (nb.vanished) this.dialFailed(link, now + CONNECT_TIMEOUT_MS, 'connect timed out');
        else this.dialFailed(link, this.queue.nowMs + latencyMs, 'connection refused');
        return;
      }
      nb.endpoint.onLinkOpened(bLinkId, 'inbound', `node-${a}`, undefined);
    });
    this.queue.schedule(now + 2 * latencyMs, 'link-open-out', a, aLinkId, () => {
      if (link.state !== 'opening' || !na.alive) return;
      link.state = 'open';
      na.endpoint.onLinkOpened(aLinkId, 'outbound', `node-${b}`, dialId);
    });
    return link;
  }

  /** The dialler of `link` learns at `atMs` that its dial failed. */
  private dialFailed(link: Link, atMs: number, detail: string): void {
    const dialId = link.dialId;
    if (dialId === undefined) return;
    const dialler = this.node(link.a);
    this.queue.schedule(atMs, 'dial-failed', link.a, dialId, () => {
      if (dialler.alive) dialler.endpoint.onDialFailed(dialId, detail);
    });
  }

  /** The link a node knows as `linkId`. */
  linkOf(node: number, linkId: number): Link | undefined {
    return this.node(node).pipesByLinkId.get(linkId)?.link;
  }

  /** A host writes bytes to its socket. Writes to a closed socket are dropped. */
  send(node: number, linkId: number, bytes: Uint8Array): void {
    const pipe = this.node(node).pipesByLinkId.get(linkId);
    if (pipe === undefined || pipe.senderClosed || pipe.link.state === 'reset') return;
    pipe.queue.push({ bytes, size: bytes.length });
    this.kick(pipe.uplink);
  }

  /** A host closes its socket after the bytes already written (the Core's `disconnect`). */
  close(node: number, linkId: number): void {
    const pipe = this.node(node).pipesByLinkId.get(linkId);
    if (pipe === undefined || pipe.senderClosed) return;
    pipe.senderClosed = true;
    const reverse = pipe.link.forward === pipe ? pipe.link.backward : pipe.link.forward;
    reverse.receiverClosed = true;
    if (pipe.link.state === 'reset') return;
    pipe.queue.push({ bytes: undefined, size: FIN_BYTES });
    this.kick(pipe.uplink);
  }

  /** Resets a link: both sides see `link-closed` now; queued and in-flight bytes are lost. */
  breakLink(link: Link): void {
    if (link.state === 'reset') return;
    const wasOpen = { a: link.state === 'open', b: true };
    if (!wasOpen.a) this.dialFailed(link, this.queue.nowMs, 'connection reset');
    link.state = 'reset';
    for (const pipe of [link.forward, link.backward]) {
      pipe.queue.length = 0;
      pipe.head = 0;
      pipe.held.length = 0;
      pipe.unread.length = 0;
      const node = this.node(pipe.to);
      const receiverSawOpen = pipe.to === link.a ? wasOpen.a : wasOpen.b;
      if (!pipe.receiverClosed && node.alive && receiverSawOpen) {
        pipe.receiverClosed = true;
        this.queue.schedule(this.queue.nowMs, 'link-reset', pipe.to, pipe.toLinkId, () => {
          if (this.node(pipe.to).alive) node.endpoint.onLinkClosed(pipe.toLinkId);
        });
      }
      pipe.senderClosed = true;
    }
  }

  /** Partitions (stalls) or heals a link. */
  setPartitioned(link: Link, partitioned: boolean): void {
    if (link.partitioned === partitioned) return;
    link.partitioned = partitioned;
    if (partitioned) return;
    for (const pipe of [link.forward, link.backward]) {
      const held = pipe.held.splice(0);
      for (const segment of held) this.scheduleArrival(pipe, segment, this.queue.nowMs);
      this.kick(pipe.uplink);
    }
  }

  /**
   * A node crashes. `mode` 'reset': the kernel resets its sockets and peers see `link-closed`
   * after one latency. 'vanish': the machine is gone; peers see nothing.
   */
  crash(node: number, mode: 'reset' | 'vanish'): void {
    const n = this.node(node);
    if (!n.alive) return;
    n.alive = false;
    n.vanished = mode === 'vanish';
    for (const pipe of n.pipesByLinkId.values()) {
      pipe.queue.length = pipe.head = 0;
      pipe.senderClosed = true;
      const link = pipe.link;
      if (mode === 'vanish' || link.state === 'reset') continue;
      const reverse = link.forward === pipe ? link.backward : link.forward;
      reverse.receiverClosed = true;
      if (pipe.receiverClosed || link.state !== 'open') continue;
      pipe.receiverClosed = true;
      const remote = this.node(pipe.to);
      this.queue.schedule(
        this.queue.nowMs + link.latencyMs,
        'link-reset',
        pipe.to,
        pipe.toLinkId,
        () => {
          if (remote.alive) remote.endpoint.onLinkClosed(pipe.toLinkId);
        },
      );
    }
  }

  /** Stops (false) or resumes (true) a node's reading from its sockets. */
  setReading(node: number, reading: boolean): void {
    const n = this.node(node);
    if (n.reading === reading) return;
    n.reading = reading;
    if (!reading) return;
    const pipes = [...this.links]
      .flatMap((l) => [l.forward, l.backward])
      .filter((p) => p.to === node && p.unread.length > 0);
    for (const pipe of pipes) {
      this.queue.schedule(this.queue.nowMs, 'resume-read', node, pipe.toLinkId, () => {
        const unread = pipe.unread.splice(0);
        for (const segment of unread) this.deliver(pipe, segment);
      });
    }
  }

  isAlive(node: number): boolean {
    return this.node(node).alive;
  }

  /**
   * Passes `size` bytes of a non-pipe flow (origin responses) through a node's downlink FIFO and
   * calls `done` when they are through.
   */
  throughDownlink(node: number, kind: InterfaceKind, size: number, done: () => void): void {
    const downlink = this.node(node).downlinks[kind];
    const start = Math.max(this.queue.nowMs, downlink.busyUntilMs);
    downlink.busyUntilMs = start + serialiseMs(size, downlink.spec.downBps);
    this.queue.schedule(downlink.busyUntilMs, 'origin-in', node, size, done);
  }

  private node(id: number): NodeNet {
    const node = this.nodes[id];
    if (node === undefined) throw new RangeError(`no node ${id}`);
    return node;
  }

  /** Starts serialising the next segment on an idle uplink, round-robin over its pipes. */
  private kick(uplink: Uplink): void {
    if (uplink.busy) return;
    const pipes = uplink.pipes;
    const count = pipes.length;
    for (let i = 0; i < count; i++) {
      const index = (uplink.cursor + i) % count;
      const pipe = pipes[index]!;
      const segment = pipe.queue[pipe.head];
      if (segment === undefined || pipe.link.partitioned || pipe.link.state === 'reset') continue;
      if (segment.bytes !== undefined && pipe.inFlightBytes >= this.receiveWindowBytes) continue;
      if (pipe.link.state !== 'open' && pipe.from === pipe.link.a) continue;
      uplink.cursor = (index + 1) % count;
      pipe.head++;
      if (pipe.head > 1024 && pipe.head * 2 > pipe.queue.length) {
        pipe.queue.splice(0, pipe.head);
        pipe.head = 0;
      }
      pipe.inFlightBytes += segment.size;
      uplink.busy = true;
      const doneMs = this.queue.nowMs + serialiseMs(segment.size, uplink.spec.upBps);
      this.queue.schedule(doneMs, 'egress-done', pipe.from, segment.size, () => {
        uplink.busy = false;
        this.onSerialised(pipe, segment);
        this.kick(uplink);
      });
      return;
    }
  }

  private onSerialised(pipe: Pipe, segment: Segment): void {
    const sender = this.node(pipe.from);
    sender.sentBytes[pipe.link.kind] += segment.size;
    if (pipe.link.state === 'reset') return;
    if (segment.bytes !== undefined && sender.alive && !pipe.senderClosed) {
      const linkId = pipe.fromLinkId;
      const size = segment.size;
      this.queue.schedule(this.queue.nowMs, 'flushed', pipe.from, size, () => {
        if (sender.alive && !pipe.senderClosed) sender.endpoint.onFlushed(linkId, size);
      });
    }
    let arrivalMs = this.queue.nowMs + pipe.link.latencyMs;
    if (pipe.link.jitterMs > 0)
      arrivalMs += this.prng.nextInt(pipe.link.jitterMs * 1000 + 1) / 1000;
    if (pipe.link.lossPpm > 0 && this.prng.nextInt(1_000_000) < pipe.link.lossPpm) {
      arrivalMs += MIN_RTO_MS + 2 * pipe.link.latencyMs;
    }
    this.scheduleArrival(pipe, segment, arrivalMs);
  }

  private scheduleArrival(pipe: Pipe, segment: Segment, atMs: number): void {
    const arrivalMs = Math.max(atMs, pipe.lastArrivalMs);
    pipe.lastArrivalMs = arrivalMs;
    this.queue.schedule(arrivalMs, 'arrive', pipe.to, segment.size, () => {
      if (pipe.link.state === 'reset') return;
      if (pipe.link.partitioned) {
        pipe.held.push(segment);
        return;
      }
      const downlink = pipe.downlink;
      const start = Math.max(this.queue.nowMs, downlink.busyUntilMs);
      downlink.busyUntilMs = start + serialiseMs(segment.size, downlink.spec.downBps);
      this.queue.schedule(downlink.busyUntilMs, 'deliver', pipe.to, segment.size, () => {
        if (pipe.link.state === 'reset') return;
        const receiver = this.node(pipe.to);
        if (!receiver.alive) return; // black hole: the window stays full, the sender times out
        if (!receiver.reading || pipe.unread.length > 0) {
          pipe.unread.push(segment);
          return;
        }
        this.deliver(pipe, segment);
      });
    });
  }

  private deliver(pipe: Pipe, segment: Segment): void {
    const receiver = this.node(pipe.to);
    pipe.inFlightBytes -= segment.size;
    this.kick(pipe.uplink);
    if (pipe.link.state === 'reset' || !receiver.alive || pipe.receiverClosed) return;
    if (segment.bytes === undefined) {
      pipe.receiverClosed = true;
      receiver.endpoint.onLinkClosed(pipe.toLinkId);
      return;
    }
    pipe.deliveredBytes += segment.size;
    receiver.endpoint.onBytes(pipe.toLinkId, segment.bytes);
  }
}

/** Milliseconds to serialise `bytes` at `bps` bits per second. */
export function serialiseMs(bytes: number, bps: number): number {
  return (bytes * 8000) / bps;
}
