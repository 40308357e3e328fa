/**
 * Faults, BUGGIFY style (FoundationDB): every fault site is switched on or off once per run by
 * the seed, and an enabled site draws its victims, times and strengths from the seed too. All
 * faults start and end inside `[0, faultEndMs)`; after that the world is healthy (partitions
 * healed, stalls over, no corruption, no origin errors, no loss), which is when liveness is
 * judged.
 *
 * Sites: leave (crash with reset, vanish, or shutdown with GOODBYE), stall (a node stops reading
 * its sockets), corrupt (a node's host feeds its Core flipped origin/chunk bytes: a lying
 * peer), partition (a pair of nodes; stall or break), origin errors (5xx, mid-body resets), origin
 * slow (one client), origin change (the object gets a new version: a download of it must not
 * finish with mixed bytes; it fails cleanly or, by the core's fallback, starts again pinned to
 * the new version), loss.
 */
import type { Prng } from '@peapod/core';

export type FaultAction =
  | {
      readonly kind: 'crash';
      readonly atMs: number;
      readonly node: number;
      readonly mode: 'reset' | 'vanish';
    }
  | { readonly kind: 'shutdown'; readonly atMs: number; readonly node: number }
  | {
      readonly kind: 'stall';
      readonly atMs: number;
      readonly untilMs: number;
      readonly node: number;
    }
  | {
      readonly kind: 'corrupt';
      readonly atMs: number;
      readonly untilMs: number;
      readonly node: number;
    }
  | {
      readonly kind: 'partition';
      readonly atMs: number;
      readonly untilMs: number;
      readonly a: number;
      readonly b: number;
      readonly mode: 'stall' | 'break';
    }
  | {
      readonly kind: 'origin-errors';
      readonly atMs: number;
      readonly untilMs: number;
      readonly errorStartPpm: number;
      readonly resetPpm: number;
    }
  | {
      readonly kind: 'origin-slow';
      readonly atMs: number;
      readonly untilMs: number;
      readonly node: number;
      readonly factor: number;
    }
  | { readonly kind: 'origin-change'; readonly atMs: number }
  | {
      readonly kind: 'loss';
      readonly atMs: number;
      readonly untilMs: number;
      readonly lossPpm: number;
    };

/** What the planner needs to know about the scenario. */
export interface FaultShape {
  readonly nodeCount: number;
  /** Nodes that download: never corrupt, never leave (their completion is what is judged). */
  readonly requesters: readonly number[];
  /** Nodes that must stay (e.g. a swarm's only seed). */
  readonly keep: readonly number[];
  readonly faultEndMs: number;
  readonly hasOrigin: boolean;
}

/** A fault site is enabled with probability 1/`oneIn`. */
function buggify(prng: Prng, oneIn: number): boolean {
  return prng.nextInt(oneIn) === 0;
}

function window(prng: Prng, endMs: number): { atMs: number; untilMs: number } {
  const atMs = prng.nextInt(Math.max(1, Math.floor(endMs * 0.8)));
  const untilMs = atMs + 1 + prng.nextInt(Math.max(1, endMs - atMs - 1));
  return { atMs, untilMs };
}

/** Draws the run's faults from `prng`. */
export function planFaults(prng: Prng, shape: FaultShape): FaultAction[] {
  const faults: FaultAction[] = [];
  const end = shape.faultEndMs;
  const others: number[] = [];
  for (let n = 0; n < shape.nodeCount; n++) {
    if (!shape.requesters.includes(n) && !shape.keep.includes(n)) others.push(n);
  }
  const pick = (): number | undefined =>
    others.length === 0 ? undefined : others.splice(prng.nextInt(others.length), 1)[0];

  if (buggify(prng, 3)) {
    const leaves = 1 + prng.nextInt(Math.max(1, Math.min(2, Math.floor(others.length / 2))));
    for (let i = 0; i < leaves; i++) {
      const node = pick();
      if (node === undefined) break;
      const atMs = prng.nextInt(end);
      const how = prng.nextInt(3);
      faults.push(
        how === 0
          ? { kind: 'shutdown', atMs, node }
          : { kind: 'crash', atMs, node, mode: how === 1 ? 'reset' : 'vanish' },
      );
    }
  }
  if (buggify(prng, 4)) {
    const node = pick();
    if (node !== undefined) faults.push({ kind: 'stall', node, ...window(prng, end) });
  }
  if (buggify(prng, 3)) {
    const node = pick();
    if (node !== undefined) faults.push({ kind: 'corrupt', node, ...window(prng, end) });
  }
  if (buggify(prng, 3) && shape.nodeCount >= 2) {
    const pairs = 1 + prng.nextInt(2);
    for (let i = 0; i < pairs; i++) {
      const [a, b] = prng.sample(shape.nodeCount, 2) as [number, number];
      faults.push({
        kind: 'partition',
        a: Math.min(a, b),
        b: Math.max(a, b),
        mode: prng.nextInt(2) === 0 ? 'stall' : 'break',
        ...window(prng, end),
      });
    }
  }
  if (shape.hasOrigin && buggify(prng, 3)) {
    faults.push({
      kind: 'origin-errors',
      errorStartPpm: prng.nextInt(200_000),
      resetPpm: prng.nextInt(200_000),
      ...window(prng, end),
    });
  }
  if (shape.hasOrigin && buggify(prng, 4)) {
    const node = prng.nextInt(shape.nodeCount);
    faults.push({ kind: 'origin-slow', node, factor: 2 + prng.nextInt(9), ...window(prng, end) });
  }
  if (shape.hasOrigin && buggify(prng, 20)) {
    faults.push({ kind: 'origin-change', atMs: prng.nextInt(end) });
  }
  if (buggify(prng, 3)) {
    faults.push({ kind: 'loss', lossPpm: 1_000 + prng.nextInt(20_000), ...window(prng, end) });
  }
  return faults.sort((x, y) => x.atMs - y.atMs);
}

/** One line per fault, for reports. */
export function describeFault(fault: FaultAction): string {
  const at = `${(fault.atMs / 1000).toFixed(1)}s`;
  switch (fault.kind) {
    case 'crash':
      return `${at} node ${fault.node} crashes (${fault.mode})`;
    case 'shutdown':
      return `${at} node ${fault.node} shuts down (GOODBYE)`;
    case 'stall':
      return `${at}-${(fault.untilMs / 1000).toFixed(1)}s node ${fault.node} stops reading`;
    case 'corrupt':
      return `${at}-${(fault.untilMs / 1000).toFixed(1)}s node ${fault.node} corrupts what it serves`;
    case 'partition':
      return `${at}-${(fault.untilMs / 1000).toFixed(1)}s partition ${fault.a}<->${fault.b} (${fault.mode})`;
    case 'origin-errors':
      return `${at}-${(fault.untilMs / 1000).toFixed(1)}s origin 5xx ${fault.errorStartPpm / 1e4}% resets ${fault.resetPpm / 1e4}%`;
    case 'origin-slow':
      return `${at}-${(fault.untilMs / 1000).toFixed(1)}s origin serves node ${fault.node} ${fault.factor}x slower`;
    case 'origin-change':
      return `${at} the origin object changes version`;
    case 'loss':
      return `${at}-${(fault.untilMs / 1000).toFixed(1)}s loss ${fault.lossPpm / 1e4}% per segment`;
    default: {
      const unreachable: never = fault;
      return String(unreachable);
    }
  }
}
