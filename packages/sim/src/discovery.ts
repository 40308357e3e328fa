/**
 * Discovery: the simulated LAN beacons that tell each node's Core who else is there. The Cores
 * decide who dials whom (the core's peer table: the smaller Device ID dials, with back-off after
 * failed dials, never a banned device); the simulator only carries beacons.
 *
 * Theory of operation
 * - The discovery graph is the set of node pairs that can learn of each other: every pair for a
 *   pod on a LAN, the scenario's random graph of a given degree for internet peers (a tracker's
 *   partial peer list). It is fixed for the run.
 * - At t=0 every node has heard every neighbour (the run starts on a settled LAN): each is fed
 *   `peer-discovered` for its neighbours at once, so the first dials leave at t=0.
 * - Then every live node announces every `BEACON_INTERVAL_MS`, at a phase drawn from the seed;
 *   each live neighbour hears it one link latency later, unless a broken partition separates
 *   them (`blocked`). A dead node announces nothing. A Core that lost a link therefore redials
 *   at the next beacon it hears, when its peer table's back-off allows.
 * - Every delivery runs in its own event (a host loop is never re-entered).
 * The interval is the simulator's, not the daemon's (which re-announces every 30 s): 2 s keeps
 * the redial delay of the simulator's earlier rule (1-3 s after a link closed).
 */
import type { Prng } from '@peapod/core';
import type { EventQueue } from './event-queue.js';

/** A node as discovery sees it. */
export interface DiscoveryNode {
  readonly alive: boolean;
  readonly deviceId: Uint8Array;
  /** Feeds this node's Core `peer-discovered` for node `peer` at `address:port`. */
  discovered(deviceId: Uint8Array, address: string, port: number): void;
}

export const BEACON_INTERVAL_MS = 2_000;
/** The port every simulated node accepts peer links on. */
export const PEER_PORT = 9000;

/** The address node `index` is reached at (a `connect` output names it). */
export function addressOf(index: number): string {
  return `node-${index}`;
}

/** The node an address names, or undefined. */
export function nodeAt(address: string): number | undefined {
  const match = /^node-(\d+)$/.exec(address);
  return match === null ? undefined : Number(match[1]);
}

export class Discovery {
  private readonly neighbours: number[][];

  constructor(
    private readonly queue: EventQueue,
    private readonly prng: Prng,
    private readonly nodes: readonly DiscoveryNode[],
    pairs: ReadonlyArray<readonly [number, number]>,
    /** One-way latency between two nodes on the discovery network. */
    private readonly latencyMs: (a: number, b: number) => number,
    /** True while a beacon cannot cross from `a` to `b`. */
    private readonly blocked: (a: number, b: number) => boolean,
  ) {
    this.neighbours = nodes.map(() => []);
    for (const [a, b] of pairs) {
      this.neighbours[a]!.push(b);
      this.neighbours[b]!.push(a);
    }
  }

  /** Feeds the settled LAN at t=0 and starts every node's beacons. */
  start(): void {
    this.neighbours.forEach((peers, index) => {
      for (const peer of peers) this.hear(index, peer);
    });
    this.nodes.forEach((_, index) => {
      const phase = 1 + this.prng.nextInt(BEACON_INTERVAL_MS);
      this.queue.schedule(this.queue.nowMs + phase, 'beacon', index, 0, () => this.announce(index));
    });
  }

  private announce(sender: number): void {
    if (!this.nodes[sender]!.alive) return;
    const now = this.queue.nowMs;
    for (const receiver of this.neighbours[sender]!) {
      if (!this.nodes[receiver]!.alive || this.blocked(sender, receiver)) continue;
      this.queue.schedule(
        now + this.latencyMs(sender, receiver),
        'beacon-in',
        receiver,
        sender,
        () => this.hear(receiver, sender),
      );
    }
    this.queue.schedule(now + BEACON_INTERVAL_MS, 'beacon', sender, 0, () => this.announce(sender));
  }

  /** `receiver` hears `sender`'s beacon. */
  private hear(receiver: number, sender: number): void {
    const node = this.nodes[receiver]!;
    if (!node.alive) return;
    node.discovered(this.nodes[sender]!.deviceId, addressOf(sender), PEER_PORT);
  }
}
