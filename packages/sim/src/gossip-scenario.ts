/**
 * The gossip scenario: N real gossip engines form an overlay from a few bootstrap nodes, then,
 * under message loss and churn, announcements of each kind are sent and their spread measured.
 *
 * Theory of operation (one seed decides everything; wall time is measured, never used)
 * 1. Bootstrap: `bootstrapNodes` broadcasting bootstrap nodes start at time 0 and get each
 *    other's records as a tracker would hand them (`addRecords(..., 'tracker')`).
 * 2. Joins: the other nodes join at uniformly drawn times in [0, joinWindowMs]; `silentFraction`
 *    of them do not broadcast. Each joining node gets the bootstrap nodes' current records
 *    (source 'tracker') and nothing else: from there the engines dial to fill their active
 *    views, and the overlay is whatever their `dial` and `close` outputs make of it.
 * 3. Settle for `settleMs`; the overlay's shape (links per node, connected components) is taken.
 * 4. Measurement, for `measureMs`: `churn` of the live nodes leave (crash: links drop, their
 *    neighbours get `linkDown`) at uniform times, and half as many new nodes join. Interleaved
 *    over the window, `originsPerKind` origins of each kind, each a live broadcasting node,
 *    speak: `announce` (PEER_ANNOUNCEMENT), `setSelf` with a new name (PEER_UPDATE),
 *    `announceContent` of a new content (CONTENT_AVAILABILITY).
 *    Origins and bootstrap nodes never leave. Each announcement is measured over its spread
 *    window against the nodes in the overlay when it went out (gossip-spread.ts); the run ends
 *    one spread window after the measurement.
 * 5. The IP-sharing invariant (gossip-ip-invariant.ts) is checked on every table event, record-
 *    carrying frame and dial as they happen, on a few random tables every simulated second, and
 *    on every live table at the end.
 */
import {
  Capability,
  Prng,
  type CryptoProvider,
  type GossipFrameMessage,
  type GossipSettings,
  type KeyPair,
} from '@peapod/core';
import { EventQueue } from './event-queue.js';
import {
  IpSharingInvariant,
  type IpInvariantChecks,
  type IpViolation,
} from './gossip-ip-invariant.js';
import {
  GossipNetwork,
  type GossipEngineFactory,
  type GossipNetworkCounters,
  type SimGossipNode,
} from './gossip-network.js';
import {
  ANNOUNCEMENT_KINDS,
  SpreadTracker,
  summarizeKind,
  type AnnouncementKind,
  type KindSummary,
  type SpreadResult,
  type TrackedAnnouncement,
} from './gossip-spread.js';
import { withVerifyMemo, type VerifyMemoStats } from './gossip-verify-memo.js';
import { createSeededCryptoProvider } from './seeded-crypto.js';

export interface GossipScenarioConfig {
  readonly seed: number;
  readonly nodes: number;
  readonly lossRate: number;
  /** Fraction of the live nodes that leave during the measurement. */
  readonly churn: number;
  /** Fraction of the non-bootstrap nodes that do not broadcast. */
  readonly silentFraction: number;
  readonly bootstrapNodes: number;
  readonly originsPerKind: number;
  readonly latencyMinMs: number;
  readonly latencyMaxMs: number;
  readonly joinWindowMs: number;
  readonly settleMs: number;
  readonly measureMs: number;
  /** How long after its first send an announcement is followed. */
  readonly spreadWindowMs: number;
  readonly settings: Partial<GossipSettings>;
  /** Verify every signature with OpenSSL (no memo; see gossip-verify-memo.ts). */
  readonly verifyEvery: boolean;
  /** Tests only: another engine. The CLI always runs the real `GossipEngine`. */
  readonly engineFactory?: GossipEngineFactory;
  /** Called every 5 simulated seconds (a long run's progress); schedules nothing when absent. */
  readonly onProgress?: (progress: GossipProgress) => void;
}

export interface GossipProgress {
  readonly simMs: number;
  readonly endMs: number;
  readonly liveNodes: number;
}

export function gossipScenarioDefaults(
  nodes: number,
  overrides: Partial<GossipScenarioConfig> = {},
): GossipScenarioConfig {
  return {
    seed: 1,
    nodes,
    lossRate: 0.01,
    churn: 0.1,
    silentFraction: 0.2,
    bootstrapNodes: 4,
    originsPerKind: 5,
    latencyMinMs: 20,
    latencyMaxMs: 80,
    // About 5,000 joins per simulated second at most, as a busy tracker would see.
    joinWindowMs: Math.max(5_000, Math.ceil(nodes / 5)),
    settleMs: 30_000,
    measureMs: 30_000,
    spreadWindowMs: 10_000,
    settings: {},
    verifyEvery: false,
    ...overrides,
  };
}

export interface OverlayShape {
  readonly atMs: number;
  readonly liveNodes: number;
  readonly linksMin: number;
  readonly linksMean: number;
  readonly linksMax: number;
  readonly isolated: number;
  readonly components: number;
}

export interface GossipRunResult {
  readonly config: Omit<GossipScenarioConfig, 'engineFactory'>;
  readonly ok: boolean;
  readonly kinds: readonly KindSummary[];
  readonly spreads: readonly SpreadResult[];
  readonly overlayBefore: OverlayShape;
  readonly overlayAfter: OverlayShape;
  readonly nodesEver: number;
  readonly silentNodes: number;
  readonly left: number;
  readonly joinedDuringMeasurement: number;
  readonly network: GossipNetworkCounters;
  /** Gossip frames sent per type code (hex), the whole run. */
  readonly sendsByCode: Readonly<Record<string, number>>;
  readonly invariant: {
    readonly ok: boolean;
    readonly checks: IpInvariantChecks;
    readonly violationCount: number;
    readonly violations: readonly IpViolation[];
  };
  readonly verify: VerifyMemoStats;
  readonly simMs: number;
  readonly events: number;
}

const WALL_CLOCK_EPOCH_MS = 1_800_000_000_000;
const SPOT_SWEEP_INTERVAL_MS = 1_000;
const SPOT_SWEEP_TABLES = 8;
const PROGRESS_INTERVAL_MS = 5_000;
/** Bootstrap records handed to joiners are re-signed this often, as a tracker keeps them fresh. */
const BOOTSTRAP_REFRESH_MS = 60_000;

export class GossipScenario {
  private readonly queue = new EventQueue();
  private readonly prng: Prng;
  private readonly crypto: CryptoProvider;
  private readonly network: GossipNetwork;
  private readonly invariant: IpSharingInvariant;
  private readonly spread = new SpreadTracker();
  private readonly verify: VerifyMemoStats = { verified: 0, remembered: 0 };
  private readonly sendsByCode = new Map<number, number>();
  /** Nodes that must not leave (bootstrap nodes, origins). */
  private readonly keep = new Set<number>();
  private bootstrapRecords: Uint8Array[] = [];
  private bootstrapRecordsAtMs = Number.NEGATIVE_INFINITY;
  /** Per announcement: the nodes with a link up when it was first sent. */
  private readonly linkedAtSend = new Map<TrackedAnnouncement, ReadonlySet<number>>();
  private left = 0;
  private joinedDuringMeasurement = 0;

  constructor(private readonly config: GossipScenarioConfig) {
    validate(config);
    this.prng = new Prng(config.seed);
    const seeded = createSeededCryptoProvider(this.prng.nextU32());
    this.crypto = config.verifyEvery ? seeded : withVerifyMemo(seeded, this.verify);
    this.invariant = new IpSharingInvariant(seeded);
    this.network = new GossipNetwork({
      queue: this.queue,
      prng: this.prng.fork(),
      crypto: this.crypto,
      lossRate: config.lossRate,
      latencyMinMs: config.latencyMinMs,
      latencyMaxMs: config.latencyMaxMs,
      wallClockEpochMs: WALL_CLOCK_EPOCH_MS,
      settings: config.settings,
      ...(config.engineFactory === undefined ? {} : { engineFactory: config.engineFactory }),
      observer: {
        onSend: (node, _linkId, frame) => this.onSend(node, frame),
        onEvent: (node, event) => {
          this.invariant.onEvent(node, event, this.queue.nowMs);
          this.spread.onEvent(node, event);
        },
        onDial: (node, address) => this.invariant.onDial(node, address, this.queue.nowMs),
      },
    });
  }

  run(): GossipRunResult {
    const { config } = this;
    const plan = this.prng.fork();
    this.startBootstrap();
    const joiners = config.nodes - this.network.nodes.length;
    const silentSet = new Set(plan.sample(joiners, Math.round(config.silentFraction * joiners)));
    const joinTimes = Array.from({ length: joiners }, () => plan.nextInt(config.joinWindowMs + 1));
    joinTimes.sort((a, b) => a - b);
    joinTimes.forEach((atMs, i) => {
      this.queue.schedule(atMs, 'gossip-join', -1, i, () => this.join(!silentSet.has(i)));
    });
    const measureStartMs = config.joinWindowMs + config.settleMs;
    const measureEndMs = measureStartMs + config.measureMs;
    const endMs = measureEndMs + config.spreadWindowMs;
    this.scheduleSpotSweeps(plan.fork(), endMs);
    this.scheduleProgress(endMs);
    this.runUntil(measureStartMs);
    const overlayBefore = this.overlayShape();
    this.planMeasurement(plan.fork(), measureStartMs);
    this.runUntil(endMs);
    const overlayAfter = this.overlayShape();
    for (const node of this.network.nodes) {
      if (node.engine !== undefined) {
        this.invariant.sweep(node.index, node.engine.snapshot(), this.queue.nowMs);
      }
    }
    const spreads = this.spread.tracked.map((t) =>
      this.spread.measure(
        t,
        this.population(t, t.firstSentMs + config.spreadWindowMs),
        this.population(t, t.firstSentMs + config.spreadWindowMs, false).length,
      ),
    );
    const unmet = this.spread.unmet;
    const kinds = ANNOUNCEMENT_KINDS.map((kind) =>
      summarizeKind(kind, spreads, unmet.filter((u) => u.kind === kind).length),
    );
    const { engineFactory, onProgress, ...shown } = config;
    void engineFactory;
    void onProgress;
    return {
      config: shown,
      ok: this.invariant.ok,
      kinds,
      spreads,
      overlayBefore,
      overlayAfter,
      nodesEver: this.network.nodes.length,
      silentNodes: this.invariant.silentCount,
      left: this.left,
      joinedDuringMeasurement: this.joinedDuringMeasurement,
      network: { ...this.network.counters },
      sendsByCode: Object.fromEntries(
        [...this.sendsByCode]
          .sort((a, b) => a[0] - b[0])
          .map(([c, n]) => [`0x${c.toString(16)}`, n]),
      ),
      invariant: {
        ok: this.invariant.ok,
        checks: { ...this.invariant.checks },
        violationCount: this.invariant.violationCount,
        violations: [...this.invariant.violations],
      },
      verify: { ...this.verify },
      simMs: this.queue.nowMs,
      events: this.queue.processed,
    };
  }

  private onSend(node: number, frame: GossipFrameMessage): void {
    this.sendsByCode.set(frame.code, (this.sendsByCode.get(frame.code) ?? 0) + 1);
    this.invariant.onSend(node, frame, this.queue.nowMs);
    const tracked = this.spread.tracked.length;
    this.spread.onSend(node, frame, this.queue.nowMs);
    if (this.spread.tracked.length > tracked) {
      // A new announcement: which nodes were in the overlay when it went out.
      const linked = new Set<number>();
      for (const n of this.network.nodes)
        if (n.engine !== undefined && n.links.size > 0) linked.add(n.index);
      this.linkedAtSend.set(this.spread.tracked[tracked]!, linked);
    }
  }

  private runUntil(atMs: number): void {
    for (;;) {
      const next = this.queue.peekMs();
      if (next === undefined || next > atMs) break;
      this.queue.step();
    }
  }

  private newNode(broadcast: boolean, bootstrap: boolean): SimGossipNode {
    const identity: KeyPair = this.crypto.ed25519GenerateKeyPair();
    const index = this.network.nodes.length;
    const node = this.network.addNode(
      {
        broadcast,
        bootstrap,
        deviceName: `sim-${index}`,
        capabilities: Capability.gossip | Capability.serveChunks,
      },
      identity,
    );
    if (!broadcast) this.invariant.addSilent(node.address, identity.publicKey, node.deviceId);
    return node;
  }

  private startBootstrap(): void {
    const count = Math.min(this.config.bootstrapNodes, this.config.nodes);
    for (let i = 0; i < count; i++) this.keep.add(this.newNode(true, true).index);
    const records = this.currentBootstrapRecords();
    for (const index of this.keep) {
      const others = records.filter((_, i) => i !== index);
      this.network.drive(index, (e, now, wall) => e.addRecords(others, 'tracker', now, wall));
    }
  }

  /** The bootstrap nodes' own records, as the tracker holds them (re-signed now and then). */
  private currentBootstrapRecords(): Uint8Array[] {
    if (this.queue.nowMs - this.bootstrapRecordsAtMs >= BOOTSTRAP_REFRESH_MS) {
      const count = Math.min(this.config.bootstrapNodes, this.config.nodes);
      this.bootstrapRecords = [];
      for (let i = 0; i < count; i++) {
        const node = this.network.nodes[i]!;
        if (node.engine !== undefined) {
          this.bootstrapRecords.push(node.engine.ownRecord(this.network.wallClockMs(node)));
        }
      }
      this.bootstrapRecordsAtMs = this.queue.nowMs;
    }
    return this.bootstrapRecords;
  }

  private join(broadcast: boolean): SimGossipNode {
    const node = this.newNode(broadcast, false);
    const records = this.currentBootstrapRecords();
    this.network.drive(node.index, (e, now, wall) => e.addRecords(records, 'tracker', now, wall));
    return node;
  }

  private planMeasurement(plan: Prng, startMs: number): void {
    const { config } = this;
    const live = this.network.nodes.filter(
      (n) => n.engine !== undefined && !this.keep.has(n.index),
    );
    const leaving = plan
      .sample(live.length, Math.round(config.churn * (live.length + this.keep.size)))
      .map((i) => live[i]!.index);
    const leavingSet = new Set(leaving);
    for (const index of leaving) {
      this.queue.schedule(
        startMs + plan.nextInt(config.measureMs),
        'gossip-leave',
        index,
        0,
        () => {
          if (this.network.isLive(index)) {
            this.network.leave(index);
            this.left++;
          }
        },
      );
    }
    const joins = Math.round(leaving.length / 2);
    for (let i = 0; i < joins; i++) {
      const broadcast = plan.nextU32() >= config.silentFraction * 0x1_0000_0000;
      this.queue.schedule(startMs + plan.nextInt(config.measureMs), 'gossip-join', -1, i, () => {
        this.join(broadcast);
        this.joinedDuringMeasurement++;
      });
    }
    // Candidates for update and content origins: live broadcasting nodes that stay.
    const speakers = live.filter((n) => n.broadcast && !leavingSet.has(n.index));
    const slots = ANNOUNCEMENT_KINDS.length * config.originsPerKind;
    for (let slot = 0; slot < slots; slot++) {
      const kind = ANNOUNCEMENT_KINDS[slot % ANNOUNCEMENT_KINDS.length]!;
      const atMs = startMs + Math.floor(((slot + 0.5) * config.measureMs) / slots);
      const speaker = speakers.length === 0 ? undefined : speakers[plan.nextInt(speakers.length)];
      const contentId = Uint8Array.from({ length: 32 }, () => plan.nextInt(256));
      this.queue.schedule(atMs, 'gossip-origin', speaker?.index ?? -1, slot, () =>
        this.speak(kind, speaker, contentId),
      );
    }
  }

  private speak(
    kind: AnnouncementKind,
    speaker: SimGossipNode | undefined,
    contentId: Uint8Array,
  ): void {
    if (speaker === undefined || !this.network.isLive(speaker.index)) return;
    this.keep.add(speaker.index);
    this.spread.expect(kind, speaker.index, speaker.identity.publicKey);
    if (kind === 'peer-announcement') {
      this.network.drive(speaker.index, (e, now, wall) => e.announce(now, wall));
    } else if (kind === 'peer-update') {
      speaker.self = { ...speaker.self, deviceName: `${speaker.self.deviceName}+` };
      const self = speaker.self;
      this.network.drive(speaker.index, (e, now, wall) => e.setSelf(self, now, wall));
    } else {
      this.network.drive(speaker.index, (e, now, wall) =>
        e.announceContent([{ contentId, held: true }], now, wall),
      );
    }
  }

  /**
   * An announcement's population: the nodes in the overlay (a gossip link up) when it was first
   * sent and still live at `untilMs`; with `linked` false, those that had joined by then but had
   * no link up yet (reported beside it, not measured).
   */
  private population(tracked: TrackedAnnouncement, untilMs: number, linked = true): number[] {
    const linkedAtSend = this.linkedAtSend.get(tracked);
    const out: number[] = [];
    for (const node of this.network.nodes) {
      if (node.joinedAtMs > tracked.firstSentMs) continue;
      if ((linkedAtSend?.has(node.index) ?? false) !== linked) continue;
      if (node.leftAtMs !== undefined && node.leftAtMs <= untilMs) continue;
      out.push(node.index);
    }
    return out;
  }

  private scheduleSpotSweeps(plan: Prng, endMs: number): void {
    const sweep = (): void => {
      const nodes = this.network.nodes;
      for (let i = 0; i < SPOT_SWEEP_TABLES && nodes.length > 0; i++) {
        const node = nodes[plan.nextInt(nodes.length)]!;
        if (node.engine !== undefined) {
          this.invariant.sweep(node.index, node.engine.snapshot(), this.queue.nowMs);
        }
      }
      const next = this.queue.nowMs + SPOT_SWEEP_INTERVAL_MS;
      if (next <= endMs) this.queue.schedule(next, 'gossip-sweep', -1, 0, sweep);
    };
    this.queue.schedule(SPOT_SWEEP_INTERVAL_MS, 'gossip-sweep', -1, 0, sweep);
  }

  private scheduleProgress(endMs: number): void {
    const report = this.config.onProgress;
    if (report === undefined) return;
    const tick = (): void => {
      let liveNodes = 0;
      for (const node of this.network.nodes) if (node.engine !== undefined) liveNodes++;
      report({ simMs: this.queue.nowMs, endMs, liveNodes });
      const next = this.queue.nowMs + PROGRESS_INTERVAL_MS;
      if (next <= endMs) this.queue.schedule(next, 'gossip-progress', -1, 0, tick);
    };
    this.queue.schedule(PROGRESS_INTERVAL_MS, 'gossip-progress', -1, 0, tick);
  }

  private overlayShape(): OverlayShape {
    const counts = this.network.linkCounts();
    let sum = 0;
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    let isolated = 0;
    for (const c of counts) {
      sum += c;
      if (c < min) min = c;
      if (c > max) max = c;
      if (c === 0) isolated++;
    }
    return {
      atMs: this.queue.nowMs,
      liveNodes: counts.length,
      linksMin: counts.length === 0 ? 0 : min,
      linksMean: counts.length === 0 ? 0 : sum / counts.length,
      linksMax: max,
      isolated,
      components: this.network.components(),
    };
  }
}

/** @throws RangeError naming the first setting out of range. */
function validate(config: GossipScenarioConfig): void {
  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new RangeError(`gossip scenario: ${what}`);
  };
  check(Number.isSafeInteger(config.seed), 'seed must be an integer');
  check(
    Number.isInteger(config.nodes) && config.nodes >= 2 && config.nodes <= 1 << 24,
    'nodes must be 2..16777216',
  );
  check(config.lossRate >= 0 && config.lossRate < 1, 'loss must be in [0, 1)');
  check(config.churn >= 0 && config.churn <= 0.5, 'churn must be in [0, 0.5]');
  check(config.silentFraction >= 0 && config.silentFraction <= 0.9, 'silent must be in [0, 0.9]');
  check(
    Number.isInteger(config.bootstrapNodes) && config.bootstrapNodes >= 1,
    'bootstrap nodes >= 1',
  );
  check(Number.isInteger(config.originsPerKind) && config.originsPerKind >= 1, 'origins >= 1');
  check(
    config.latencyMinMs >= 1 && config.latencyMaxMs >= config.latencyMinMs,
    'latency must be 1 <= min <= max',
  );
  for (const [name, value] of [
    ['joinWindowMs', config.joinWindowMs],
    ['settleMs', config.settleMs],
    ['measureMs', config.measureMs],
    ['spreadWindowMs', config.spreadWindowMs],
  ] as const) {
    check(Number.isInteger(value) && value >= 1, `${name} must be a positive integer`);
  }
}
