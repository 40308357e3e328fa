/**
 * The figures of bench/swarm.ts and how they print: each peer's completion time against the
 * ideal, and what the seed's link carried against the content size, per system.
 *
 * - Ideal (the swarm's lower bound): max(F / u_seed, F / d_min, N x F / sum of all uplinks),
 *   with F the content size, N the peers, and the sum over the seed and the peers. The seed
 *   must send every byte once, every peer must receive F, and the N x F bytes received must be
 *   sent by someone. Rates are tbf's, which count whole frames, so TCP payload is at most
 *   1448/1514 of them: 1.046x the ideal is the floor of any TCP swarm here.
 * - Seed sent: the seed's `eth0` transmit bytes (frames: Ethernet, IP and TCP headers
 *   included) from just before the peers start until the last one finished, and the TCP
 *   payload in them (bytes minus 66 per packet, netns-lab.ts), against F. The goal is on the
 *   payload (what the protocol sent: content, framing, control messages and any repeats);
 *   the frames' headers add 66/1448 = 4.6% to any TCP protocol.
 */
import type { LinkSummary } from './link-timeline.js';
import { counterDelta, FRAME_EFFICIENCY, payloadBytes, type LinkCounters } from './netns-lab.js';

export const GOAL_WORST_VS_IDEAL = 1.15;
export const GOAL_SEED_VS_CONTENT = 1.05;

/** One peer's download in one system. */
export interface PeerResult {
  readonly name: string;
  /** From the common start to its client's exit. */
  readonly seconds: number;
  /** Exit 0 and the SHA-256 of its file matches the content's. */
  readonly ok: boolean;
  readonly sha256?: string;
  readonly error?: string;
  /** The job's own time, where the client reports it (`peapod fetch --json`: the daemon's). */
  readonly jobSeconds?: number;
  /** Bytes by source, where the client reports them (`peapod fetch --json`). */
  readonly bySource?: Readonly<Record<string, number>>;
}

/** One system's run over the lab. */
export interface SystemRun {
  readonly system: 'peapod' | 'bittorrent';
  /** 1 to `--repeat`. */
  readonly attempt: number;
  readonly peers: readonly PeerResult[];
  readonly seedSent: LinkCounters;
  /** Each peer's uplink over the same span, in the order of `peers`. */
  readonly peersSent: readonly LinkCounters[];
  /** Packets the uplink tbfs dropped, seed first. */
  readonly uplinkDrops: readonly number[];
  /** The seed's uplink while the peers ran (bench/link-timeline.ts). */
  readonly seedUplink: LinkSummary;
  /** Each peer's downlink, in the order of `peers`. */
  readonly downlinks: readonly LinkSummary[];
  readonly note: string;
}

export interface Topology {
  readonly sizeBytes: number;
  readonly peers: number;
  readonly uplinkBytesPerSec: number;
  readonly downlinkBytesPerSec: number;
}

export function idealSeconds(t: Topology): number {
  const sumUplinks = (t.peers + 1) * t.uplinkBytesPerSec;
  return Math.max(
    t.sizeBytes / t.uplinkBytesPerSec,
    t.sizeBytes / t.downlinkBytesPerSec,
    (t.peers * t.sizeBytes) / sumUplinks,
  );
}

/** The figures a system's run gives, as printed and as `--json` reports them. */
export function summarize(run: SystemRun, t: Topology) {
  const ideal = idealSeconds(t);
  const seconds = run.peers.map((peer) => peer.seconds);
  const worst = Math.max(...seconds);
  const sorted = [...seconds].sort((a, b) => a - b);
  const seedPayload = payloadBytes(run.seedSent);
  return {
    system: run.system,
    attempt: run.attempt,
    ok: run.peers.every((peer) => peer.ok),
    idealSeconds: ideal,
    worstSeconds: worst,
    medianSeconds: sorted[Math.floor((sorted.length - 1) / 2)]!,
    worstVsIdeal: worst / ideal,
    peers: run.peers.map((peer) => ({ ...peer, vsIdeal: peer.seconds / ideal })),
    seedSentBytes: run.seedSent.bytes,
    seedSentPackets: run.seedSent.packets,
    seedPayloadBytes: seedPayload,
    seedVsContent: run.seedSent.bytes / t.sizeBytes,
    seedPayloadVsContent: seedPayload / t.sizeBytes,
    peersSentBytes: run.peersSent.map((counters) => counters.bytes),
    uplinkDrops: run.uplinkDrops,
    seedUplink: run.seedUplink,
    downlinks: run.downlinks,
    met: {
      worstVsIdeal: worst / ideal <= GOAL_WORST_VS_IDEAL,
      // On TCP payload: frame headers alone are 66 of 1514 bytes (1.046x), for any protocol.
      seedPayloadVsContent: seedPayload / t.sizeBytes <= GOAL_SEED_VS_CONTENT,
    },
    note: run.note,
  };
}

export type SystemSummary = ReturnType<typeof summarize>;

/** Per-link counters `after - before`, for `SystemRun` (`before`/`after` in the same order). */
export function deltas(
  before: readonly LinkCounters[],
  after: readonly LinkCounters[],
): LinkCounters[] {
  return after.map((counters, i) => counterDelta(before[i]!, counters));
}

const MB = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The header, one table row per system, then one line of detail per system. */
export function printReport(
  t: Topology,
  summaries: readonly SystemSummary[],
  repeat: number,
  header: string,
): void {
  const label = (s: SystemSummary) => `${s.system}${repeat > 1 ? ` #${s.attempt}` : ''}`;
  const ideal = idealSeconds(t);
  console.log(
    `${header}; ideal = max(F/u_seed, F/d_min, N*F/sum of uplinks) = ${ideal.toFixed(2)} s ` +
      `(TCP under tbf: >= ${(1 / FRAME_EFFICIENCY).toFixed(3)}x); goals (PeaPod) worst peer <= ` +
      `${GOAL_WORST_VS_IDEAL.toFixed(2)}x ideal, seed's TCP payload <= ${GOAL_SEED_VS_CONTENT.toFixed(2)}x content (its frames add >= 4.6%)`,
  );
  const rows = [
    [
      'system',
      'worst s',
      'median s',
      'worst/ideal',
      'seed sent',
      'seed frames/content',
      'seed payload/content',
      'SHA-256',
    ],
    ...summaries.map((s) => [
      label(s),
      s.worstSeconds.toFixed(2),
      s.medianSeconds.toFixed(2),
      `${s.worstVsIdeal.toFixed(3)}x${s.system === 'peapod' ? (s.met.worstVsIdeal ? ' met' : ' MISSED') : ''}`,
      MB(s.seedSentBytes),
      `${s.seedVsContent.toFixed(3)}x`,
      `${s.seedPayloadVsContent.toFixed(3)}x${s.system === 'peapod' ? (s.met.seedPayloadVsContent ? ' met' : ' MISSED') : ''}`,
      s.ok ? 'ok' : 'FAILED',
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) {
    console.log(
      `  ${row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd()}`,
    );
  }
  if (repeat > 1) {
    for (const system of new Set(summaries.map((s) => s.system))) {
      const runs = summaries.filter((s) => s.system === system);
      const median = (values: number[]) =>
        [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
      const worst = runs.map((s) => s.worstVsIdeal);
      console.log(
        `  ${system}: median of ${runs.length} runs: worst peer ${median(worst).toFixed(3)}x ideal ` +
          `(${Math.min(...worst).toFixed(3)}-${Math.max(...worst).toFixed(3)}), seed payload ` +
          `${median(runs.map((s) => s.seedPayloadVsContent)).toFixed(3)}x content, frames ` +
          `${median(runs.map((s) => s.seedVsContent)).toFixed(3)}x`,
      );
    }
  }
  for (const s of summaries) {
    console.log(
      `  ${label(s)}: peers ${s.peers
        .map(
          (p) =>
            `${p.name} ${p.seconds.toFixed(2)} s ${p.vsIdeal.toFixed(3)}x${fromSeed(p)}` +
            `${p.ok ? '' : ` FAILED (${p.error ?? 'SHA-256 mismatch'})`}`,
        )
        .join(', ')}; seed ${MB(s.seedSentBytes)} in ${s.seedSentPackets} packets (TCP payload ` +
        `${MB(s.seedPayloadBytes)}); peers' uplinks ${s.peersSentBytes.map(MB).join(' + ')}; ` +
        `uplink tbf drops ${s.uplinkDrops.join(' + ')}; seed uplink ${span(s.seedUplink)}; ` +
        `peers' downlinks ${s.downlinks.map(span).join(', ')}; ${s.note}`,
    );
  }
}

/** ` (job 33.2 s, 34% from the seed)`: what the peer's client reports; empty where nothing. */
function fromSeed(peer: PeerResult): string {
  const parts: string[] = [];
  if (peer.jobSeconds !== undefined) parts.push(`job ${peer.jobSeconds.toFixed(2)} s`);
  const total = Object.values(peer.bySource ?? {}).reduce((sum, bytes) => sum + bytes, 0);
  const seed = peer.bySource?.['seed'] ?? 0;
  if (total > 0) parts.push(`${((seed / total) * 100).toFixed(0)}% from the seed`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** `0.4-21.9 s, 93% busy`: when a link carried traffic and how much of it at >= 80 % of rate. */
function span(link: LinkSummary): string {
  return link.firstBusySeconds === undefined || link.lastByteSeconds === undefined
    ? 'never busy'
    : `${link.firstBusySeconds.toFixed(1)}-${link.lastByteSeconds.toFixed(1)} s ` +
        `${(link.busyShare * 100).toFixed(0)}% busy`;
}
