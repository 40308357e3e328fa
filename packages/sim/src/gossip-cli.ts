/**
 * `npm run sim:gossip -- [options]` (`cli.js gossip ...`): runs the gossip scenario
 * (gossip-scenario.ts) with the real `GossipEngine` and prints its report, or one JSON object
 * with --json. Exit status 1 when the IP-sharing invariant broke, 2 for a usage error.
 */
import { parseArgs } from 'node:util';
import type { GossipSettings } from '@peapod/core';
import { gossipScenarioDefaults, GossipScenario, type GossipProgress } from './gossip-scenario.js';
import { formatGossipRun } from './gossip-report.js';

export const GOSSIP_HELP = `peapod sim gossip: many real gossip engines, loss, churn, silent nodes.

Usage: npm run sim:gossip -- [options]

Options:
  --nodes N            nodes at the start (default 10000)
  --loss F             fraction of gossip frames lost (default 0.01)
  --churn F            fraction of live nodes leaving while measuring; half as many join (0.1)
  --silent F           fraction of nodes that do not broadcast (default 0.2)
  --seed N             seed of the run (default 1); the same seed gives the same figures
  --bootstrap N        bootstrap nodes (default 4)
  --origins N          announcements measured per kind (default 5)
  --join-window S      seconds over which the first nodes join (default nodes/5000, at least 5)
  --settle S           seconds the overlay settles before measuring (default 30)
  --measure S          seconds of measurement under churn (default 30)
  --fan-out N          engine setting fanOut (default: the engine's)
  --active-links N     engine setting activeLinks
  --active-links-max N engine setting activeLinksMax
  --table-max N        engine setting tableMax (peers each table keeps)
  --seen-max N         engine setting seenMax (message IDs each node remembers)
  --verify-every       verify every signature with OpenSSL (no memo of identical repeats)
  --json               print the result as one JSON object
  --progress           a line on stderr every 5 simulated seconds (wall time, heap)
  -h, --help           this text
Example:
  npm run sim:gossip -- --nodes 10000 --loss 0.01 --churn 0.1
`;

export class GossipUsageError extends Error {}

function number(
  text: string | undefined,
  name: string,
  fallback: number,
  ok: (n: number) => boolean,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || !ok(value)) {
    throw new GossipUsageError(`--${name}: "${text}" is out of range`);
  }
  return value;
}

const positiveInteger = (n: number): boolean => Number.isInteger(n) && n >= 1;
const fraction = (n: number): boolean => n >= 0 && n < 1;

/** One line on stderr: how far the simulation is, the wall time so far and the heap in use. */
function progressLine(progress: GossipProgress, startedMs: number): void {
  const wallS = Math.round((performance.now() - startedMs) / 1000);
  const wall = `${Math.floor(wallS / 60)}m${String(wallS % 60).padStart(2, '0')}s`;
  const heapGb = (process.memoryUsage().heapUsed / 1e9).toFixed(1);
  process.stderr.write(
    `gossip sim: t=${(progress.simMs / 1000).toFixed(0)} s of ${(progress.endMs / 1000).toFixed(0)} s simulated, ` +
      `${progress.liveNodes.toLocaleString('en-US')} live nodes, wall ${wall}, heap ${heapGb} GB\n`,
  );
}

/** Runs the subcommand; returns the exit status. @throws GossipUsageError for bad flags. */
export function runGossipCommand(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string' },
      loss: { type: 'string' },
      churn: { type: 'string' },
      silent: { type: 'string' },
      seed: { type: 'string' },
      bootstrap: { type: 'string' },
      origins: { type: 'string' },
      'join-window': { type: 'string' },
      settle: { type: 'string' },
      measure: { type: 'string' },
      'fan-out': { type: 'string' },
      'active-links': { type: 'string' },
      'active-links-max': { type: 'string' },
      'table-max': { type: 'string' },
      'seen-max': { type: 'string' },
      'verify-every': { type: 'boolean' },
      json: { type: 'boolean' },
      progress: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(GOSSIP_HELP);
    return 0;
  }
  const started = performance.now();
  const nodes = number(values.nodes, 'nodes', 10_000, (n) => positiveInteger(n) && n >= 2);
  const seconds = (text: string | undefined, name: string): number | undefined =>
    text === undefined ? undefined : Math.round(number(text, name, 0, (n) => n > 0) * 1000);
  const settings: Partial<Record<keyof GossipSettings, number>> = {};
  const setting = (flag: string, key: keyof GossipSettings): void => {
    const text = (values as Record<string, string | boolean | undefined>)[flag];
    if (typeof text === 'string') settings[key] = number(text, flag, 0, positiveInteger);
  };
  setting('fan-out', 'fanOut');
  setting('active-links', 'activeLinks');
  setting('active-links-max', 'activeLinksMax');
  setting('table-max', 'tableMax');
  setting('seen-max', 'seenMax');
  const joinWindowMs = seconds(values['join-window'], 'join-window');
  const settleMs = seconds(values.settle, 'settle');
  const measureMs = seconds(values.measure, 'measure');
  const config = gossipScenarioDefaults(nodes, {
    seed: number(values.seed, 'seed', 1, Number.isSafeInteger),
    lossRate: number(values.loss, 'loss', 0.01, fraction),
    churn: number(values.churn, 'churn', 0.1, (n) => n >= 0 && n <= 0.5),
    silentFraction: number(values.silent, 'silent', 0.2, (n) => n >= 0 && n <= 0.9),
    bootstrapNodes: number(values.bootstrap, 'bootstrap', 4, positiveInteger),
    originsPerKind: number(values.origins, 'origins', 5, positiveInteger),
    ...(joinWindowMs === undefined ? {} : { joinWindowMs }),
    ...(settleMs === undefined ? {} : { settleMs }),
    ...(measureMs === undefined ? {} : { measureMs }),
    settings,
    verifyEvery: values['verify-every'] === true,
    ...(values.progress === true
      ? { onProgress: (p: GossipProgress) => progressLine(p, started) }
      : {}),
  });
  const result = new GossipScenario(config).run();
  const wallMs = performance.now() - started;
  if (values.json === true) {
    console.log(JSON.stringify({ ...result, wallSeconds: Number((wallMs / 1000).toFixed(1)) }));
  } else {
    for (const line of formatGossipRun(result, wallMs)) console.log(line);
  }
  return result.ok ? 0 : 1;
}
