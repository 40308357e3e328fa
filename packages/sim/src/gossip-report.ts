/**
 * The gossip simulation's report: the lines a person reads (one per announcement kind, in the
 * issue's words), and the goal they are compared against. JSON output is the result object.
 */
import type { GossipRunResult, OverlayShape } from './gossip-scenario.js';
import type { KindSummary } from './gossip-spread.js';

/** Issue 12's goal: 99.9% within 12 rounds at no more than 4 messages per node. */
export const GOSSIP_GOAL = { rounds: 12, messagesPerNode: 4 } as const;

const count = (n: number): string => n.toLocaleString('en-US');
const percent = (x: number): string => `${(x * 100).toFixed(x >= 0.9995 && x < 1 ? 2 : 1)}%`;

/** The one line per kind the issue asks for (the phrase stays intact when the target is met). */
export function formatKindLine(kind: KindSummary): string {
  if (kind.origins === 0) {
    return `${kind.kind} gossip: no announcement went out (${kind.unsent} origins asked, none sent)`;
  }
  const messages = kind.messagesPerNodeMean.toFixed(2);
  if (kind.roundsWorst === undefined) {
    return (
      `${kind.kind} gossip: 99.9% of live nodes NOT reached (lowest coverage ` +
      `${percent(kind.coverageMin)} of ${kind.origins} origins), ${messages} messages per node`
    );
  }
  return `${kind.kind} gossip: 99.9% of live nodes in ${kind.roundsWorst} rounds, ${messages} messages per node`;
}

function kindDetail(kind: KindSummary): string {
  if (kind.origins === 0) return '';
  const rounds =
    kind.roundsMean === undefined
      ? 'rounds: target not reached'
      : `rounds worst ${kind.roundsWorst} / mean ${kind.roundsMean.toFixed(1)}`;
  const unsent = kind.unsent > 0 ? `; ${kind.unsent} asked origins never sent` : '';
  return (
    `  (${kind.origins} origins; ${rounds}; messages per node mean ` +
    `${kind.messagesPerNodeMean.toFixed(2)} / max ${kind.messagesPerNodeMax.toFixed(2)}; ` +
    `lowest coverage ${percent(kind.coverageMin)}${unsent})`
  );
}

export function goalMet(kind: KindSummary): boolean {
  return (
    kind.roundsWorst !== undefined &&
    kind.roundsWorst <= GOSSIP_GOAL.rounds &&
    kind.messagesPerNodeMax <= GOSSIP_GOAL.messagesPerNode
  );
}

function overlayLine(label: string, o: OverlayShape): string {
  return (
    `overlay ${label} (t=${(o.atMs / 1000).toFixed(1)} s): ${count(o.liveNodes)} live nodes, ` +
    `gossip links per node min ${o.linksMin} / mean ${o.linksMean.toFixed(2)} / max ${o.linksMax}, ` +
    `${count(o.isolated)} isolated, ${count(o.components)} component${o.components === 1 ? '' : 's'}`
  );
}

export function formatGossipRun(result: GossipRunResult, wallMs: number): string[] {
  const c = result.config;
  const lines = [
    `gossip sim: seed ${c.seed}, ${count(c.nodes)} nodes (${count(result.silentNodes)} silent ever, ` +
      `${c.bootstrapNodes} bootstrap), loss ${percent(c.lossRate)}, churn ${percent(c.churn)} ` +
      `(${count(result.left)} left, ${count(result.joinedDuringMeasurement)} joined while measuring), ` +
      `latency ${c.latencyMinMs}-${c.latencyMaxMs} ms` +
      (Object.keys(c.settings).length === 0 ? '' : `, settings ${JSON.stringify(c.settings)}`),
    overlayLine('before measurement', result.overlayBefore),
    overlayLine('at the end', result.overlayAfter),
  ];
  for (const kind of result.kinds) {
    lines.push(formatKindLine(kind));
    const detail = kindDetail(kind);
    if (detail !== '') lines.push(detail);
  }
  const missed = result.kinds.filter((k) => !goalMet(k)).map((k) => k.kind);
  lines.push(
    `goal (99.9% within ${GOSSIP_GOAL.rounds} rounds, <= ${GOSSIP_GOAL.messagesPerNode} messages per node): ` +
      (missed.length === 0 ? 'met by every kind' : `missed by ${missed.join(', ')}`),
  );
  const inv = result.invariant;
  const checks =
    `${count(inv.checks.tableEvents)} table events, ${count(inv.checks.messages)} record-carrying ` +
    `frames, ${count(inv.checks.dials)} dials checked; ${count(inv.checks.sweptTables)} tables ` +
    `(${count(inv.checks.sweptEntries)} entries) swept`;
  if (inv.ok) lines.push(`IP-sharing invariant: held (${checks})`);
  else {
    lines.push(`IP-SHARING INVARIANT VIOLATED ${count(inv.violationCount)} times (${checks}):`);
    for (const v of inv.violations) {
      lines.push(`  t=${(v.atMs / 1000).toFixed(3)} s node ${v.node} (${v.where}): ${v.detail}`);
    }
  }
  const n = result.network;
  lines.push(
    `traffic: ${count(n.sends)} gossip frames sent (${Object.entries(result.sendsByCode)
      .map(([code, k]) => `${code}: ${count(k)}`)
      .join(', ')}), ${count(n.lost)} lost, ${count(n.droppedClosed)} on closed links; ` +
      `${count(n.dials)} dials (${count(n.dialsFailed)} failed), ${count(n.linksOpened)} links opened, ` +
      `${count(n.closes)} closed by engines` +
      (n.timerSpins > 0 ? `; ${count(n.timerSpins)} timer spins` : ''),
  );
  if (!c.verifyEvery) {
    lines.push(
      `signatures: ${count(result.verify.verified)} verified by OpenSSL, ` +
        `${count(result.verify.remembered)} identical repeats answered from memory (gossip-verify-memo.ts)`,
    );
  }
  lines.push(
    `simulated time: ${(result.simMs / 1000).toFixed(1)} s; wall time: ${(wallMs / 1000).toFixed(1)} s; ` +
      `${count(result.events)} events`,
  );
  return lines;
}
