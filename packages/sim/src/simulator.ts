/**
 * The simulator: builds a world of real Cores from a `ScenarioConfig`, runs it on the virtual
 * clock, checks the invariants, and reports.
 *
 * Theory of operation
 * - Build: one `NodeHost` (a real `Core` with a seeded crypto provider) per node, a `Network`, an
 *   `Origin` (URL scenarios) and a `Content`. The discovery graph is the full mesh, or a seeded
 *   random graph of the given degree. Downloads start at `downloadStartMs`; faults are events.
 * - Dialling is the Cores' (their peer tables): discovery.ts feeds each node `peer-discovered`
 *   for its neighbours (at t=0, then as beacons every 2 s), and a node's `connect` output comes
 *   here (`dial`), which opens a network link carrying the `dialId`, or reports `dial-failed`
 *   for an address no node has. Beacons do not cross a broken partition, so nothing redials
 *   across one until it heals.
 * - Run: pop events until every requester has finished, or the liveness deadline passes, or (for
 *   link-only scenarios) the run time is over. Safety invariants are checked inside the steps
 *   (see invariants.ts); a `Violation` stops the run.
 * - Liveness: at `faultEndMs` every fault is over. Every live requester must then finish by
 *   `faultEndMs + 3 x ideal + 60 s`. For link-only runs, every pair of live nodes that should be
 *   linked must hold a ready link at the end.
 * - Ideal: pooled: time to move the bytes at the sum of the live pod members' WAN downlink rates,
 *   integrated over time (see `idealMs`): a member stops counting when it leaves, and a corrupter
 *   when the requester bans it. Swarm: max(F/u_seed, F/d_min, N F/(u_seed + sum u_peers)), the
 *   classic lower bound for distributing F bytes from one seed to N peers.
 */
import { Prng, createManifest, toHex, type Manifest } from '@peapod/core';
import { Content, type ContentDigest } from './content.js';
import { Discovery, nodeAt } from './discovery.js';
import { EventQueue } from './event-queue.js';
import { describeFault, type FaultAction } from './faults.js';
import { Violation, type InvariantName } from './invariants.js';
import { Network, type InterfaceKind, type InterfaceSpec, type Link } from './network.js';
import { NodeHost, type HostContext } from './node-host.js';
import { Origin } from './origin.js';
import { createSeededCryptoProvider } from './seeded-crypto.js';
import { Trace } from './trace.js';

export type NodeRole = 'requester' | 'helper' | 'seed' | 'peer';

export interface NodeSpec {
  readonly role: NodeRole;
  readonly lan: InterfaceSpec;
  readonly wan: InterfaceSpec;
}

/** Everything a run is made of; a pure function of the seed for random scenarios. */
export interface ScenarioConfig {
  readonly name: string;
  readonly seed: number;
  /** 'links': connect and churn only; 'pooled': one URL download helped by pod peers; 'swarm': content by ID from one seed. */
  readonly kind: 'links' | 'pooled' | 'swarm';
  readonly contentBytes: number;
  readonly chunkSizeBytes: number;
  readonly nodes: readonly NodeSpec[];
  /** Which interface peer links use: 'lan' (a pod) or 'wan' (internet peers). */
  readonly linkKind: InterfaceKind;
  /** undefined: full mesh. */
  readonly meshDegree?: number;
  readonly origin?: { readonly ttfbMs: number; readonly capacityBps?: number };
  readonly downloadStartMs: number;
  readonly faults: readonly FaultAction[];
  readonly faultEndMs: number;
  /** Link-only runs: how long to run after the faults end. */
  readonly settleMs: number;
  readonly memoryBoundBytes: number;
  readonly diskBps?: number;
  readonly jitterMs: number;
}

export interface NodeReport {
  readonly node: number;
  readonly role: NodeRole;
  readonly alive: boolean;
  /** Download time (ms from its start), if it completed. */
  readonly completionMs: number | undefined;
  readonly failed: string | undefined;
  readonly outputSha256: string | undefined;
  readonly maxDownloadMemoryBytes: number;
  readonly uploadBytes: number;
}

export interface RunResult {
  readonly name: string;
  readonly seed: number;
  readonly ok: boolean;
  readonly violation: { readonly invariant: InvariantName; readonly detail: string } | undefined;
  readonly trace: readonly string[];
  readonly traceHash: string;
  readonly faults: readonly string[];
  readonly simMs: number;
  readonly wallMs: number;
  readonly events: number;
  readonly idealMs: number;
  readonly contentBytes: number;
  readonly contentSha256: string;
  readonly nodes: readonly NodeReport[];
  /** Banned devices, as node indices, and whether the node was a corrupter. */
  readonly bans: ReadonlyArray<{
    readonly by: number;
    readonly node: number;
    readonly corrupter: boolean;
  }>;
  readonly originServedBytes: number;
}

const POD_SECRET = new Uint8Array(32).fill(0x5a);

export class Simulation {
  readonly queue = new EventQueue();
  readonly trace = new Trace(50);
  readonly network: Network;
  readonly content: Content;
  readonly hosts: NodeHost[] = [];
  readonly origin: Origin | undefined;
  readonly manifest: Manifest | undefined;
  readonly digest: ContentDigest;
  private readonly prng: Prng;
  private readonly linkUp = new Map<number, { a: boolean; b: boolean }>();
  /** Pairs (`a:b`, a < b) separated by a broken partition now: no beacon crosses. */
  private readonly brokenPairs = new Set<string>();
  private readonly wanted = new Set<string>();
  private readonly pending = new Set<number>();
  private readonly completedAt = new Map<number, number>();
  private readonly failures = new Map<number, string>();
  private readonly bans: Array<{ by: number; node: number; corrupter: boolean }> = [];
  /** First time a requester banned each corrupter (the pooled ideal stops counting it then). */
  private readonly corrupterBannedAt = new Map<number, number>();
  private readonly corrupters = new Set<number>();
  private readonly leftAt = new Map<number, number>();
  private changedAtMs: number | undefined;
  private readonly url = 'https://origin.sim/object.bin';

  constructor(readonly config: ScenarioConfig) {
    this.prng = new Prng(config.seed);
    this.queue.observer = (e) => this.trace.record(e.atMs, e.kind, e.node, e.arg);
    this.network = new Network(this.queue, this.prng.fork());
    this.content = new Content(this.prng.nextU32() | 0, config.contentBytes);
    const digestNeeded = config.kind !== 'links';
    this.digest = digestNeeded
      ? this.content.digest(config.chunkSizeBytes)
      : { sha256: new Uint8Array(32), chunkHashes: [], chunkSizeBytes: config.chunkSizeBytes };
    const crypto = createSeededCryptoProvider(config.seed);
    this.manifest =
      config.kind === 'swarm'
        ? createManifest(crypto, {
            totalBytes: config.contentBytes,
            chunkSizeBytes: config.chunkSizeBytes,
            chunkHashes: this.digest.chunkHashes,
          })
        : undefined;
    const hostPrng = this.prng.fork();
    this.origin =
      config.origin === undefined
        ? undefined
        : new Origin(
            { url: this.url, etag: '"v1-sim"', ...config.origin },
            this.content,
            this.queue,
            this.network,
            this.prng.fork(),
            (node) => this.hosts[node]!,
          );
    const ctx: HostContext = {
      queue: this.queue,
      network: this.network,
      origin: this.origin,
      content: this.content,
      digest: this.digest,
      manifest: this.manifest,
      trace: this.trace,
      memoryBoundBytes: config.memoryBoundBytes,
      diskBps: config.diskBps,
      onDownloadEnd: (node, _id, outcome, detail) => this.onDownloadEnd(node, outcome, detail),
      onLinkEvent: (node, linkId, up) => this.onLinkEvent(node, linkId, up),
      onBanned: (node, deviceIdHex) => this.onBanned(node, deviceIdHex),
      dial: (node, dialId, address) => this.dial(node, dialId, address),
    };
    config.nodes.forEach((spec, index) => {
      const host = new NodeHost(
        ctx,
        {
          index,
          seed: (config.seed * 1009 + index * 7919) % Number.MAX_SAFE_INTEGER,
          podSecret: config.linkKind === 'lan' ? POD_SECRET : undefined,
          deviceName: `${spec.role}-${index}`,
          discoverySource: config.linkKind === 'lan' ? 'lan' : 'manual',
        },
        hostPrng.fork(),
      );
      this.hosts.push(host);
      this.network.addNode(host, spec.lan, spec.wan);
    });
  }

  /** Runs to the end and reports. Never throws for a broken invariant: it reports it. */
  run(): RunResult {
    const started = performance.now();
    let violation: Violation | undefined;
    try {
      this.setUp();
      violation = this.loop();
    } catch (error) {
      if (!(error instanceof Violation)) throw error;
      violation = error;
    }
    return this.report(violation, performance.now() - started);
  }

  /**
   * The ideal completion time in ms (0 for link-only runs).
   *
   * Pooled (issue pea-core II): the time to move the object's bytes at the sum of the *live*
   * WAN downlink rates, integrated over time from the download's start. Every pod member
   * (requester and helpers) counts from the start; a member stops counting when it leaves (crash
   * or shutdown: its link is gone), and a corrupter stops counting when the requester bans it
   * (after that it is not a source of this download). It is a true lower bound: no member can
   * move bytes faster than its WAN downlink, departed members move none, and a corrupter's bytes
   * are never part of the output, so counting its rate until the ban only makes the bound lower
   * than leaving it out altogether. An honest member that is banned (a false ban) keeps counting
   * until it leaves: a false ban must not make the ideal easier. Before the run ends (the
   * liveness deadline) no ban is known yet, which again gives the lower value.
   */
  idealMs(): number {
    const c = this.config;
    const bits = c.contentBytes * 8;
    if (c.kind === 'pooled') {
      const members = c.nodes.map((n, i) => ({ i, rate: n.wan.downBps }));
      const endsAt = new Map<number, number>();
      const end = (node: number, atMs: number): void => {
        const at = Math.max(atMs, c.downloadStartMs);
        endsAt.set(node, Math.min(endsAt.get(node) ?? Infinity, at));
      };
      for (const f of c.faults)
        if (f.kind === 'crash' || f.kind === 'shutdown') end(f.node, f.atMs);
      for (const [node, atMs] of this.corrupterBannedAt) end(node, atMs);
      const leaves = [...endsAt]
        .map(([node, atMs]) => ({ node, atMs }))
        .sort((x, y) => x.atMs - y.atMs || x.node - y.node);
      let rate = members.reduce((sum, m) => sum + m.rate, 0);
      let t = c.downloadStartMs;
      let remaining = bits;
      for (const leave of leaves) {
        const canMove = (rate * (leave.atMs - t)) / 1000;
        if (canMove >= remaining) break;
        remaining -= canMove;
        t = leave.atMs;
        rate -= c.nodes[leave.node]!.wan.downBps;
      }
      return t - c.downloadStartMs + (remaining / Math.max(1, rate)) * 1000;
    }
    if (c.kind === 'swarm') {
      const seeds = c.nodes.filter((n) => n.role === 'seed');
      const peers = c.nodes.filter((n) => n.role === 'peer');
      const net = c.linkKind;
      const seedUp = seeds.reduce((s, n) => s + n[net].upBps, 0);
      const peerUp = peers.reduce((s, n) => s + n[net].upBps, 0);
      const minDown = Math.min(...peers.map((n) => n[net].downBps));
      return (
        Math.max(bits / seedUp, bits / minDown, (peers.length * bits) / (seedUp + peerUp)) * 1000
      );
    }
    return 0;
  }

  private setUp(): void {
    const c = this.config;
    const n = c.nodes.length;
    const pairs: Array<[number, number]> = [];
    if (c.meshDegree === undefined || c.meshDegree >= n - 1) {
      for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) pairs.push([a, b]);
    } else {
      const seen = new Set<string>();
      for (let a = 0; a < n; a++) {
        // A ring keeps the graph connected; random chords add the rest of the degree.
        const ring: [number, number] = [Math.min(a, (a + 1) % n), Math.max(a, (a + 1) % n)];
        for (const [x, y] of [
          ring,
          ...Array.from({ length: c.meshDegree - 2 }, () => {
            const other = this.prng.nextInt(n);
            return [Math.min(a, other), Math.max(a, other)] as [number, number];
          }),
        ]) {
          const key = `${x}:${y}`;
          if (x !== y && !seen.has(key)) {
            seen.add(key);
            pairs.push([x, y]);
          }
        }
      }
    }
    for (const [a, b] of pairs) this.wanted.add(`${a}:${b}`);
    const kind = c.linkKind;
    new Discovery(
      this.queue,
      this.prng.fork(),
      this.hosts,
      pairs,
      (a, b) => this.network.spec(a, kind).latencyMs + this.network.spec(b, kind).latencyMs,
      (a, b) => this.brokenPairs.has(`${Math.min(a, b)}:${Math.max(a, b)}`),
    ).start();
    if (c.kind !== 'links') {
      c.nodes.forEach((spec, index) => {
        const host = this.hosts[index]!;
        if (spec.role === 'seed') {
          this.queue.schedule(1, 'content-available', index, 0, () => host.contentAvailable());
        }
        if (spec.role === 'requester' || spec.role === 'peer') {
          this.pending.add(index);
          this.queue.schedule(c.downloadStartMs, 'start-download', index, 1, () =>
            host.startDownload(1, this.sourceFor()),
          );
        }
      });
    }
    for (const fault of c.faults) this.scheduleFault(fault);
    this.queue.schedule(c.faultEndMs, 'faults-end', -1, 0, () => this.endFaults());
  }

  private sourceFor(): Parameters<NodeHost['startDownload']>[1] {
    if (this.config.kind === 'swarm') {
      const manifest = this.manifest!;
      return { kind: 'content', contentId: manifest.contentId, manifest };
    }
    return {
      kind: 'url',
      url: this.url,
      totalBytes: this.config.contentBytes,
      validator: '"v1-sim"',
      headers: [],
      sha256: this.digest.sha256,
      pooled: true,
    };
  }

  private loop(): Violation | undefined {
    const c = this.config;
    const deadlineMs =
      c.kind === 'links'
        ? c.faultEndMs + c.settleMs
        : Math.max(c.faultEndMs, c.downloadStartMs) + 3 * this.idealMs() + 60_000;
    const downloads = c.kind !== 'links';
    while (true) {
      if (downloads && this.pending.size === 0 && this.queue.nowMs >= c.downloadStartMs)
        return undefined;
      const next = this.queue.peekMs();
      if (next === undefined || next > deadlineMs) break;
      this.queue.step();
    }
    if (downloads) {
      const stuck = [...this.pending].filter((n) => this.hosts[n]!.alive);
      if (stuck.length > 0) {
        const detail = stuck
          .map(
            (n) =>
              `node ${n} has ${this.hosts[n]!.activeChecker?.deliveredBytes ?? 0} of ${c.contentBytes} bytes`,
          )
          .join('; ');
        return new Violation(
          'liveness',
          `not finished by ${(deadlineMs / 1000).toFixed(1)} s (ideal ${(this.idealMs() / 1000).toFixed(1)} s): ${detail}`,
        );
      }
      return undefined;
    }
    return this.checkLinksLive();
  }

  private checkLinksLive(): Violation | undefined {
    const missing: string[] = [];
    for (const key of this.wanted) {
      const [a, b] = key.split(':').map(Number) as [number, number];
      if (!this.hosts[a]!.alive || !this.hosts[b]!.alive) continue;
      const up = this.network.links.some((l) => {
        const s = this.linkUp.get(l.id);
        return joins(l, a, b) && s?.a === true && s.b === true;
      });
      if (!up) missing.push(key);
    }
    if (missing.length === 0) return undefined;
    return new Violation(
      'liveness',
      `live pairs without a ready link ${(this.config.settleMs / 1000).toFixed(0)} s after the faults ended: ${missing.join(', ')}`,
    );
  }

  /** Node `from`'s Core dials `address` (its `connect` output, `dialId`). */
  private dial(from: number, dialId: number, address: string): void {
    const to = nodeAt(address);
    if (to === undefined || to === from || to >= this.hosts.length) {
      this.queue.schedule(this.queue.nowMs, 'dial-failed', from, dialId, () =>
        this.hosts[from]!.onDialFailed(dialId, `no host at ${address}`),
      );
      return;
    }
    const link = this.network.connect(from, to, this.config.linkKind, dialId);
    link.jitterMs = this.config.jitterMs;
    link.lossPpm = this.currentLossPpm;
    this.linkUp.set(link.id, { a: false, b: false });
  }

  private currentLossPpm = 0;

  private onLinkEvent(node: number, linkId: number, up: boolean): void {
    const link = this.network.linkOf(node, linkId);
    if (link === undefined) return;
    const state = this.linkUp.get(link.id)!;
    if (link.a === node) state.a = up;
    else state.b = up;
  }

  private onDownloadEnd(node: number, outcome: 'complete' | 'failed', detail: string): void {
    this.pending.delete(node);
    if (outcome === 'complete') {
      this.completedAt.set(node, this.queue.nowMs);
      return;
    }
    this.failures.set(node, detail);
    // A download may fail only because the object changed under it.
    const changed = this.changedAtMs !== undefined && this.changedAtMs <= this.queue.nowMs;
    if (!changed) throw new Violation('liveness', `node ${node}: download failed: ${detail}`);
  }

  private onBanned(by: number, deviceIdHex: string): void {
    const node = this.hosts.findIndex((h) => h.deviceIdHex === deviceIdHex);
    this.bans.push({ by, node, corrupter: this.corrupters.has(node) });
    const byRequester = this.config.nodes[by]?.role === 'requester';
    if (byRequester && this.corrupters.has(node) && !this.corrupterBannedAt.has(node))
      this.corrupterBannedAt.set(node, this.queue.nowMs);
  }

  private scheduleFault(fault: FaultAction): void {
    const q = this.queue;
    const at = fault.atMs;
    const note = (): void => this.trace.note(q.nowMs, -1, `fault: ${describeFault(fault)}`);
    switch (fault.kind) {
      case 'crash':
      case 'shutdown':
        q.schedule(at, 'fault-leave', fault.node, 0, () => {
          note();
          this.leftAt.set(fault.node, q.nowMs);
          this.pending.delete(fault.node);
          const host = this.hosts[fault.node]!;
          if (fault.kind === 'shutdown') host.shutdown(2000);
          else host.crash(fault.mode);
        });
        break;
      case 'stall':
        q.schedule(at, 'fault-stall', fault.node, 1, () => {
          note();
          this.network.setReading(fault.node, false);
        });
        q.schedule(fault.untilMs, 'fault-stall', fault.node, 0, () =>
          this.network.setReading(fault.node, true),
        );
        break;
      case 'corrupt':
        q.schedule(at, 'fault-corrupt', fault.node, 1, () => {
          note();
          this.corrupters.add(fault.node);
          this.hosts[fault.node]!.corrupting = true;
        });
        q.schedule(fault.untilMs, 'fault-corrupt', fault.node, 0, () => {
          this.hosts[fault.node]!.corrupting = false;
        });
        break;
      case 'partition': {
        const key = `${fault.a}:${fault.b}`;
        const links = (): Link[] =>
          this.network.links.filter((l) => joins(l, fault.a, fault.b) && l.state !== 'reset');
        q.schedule(at, 'fault-partition', fault.a, fault.b, () => {
          note();
          if (fault.mode === 'break') {
            this.brokenPairs.add(key);
            for (const link of links()) this.network.breakLink(link);
          } else {
            for (const link of links()) this.network.setPartitioned(link, true);
          }
        });
        q.schedule(fault.untilMs, 'fault-heal', fault.a, fault.b, () =>
          this.heal(key, fault.a, fault.b),
        );
        break;
      }
      case 'origin-errors':
        q.schedule(at, 'fault-origin', -1, 1, () => {
          note();
          if (this.origin === undefined) return;
          this.origin.faults.errorStartPpm = fault.errorStartPpm;
          this.origin.faults.resetPpm = fault.resetPpm;
        });
        q.schedule(fault.untilMs, 'fault-origin', -1, 0, () => {
          if (this.origin === undefined) return;
          this.origin.faults.errorStartPpm = 0;
          this.origin.faults.resetPpm = 0;
        });
        break;
      case 'origin-slow':
        q.schedule(at, 'fault-slow', fault.node, fault.factor, () => {
          note();
          this.origin?.faults.slowFactor.set(fault.node, fault.factor);
        });
        q.schedule(fault.untilMs, 'fault-slow', fault.node, 1, () =>
          this.origin?.faults.slowFactor.delete(fault.node),
        );
        break;
      case 'origin-change':
        q.schedule(at, 'fault-change', -1, 0, () => {
          note();
          this.changedAtMs = q.nowMs;
          if (this.origin !== undefined) this.origin.faults.changeAtMs = q.nowMs;
        });
        break;
      case 'loss':
        q.schedule(at, 'fault-loss', -1, fault.lossPpm, () => {
          note();
          this.currentLossPpm = fault.lossPpm;
          for (const link of this.network.links) link.lossPpm = fault.lossPpm;
        });
        q.schedule(fault.untilMs, 'fault-loss', -1, 0, () => {
          this.currentLossPpm = 0;
          for (const link of this.network.links) link.lossPpm = 0;
        });
        break;
      default: {
        const unreachable: never = fault;
        throw new Error(`unknown fault ${JSON.stringify(unreachable)}`);
      }
    }
  }

  private heal(key: string, a: number, b: number): void {
    this.brokenPairs.delete(key);
    for (const link of this.network.links) {
      if (joins(link, a, b)) this.network.setPartitioned(link, false);
    }
  }

  /** Everything stops going wrong: the start of the liveness phase. */
  private endFaults(): void {
    this.trace.note(this.queue.nowMs, -1, 'faults end');
    for (const key of [...this.brokenPairs]) {
      const [a, b] = key.split(':').map(Number) as [number, number];
      this.heal(key, a, b);
    }
    for (const link of this.network.links) {
      this.network.setPartitioned(link, false);
      link.lossPpm = 0;
    }
    this.currentLossPpm = 0;
    // Corruption ends with its own fault window (a scenario may keep a liar lying throughout).
    this.hosts.forEach((host, index) => {
      if (host.alive) this.network.setReading(index, true);
    });
    if (this.origin !== undefined) {
      this.origin.faults.errorStartPpm = 0;
      this.origin.faults.resetPpm = 0;
      this.origin.faults.slowFactor.clear();
    }
  }

  private report(violation: Violation | undefined, wallMs: number): RunResult {
    const c = this.config;
    const nodes: NodeReport[] = this.hosts.map((host, index) => {
      const checker = host.activeChecker;
      const completedAt = this.completedAt.get(index);
      return {
        node: index,
        role: c.nodes[index]!.role,
        alive: host.alive,
        completionMs: completedAt === undefined ? undefined : completedAt - c.downloadStartMs,
        failed: this.failures.get(index),
        outputSha256: checker?.outputSha256,
        maxDownloadMemoryBytes: host.maxDownloadMemoryBytes,
        uploadBytes: this.network.sentBytes(index, c.linkKind),
      };
    });
    return {
      name: c.name,
      seed: c.seed,
      ok: violation === undefined,
      violation:
        violation === undefined
          ? undefined
          : { invariant: violation.invariant, detail: violation.detail },
      trace: this.trace.lines(),
      traceHash: this.trace.hash,
      faults: c.faults.map(describeFault),
      simMs: this.queue.nowMs,
      wallMs,
      events: this.queue.processed,
      idealMs: this.idealMs(),
      contentBytes: c.contentBytes,
      contentSha256: toHex(this.digest.sha256),
      nodes,
      bans: this.bans,
      originServedBytes: this.origin?.servedBytes ?? 0,
    };
  }
}

/** True when `link` joins nodes `a` and `b` (whichever dialled). */
function joins(link: Link, a: number, b: number): boolean {
  return (link.a === a && link.b === b) || (link.a === b && link.b === a);
}
