/**
 * The simulator host under test: packages/sim's scenario API (`ScenarioConfig`, its fault
 * actions, `Simulation.run()` and its `RunResult`), with real Cores on a virtual clock.
 *
 * Theory of operation
 * - A pod is a seed and a `PodSpec`. A simulation runs a whole world to its end, so each
 *   operation of the suite is one deterministic run of that pod (same seed, so the same Device
 *   IDs in every run): `linksUp` a links-only run; `download` a pooled run with the pod's
 *   misbehaviour as faults; `stopNode` a links-only run in which the node shuts down. `peers`
 *   reads the latest links-only world (after `stopNode`, the one in which the node left).
 * - Misbehaviour as the simulator's faults: a liar is `corrupt` for the whole run (its host
 *   flips a byte of what it fetches or serves); a node stalled for peers is `origin-slow` by a
 *   factor of 1e9 for the whole run (the origin sends it nothing more: a stall, and only a helper
 *   is stalled, so only fetches for peers stall); a leaver `crash`es (reset, no GOODBYE) halfway
 *   through the ideal download time.
 * - Observations: `RunResult` (ok and the violated invariant, the requester's checked output
 *   SHA-256, bans by node index, each node's upload bytes); each node's `core.peers()` (the
 *   core's public peer table) for what it knows of its peers; and the run's trace, whose
 *   `peer:disconnect ... reason R by remote` notes are the GOODBYE reasons its peers saw.
 * - Which helper was given work: the event queue's observer (the trace's hook) counts the
 *   `origin-start` events of each node. Per-source bytes are each helper's bytes sent on pod
 *   links (its DATA frames, plus a few KiB of control). The protocol version of a link is the
 *   core's peer table's (`core.peers()`, from HELLO).
 * - Dependencies beyond the scenario API, named so a sim refactor knows: `Simulation.hosts[i]`
 *   with `deviceIdHex` and `core` (a `Core`), `Simulation.queue.observer` and the event kind
 *   `origin-start`, the simulator's device names `${role}-${index}`, and the trace note format
 *   of `peer:disconnect`.
 */
import type { PeerSnapshot } from '@peapod/core';
import type { FaultAction } from '@peapod/sim/dist/src/faults.js';
import { DEFAULT_MEMORY_BOUND_BYTES } from '@peapod/sim/dist/src/scenarios.js';
import {
  Simulation,
  type NodeRole,
  type NodeSpec,
  type RunResult,
  type ScenarioConfig,
} from '@peapod/sim/dist/src/simulator.js';
import type {
  DownloadOptions,
  DownloadResult,
  GoodbyeSeen,
  HostUnderTest,
  NodeIdentity,
  PeerView,
  PodSpec,
  PodUnderTest,
} from './host-under-test.js';

const MBIT = 1_000_000;
const MiB = 1024 * 1024;
const OBJECT_BYTES = 16 * MiB;
const DOWNLOAD_START_MS = 1_000;
/** Links are dialled at t=0; by then every pair is up (the run checks it). */
const LINKS_SETTLED_MS = 2_000;
/** The stall lasts the whole run: faults end (and the origin recovers) only after this. */
const STALL_FOREVER_MS = 3_600_000;
/** A rate divisor that turns a 50 Mbit/s origin link into a stall. */
const STALL_FACTOR = 1e9;
const WAN_DOWN_BPS = 50 * MBIT;

function node(role: NodeRole): NodeSpec {
  return {
    role,
    lan: { upBps: 1000 * MBIT, downBps: 1000 * MBIT, latencyMs: 0.25 },
    wan: { upBps: 10 * MBIT, downBps: WAN_DOWN_BPS, latencyMs: 15 },
  };
}

/** A trace line: `   123.456 ms n2    peer:disconnect link 1 reason 1 by remote: shutting down`. */
const DISCONNECT = /^\s*[\d.]+ ms n(\d+)\s+peer:disconnect link \d+ reason (\d+) by (\w+): (.*)$/;

function failed(result: RunResult): string {
  const v = result.violation;
  return v === undefined
    ? 'no violation'
    : `${v.invariant}: ${v.detail}\n${result.trace.join('\n')}`;
}

class SimPod implements PodUnderTest {
  private readonly links: Simulation;
  private linksResult: RunResult | undefined;
  private lastDownload: RunResult | undefined;
  /** The links-only world `peers` reads: the first run, or the latest shutdown run. */
  private world: Simulation;

  constructor(
    private readonly spec: PodSpec,
    private readonly seed: number,
  ) {
    this.links = new Simulation(this.linksConfig([], LINKS_SETTLED_MS));
    this.world = this.links;
  }

  identity(index: number): NodeIdentity {
    const host = this.links.hosts[index];
    if (host === undefined) throw new RangeError(`index: no node ${index} in this pod`);
    return {
      deviceIdHex: host.deviceIdHex,
      name: `${this.links.config.nodes[index]!.role}-${index}`,
    };
  }

  async linksUp(): Promise<void> {
    this.linksResult ??= this.links.run();
    if (!this.linksResult.ok) throw new Error(`links-only run failed: ${failed(this.linksResult)}`);
  }

  async peers(index: number): Promise<readonly PeerView[]> {
    await this.linksUp();
    // The core's peer table does not keep the version yet; taken as soon as it does.
    const peers: Array<PeerSnapshot & { readonly protocolVersion?: number }> =
      this.world.hosts[index]!.core.peers();
    return peers.map((p) => ({
      deviceIdHex: p.deviceIdHex,
      name: p.name,
      connected: p.state === 'connected',
      protocolVersion: p.protocolVersion,
    }));
  }

  async download(requester: number, options: DownloadOptions = {}): Promise<DownloadResult> {
    const count = this.spec.nodes;
    const idealMs = ((OBJECT_BYTES * 8) / (count * WAN_DOWN_BPS)) * 1000;
    const halfwayMs = DOWNLOAD_START_MS + Math.round(idealMs / 2);
    const faults: FaultAction[] = [
      ...(this.spec.liars ?? []).map((n): FaultAction => ({
        kind: 'corrupt',
        atMs: 0,
        untilMs: Number.MAX_SAFE_INTEGER,
        node: n,
      })),
      ...(this.spec.stalledForPeers ?? []).map((n): FaultAction => ({
        kind: 'origin-slow',
        atMs: 0,
        untilMs: Number.MAX_SAFE_INTEGER,
        node: n,
        factor: STALL_FACTOR,
      })),
      ...(options.leaver === undefined
        ? []
        : [{ kind: 'crash', atMs: halfwayMs, node: options.leaver, mode: 'reset' } as const]),
    ];
    const stalls = (this.spec.stalledForPeers ?? []).length > 0;
    const config: ScenarioConfig = {
      ...this.baseConfig('conformance-pooled'),
      kind: 'pooled',
      nodes: Array.from({ length: count }, (_, i) =>
        node(i === requester ? 'requester' : 'helper'),
      ),
      origin: { ttfbMs: 50 },
      downloadStartMs: DOWNLOAD_START_MS,
      faults: faults.sort((a, b) => a.atMs - b.atMs),
      faultEndMs: stalls ? STALL_FOREVER_MS : halfwayMs + 1,
    };
    const sim = new Simulation(config);
    const fetches = countOriginFetches(sim);
    const result = sim.run();
    this.lastDownload = result;
    if (fetches.size === 0) {
      throw new Error(
        "no 'origin-start' event in a pooled run: the simulator's event names changed",
      );
    }
    const report = result.nodes[requester]!;
    const complete = result.ok && report.completionMs !== undefined;
    const bySource = new Map<number, number>();
    for (const n of result.nodes) if (n.node !== requester) bySource.set(n.node, n.uploadBytes);
    return {
      ok: complete,
      error: complete ? undefined : (report.failed ?? failed(result)),
      // Every delivered byte was checked against the content as it arrived, and completion
      // against the size (the simulator's invariants), so a completed output is the whole object.
      bytes: complete ? result.contentBytes : undefined,
      sha256: report.outputSha256,
      objectBytes: result.contentBytes,
      objectSha256: result.contentSha256,
      bySource,
      bans: result.bans.map((b) => ({ by: b.by, node: b.node })),
      fetchesForPeers: new Map(
        result.nodes
          .filter((n) => n.node !== requester)
          .map((n) => [n.node, fetches.get(n.node) ?? 0]),
      ),
    };
  }

  async banned(by: number, node: number): Promise<void> {
    const bans = this.lastDownload?.bans ?? [];
    if (!bans.some((b) => b.by === by && b.node === node)) {
      throw new Error(`node ${by} did not ban node ${node} in the run: ${JSON.stringify(bans)}`);
    }
  }

  async stopNode(index: number): Promise<readonly GoodbyeSeen[]> {
    const atMs = LINKS_SETTLED_MS;
    const sim = new Simulation(
      this.linksConfig([{ kind: 'shutdown', atMs, node: index }], atMs + 1, 200),
    );
    const result = sim.run();
    this.world = sim;
    if (!result.ok) throw new Error(`shutdown run failed: ${failed(result)}`);
    const lines = result.trace;
    // The simulator notes each fault as it happens (`fault: 2.0s node 2 shuts down (GOODBYE)`).
    const from = lines.findIndex(
      (line) => line.includes(`fault: `) && line.includes(`node ${index}`),
    );
    if (from < 0)
      throw new Error(`the trace kept too little to see the shutdown:\n${lines.join('\n')}`);
    const seen: GoodbyeSeen[] = [];
    for (const line of lines.slice(from)) {
      const match = DISCONNECT.exec(line);
      if (match === null || Number(match[1]) === index) continue;
      seen.push({
        by: Number(match[1]),
        reason: Number(match[2]),
        byRemote: match[3] === 'remote',
        detail: match[4]!,
      });
    }
    return seen;
  }

  async close(): Promise<void> {
    // Nothing runs between operations: a simulation holds no sockets, processes or timers.
  }

  private baseConfig(name: string) {
    return {
      name,
      seed: this.seed,
      contentBytes: OBJECT_BYTES,
      chunkSizeBytes: MiB,
      linkKind: 'lan' as const,
      settleMs: 0,
      memoryBoundBytes: DEFAULT_MEMORY_BOUND_BYTES,
      jitterMs: 0,
    };
  }

  private linksConfig(faults: FaultAction[], faultEndMs: number, settleMs = 0): ScenarioConfig {
    return {
      ...this.baseConfig('conformance-links'),
      kind: 'links',
      nodes: Array.from({ length: this.spec.nodes }, () => node('peer')),
      downloadStartMs: 0,
      faults,
      faultEndMs,
      settleMs,
    };
  }
}

/**
 * Origin fetches started per node during `sim.run()`: the event queue's observer (the hook the
 * trace uses) sees each `origin-start`, whose node is the fetching client.
 */
function countOriginFetches(sim: Simulation): Map<number, number> {
  const counts = new Map<number, number>();
  const traced = sim.queue.observer;
  sim.queue.observer = (event) => {
    if (event.kind === 'origin-start') counts.set(event.node, (counts.get(event.node) ?? 0) + 1);
    traced?.(event);
  };
  return counts;
}

/** A pod's seed, from its spec: the same pod is the same world whatever else runs. */
function seedOf(spec: PodSpec): number {
  let h = 10_000;
  for (const c of JSON.stringify(spec)) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  return h % 1_000_000;
}

/** The simulator host: packages/sim's scenarios on a virtual clock. */
export const simHost: HostUnderTest = {
  name: 'simulator host (packages/sim, virtual time)',
  startPod: async (spec) => new SimPod(spec, seedOf(spec)),
};
