/**
 * PeaPod's main job, measured: one device downloads a big object through the pooled internet
 * links of its pod, against the physical limit and against aria2c through one link, all in the
 * same run (`npm run bench:pooled`).
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
 * - The origin runs in `pp-origin`: the dev origin's CLI (packages/node/dist/src/dev-origin.js:
 *   Range, If-Range, strong ETag, Repr-Digest) without its rate limit, as tbf does the shaping;
 *   where it is not built, bench/pooled-origin.ts, a minimal origin with the same HTTP features.
 * - Baseline: `aria2c -x8 -s8` in `pp-dev1`, through dev1's link alone.
 * - PeaPod: N real `peapod daemon` processes, one per device namespace, each with its own
 *   PEAPOD_HOME, all in one new pod, bound to their LAN address. Once dev1 sees N-1 connected
 *   peers, `peapod get URL --json` runs in `pp-dev1`; its pieces come from every device's link.
 *   With `--single`, also `peapod get --no-pool` (the daemon alone, for reference).
 * - Every output's SHA-256 is checked against the origin's.
 *
 * Without root (or where `ip netns add` fails) it says so and runs a loopback variant, as
 * `peapod demo` does: the dev origin (packages/node/src/dev-origin.ts) on 127.0.0.1 limits each
 * client source address to `--rate`; daemon I sends its origin traffic from 127.0.0.(10+I)
 * (`--origin-address`), aria2c from 127.0.0.11 (`--interface`). `--loopback` forces it.
 *
 * Usage: npx tsc -b bench && node bench/dist/pooled.js [--json] [--size 256MiB] [--rate 50Mbit]
 *   [--devices 4] [--single] [--loopback] [--log-level info] [--keep] [--cli PATH]
 *   (`--keep` leaves the temporary directory with the daemons' logs; `--cli` runs another build
 *   of packages/node/dist/src/cli.js, e.g. to compare a change.)
 *
 * The figures
 * - limit: size / (devices x rate), the time if every link carried payload at its full rate.
 *   The goal is pooled/limit <= 1.10. Under tbf, which counts whole Ethernet frames, TCP payload
 *   is at most 1448/1514 = 95.6% of the rate, so 1.046x is the floor there; aria2c's own rate
 *   through one link shows what a link really carries ("link goodput").
 * - aria2/pooled: how much faster the pooled download is than aria2c with 8 connections through
 *   one link; the goal is >= 3.8x with 4 devices.
 * - shares: verified bytes each device fetched for dev1 (the daemon's `bySource`).
 * Seconds are wall-clock time of the client process (aria2c; `peapod get`, which includes its
 * probe of the origin); `daemonSeconds` is the job time the daemon reports.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { toHex } from '@peapod/core';
import { createPod, DataDir } from '@peapod/node';
import type * as LocalPod from '../packages/node/dist/src/local-pod.js';
import type * as RateLimit from '../packages/node/dist/src/rate-limit.js';

// `@peapod/node` does not export these helpers (nor the CLI), so the bench loads the compiled
// modules by path: from bench/dist/ at run time, typed from the .d.ts at build time.
const NODE_DIST = new URL('../../packages/node/dist/src/', import.meta.url);
const ORIGIN = fileURLToPath(new URL('./pooled-origin.js', import.meta.url));
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
  }): Promise<{ url: string; close(): Promise<void> }>;
}

const GOAL_VS_LIMIT = 1.1;
const GOAL_VS_ARIA2 = 3.8;
const ORIGIN_IP = '10.97.0.1';
const ORIGIN_PORT = 8000;
const OBJECT_NAME = 'pooled.bin';
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
  };
}

/** A command in a device's network namespace (netns mode) or right here (loopback mode). */
function inNamespace(ns: string | undefined, command: string, args: readonly string[]) {
  return ns === undefined
    ? { file: command, args: [...args] }
    : { file: 'ip', args: ['netns', 'exec', ns, command, ...args] };
}

function sh(args: readonly string[]): void {
  execFileSync(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
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

/** Processes this run started; all of them are stopped at the end. */
class Processes {
  private readonly children: ChildProcess[] = [];

  spawn(
    ns: string | undefined,
    command: string,
    args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; log?: string } = {},
  ): ChildProcess {
    const { file, args: argv } = inNamespace(ns, command, args);
    const fd = options.log === undefined ? undefined : openSync(options.log, 'a');
    const child = spawn(file, argv, {
      env: options.env ?? process.env,
      stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
    });
    if (fd !== undefined) closeSync(fd);
    this.children.push(child);
    child.once('exit', () => {
      const at = this.children.indexOf(child);
      if (at >= 0) this.children.splice(at, 1);
    });
    return child;
  }

  /** Runs to the end; resolves with its exit code and output. */
  async run(
    ns: string | undefined,
    command: string,
    args: readonly string[],
    env?: NodeJS.ProcessEnv,
  ): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
    const started = performance.now();
    const child = this.spawn(ns, command, args, env === undefined ? {} : { env });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (part: Buffer) => (stdout += part.toString()));
    child.stderr!.on('data', (part: Buffer) => (stderr += part.toString()));
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (status) => resolve(status ?? -1));
    });
    return { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
  }

  /** SIGTERM to every child still running; SIGKILL after 5 s. */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.children.splice(0).map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  killAllNow(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of createReadStream(path, { highWaterMark: 4 * 2 ** 20 })) {
    hash.update(part as Buffer);
  }
  return hash.digest('hex');
}

interface GetSummary {
  readonly ok: boolean;
  readonly error?: string;
  readonly seconds: number;
  readonly sha256: string;
  readonly pooled: boolean;
  readonly verified: readonly string[];
  readonly bySource: Readonly<Record<string, number>>;
}

interface RunResult {
  readonly seconds: number;
  readonly sha256: string;
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

  const root = await mkdtemp(join(tmpdir(), 'peapod-bench-pooled-'));
  const processes = new Processes();
  const topology =
    mode === 'netns' ? new Topology(options.devices, options.rateBytesPerSec) : undefined;
  let closeOrigin: () => Promise<void> = async () => {};
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await processes.stopAll();
    await closeOrigin();
    topology?.destroy();
    if (options.keep) say(`pooled: kept ${root}`);
    else await rm(root, { recursive: true, force: true });
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
    // 1. The network and the origin.
    let url: string;
    let originSha256: string | undefined;
    let originNote: string;
    if (topology !== undefined) {
      topology.build();
      // The dev origin's CLI (packages/node/src/dev-origin.ts) without its rate limit when it
      // is built, else this bench's minimal origin. Both print the URL and the SHA-256.
      const devOrigin = fileURLToPath(new URL('dev-origin.js', NODE_DIST));
      const useDev = existsSync(devOrigin);
      const origin = processes.spawn('pp-origin', process.execPath, [
        useDev ? devOrigin : ORIGIN,
        '--host',
        ORIGIN_IP,
        '--port',
        String(ORIGIN_PORT),
        '--size',
        String(options.sizeBytes),
        '--name',
        OBJECT_NAME,
      ]);
      const ready = await new Promise<{ url: string; sha256: string | undefined }>(
        (resolve, reject) => {
          let text = '';
          origin.stdout!.on('data', (part: Buffer) => {
            text += part.toString();
            const lines = text.split('\n');
            if (!useDev && lines.length > 1) {
              resolve(JSON.parse(lines[0]!) as { url: string; sha256: string });
            } else if (useDev && lines.length > 2) {
              resolve({
                url: lines[0]!.trim(),
                sha256: /sha-256 ([0-9a-f]{64})/.exec(lines[1]!)?.[1],
              });
            }
          });
          origin.stderr!.pipe(process.stderr);
          origin.once('exit', (code) => reject(new Error(`the origin exited (${String(code)})`)));
        },
      );
      url = ready.url;
      originSha256 = ready.sha256;
      originNote = `${useDev ? 'dev-origin.ts, no rate limit' : 'bench/pooled-origin.ts'}, in pp-origin`;
      say(
        `network: ${options.devices} device namespaces, each with its own link to ${ORIGIN_IP} ` +
          `(tc tbf ${mbit(options.rateBytesPerSec)} Mbit/s each way) and an unshaped LAN bridge`,
      );
    } else {
      let devOrigin: DevOriginModule;
      try {
        devOrigin = (await import(new URL('dev-origin.js', NODE_DIST).href)) as DevOriginModule;
      } catch (error) {
        throw new Error(
          `the loopback variant needs the dev origin (packages/node/src/dev-origin.ts, built): ` +
            `${(error as Error).message.split('\n')[0]}`,
        );
      }
      const origin = await devOrigin.startDevOrigin({
        host: '127.0.0.1',
        port: 0,
        rateBytesPerSec: options.rateBytesPerSec,
        objects: [{ name: OBJECT_NAME, sizeBytes: options.sizeBytes, seed: 1 }],
      });
      closeOrigin = () => origin.close();
      url = `${origin.url}/${OBJECT_NAME}`;
      originNote = `dev-origin.ts on 127.0.0.1, ${mbit(options.rateBytesPerSec)} Mbit/s per source address`;
    }
    say(`origin: ${url}, ${formatBytes(options.sizeBytes)} (${originNote})`);

    // 2. Baseline: aria2c with 8 connections through device 1's link.
    const aria2Out = join(root, 'aria2.bin');
    const aria2 = await processes.run(topology === undefined ? undefined : 'pp-dev1', 'aria2c', [
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
      url,
    ]);
    if (aria2.code !== 0) throw new Error(`aria2c failed (${aria2.code}): ${aria2.stderr.trim()}`);
    const aria2Result: RunResult = { seconds: aria2.seconds, sha256: await sha256File(aria2Out) };
    await rm(aria2Out, { force: true });
    say(`aria2c -x8 -s8 through dev1's link: ${aria2Result.seconds.toFixed(1)} s`);
    originSha256 ??= aria2Result.sha256;

    // 3. The pod: one daemon per device.
    const secret = createPod();
    const discoveryPort = topology === undefined ? await freeUdpPort() : 9001;
    const devices: Device[] = [];
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
      processes.spawn(
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
          // The bench origin is on loopback or 10.97.0.1: private addresses.
          '--allow-private-origins',
          ...(device.originAddress === undefined ? [] : ['--origin-address', device.originAddress]),
        ],
        { env: { ...process.env, PEAPOD_HOME: home }, log: join(root, `${name}.log`) },
      );
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
          cliEnv,
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
        `(${((performance.now() - startedMs) / 1000).toFixed(1)} s)`,
    );

    // 4. PeaPod: pooled, and (--single) alone.
    const get = async (pool: boolean) => {
      const output = join(root, pool ? 'pooled.bin' : 'single.bin');
      const run = await processes.run(
        dev1.ns,
        process.execPath,
        [options.cli, 'get', url, '-o', output, '--json', '-q', ...(pool ? [] : ['--no-pool'])],
        cliEnv,
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
    const pooled = await get(true);
    say(`peapod get, pooled: ${pooled.seconds.toFixed(1)} s`);
    const single = options.single ? await get(false) : undefined;
    if (single !== undefined) say(`peapod get --no-pool: ${single.seconds.toFixed(1)} s`);

    // 5. The report.
    const limitSeconds = options.sizeBytes / (options.devices * options.rateBytesPerSec);
    const linkGoodput = options.sizeBytes / aria2Result.seconds;
    const total = Object.values(pooled.summary.bySource).reduce((a, b) => a + b, 0);
    const shares = Object.fromEntries(
      Object.entries(pooled.summary.bySource).map(([key, bytes]) => {
        const owner = key === 'self' ? dev1 : devices.find((d) => d.deviceIdHex.startsWith(key));
        return [owner?.name ?? key, { bytes, share: total > 0 ? bytes / total : 0 }];
      }),
    );
    const hashes = {
      origin: originSha256,
      aria2: aria2Result.sha256,
      pooled: pooled.sha256,
      ...(single === undefined ? {} : { single: single.sha256 }),
    };
    const identical = Object.values(hashes).every((hash) => hash === originSha256);
    const report = {
      benchmark: 'pooled',
      mode,
      ...(reason === undefined ? {} : { why: reason }),
      node: process.version,
      sizeBytes: options.sizeBytes,
      devices: options.devices,
      linkRateBitsPerSec: options.rateBytesPerSec * 8,
      url,
      limitSeconds,
      aria2: { seconds: aria2Result.seconds, linkGoodputBytesPerSec: linkGoodput },
      pooled: {
        seconds: pooled.seconds,
        daemonSeconds: pooled.summary.seconds,
        pooled: pooled.summary.pooled,
        verified: pooled.summary.verified,
        shares,
      },
      ...(single === undefined
        ? {}
        : { single: { seconds: single.seconds, daemonSeconds: single.summary.seconds } }),
      pooledVsLimit: pooled.seconds / limitSeconds,
      /** Against what the links really carry: N x aria2c's goodput through one. */
      pooledVsGoodputLimit: pooled.seconds / (options.sizeBytes / (options.devices * linkGoodput)),
      aria2VsPooled: aria2Result.seconds / pooled.seconds,
      goals: { pooledVsLimitMax: GOAL_VS_LIMIT, aria2VsPooledMin: GOAL_VS_ARIA2 },
      met: {
        vsLimit: pooled.seconds / limitSeconds <= GOAL_VS_LIMIT,
        vsAria2: aria2Result.seconds / pooled.seconds >= GOAL_VS_ARIA2,
      },
      sha256: hashes,
      identical,
    };
    if (options.json) {
      console.log(JSON.stringify(report, null, 2));
      return identical ? 0 : 1;
    }
    const s = (seconds: number) => `${seconds.toFixed(2).padStart(7)} s`;
    console.log(
      `PeaPod pooled download, ${formatBytes(options.sizeBytes)} over ${options.devices} links of ` +
        `${mbit(options.rateBytesPerSec)} Mbit/s (${mode === 'netns' ? 'network namespaces + tc tbf' : 'LOOPBACK variant'}, Node ${process.version})`,
    );
    console.log(`  limit (size / ${options.devices} x rate)    ${s(limitSeconds)}`);
    console.log(
      `  aria2c -x8 -s8, one link       ${s(aria2Result.seconds)}   link goodput ` +
        `${(linkGoodput / 1e6).toFixed(2)} MB/s (${((linkGoodput / options.rateBytesPerSec) * 100).toFixed(1)}% of the rate` +
        `${mode === 'netns' ? `; tbf framing allows ${(FRAME_EFFICIENCY * 100).toFixed(1)}%` : ''})`,
    );
    console.log(
      `  peapod get, pooled             ${s(pooled.seconds)}   (daemon job ${pooled.summary.seconds.toFixed(2)} s)`,
    );
    if (single !== undefined) {
      console.log(
        `  peapod get --no-pool           ${s(single.seconds)}   aria2/single ${(aria2Result.seconds / single.seconds).toFixed(2)}x`,
      );
    }
    console.log(
      `  pooled/limit ${report.pooledVsLimit.toFixed(3)}x (goal <= ${GOAL_VS_LIMIT.toFixed(2)}: ` +
        `${report.met.vsLimit ? 'met' : 'NOT met'}); against ${options.devices} x aria2c's link goodput ` +
        `${report.pooledVsGoodputLimit.toFixed(3)}x`,
    );
    console.log(
      `  aria2/pooled ${report.aria2VsPooled.toFixed(2)}x faster (goal >= ${GOAL_VS_ARIA2}: ` +
        `${report.met.vsAria2 ? 'met' : 'NOT met'})`,
    );
    console.log(
      `  shares: ${Object.entries(shares)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, { share }]) => `${name} ${(share * 100).toFixed(1)}%`)
        .join(', ')}`,
    );
    console.log(
      `  sha256 ${originSha256} (${identical ? 'every output matches the origin' : `MISMATCH: ${JSON.stringify(hashes)}`}); ` +
        `daemon verified: ${pooled.summary.verified.join(', ') || 'none'}`,
    );
    return identical ? 0 : 1;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Set by SIGINT/SIGTERM: what fails afterwards is the stop itself, not worth a message. */
let interrupted = false;

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
