/**
 * Scenarios: functions from a seed (and a few overrides) to a `ScenarioConfig`.
 *
 * - `pooledScenario`: the household case. A requester and 7 pod peers, each with a 50 Mbit/s WAN
 *   downlink and a 1 Gbit/s LAN; one URL object (1 GiB by default); two peers leave halfway
 *   through the ideal time (one crashes, one shuts down with GOODBYE); one peer corrupts every
 *   byte it serves for the whole run.
 * - `swarmScenario`: content by ID. One seed and 31 peers on the internet, 100 Mbit/s up and
 *   1 Gbit/s down each, latencies drawn from the seed; no faults, to measure efficiency.
 * - `randomScenario`: VOPR style. The seed draws everything: kind (pooled or swarm; link-only
 *   churn while the Core has no transfers), node count, rates, latency spread, jitter, content
 *   size (4-64 MiB by default, not chunk-aligned) and chunk size, origin TTFB and capacity, disk
 *   rate, and the faults (faults.ts).
 */
import { Prng } from '@peapod/core';
import { planFaults, type FaultAction } from './faults.js';
import type { InterfaceSpec } from './network.js';
import type { NodeSpec, ScenarioConfig } from './simulator.js';

const MBIT = 1_000_000;
const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/** Bound on a download's memory: independent of the content size (window + pipeline). */
export const DEFAULT_MEMORY_BOUND_BYTES = 96 * MIB;

function spec(upBps: number, downBps: number, latencyMs: number): InterfaceSpec {
  return { upBps, downBps, latencyMs };
}

export interface ScenarioOverrides {
  readonly sizeBytes?: number;
  /** Random scenarios: draw the size from [4 MiB, this) instead of [4 MiB, 64 MiB). */
  readonly maxSizeBytes?: number;
  readonly chunkSizeBytes?: number;
}

/** The pooled URL download (see the module header). */
export function pooledScenario(seed: number, overrides: ScenarioOverrides = {}): ScenarioConfig {
  const size = overrides.sizeBytes ?? GIB;
  const nodes: NodeSpec[] = Array.from({ length: 8 }, (_, i) => ({
    role: i === 0 ? 'requester' : 'helper',
    lan: spec(1000 * MBIT, 1000 * MBIT, 0.25),
    wan: spec(10 * MBIT, 50 * MBIT, 15),
  }));
  const downloadStartMs = 1000;
  const idealAllMs = ((size * 8) / (8 * 50 * MBIT)) * 1000;
  const halfway = downloadStartMs + Math.round(idealAllMs / 2);
  const faults: FaultAction[] = [
    { kind: 'corrupt', atMs: 0, untilMs: Number.MAX_SAFE_INTEGER, node: 5 },
    { kind: 'crash', atMs: halfway, node: 6, mode: 'reset' },
    { kind: 'shutdown', atMs: halfway, node: 7 },
  ];
  return {
    name: 'pooled',
    seed,
    kind: 'pooled',
    contentBytes: size,
    chunkSizeBytes: overrides.chunkSizeBytes ?? 4 * MIB,
    nodes,
    linkKind: 'lan',
    origin: { ttfbMs: 50 },
    downloadStartMs,
    faults,
    faultEndMs: halfway + 1,
    settleMs: 0,
    memoryBoundBytes: DEFAULT_MEMORY_BOUND_BYTES,
    jitterMs: 0,
  };
}

/** The swarm (see the module header). */
export function swarmScenario(
  seed: number,
  overrides: ScenarioOverrides & { readonly peers?: number } = {},
): ScenarioConfig {
  const prng = new Prng(seed);
  const size = overrides.sizeBytes ?? GIB;
  const count = 1 + (overrides.peers ?? 31);
  const nodes: NodeSpec[] = Array.from({ length: count }, (_, i) => ({
    role: i === 0 ? 'seed' : 'peer',
    lan: spec(1000 * MBIT, 1000 * MBIT, 0.25),
    wan: spec(100 * MBIT, 1000 * MBIT, 5 + prng.nextInt(30)),
  }));
  return {
    name: 'swarm',
    seed,
    kind: 'swarm',
    contentBytes: size,
    chunkSizeBytes: overrides.chunkSizeBytes ?? (size >= 256 * MIB ? 4 * MIB : 256 * 1024),
    nodes,
    linkKind: 'wan',
    downloadStartMs: 1000,
    faults: [],
    faultEndMs: 0,
    settleMs: 0,
    memoryBoundBytes: DEFAULT_MEMORY_BOUND_BYTES,
    jitterMs: 0,
  };
}

/**
 * A scenario drawn entirely from `seed`. `transfers` false gives link-only churn (the Core
 * before transfers).
 */
export function randomScenario(
  seed: number,
  overrides: ScenarioOverrides & { readonly transfers?: boolean } = {},
): ScenarioConfig {
  const prng = new Prng(seed);
  const transfers = overrides.transfers ?? true;
  const kind = !transfers ? 'links' : prng.nextInt(2) === 0 ? 'pooled' : 'swarm';
  const nodeCount =
    kind === 'links' ? 2 + prng.nextInt(11) : 2 + prng.nextInt(kind === 'swarm' ? 9 : 8);
  const wideLatency = prng.nextInt(3) === 0;
  const latency = (base: number): number =>
    wideLatency ? 0.1 + prng.nextInt(150_000) / 1000 : base * (0.5 + prng.nextInt(1000) / 1000);
  const nodes: NodeSpec[] = Array.from({ length: nodeCount }, (_, i) => ({
    role:
      kind === 'pooled'
        ? i === 0
          ? 'requester'
          : 'helper'
        : kind === 'swarm'
          ? i === 0
            ? 'seed'
            : 'peer'
          : 'peer',
    lan: spec((100 + prng.nextInt(901)) * MBIT, (100 + prng.nextInt(901)) * MBIT, latency(0.3)),
    wan: spec((5 + prng.nextInt(96)) * MBIT, (10 + prng.nextInt(191)) * MBIT, latency(15)),
  }));
  const minSize = Math.min(4 * MIB, (overrides.maxSizeBytes ?? 64 * MIB) / 2);
  const sizeBytes =
    overrides.sizeBytes ?? minSize + prng.nextInt((overrides.maxSizeBytes ?? 64 * MIB) - minSize);
  const chunkSizes = [64 * 1024, 256 * 1024, 1 * MIB, 4 * MIB];
  const chunkSizeBytes = overrides.chunkSizeBytes ?? chunkSizes[prng.nextInt(chunkSizes.length)]!;
  const faultEndMs = 5_000 + prng.nextInt(kind === 'links' ? 55_000 : 25_000);
  const requesters = nodes.flatMap((n, i) =>
    n.role === 'requester' || n.role === 'peer' ? [i] : [],
  );
  const faults = planFaults(prng, {
    nodeCount,
    // Link-only runs have no downloads: every node may be hit.
    requesters: kind === 'links' ? [] : requesters,
    keep: kind === 'swarm' ? [0] : [],
    faultEndMs,
    hasOrigin: kind === 'pooled',
  });
  // In a swarm every peer downloads; let one in three peers (never all) be a victim instead.
  const swarmVictims = kind === 'swarm' ? planSwarmVictims(prng, nodeCount, faultEndMs) : [];
  return {
    name: `random-${kind}`,
    seed,
    kind,
    contentBytes: sizeBytes,
    chunkSizeBytes,
    nodes,
    linkKind: kind === 'swarm' ? 'wan' : 'lan',
    ...(kind === 'swarm' && prng.nextInt(2) === 0 && nodeCount > 4
      ? { meshDegree: 3 + prng.nextInt(nodeCount - 3) }
      : {}),
    origin: {
      ttfbMs: 5 + prng.nextInt(300),
      ...(prng.nextInt(3) === 0 ? { capacityBps: (20 + prng.nextInt(500)) * MBIT } : {}),
    },
    downloadStartMs: 500 + prng.nextInt(2000),
    faults: [...faults, ...swarmVictims].sort((x, y) => x.atMs - y.atMs),
    faultEndMs,
    settleMs: 150_000,
    memoryBoundBytes: DEFAULT_MEMORY_BOUND_BYTES,
    ...(prng.nextInt(3) === 0 ? { diskBps: (500 + prng.nextInt(4000)) * MBIT } : {}),
    jitterMs: prng.nextInt(4) === 0 ? prng.nextInt(5) : 0,
  };
}

/** Swarm peers that leave or lie (a leaving peer no longer needs to finish). */
function planSwarmVictims(prng: Prng, nodeCount: number, faultEndMs: number): FaultAction[] {
  const out: FaultAction[] = [];
  if (nodeCount < 4 || prng.nextInt(2) !== 0) return out;
  const node = 1 + prng.nextInt(nodeCount - 1);
  const atMs = prng.nextInt(faultEndMs);
  switch (prng.nextInt(4)) {
    case 3:
      // A peer that lies about what it serves (chunk-read bytes flipped); its own download is
      // judged like any other, since its Core verifies what it receives.
      out.push({ kind: 'corrupt', atMs, untilMs: faultEndMs - 1, node });
      break;
    case 0:
      out.push({ kind: 'crash', atMs, node, mode: prng.nextInt(2) === 0 ? 'reset' : 'vanish' });
      break;
    case 1:
      out.push({ kind: 'shutdown', atMs, node });
      break;
    default:
      out.push({
        kind: 'stall',
        atMs,
        untilMs: atMs + 1 + prng.nextInt(Math.max(1, faultEndMs - atMs - 1)),
        node,
      });
  }
  return out;
}
