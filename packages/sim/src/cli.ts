#!/usr/bin/env node
/**
 * `npm run sim -- ...`: the simulator's command line. Parses flags (node:util parseArgs), builds
 * scenarios, runs them and prints a report (or JSON with --json). Exit status 1 when any run
 * broke an invariant, 2 for a usage error. `gossip` as the first argument runs the gossip
 * scenario instead (gossip-cli.ts, `npm run sim:gossip`).
 */
import { parseArgs } from 'node:util';
import { GIB, pooledScenario, randomScenario, swarmScenario } from './scenarios.js';
import { Simulation, type RunResult, type ScenarioConfig } from './simulator.js';
import { figures, formatFailure, formatRun } from './report.js';
import { GossipUsageError, runGossipCommand } from './gossip-cli.js';

const HELP = `peapod sim: a deterministic simulator that drives many real pea-core Cores.

Usage: npm run sim -- [options]
       npm run sim:gossip -- [options]   (the gossip scenario: sim gossip --help)

Scenarios:
  --scenario pooled      1 GiB URL download: requester + 7 pod peers (50 Mbit/s WAN, 1 Gbit/s
                         LAN); 2 peers leave halfway, 1 corrupts. Prints completion vs ideal.
  --scenario swarm       1 GiB content by ID: 1 seed + 31 peers (100 Mbit/s up, 1 Gbit/s down).
                         Prints each peer's completion / ideal and the seed's upload.
  --scenario random      (default) everything drawn from --seed: kind, nodes, rates, latency,
                         content size 4-64 MiB, faults. Safety and liveness are checked.
Options:
  --seed N               seed of the run (default 1); a failure prints SEED=N and replays with
                         the same flags.
  --seeds A..B           run random scenarios for seeds A to B; print pass/fail counts.
  --soak                 run random seeds for --minutes M (default 10), starting at a seed
                         drawn from the clock (printed).
  --size S               content size override: bytes, or with KiB/MiB/GiB (e.g. 64MiB).
  --peers N              swarm: number of peers besides the seed (default 31).
  --links                random scenarios: link-level churn only (no downloads).
  --json                 print results as JSON (one object per run, one per line).
  --trace                print the last 50 events even when a run passes.
  -h, --help             this text.
Examples:
  npm run sim -- --seed 42
  npm run sim -- --scenario pooled --size 256MiB
  npm run sim -- --seeds 1..200
`;

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (match === null) throw new UsageError(`--size: cannot read "${text}" (try 64MiB or 1GiB)`);
  const units: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: GIB };
  return Math.round(Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1));
}

class UsageError extends Error {}

interface Options {
  readonly scenario: 'pooled' | 'swarm' | 'random';
  readonly seed: number;
  readonly sizeBytes: number | undefined;
  readonly peers: number | undefined;
  readonly links: boolean;
  readonly json: boolean;
  readonly trace: boolean;
}

function buildScenario(options: Options, seed: number): ScenarioConfig {
  const size = options.sizeBytes === undefined ? {} : { sizeBytes: options.sizeBytes };
  switch (options.scenario) {
    case 'pooled':
      return pooledScenario(seed, size);
    case 'swarm':
      return swarmScenario(seed, {
        ...size,
        ...(options.peers === undefined ? {} : { peers: options.peers }),
      });
    case 'random':
      return randomScenario(seed, { ...size, transfers: !options.links });
  }
}

function replayCommand(options: Options, seed: number): string {
  const parts = ['npm run sim --', `--seed ${seed}`];
  if (options.scenario !== 'random') parts.push(`--scenario ${options.scenario}`);
  if (options.sizeBytes !== undefined) parts.push(`--size ${options.sizeBytes}`);
  if (options.peers !== undefined) parts.push(`--peers ${options.peers}`);
  if (options.links) parts.push('--links');
  return parts.join(' ');
}

function runOne(options: Options, seed: number): RunResult {
  return new Simulation(buildScenario(options, seed)).run();
}

function printRun(options: Options, result: RunResult): void {
  if (options.json) {
    const { trace, ...rest } = result;
    console.log(
      JSON.stringify({
        ...rest,
        figures: figures(result),
        ...(result.ok && !options.trace ? {} : { trace }),
      }),
    );
    return;
  }
  console.log(formatRun(result, replayCommand(options, result.seed)));
  if (options.trace && result.ok) for (const line of result.trace) console.log(`  ${line}`);
}

function runBatch(options: Options, seeds: Iterable<number>, label: string): number {
  let pass = 0;
  let fail = 0;
  let events = 0;
  let simMs = 0;
  const started = performance.now();
  const kinds = new Map<string, number>();
  for (const seed of seeds) {
    const result = runOne(options, seed);
    events += result.events;
    simMs += result.simMs;
    kinds.set(result.name, (kinds.get(result.name) ?? 0) + 1);
    if (result.ok) pass++;
    else {
      fail++;
      if (options.json) printRun(options, result);
      else console.log(formatFailure(result, replayCommand(options, seed)));
    }
  }
  const wallMs = performance.now() - started;
  const summary = {
    label,
    pass,
    fail,
    kinds: Object.fromEntries(kinds),
    wallSeconds: Number((wallMs / 1000).toFixed(1)),
    eventsPerSecond: Math.round(events / Math.max(1e-3, wallMs / 1000)),
    simulatedPerWall: Number((simMs / Math.max(1e-3, wallMs)).toFixed(1)),
  };
  if (options.json) console.log(JSON.stringify(summary));
  else {
    console.log(
      `${label}: ${pass} passed, ${fail} failed (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}) in ${summary.wallSeconds} s; ` +
        `${summary.eventsPerSecond.toLocaleString('en-US')} events/s, ${summary.simulatedPerWall}x real time`,
    );
  }
  return fail === 0 ? 0 : 1;
}

function* seedRange(from: number, to: number): Generator<number> {
  for (let s = from; s <= to; s++) yield s;
}

function* soakSeeds(start: number, untilMs: number): Generator<number> {
  for (let s = start; performance.now() < untilMs; s++) yield s;
}

function main(argv: string[]): number {
  if (argv[0] === 'gossip') return runGossipCommand(argv.slice(1));
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      soak: { type: 'boolean' },
      minutes: { type: 'string' },
      size: { type: 'string' },
      peers: { type: 'string' },
      links: { type: 'boolean' },
      json: { type: 'boolean' },
      trace: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const scenario = values.scenario ?? 'random';
  if (scenario !== 'pooled' && scenario !== 'swarm' && scenario !== 'random') {
    throw new UsageError(`--scenario must be pooled, swarm or random, not "${scenario}"`);
  }
  const seed = Number(values.seed ?? '1');
  if (!Number.isSafeInteger(seed))
    throw new UsageError(`--seed must be an integer, not "${values.seed}"`);
  const peers = values.peers === undefined ? undefined : Number(values.peers);
  if (peers !== undefined && !(Number.isInteger(peers) && peers >= 1)) {
    throw new UsageError('--peers must be a positive integer');
  }
  const options: Options = {
    scenario,
    seed,
    sizeBytes: values.size === undefined ? undefined : parseSize(values.size),
    peers,
    links: values.links === true,
    json: values.json === true,
    trace: values.trace === true,
  };
  if (values.seeds !== undefined) {
    const match = /^(\d+)\.\.(\d+)$/.exec(values.seeds);
    if (match === null)
      throw new UsageError(`--seeds must look like 1..200, not "${values.seeds}"`);
    return runBatch(
      options,
      seedRange(Number(match[1]), Number(match[2])),
      `seeds ${values.seeds}`,
    );
  }
  if (values.soak === true) {
    const minutes = Number(values.minutes ?? '10');
    if (!(minutes > 0)) throw new UsageError('--minutes must be a positive number');
    // The one place wall-clock time is used: to pick where a soak starts. It is printed, and
    // each failure prints its own SEED=, so every run still replays exactly.
    const start = Date.now() % 1_000_000_000;
    if (!options.json) console.log(`soak: starting at seed ${start} for ${minutes} min`);
    return runBatch(
      options,
      soakSeeds(start, performance.now() + minutes * 60_000),
      `soak from ${start}`,
    );
  }
  const result = runOne(options, seed);
  printRun(options, result);
  return result.ok ? 0 : 1;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  if (
    error instanceof UsageError ||
    error instanceof GossipUsageError ||
    (error instanceof Error &&
      'code' in error &&
      String((error as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))
  ) {
    console.error(`sim: ${error.message}\nRun with --help for usage.`);
    process.exitCode = 2;
  } else {
    throw error;
  }
}
