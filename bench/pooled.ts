/**
 * PeaPod's main job, measured: one device downloads a big object through the pooled internet
 * links of its pod, against the physical limit and against aria2c through one link, all in the
 * same run (`npm run bench:pooled`), from origins of every validator kind (issue 9: strong ETag,
 * weak ETag, Last-Modified only, none; and Debian's nginx).
 *
 * Theory of operation (as root, the real thing)
 * - Network namespaces stand in for machines. `pp-origin` runs the origin on 10.97.0.1 (on its
 *   loopback). `pp-dev1..N` are the devices: each has its own veth pair to `pp-origin` (its WAN
 *   link: 10.96.I.2 <-> 10.96.I.1, a host route to 10.97.0.1 through it), shaped with `tc tbf`
 *   at `--rate` (default 50 Mbit/s) on the egress of both ends, so every device reaches the same
 *   origin URL through its own link. The devices also share an unshaped LAN: a veth from each
 *   (10.98.0.1I) to a bridge in `pp-lan` (multicast snooping off, so discovery beacons to
 *   239.255.80.65 reach every port). Everything is created at start, refused if a namespace of
 *   that name already exists, and deleted at the end, also on an error or SIGINT/SIGTERM;
 *   deleting a namespace deletes its veths, so nothing outside them is ever touched.
 * - PeaPod: N real `peapod daemon` processes, one per device namespace, each with its own
 *   PEAPOD_HOME, all in one new pod, bound to their LAN address, started once for every kind
 *   (with `--allow-private-origins` where `daemon --help` lists it: the origin is private).
 * - Origins (bench/pooled-origin.ts), one per `--origin` kind, in turn, each on its own port in
 *   `pp-origin`: the dev origin's CLI (packages/node/dist/src/dev-origin.js, Range and If-Range)
 *   without its rate limit, as tbf does the shaping, sending only the kind's validator
 *   (`strong-etag`: a strong ETag; `weak-etag`: a `W/` ETag; `last-modified`; `none`) and no
 *   digest unless `--digest` (then `Repr-Digest`); or `nginx`, Debian's, serving a file with a
 *   temporary config. A HEAD from `pp-dev1` checks that the origin sends what its kind says.
 * - For each kind, in the same run: `aria2c -x8 -s8` in `pp-dev1`, through dev1's link alone
 *   (the baseline); then `peapod get URL --json` in `pp-dev1`, whose pieces come from every
 *   device's link; with `--single`, also `peapod get --no-pool` (the daemon alone).
 * - Every output's SHA-256 is checked against the origin's.
 *
 * Without root (or where `ip netns add` fails) it says so and runs a loopback variant, as
 * `peapod demo` does: the dev origin (packages/node/src/dev-origin.ts) on 127.0.0.1 limits each
 * client source address to `--rate`; daemon I sends its origin traffic from 127.0.0.(10+I)
 * (`--origin-address`), aria2c from 127.0.0.11 (`--interface`). `--loopback` forces it.
 *
 * Usage: npx tsc -b bench && node bench/dist/pooled.js [--json] [--size 256MiB] [--rate 50Mbit]
 *   [--devices 4] [--origin all] [--digest] [--repeat 1] [--nice 0] [--output-dir DIR] [--single]
 *   [--loopback] [--log-level info] [--keep] [--cli PATH]
 *   - `--origin`: strong-etag, weak-etag, last-modified, none, nginx, or all (the first four),
 *     comma-separated, e.g. `all,nginx`; nginx is skipped in the loopback variant.
 *   - `--repeat N`: N pooled downloads per kind beside its one aria2c run, with their median.
 *   - `--nice N`: every process the bench starts runs at that niceness.
 *   - `--output-dir DIR`: where `peapod get` writes, e.g. /dev/shm to take the disk out.
 *   - `--keep` leaves the temporary directory with the daemons' logs and KIND-N-links.csv (each
 *     link's bytes per 100 ms of a pooled download); `--cli` runs another build of
 *     packages/node/dist/src/cli.js, e.g. to compare a change.
 *
 * The figures
 * - limit: size / (devices x rate), the time if every link carried payload at its full rate.
 *   The goal is pooled/limit <= 1.10. Under tbf, which counts whole Ethernet frames, TCP payload
 *   is at most 1448/1514 = 95.6% of the rate, so 1.046x is the floor there; aria2c's own rate
 *   through one link shows what a link really carries ("link goodput").
 * - aria2/pooled: how much faster the pooled download is than aria2c with 8 connections through
 *   one link; the goal is >= 3.8x with 4 devices.
 * - shares: verified bytes each device fetched for dev1 (the daemon's `bySource`).
 * - pinning reported: `pooled` or `ONE LINK`, and which pinning held where `get --json` says
 *   (`pinning`); the daemon's note says why it did not pool.
 * - load: the 1-minute load average before each client ran (the machine may be shared; tbf
 *   makes the figure mostly insensitive to CPU, and aria2c's link goodput shows if it was not).
 * - Where the time went (netns mode): the daemons' CPU seconds; packets each link's tbf dropped;
 *   each link's bytes, active span and busy share (bench/link-timeline.ts); with nginx, what it
 *   sent each device per its access log (requests, spot-check samples, ranges fetched twice).
 * It prints one table, a row per kind, then a line of detail per kind; `--json` prints `runs`.
 * Seconds are wall-clock time of the client process (aria2c; `peapod get`, which includes its
 * probe of the origin); `daemonSeconds` is the job time the daemon reports.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { toHex } from '@peapod/core';
import { createPod, DataDir } from '@peapod/node';
import type * as LocalPod from '../packages/node/dist/src/local-pod.js';
import type * as RateLimit from '../packages/node/dist/src/rate-limit.js';
import { LinkTimeline, parseQdiscDrops, SAMPLER, type LinkSummary } from './link-timeline.js';
import { Processes, sh, sha256File } from './netns-lab.js';
import {
  checkKind,
  devOriginFaults,
  devOriginFlags,
  NGINX,
  parseOriginKinds,
  prepareNginx,
  summarizeAccessLog,
  type ClientRequests,
  validatorsSent,
  writeObjectFile,
  type OriginKind,
} from './pooled-origin.js';

// `@peapod/node` does not export these helpers (nor the CLI), so the bench loads the compiled
// modules by path: from bench/dist/ at run time, typed from the .d.ts at build time.
const NODE_DIST = new URL('../../packages/node/dist/src/', import.meta.url);
const { freeTcpPort, freeUdpPort, waitFor } = (await import(
  new URL('local-pod.js', NODE_DIST).href
)) as typeof LocalPod;
const { formatBytes, parseRate, parseSize } = (await import(
  new URL('rate-limit.js', NODE_DIST).href
)) as typeof RateLimit;

/** The part of dev-origin.ts the loopback variant uses (as demo.ts calls it). */
interface DevOriginModule {
  startDevOrigin(options: {
    host: string;
    port: number;
    rateBytesPerSec: number;
    objects: Array<{ name: string; sizeBytes: number; seed: number }>;
    faults: { etag: 'strong' | 'weak' | 'none'; lastModified: boolean; digest: boolean };
  }): Promise<{ url: string; sha256(name: string): string; close(): Promise<void> }>;
}

const GOAL_VS_LIMIT = 1.1;
const GOAL_VS_ARIA2 = 3.8;
const ORIGIN_IP = '10.97.0.1';
const ORIGIN_PORT = 8000;
/** TCP payload per Ethernet frame under tbf: MSS 1448 (with timestamps) of 1514 bytes. */
const FRAME_EFFICIENCY = 1448 / 1514;

interface Options {
  readonly json: boolean;
  readonly sizeBytes: number;
  readonly rateBytesPerSec: number;
  readonly devices: number;
  readonly single: boolean;
  readonly loopback: boolean;
  readonly logLevel: string;
  readonly keep: boolean;
  readonly cli: string;
  readonly origins: readonly OriginKind[];
  readonly digest: boolean;
  readonly niceness: number;
  readonly repeat: number;
  /** Where `peapod get` writes (default the run's temporary directory). */
  readonly outputDir: string | undefined;
}

function parseArgs(argv: readonly string[]): Options {
  const value = (flag: string, fallback: string): string => {
    const index = argv.indexOf(flag);
    if (index < 0) return fallback;
    const text = argv[index + 1];
    if (text === undefined) throw new Error(`${flag} needs a value`);
    return text;
  };
  const sizeBytes = parseSize(value('--size', '256MiB'));
  if (sizeBytes === undefined || sizeBytes <= 0) throw new Error('--size: e.g. 256MiB');
  const rateBytesPerSec = parseRate(value('--rate', '50Mbit'));
  if (rateBytesPerSec === undefined || rateBytesPerSec <= 0) throw new Error('--rate: e.g. 50Mbit');
  const devices = Number(value('--devices', '4'));
  if (!Number.isInteger(devices) || devices < 2 || devices > 9)
    throw new Error('--devices: 2 to 9');
  const repeat = Number(value('--repeat', '1'));
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 20) throw new Error('--repeat: 1 to 20');
  const niceness = Number(value('--nice', '0'));
  if (!Number.isInteger(niceness) || niceness < -20 || niceness > 19)
    throw new Error('--nice: -20 to 19');
  return {
    json: argv.includes('--json'),
    sizeBytes,
    rateBytesPerSec,
    devices,
    single: argv.includes('--single'),
    loopback: argv.includes('--loopback'),
    logLevel: value('--log-level', 'info'),
    keep: argv.includes('--keep'),
    cli: value('--cli', fileURLToPath(new URL('cli.js', NODE_DIST))),
    origins: parseOriginKinds(value('--origin', 'all')),
    digest: argv.includes('--digest'),
    niceness,
    repeat,
    outputDir: argv.includes('--output-dir') ? value('--output-dir', '') : undefined,
  };
}

/**
 * The namespaces, veths, bridge and tbf qdiscs of the netns mode. `destroy` deletes exactly the
 * namespaces this object created (which takes their veths and qdiscs with them).
 */
class Topology {
  private readonly created: string[] = [];
  readonly names: string[];

  constructor(
    readonly devices: number,
    readonly rateBytesPerSec: number,
  ) {
    this.names = ['pp-origin', 'pp-lan', ...this.deviceNames()];
  }

  deviceNames(): string[] {
    return Array.from({ length: this.devices }, (_, i) => `pp-dev${i + 1}`);
  }

  lanAddress(index: number): string {
    return `10.98.0.${11 + index}`;
  }

  /** Why this machine cannot run the netns mode, or undefined when it can (tries `ip netns`). */
  static unavailable(): string | undefined {
    if (process.getuid?.() !== 0) return 'not running as root';
    try {
      execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
    } catch (error) {
      return `\`ip netns\` does not work here (${(error as Error).message.split('\n')[0]})`;
    }
    return undefined;
  }

  build(): void {
    const existing = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.split(' ')[0]);
    const clash = this.names.filter((name) => existing.includes(name));
    if (clash.length > 0) {
      throw new Error(
        `network namespaces ${clash.join(', ')} already exist (an earlier run killed hard, or ` +
          `someone else's); not touching them. If they are this bench's: ip netns del NAME`,
      );
    }
    for (const name of this.names) {
      sh(['ip', 'netns', 'add', name]);
      this.created.push(name);
      sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    }
    sh(['ip', '-n', 'pp-origin', 'addr', 'add', `${ORIGIN_IP}/32`, 'dev', 'lo']);
    sh(['ip', '-n', 'pp-lan', 'link', 'add', 'ppbr', 'type', 'bridge', 'mcast_snooping', '0']);
    sh(['ip', '-n', 'pp-lan', 'link', 'set', 'ppbr', 'up']);
    const rate = `${Math.round(this.rateBytesPerSec * 8)}bit`;
    // tbf needs a bucket of at least one timer tick of traffic; 10 ms of it, at least 64 KiB.
    const burst = String(Math.max(64 * 1024, Math.ceil(this.rateBytesPerSec / 100)));
    const tbf = ['root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '50ms'];
    this.deviceNames().forEach((ns, i) => {
      const n = i + 1;
      sh([
        'ip',
        'link',
        'add',
        'wan0',
        'netns',
        ns,
        'type',
        'veth',
        'peer',
        'name',
        `wan${n}`,
        'netns',
        'pp-origin',
      ]);
      sh(['ip', '-n', ns, 'addr', 'add', `10.96.${n}.2/24`, 'dev', 'wan0']);
      sh(['ip', '-n', ns, 'link', 'set', 'wan0', 'up']);
      sh(['ip', '-n', 'pp-origin', 'addr', 'add', `10.96.${n}.1/24`, 'dev', `wan${n}`]);
      sh(['ip', '-n', 'pp-origin', 'link', 'set', `wan${n}`, 'up']);
      sh(['ip', '-n', ns, 'route', 'add', `${ORIGIN_IP}/32`, 'via', `10.96.${n}.1`, 'dev', 'wan0']);
      sh(['tc', '-n', ns, 'qdisc', 'add', 'dev', 'wan0', ...tbf]);
      sh(['tc', '-n', 'pp-origin', 'qdisc', 'add', 'dev', `wan${n}`, ...tbf]);
      sh([
        'ip',
        'link',
        'add',
        'lan0',
        'netns',
        ns,
        'type',
        'veth',
        'peer',
        'name',
        `lan${n}`,
        'netns',
        'pp-lan',
      ]);
      sh(['ip', '-n', 'pp-lan', 'link', 'set', `lan${n}`, 'master', 'ppbr']);
      sh(['ip', '-n', 'pp-lan', 'link', 'set', `lan${n}`, 'up']);
      sh(['ip', '-n', ns, 'addr', 'add', `${this.lanAddress(i)}/24`, 'dev', 'lan0']);
      sh(['ip', '-n', ns, 'link', 'set', 'lan0', 'up']);
    });
  }

  /** Synchronous, so it also runs from a signal handler; idempotent. */
  destroy(): void {
    for (const name of this.created.splice(0).reverse()) {
      try {
        sh(['ip', 'netns', 'del', name]);
      } catch (error) {
        process.stderr.write(`pooled: could not delete namespace ${name}: ${String(error)}\n`);
      }
    }
  }
}

/** One device: where its daemon runs and how its CLI reaches it. */
interface Device {
  readonly name: string;
  readonly ns: string | undefined;
  readonly home: string;
  readonly bind: string;
  readonly apiPort: number;
  readonly peerPort: number;
  readonly originAddress: string | undefined;
  deviceIdHex: string;
}

/**
 * Processes this run started, each at `niceness` (`nice -n`, where not 0); all of them are
 * stopped at the end.
 */
interface GetSummary {
  readonly ok: boolean;
  readonly error?: string;
  readonly seconds: number;
  readonly sha256: string;
  readonly pooled: boolean;
  readonly verified: readonly string[];
  readonly bySource: Readonly<Record<string, number>>;
  readonly note?: string;
  /** Which pinning held, where the build reports it. */
  readonly pinning?: unknown;
}

/** One origin kind's figures. */
interface KindResult {
  readonly kind: OriginKind;
  /** 1 to `--repeat`: the pooled download again, beside the same aria2c run. */
  readonly attempt: number;
  readonly url: string;
  /** The validators and digest its HEAD carried, e.g. `ETag W/ + Last-Modified`. */
  readonly sent: string;
  /** The 1-minute load average before aria2c and before `peapod get` (a shared machine). */
  readonly load: { readonly aria2: number; readonly pooled: number };
  readonly aria2: {
    readonly seconds: number;
    readonly linkGoodputBytesPerSec: number;
    /** Packets dev1's link dropped at the origin side's tbf while aria2c ran. */
    readonly tbfDrops?: number;
  };
  readonly pooled: {
    readonly seconds: number;
    readonly daemonSeconds: number;
    /** CPU time (user + system) each daemon used during the pooled download, dev1 first. */
    readonly daemonCpuSeconds: readonly number[];
    /** Packets the origin side's tbf dropped on each device's link while it ran. */
    readonly tbfDrops?: readonly number[];
    /** Each device's link while it ran (netns mode): see bench/link-timeline.ts. */
    readonly links?: readonly LinkSummary[];
    /** What the origin sent each device (nginx, from its access log). */
    readonly requests?: readonly ClientRequests[];
    readonly pooled: boolean;
    readonly pinning: string | undefined;
    readonly note: string;
    readonly verified: readonly string[];
    readonly shares: Record<string, { bytes: number; share: number }>;
  };
  readonly single?: { readonly seconds: number; readonly daemonSeconds: number };
  readonly pooledVsLimit: number;
  /** Against what the links really carry: N x aria2c's goodput through one. */
  readonly pooledVsGoodputLimit: number;
  readonly aria2VsPooled: number;
  readonly met: { readonly vsLimit: boolean; readonly vsAria2: boolean };
  readonly sha256: Record<string, string | undefined>;
  readonly identical: boolean;
}

/** A running origin of one kind. */
interface RunningOrigin {
  readonly url: string;
  readonly sha256: string;
  readonly note: string;
  /** The origin's access log so far (nginx), for `summarizeAccessLog`. */
  readonly accessLog?: () => Promise<string>;
  stop(): Promise<void>;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const say = (line: string) => {
    if (!options.json) process.stderr.write(`${line}\n`);
  };
  const reason = options.loopback ? '--loopback given' : Topology.unavailable();
  const mode = reason === undefined ? 'netns' : 'loopback';
  if (reason !== undefined) {
    say(
      `pooled: ${reason}: no network namespaces, so running the LOOPBACK variant (the dev ` +
        `origin limits each source address to the link rate; no tbf, no separate hosts)`,
    );
  }
  const kinds = options.origins.filter((kind) => {
    if (kind !== 'nginx') return true;
    if (mode === 'loopback')
      say('pooled: skipping nginx: the loopback variant cannot shape its links');
    else if (!existsSync(NGINX))
      say(`pooled: skipping nginx: ${NGINX} is missing (apt-get install nginx-light)`);
    else return true;
    return false;
  });
  if (kinds.length === 0) throw new Error('no origin kind left to run');

  const root = await mkdtemp(join(tmpdir(), 'peapod-bench-pooled-'));
  const processes = new Processes(options.niceness);
  const topology =
    mode === 'netns' ? new Topology(options.devices, options.rateBytesPerSec) : undefined;
  let closeOrigin: () => Promise<void> = async () => {};
  const extraDirectories: string[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await processes.stopAll();
    await closeOrigin();
    topology?.destroy();
    if (options.keep) say(`pooled: kept ${root}`);
    else await rm(root, { recursive: true, force: true });
    for (const directory of extraDirectories) await rm(directory, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    process.stderr.write(`\npooled: ${signal}: stopping and removing what this run created\n`);
    const hardStop = setTimeout(() => {
      processes.killAllNow();
      topology?.destroy();
      process.exit(130);
    }, 8000);
    void cleanup().finally(() => {
      clearTimeout(hardStop);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // 1. The network.
    if (topology !== undefined) {
      topology.build();
      say(
        `network: ${options.devices} device namespaces, each with its own link to ${ORIGIN_IP} ` +
          `(tc tbf ${mbit(options.rateBytesPerSec)} Mbit/s each way) and an unshaped LAN bridge`,
      );
    }

    // 2. The pod: one daemon per device. Helpers that refuse private origins unless told
    // (issue 9 item 5) get `--allow-private-origins`: the bench's origin is 10.97.0.1 or
    // 127.0.0.1. A build without the flag does not list it in `daemon --help`, and would
    // refuse it, so it is passed only where listed (the environment variable is ignored
    // where unknown).
    const help = await processes.run(undefined, process.execPath, [
      options.cli,
      'daemon',
      '--help',
    ]);
    const allowPrivate = help.stdout.includes('--allow-private-origins');
    const secret = createPod();
    const discoveryPort = topology === undefined ? await freeUdpPort() : 9001;
    const devices: Device[] = [];
    const daemons: ChildProcess[] = [];
    for (let i = 0; i < options.devices; i++) {
      const name = `dev${i + 1}`;
      const home = join(root, name);
      const dir = await DataDir.open(home);
      const identity = await dir.loadIdentity();
      await dir.writePodSecret(secret);
      const device: Device = {
        name,
        ns: topology === undefined ? undefined : `pp-${name}`,
        home,
        bind: topology === undefined ? '127.0.0.1' : topology.lanAddress(i),
        apiPort: topology === undefined ? await freeTcpPort() : 8080,
        peerPort: topology === undefined ? await freeTcpPort() : 9000,
        originAddress: topology === undefined ? `127.0.0.${11 + i}` : undefined,
        deviceIdHex: toHex(identity.deviceId),
      };
      devices.push(device);
      const daemon = processes.spawn(
        device.ns,
        process.execPath,
        [
          options.cli,
          'daemon',
          '--bind',
          device.bind,
          '--peer-port',
          String(device.peerPort),
          '--api-port',
          String(device.apiPort),
          '--discovery-port',
          String(discoveryPort),
          '--name',
          name,
          '--log-level',
          options.logLevel,
          ...(device.originAddress === undefined ? [] : ['--origin-address', device.originAddress]),
          ...(allowPrivate ? ['--allow-private-origins'] : []),
        ],
        {
          env: { ...process.env, PEAPOD_HOME: home, PEAPOD_ALLOW_PRIVATE_ORIGINS: '1' },
          log: join(root, `${name}.log`),
        },
      );
      daemons.push(daemon);
    }
    const dev1 = devices[0]!;
    const cliEnv = {
      ...process.env,
      PEAPOD_HOME: dev1.home,
      PEAPOD_BIND_ADDRESS: dev1.bind,
      PEAPOD_API_PORT: String(dev1.apiPort),
    };
    const startedMs = performance.now();
    await waitFor(
      async () => {
        const peers = await processes.run(
          dev1.ns,
          process.execPath,
          [options.cli, 'peers', '--json'],
          { env: cliEnv },
        );
        if (peers.code !== 0)
          throw new Error(peers.stderr.trim() || `peapod peers exited ${peers.code}`);
        const rows = (JSON.parse(peers.stdout) as { peers: Array<{ state: string }> }).peers;
        return rows.filter((row) => row.state === 'connected').length >= options.devices - 1;
      },
      30_000,
      `dev1 to see ${options.devices - 1} connected peers (logs in ${root} with --keep)`,
    );
    say(
      `pod: ${options.devices} daemons up, dev1 connected to all others ` +
        `(${((performance.now() - startedMs) / 1000).toFixed(1)} s)` +
        `${allowPrivate ? ', with --allow-private-origins' : ''}`,
    );

    // 3. Each origin kind: its origin, aria2c through dev1's link, then the pooled download.
    const startOrigin = async (kind: OriginKind, index: number): Promise<RunningOrigin> => {
      const name = `${kind}.bin`;
      if (topology === undefined) {
        const devOrigin = await loadDevOrigin();
        const origin = await devOrigin.startDevOrigin({
          host: '127.0.0.1',
          port: 0,
          rateBytesPerSec: options.rateBytesPerSec,
          objects: [{ name, sizeBytes: options.sizeBytes, seed: 1 }],
          faults: devOriginFaults(kind as Exclude<OriginKind, 'nginx'>, options.digest),
        });
        closeOrigin = () => origin.close();
        return {
          url: `${origin.url}/${name}`,
          sha256: origin.sha256(name),
          note: `dev-origin.ts on 127.0.0.1, ${mbit(options.rateBytesPerSec)} Mbit/s per source address`,
          stop: async () => {
            closeOrigin = async () => {};
            await origin.close();
          },
        };
      }
      const port = ORIGIN_PORT + index;
      const url = `http://${ORIGIN_IP}:${port}/${name}`;
      if (kind === 'nginx') {
        // Its own directory, outside the 0700 root, since nginx's worker runs as nobody.
        const directory = await mkdtemp(join(tmpdir(), 'peapod-bench-nginx-'));
        extraDirectories.push(directory);
        const nginx = await prepareNginx(directory, ORIGIN_IP, port, name);
        const sha256 = await writeObjectFile(nginx.objectPath, options.sizeBytes);
        const child = processes.spawn(
          'pp-origin',
          NGINX,
          ['-p', nginx.prefix, '-c', nginx.config, '-e', join(nginx.prefix, 'error.log')],
          { log: join(root, 'nginx.log') },
        );
        let exited = false;
        child.once('exit', () => (exited = true));
        await waitFor(
          async () => {
            if (exited) throw new Error(`nginx exited; see ${join(nginx.prefix, 'error.log')}`);
            return (await headFromDev1(url)) !== undefined;
          },
          15_000,
          `nginx to answer at ${url}`,
        );
        const version = (await processes.run(undefined, NGINX, ['-v'])).stderr.trim();
        return {
          url,
          sha256,
          note: `${version.replace('nginx version: ', '') || 'nginx'}, a file, in pp-origin`,
          accessLog: () => readFile(nginx.accessLog, 'utf8').catch(() => ''),
          stop: async () => {
            await processes.stop(child);
            await rm(directory, { recursive: true, force: true });
          },
        };
      }
      const child = processes.spawn('pp-origin', process.execPath, [
        fileURLToPath(new URL('dev-origin.js', NODE_DIST)),
        ...['--host', ORIGIN_IP, '--port', String(port)],
        ...['--size', String(options.sizeBytes), '--name', name],
        ...devOriginFlags(kind, options.digest),
      ]);
      const sha256 = await new Promise<string>((resolve, reject) => {
        let text = '';
        child.stdout!.on('data', (part: Buffer) => {
          text += part.toString();
          const lines = text.split('\n');
          if (lines.length > 2) resolve(/sha-256 ([0-9a-f]{64})/.exec(lines[1]!)?.[1] ?? '');
        });
        child.stderr!.pipe(process.stderr);
        child.once('exit', (code) => reject(new Error(`the origin exited (${String(code)})`)));
      });
      return {
        url,
        sha256,
        note: 'dev-origin.ts, no rate limit, in pp-origin',
        stop: () => processes.stop(child),
      };
    };
    /** The headers of a HEAD of `url` from dev1's namespace; undefined if it cannot connect. */
    const headFromDev1 = async (url: string): Promise<Record<string, string> | undefined> => {
      const script =
        "fetch(process.argv[1],{method:'HEAD'}).then(r=>console.log(JSON.stringify(" +
        "{...Object.fromEntries(r.headers),':status':String(r.status)})),()=>process.exit(3))";
      const head = await processes.run(dev1.ns, process.execPath, ['-e', script, url]);
      return head.code === 0 ? (JSON.parse(head.stdout) as Record<string, string>) : undefined;
    };
    const get = async (url: string, pool: boolean) => {
      const output = join(options.outputDir ?? root, pool ? 'pooled.bin' : 'single.bin');
      const run = await processes.run(
        dev1.ns,
        process.execPath,
        [options.cli, 'get', url, '-o', output, '--json', '-q', ...(pool ? [] : ['--no-pool'])],
        { env: cliEnv },
      );
      const line = run.stdout.trim().split('\n').pop() ?? '';
      let summary: GetSummary;
      try {
        summary = JSON.parse(line) as GetSummary;
      } catch {
        throw new Error(`peapod get printed no summary (${run.code}): ${run.stderr.trim()}`);
      }
      if (run.code !== 0 || !summary.ok) {
        throw new Error(
          `peapod get${pool ? '' : ' --no-pool'} failed: ${summary.error ?? run.stderr}`,
        );
      }
      const sha256 = await sha256File(output);
      await rm(output, { force: true });
      return { seconds: run.seconds, sha256, summary };
    };
    const limitSeconds = options.sizeBytes / (options.devices * options.rateBytesPerSec);
    const results: KindResult[] = [];
    for (const [index, kind] of kinds.entries()) {
      const origin = await startOrigin(kind, index);
      try {
        const headers = await headFromDev1(origin.url);
        if (headers === undefined) throw new Error(`${kind}: a HEAD of ${origin.url} failed`);
        const wrong = checkKind(kind, headers);
        if (wrong !== undefined) throw new Error(`${kind}: ${wrong}`);
        const sent = validatorsSent(headers);
        say(
          `${kind}: ${origin.url}, ${formatBytes(options.sizeBytes)} (${origin.note}; sends ${sent})`,
        );

        /** Packets the origin side's tbf of each link dropped so far (netns mode). */
        const drops = () => {
          if (topology === undefined) return [];
          const text = execFileSync('tc', ['-n', 'pp-origin', '-s', 'qdisc', 'show'], {
            encoding: 'utf8',
          });
          const byDevice = parseQdiscDrops(text);
          return devices.map((_, i) => byDevice.get(`wan${i + 1}`) ?? 0);
        };
        const dropsBeforeAria2 = drops();
        const loadAria2 = loadavg()[0]!;
        const aria2Out = join(root, 'aria2.bin');
        const aria2 = await processes.run(
          topology === undefined ? undefined : 'pp-dev1',
          'aria2c',
          [
            '-x8',
            '-s8',
            '--file-allocation=none',
            '--allow-overwrite=true',
            '--auto-file-renaming=false',
            '--console-log-level=error',
            '--summary-interval=0',
            '--download-result=hide',
            '-q',
            ...(topology === undefined ? ['--interface=127.0.0.11'] : []),
            '-d',
            root,
            '-o',
            'aria2.bin',
            origin.url,
          ],
        );
        if (aria2.code !== 0)
          throw new Error(`aria2c failed (${aria2.code}): ${aria2.stderr.trim()}`);
        const aria2Sha256 = await sha256File(aria2Out);
        await rm(aria2Out, { force: true });
        say(`${kind}: aria2c -x8 -s8 through dev1's link: ${aria2.seconds.toFixed(1)} s`);

        const aria2Drops = drops()[0]! - (dropsBeforeAria2[0] ?? 0);
        for (let attempt = 1; attempt <= options.repeat; attempt++) {
          const label = options.repeat > 1 ? ` #${attempt}` : '';
          const dropsBeforePooled = drops();
          const loadPooled = loadavg()[0]!;
          const cpuBefore = daemons.map(cpuSeconds);
          const sampler =
            topology === undefined
              ? undefined
              : processes.spawn('pp-origin', SAMPLER[0], SAMPLER.slice(1));
          const timeline =
            sampler === undefined
              ? undefined
              : new LinkTimeline(
                  sampler,
                  devices.map((_, i) => `wan${i + 1}`),
                );
          const logBefore = (await origin.accessLog?.())?.length ?? 0;
          const pooled = await get(origin.url, true);
          const requests =
            origin.accessLog === undefined
              ? undefined
              : summarizeAccessLog((await origin.accessLog()).slice(logBefore));
          const cpu = daemons.map((daemon, i) => cpuSeconds(daemon) - cpuBefore[i]!);
          if (sampler !== undefined) await processes.stop(sampler);
          const pooledDrops = drops().map((n, i) => n - dropsBeforePooled[i]!);
          const links = timeline?.summarize(options.rateBytesPerSec);
          if (timeline !== undefined && options.keep) {
            await writeFile(join(root, `${kind}-${attempt}-links.csv`), timeline.csv());
          }
          say(`${kind}: peapod get, pooled${label}: ${pooled.seconds.toFixed(1)} s`);
          const single = options.single ? await get(origin.url, false) : undefined;
          if (single !== undefined)
            say(`${kind}: peapod get --no-pool: ${single.seconds.toFixed(1)} s`);

          const linkGoodput = options.sizeBytes / aria2.seconds;
          const total = Object.values(pooled.summary.bySource).reduce((a, b) => a + b, 0);
          const shares = Object.fromEntries(
            Object.entries(pooled.summary.bySource).map(([key, bytes]) => {
              const owner =
                key === 'self' ? dev1 : devices.find((d) => d.deviceIdHex.startsWith(key));
              return [owner?.name ?? key, { bytes, share: total > 0 ? bytes / total : 0 }];
            }),
          );
          const sha256 = {
            origin: origin.sha256,
            aria2: aria2Sha256,
            pooled: pooled.sha256,
            ...(single === undefined ? {} : { single: single.sha256 }),
          };
          results.push({
            kind,
            attempt,
            url: origin.url,
            sent,
            load: { aria2: loadAria2, pooled: loadPooled },
            aria2: {
              seconds: aria2.seconds,
              linkGoodputBytesPerSec: linkGoodput,
              ...(topology === undefined ? {} : { tbfDrops: aria2Drops }),
            },
            pooled: {
              seconds: pooled.seconds,
              daemonSeconds: pooled.summary.seconds,
              daemonCpuSeconds: cpu,
              ...(topology === undefined ? {} : { tbfDrops: pooledDrops }),
              ...(links === undefined ? {} : { links }),
              ...(requests === undefined ? {} : { requests }),
              pooled: pooled.summary.pooled,
              pinning: pinningOf(pooled.summary),
              note: pooled.summary.note ?? '',
              verified: pooled.summary.verified,
              shares,
            },
            ...(single === undefined
              ? {}
              : { single: { seconds: single.seconds, daemonSeconds: single.summary.seconds } }),
            pooledVsLimit: pooled.seconds / limitSeconds,
            pooledVsGoodputLimit:
              pooled.seconds / (options.sizeBytes / (options.devices * linkGoodput)),
            aria2VsPooled: aria2.seconds / pooled.seconds,
            met: {
              vsLimit: pooled.seconds / limitSeconds <= GOAL_VS_LIMIT,
              vsAria2: aria2.seconds / pooled.seconds >= GOAL_VS_ARIA2,
            },
            sha256,
            identical: Object.values(sha256).every((hash) => hash === origin.sha256),
          });
        }
      } finally {
        await origin.stop();
      }
    }

    // 4. The report.
    const identical = results.every((result) => result.identical);
    const report = {
      benchmark: 'pooled',
      mode,
      ...(reason === undefined ? {} : { why: reason }),
      node: process.version,
      sizeBytes: options.sizeBytes,
      devices: options.devices,
      linkRateBitsPerSec: options.rateBytesPerSec * 8,
      digest: options.digest,
      niceness: options.niceness,
      allowPrivateOrigins: allowPrivate,
      limitSeconds,
      goals: { pooledVsLimitMax: GOAL_VS_LIMIT, aria2VsPooledMin: GOAL_VS_ARIA2 },
      runs: results,
      identical,
    };
    if (options.json) console.log(JSON.stringify(report, null, 2));
    else printReport(options, mode, limitSeconds, results);
    return identical ? 0 : 1;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The table of every kind, then one line of detail each. */
function printReport(
  options: Options,
  mode: 'netns' | 'loopback',
  limitSeconds: number,
  results: readonly KindResult[],
): void {
  console.log(
    `PeaPod pooled download, ${formatBytes(options.sizeBytes)} over ${options.devices} links of ` +
      `${mbit(options.rateBytesPerSec)} Mbit/s (${mode === 'netns' ? 'network namespaces + tc tbf' : 'LOOPBACK variant'}, ` +
      `Node ${process.version}); limit = size / (${options.devices} x rate) = ${limitSeconds.toFixed(2)} s; ` +
      `goals pooled/limit <= ${GOAL_VS_LIMIT.toFixed(2)}, aria2/pooled >= ${GOAL_VS_ARIA2}`,
  );
  const rows = [
    [
      'kind',
      'sent',
      'aria2c s',
      'pooled s',
      'limit s',
      'pooled/limit',
      'aria2/pooled',
      'pinning reported',
      'SHA-256',
    ],
    ...results.map((r) => [
      `${r.kind}${options.repeat > 1 ? ` #${r.attempt}` : ''}`,
      r.sent,
      r.aria2.seconds.toFixed(2),
      r.pooled.seconds.toFixed(2),
      limitSeconds.toFixed(2),
      `${r.pooledVsLimit.toFixed(3)}x ${r.met.vsLimit ? 'met' : 'MISSED'}`,
      `${r.aria2VsPooled.toFixed(2)}x ${r.met.vsAria2 ? 'met' : 'MISSED'}`,
      `${r.pooled.pooled ? 'pooled' : 'ONE LINK'}${r.pooled.pinning === undefined ? '' : `: ${r.pooled.pinning}`}`,
      r.identical ? 'ok' : 'MISMATCH',
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
  if (options.repeat > 1) {
    for (const kind of new Set(results.map((r) => r.kind))) {
      const runs = results.filter((r) => r.kind === kind);
      const seconds = runs.map((r) => r.pooled.seconds).sort((a, b) => a - b);
      const median = seconds[Math.floor((seconds.length - 1) / 2)]!;
      console.log(
        `  ${kind}: median of ${seconds.length} pooled ${median.toFixed(2)} s ` +
          `(${seconds[0]!.toFixed(2)}-${seconds.at(-1)!.toFixed(2)}), pooled/limit ` +
          `${(median / limitSeconds).toFixed(3)}x, aria2/pooled ${(runs[0]!.aria2.seconds / median).toFixed(2)}x`,
      );
    }
  }
  for (const r of results) {
    const name = `${r.kind}${options.repeat > 1 ? ` #${r.attempt}` : ''}`;
    const goodput = r.aria2.linkGoodputBytesPerSec;
    console.log(
      `  ${name}: load ${r.load.aria2.toFixed(2)} before aria2c, ${r.load.pooled.toFixed(2)} before get; ` +
        `aria2c link goodput ${(goodput / 1e6).toFixed(2)} MB/s (${((goodput / options.rateBytesPerSec) * 100).toFixed(1)}% of the rate` +
        `${mode === 'netns' ? `; tbf framing allows ${(FRAME_EFFICIENCY * 100).toFixed(1)}%` : ''}); ` +
        `pooled vs ${options.devices} x that goodput ${r.pooledVsGoodputLimit.toFixed(3)}x; ` +
        `daemon job ${r.pooled.daemonSeconds.toFixed(2)} s; daemon CPU ` +
        `${r.pooled.daemonCpuSeconds.map((seconds) => seconds.toFixed(1)).join(' + ')} s; shares ${Object.entries(
          r.pooled.shares,
        )
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, { share }]) => `${name} ${(share * 100).toFixed(1)}%`)
          .join(', ')}; verified: ${r.pooled.verified.join(', ') || 'none'}` +
        `${r.single === undefined ? '' : `; --no-pool ${r.single.seconds.toFixed(2)} s`}` +
        `${r.pooled.note === '' ? '' : `; note: ${r.pooled.note}`}` +
        `${r.pooled.tbfDrops === undefined ? '' : `; tbf drops: aria2c ${r.aria2.tbfDrops ?? 0}, pooled ${r.pooled.tbfDrops.join(' + ')}`}` +
        `${r.pooled.requests === undefined ? '' : `; origin requests: ${r.pooled.requests.map(formatRequests).join(', ')}`}` +
        `${r.pooled.links === undefined ? '' : `; links (s from the start of get): ${r.pooled.links.map(formatLink).join(', ')}`}` +
        `${r.identical ? '' : `; sha256 ${JSON.stringify(r.sha256)}`}`,
    );
  }
}

/**
 * The pinning `peapod get --json` reports (a `pinning` field: a name, or an object with one),
 * undefined where the build reports none.
 */
function pinningOf(summary: GetSummary): string | undefined {
  const pinning = summary.pinning;
  if (pinning === undefined || pinning === null) return undefined;
  if (typeof pinning === 'string') return pinning;
  if (typeof pinning === 'object') {
    const named = pinning as Record<string, unknown>;
    for (const key of ['kind', 'level', 'name', 'validator']) {
      if (typeof named[key] === 'string') return named[key];
    }
  }
  return JSON.stringify(pinning);
}

/** The dev origin module (loopback variant), or an error saying it must be built. */
async function loadDevOrigin(): Promise<DevOriginModule> {
  try {
    return (await import(new URL('dev-origin.js', NODE_DIST).href)) as DevOriginModule;
  } catch (error) {
    throw new Error(
      `the loopback variant needs the dev origin (packages/node/src/dev-origin.ts, built): ` +
        `${(error as Error).message.split('\n')[0]}`,
    );
  }
}

/** Set by SIGINT/SIGTERM: what fails afterwards is the stop itself, not worth a message. */
let interrupted = false;

/** `dev1 64.1 MB 0.4-11.9 s, 93% busy`: a link's bytes, active span and busy share. */
function formatLink(link: LinkSummary): string {
  const span =
    link.firstBusySeconds === undefined || link.lastByteSeconds === undefined
      ? 'never busy'
      : `${link.firstBusySeconds.toFixed(1)}-${link.lastByteSeconds.toFixed(1)} s, ${(link.busyShare * 100).toFixed(0)}% busy`;
  return `${link.link.replace('wan', 'dev')} ${(link.bytes / 1e6).toFixed(1)} MB ${span}`;
}

/** `dev2 17 requests 68.1 MB (3 samples; 1 cut short, 2.1 MB; 4.2 MB asked twice)`. */
function formatRequests(client: ClientRequests): string {
  const device = /^10\.96\.(\d+)\.2$/.exec(client.address);
  return (
    `${device === null ? client.address : `dev${device[1]}`} ${client.requests} requests ` +
    `${(client.bodyBytes / 1e6).toFixed(1)} MB (${client.small} small; ${client.cutShort} cut short, ` +
    `${(client.cutShortBytes / 1e6).toFixed(1)} MB; ${(client.repeatedBytes / 1e6).toFixed(1)} MB asked twice)`
  );
}

/** CPU seconds (user + system) a child has used so far, from /proc; NaN where unreadable. */
function cpuSeconds(child: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;

function mbit(bytesPerSec: number): string {
  return ((bytesPerSec * 8) / 1e6).toFixed(0);
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    if (interrupted) return;
    process.stderr.write(`pooled: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
