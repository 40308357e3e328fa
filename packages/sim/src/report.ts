/**
 * Turning a `RunResult` into what a person reads: the headline figures of each scenario kind,
 * the simulator's own speed, and for a failure `SEED=`, the broken invariant, the faults, the
 * last trace lines and the command that replays it.
 */
import type { RunResult } from './simulator.js';

const MIB = 1024 * 1024;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The simulator's own speed. */
export function speedLine(result: RunResult): string {
  const eventsPerSecond = result.events / Math.max(1e-3, result.wallMs / 1000);
  const ratio = result.simMs / Math.max(1e-3, result.wallMs);
  return (
    `simulator: ${result.events} events in ${seconds(result.wallMs)} wall ` +
    `(${Math.round(eventsPerSecond).toLocaleString('en-US')} events/s), ` +
    `${seconds(result.simMs)} simulated (${ratio.toFixed(2)}x real time)`
  );
}

/** Per-scenario figures: completion / ideal ratios, digests, bans, seed upload. */
export interface Figures {
  readonly completionMs?: number;
  readonly idealMs: number;
  readonly ratio?: number;
  readonly maxRatio?: number;
  readonly outputSha256Match?: boolean;
  readonly seedUploadRatio?: number;
  readonly originServedRatio?: number;
  readonly maxDownloadMemoryBytes: number;
}

export function figures(result: RunResult): Figures {
  const requesters = result.nodes.filter((n) => n.role === 'requester' || n.role === 'peer');
  const done = requesters.filter((n) => n.completionMs !== undefined);
  const maxMemory = Math.max(0, ...result.nodes.map((n) => n.maxDownloadMemoryBytes));
  const base = { idealMs: result.idealMs, maxDownloadMemoryBytes: maxMemory };
  if (result.name.endsWith('pooled')) {
    const r = requesters[0];
    const completionMs = r?.completionMs;
    return {
      ...base,
      ...(completionMs === undefined
        ? {}
        : { completionMs, ratio: completionMs / Math.max(1e-9, result.idealMs) }),
      outputSha256Match: r?.outputSha256 === result.contentSha256,
      originServedRatio: result.originServedBytes / Math.max(1, result.contentBytes),
    };
  }
  if (result.name.endsWith('swarm')) {
    const seed = result.nodes.find((n) => n.role === 'seed');
    const ratios = done.map((n) => n.completionMs! / Math.max(1e-9, result.idealMs));
    return {
      ...base,
      ...(ratios.length === 0 ? {} : { maxRatio: Math.max(...ratios) }),
      outputSha256Match: done.every((n) => n.outputSha256 === result.contentSha256),
      seedUploadRatio: (seed?.uploadBytes ?? 0) / Math.max(1, result.contentBytes),
    };
  }
  return base;
}

/** The human report of one run. */
export function formatRun(result: RunResult, replay: string): string {
  const lines: string[] = [];
  lines.push(
    `${result.name} seed ${result.seed}: ${result.nodes.length} nodes, ` +
      `${(result.contentBytes / MIB).toFixed(1)} MiB content`,
  );
  for (const fault of result.faults) lines.push(`  fault ${fault}`);
  const f = figures(result);
  if (result.name.endsWith('pooled')) {
    lines.push(
      `  completion ${f.completionMs === undefined ? 'none' : seconds(f.completionMs)}, ideal ${seconds(f.idealMs)}` +
        (f.ratio === undefined ? '' : `, ratio ${f.ratio.toFixed(2)}`),
    );
    const r = result.nodes[0];
    lines.push(`  output sha256 ${r?.outputSha256 ?? '(none)'}`);
    lines.push(
      `  content sha256 ${result.contentSha256} ${f.outputSha256Match ? 'MATCH' : 'MISMATCH'}`,
    );
    lines.push(`  origin served ${(f.originServedRatio ?? 0).toFixed(3)} x content size`);
  }
  if (result.name.endsWith('swarm')) {
    const peers = result.nodes.filter((n) => n.role === 'peer');
    const cells = peers.map((n) =>
      n.completionMs === undefined
        ? `${n.node}:-`
        : `${n.node}:${(n.completionMs / result.idealMs).toFixed(2)}`,
    );
    lines.push(`  ideal ${seconds(f.idealMs)}; completion/ideal per peer: ${cells.join(' ')}`);
    lines.push(
      `  max ratio ${f.maxRatio?.toFixed(2) ?? '-'}, seed upload ${(f.seedUploadRatio ?? 0).toFixed(2)} x content size, ` +
        `all outputs match content sha256: ${f.outputSha256Match ? 'yes' : 'NO'}`,
    );
  }
  if (result.bans.length > 0) {
    lines.push(
      `  banned: ${result.bans.map((b) => `node ${b.node} by node ${b.by}${b.corrupter ? ' (corrupter)' : ' (HONEST: false ban)'}`).join(', ')}`,
    );
  } else if (result.name.endsWith('pooled') || result.name.endsWith('swarm')) {
    lines.push('  banned: none');
  }
  if (f.maxDownloadMemoryBytes > 0) {
    lines.push(`  max download memory ${(f.maxDownloadMemoryBytes / MIB).toFixed(1)} MiB`);
  }
  lines.push(`  ${speedLine(result)}`);
  lines.push(`  trace hash ${result.traceHash}`);
  if (result.violation !== undefined) lines.push(formatFailure(result, replay));
  else lines.push('  PASS');
  return lines.join('\n');
}

/** `SEED=`, the invariant, the faults and the trace tail. */
export function formatFailure(result: RunResult, replay: string): string {
  const v = result.violation;
  if (v === undefined) return '';
  return [
    `SEED=${result.seed}`,
    `FAIL ${result.name}: invariant ${v.invariant}: ${v.detail}`,
    ...result.faults.map((f) => `  fault ${f}`),
    `last ${result.trace.length} events:`,
    ...result.trace.map((line) => `  ${line}`),
    `replay: ${replay}`,
  ].join('\n');
}
