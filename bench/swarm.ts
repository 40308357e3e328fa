/**
 * Content by ID between real devices, against BitTorrent (`npm run bench:swarm`, as root): one
 * seed and N peers (default 7), each behind its own shaped link (default 100 Mbit/s up, 1 Gbit/s
 * down), every peer fetching the same F bytes (default 256 MiB) at once; PeaPod first, then
 * aria2c with opentracker, on the same lab in the same run.
 *
 * Theory of operation
 * - The lab (bench/netns-lab.ts): a namespace per host (`ppsw-seed`, `ppsw-peer1..N`) with a veth
 *   to a bridge in `ppsw-lan`; `tc tbf` on the host's egress is its uplink, on the bridge port's
 *   egress its downlink; offloads off, so the counters count frames. Removed at the end, on an
 *   error and on SIGINT/SIGTERM.
 * - The content: F bytes of AES-CTR keystream (incompressible, deterministic) in the run's
 *   directory, shared by PeaPod's seed and seeded by aria2c from the same file.
 * - PeaPod (bench/swarm-peapod.ts): a pod of daemons, `peapod share` on the seed, every peer's
 *   `peapod fetch` at once. BitTorrent (bench/swarm-bittorrent.ts): a .torrent written here,
 *   opentracker on the bridge, aria2c seeding, every peer's aria2c at once.
 * - Figures (bench/swarm-result.ts): each peer's time against the ideal max(F/u_seed, F/d_min,
 *   N*F/sum of uplinks), and the seed's transmitted bytes against F, for both systems.
 *
 * Without root, or where `ip netns` fails, it says why and exits 0 having run nothing (there is
 * no loopback variant: nothing would shape the links).
 *
 * Usage: npx tsc -b && node bench/dist/swarm.js [--size 256MiB] [--peers 7] [--uplink 100Mbit]
 *   [--downlink 1Gbit] [--systems peapod,bittorrent] [--piece 256KiB] [--output-dir DIR]
 *   [--repeat 1] [--json] [--keep] [--log-level info] [--cli PATH]
 *   - `--size 64MiB` for a quick run; `--systems bittorrent` runs one half only.
 *   - `--output-dir DIR`: where the peers write, e.g. /dev/shm to take the disk out.
 *   - `--repeat N`: N runs of each system, alternating, each with fresh daemons, stores and
 *     outputs, then each system's median (a shared machine's load moves single runs).
 *   - `--keep` leaves the run's directory (daemon logs, aria2c and opentracker logs).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as RateLimit from '../packages/node/dist/src/rate-limit.js';
import {
  Lab,
  mbit,
  namespacesUnavailable,
  Processes,
  wasInterrupted,
  withCleanup,
} from './netns-lab.js';
import { LinkTimeline, SAMPLER } from './link-timeline.js';
import { writeObjectFile } from './pooled-origin.js';
import { runBitTorrent } from './swarm-bittorrent.js';
import { runPeapod } from './swarm-peapod.js';
import {
  deltas,
  printReport,
  summarize,
  type PeerResult,
  type SystemRun,
  type SystemSummary,
  type Topology,
} from './swarm-result.js';

const NODE_DIST = new URL('../../packages/node/dist/src/', import.meta.url);
const { formatBytes, parseRate, parseSize } = (await import(
  new URL('rate-limit.js', NODE_DIST).href
)) as typeof RateLimit;

const SYSTEMS = ['peapod', 'bittorrent'] as const;
type System = (typeof SYSTEMS)[number];

interface Options {
  readonly sizeBytes: number;
  readonly peers: number;
  readonly uplinkBytesPerSec: number;
  readonly downlinkBytesPerSec: number;
  readonly systems: readonly System[];
  readonly pieceLengthBytes: number;
  readonly outputDir: string | undefined;
  readonly json: boolean;
  readonly keep: boolean;
  readonly logLevel: string;
  readonly cli: string;
  readonly repeat: number;
}

function parseArgs(argv: readonly string[]): Options {
  const value = (flag: string, fallback: string): string => {
    const index = argv.indexOf(flag);
    if (index < 0) return fallback;
    const text = argv[index + 1];
    if (text === undefined) throw new Error(`${flag} needs a value`);
    return text;
  };
  const positive = (
    flag: string,
    fallback: string,
    parse: (text: string) => number | undefined,
  ) => {
    const parsed = parse(value(flag, fallback));
    if (parsed === undefined || !(parsed > 0)) throw new Error(`${flag}: e.g. ${fallback}`);
    return parsed;
  };
  const peers = Number(value('--peers', '7'));
  if (!Number.isInteger(peers) || peers < 1 || peers > 30) throw new Error('--peers: 1 to 30');
  const systems = value('--systems', SYSTEMS.join(',')).split(',') as System[];
  const unknown = systems.filter((system) => !SYSTEMS.includes(system));
  if (unknown.length > 0)
    throw new Error(`--systems: ${unknown.join(', ')} is not peapod or bittorrent`);
  const repeat = Number(value('--repeat', '1'));
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 10) throw new Error('--repeat: 1 to 10');
  const pieceLengthBytes = positive('--piece', '256KiB', parseSize);
  if ((pieceLengthBytes & (pieceLengthBytes - 1)) !== 0 || pieceLengthBytes < 16384) {
    throw new Error('--piece: a power of two of at least 16KiB, e.g. 256KiB');
  }
  return {
    sizeBytes: positive('--size', '256MiB', parseSize),
    peers,
    uplinkBytesPerSec: positive('--uplink', '100Mbit', parseRate),
    downlinkBytesPerSec: positive('--downlink', '1Gbit', parseRate),
    systems,
    pieceLengthBytes,
    outputDir: argv.includes('--output-dir') ? value('--output-dir', '') : undefined,
    json: argv.includes('--json'),
    keep: argv.includes('--keep'),
    logLevel: value('--log-level', 'info'),
    cli: value('--cli', fileURLToPath(new URL('cli.js', NODE_DIST))),
    repeat,
  };
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const say = (line: string) => {
    if (!options.json) process.stderr.write(`${line}\n`);
  };
  const why = namespacesUnavailable();
  if (why !== undefined) {
    say(
      `swarm: SKIPPED, ${why}: this bench needs root and network namespaces (tc tbf shapes each link)`,
    );
    return 0;
  }
  const lab = new Lab('ppsw', '10.99.0');
  const seed = lab.addHost('seed', options.uplinkBytesPerSec, options.downlinkBytesPerSec);
  const peers = Array.from({ length: options.peers }, (_, i) =>
    lab.addHost(`peer${i + 1}`, options.uplinkBytesPerSec, options.downlinkBytesPerSec),
  );
  const topology: Topology = {
    sizeBytes: options.sizeBytes,
    peers: options.peers,
    uplinkBytesPerSec: options.uplinkBytesPerSec,
    downlinkBytesPerSec: options.downlinkBytesPerSec,
  };
  const root = await mkdtemp(join(tmpdir(), 'peapod-bench-swarm-'));
  const outputDir =
    options.outputDir === undefined
      ? root
      : await mkdtemp(join(options.outputDir, 'peapod-bench-swarm-'));
  const processes = new Processes();
  const cleanup = async () => {
    await processes.stopAll();
    lab.destroy();
    if (outputDir !== root) await rm(outputDir, { recursive: true, force: true });
    if (options.keep) say(`swarm: kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  };
  const hardStop = () => {
    processes.killAllNow();
    lab.destroy();
  };
  return withCleanup('swarm', cleanup, hardStop, async () => {
    lab.build();
    say(
      `lab: 1 seed + ${options.peers} peers on a bridge, each ${mbit(options.uplinkBytesPerSec)} Mbit/s ` +
        `up, ${mbit(options.downlinkBytesPerSec)} Mbit/s down (tc tbf)` +
        `${lab.framesExact ? ', offloads off' : '; ethtool missing, so offloads stay on and packet counts are not frames'}`,
    );
    const contentName = 'content.bin';
    const contentPath = join(root, contentName);
    const sha256 = await writeObjectFile(contentPath, options.sizeBytes);
    say(`content: ${formatBytes(options.sizeBytes)}, sha-256 ${sha256}`);

    const hosts = [seed, ...peers];
    const runs: SystemRun[] = [];
    const attempts = Array.from({ length: options.repeat }, (_, i) => i + 1);
    for (const [attempt, system] of attempts.flatMap((n) =>
      options.systems.map((s) => [n, s] as const),
    )) {
      // Each run its own directories (fresh daemons and stores: a pod that holds the content
      // would read it back), removed after the run unless --keep.
      const runDir = join(root, `${system}-${attempt}`);
      const runOutput = join(outputDir, `${system}-${attempt}-out`);
      await mkdir(runDir, { recursive: true });
      await mkdir(runOutput, { recursive: true });
      let before = hosts.map((host) => lab.sent(host));
      let dropsBefore = hosts.map((host) => lab.uplinkDrops(host));
      let sent = before;
      let drops = dropsBefore;
      // Where the time went: the seed's uplink and every host's downlink (its bridge port's
      // transmit side), sampled every 100 ms while the peers run (bench/link-timeline.ts).
      const ports = hosts.map((_, i) => `p${i + 1}`);
      let samplers: ChildProcess[] = [];
      let timelines: LinkTimeline[] = [];
      const measure = (moment: 'start' | 'end') => {
        const counters = hosts.map((host) => lab.sent(host));
        const dropped = hosts.map((host) => lab.uplinkDrops(host));
        if (moment === 'start') {
          [before, dropsBefore] = [counters, dropped];
          samplers = [seed.ns, lab.bridgeNs].map((ns) =>
            processes.spawn(ns, SAMPLER[0], SAMPLER.slice(1)),
          );
          timelines = [
            new LinkTimeline(samplers[0]!, ['eth0']),
            new LinkTimeline(samplers[1]!, ports),
          ];
        } else {
          [sent, drops] = [deltas(before, counters), dropped.map((n, i) => n - dropsBefore[i]!)];
        }
      };
      const load = loadavg()[0]!;
      let result: { peers: PeerResult[]; note: string };
      if (system === 'peapod') {
        result = await runPeapod(
          {
            processes,
            seed,
            peers,
            cli: options.cli,
            contentPath,
            sha256,
            root: runDir,
            outputDir: runOutput,
            logLevel: options.logLevel,
            say,
          },
          measure,
        );
      } else {
        result = await runBitTorrent(
          {
            processes,
            seed,
            peers,
            trackerNs: lab.bridgeNs,
            trackerAddress: lab.bridgeAddress,
            contentDir: root,
            contentName,
            sha256,
            root: runDir,
            outputDir: runOutput,
            pieceLengthBytes: options.pieceLengthBytes,
            say,
          },
          measure,
        );
      }
      await Promise.all(samplers.map((sampler) => processes.stop(sampler)));
      if (options.keep) {
        await writeFile(join(runDir, 'seed-uplink.csv'), timelines[0]!.csv());
        await writeFile(join(runDir, 'downlinks.csv'), timelines[1]!.csv());
      } else {
        await rm(runDir, { recursive: true, force: true });
        await rm(runOutput, { recursive: true, force: true });
      }
      if (wasInterrupted()) break;
      const worst = Math.max(...result.peers.map((peer) => peer.seconds));
      const label = `${system}${options.repeat > 1 ? ` #${attempt}` : ''}`;
      say(`${label}: ${result.peers.length} peers done, the last at ${worst.toFixed(2)} s`);
      runs.push({
        system,
        attempt,
        peers: result.peers,
        seedSent: sent[0]!,
        peersSent: sent.slice(1),
        uplinkDrops: drops,
        seedUplink: timelines[0]!.summarize(options.uplinkBytesPerSec)[0]!,
        // Against the uplink rate: a peer's fair share of the swarm's upload is about that.
        downlinks: timelines[1]!.summarize(options.uplinkBytesPerSec).slice(1),
        note: `${result.note}; load ${load.toFixed(2)} before`,
      });
    }

    if (wasInterrupted()) return 130; // the figures of a run cut short mean nothing
    const summaries: SystemSummary[] = runs.map((run) => summarize(run, topology));
    const ok = summaries.every((summary) => summary.ok);
    if (options.json) {
      console.log(
        JSON.stringify(
          { benchmark: 'swarm', node: process.version, ...topology, systems: summaries, ok },
          null,
          2,
        ),
      );
    } else {
      printReport(
        topology,
        summaries,
        options.repeat,
        `Swarm: ${formatBytes(options.sizeBytes)} from 1 seed to ${options.peers} peers at once, ` +
          `each ${mbit(options.uplinkBytesPerSec)} Mbit/s up and ${mbit(options.downlinkBytesPerSec)} ` +
          `Mbit/s down (network namespaces + tc tbf, Node ${process.version})`,
      );
    }
    return ok ? 0 : 1;
  });
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    if (wasInterrupted()) return;
    process.stderr.write(`swarm: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
