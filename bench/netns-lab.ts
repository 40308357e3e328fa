/**
 * A small lab of network namespaces for bench/swarm.ts and bench/cached-url.ts: hosts on one
 * bridge, each link shaped with `tc tbf`, processes started inside them, and everything removed
 * again at the end (also on an error, SIGINT or SIGTERM).
 *
 * Theory of operation
 * - `Lab` owns a set of namespaces named `<prefix>-<host>`. `build` refuses to start when one of
 *   them already exists (an earlier run killed hard, or someone else's), then creates a bridge
 *   namespace `<prefix>-lan` with bridge `br0` (multicast snooping off, so discovery beacons to a
 *   group reach every port; address `<subnet>.1`) and, per host, a veth pair: `eth0` in the host,
 *   `p<I>` on the bridge. The host's uplink is a tbf on the egress of its `eth0`, its downlink a
 *   tbf on the egress of its bridge port (what the bridge forwards to it). Each host gets a route
 *   for 224.0.0.0/4 on `eth0`, so multicast leaves through the lab's link.
 * - With ethtool present, segmentation and receive offloads are off on both ends, so every
 *   skb is one Ethernet frame: tbf meters real frames and the link counters count real packets
 *   (`payloadBytes` subtracts 66 bytes of Ethernet, IPv4 and TCP-with-timestamps headers per
 *   packet from the bytes, exact for TCP data and pure ACKs).
 * - `destroy` is synchronous (it also runs from a signal handler) and idempotent: it deletes the
 *   namespaces this object created, which deletes their veths, bridge and qdiscs; nothing outside
 *   them is ever touched.
 * - `Processes` starts commands inside a namespace (`ip netns exec`) and stops exactly the
 *   children it started, by their pid: SIGTERM, then SIGKILL after 5 s.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Ethernet (14) + IPv4 (20) + TCP with the timestamp option (32) bytes per frame. */
export const HEADER_BYTES_PER_PACKET = 66;
/** TCP payload per full frame under tbf: MSS 1448 of a 1514-byte frame. */
export const FRAME_EFFICIENCY = 1448 / 1514;

export function sh(args: readonly string[]): string {
  return execFileSync(args[0]!, args.slice(1), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Why this machine cannot build namespaces, or undefined when it can (tries `ip netns`). */
export function namespacesUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    sh(['ip', 'netns', 'list']);
  } catch (error) {
    return `\`ip netns\` does not work here (${(error as Error).message.split('\n')[0]})`;
  }
  return undefined;
}

/** One host of the lab and its link to the bridge. */
export interface LabHost {
  readonly name: string;
  readonly ns: string;
  readonly address: string;
  /** Bytes per second from the host into the bridge (its upload). */
  readonly uplinkBytesPerSec: number;
  /** Bytes per second from the bridge to the host (its download). */
  readonly downlinkBytesPerSec: number;
}

/** A link's transmit counters at one moment. */
export interface LinkCounters {
  readonly bytes: number;
  readonly packets: number;
}

/** `tbf` arguments for a rate: a bucket of 10 ms of traffic (at least 64 KiB), 50 ms queue. */
function tbf(bytesPerSec: number): string[] {
  const burst = String(Math.max(64 * 1024, Math.ceil(bytesPerSec / 100)));
  return [
    'root',
    'tbf',
    'rate',
    `${Math.round(bytesPerSec * 8)}bit`,
    'burst',
    burst,
    'latency',
    '50ms',
  ];
}

export class Lab {
  private readonly created: string[] = [];
  readonly hosts: LabHost[] = [];
  readonly bridgeNs: string;
  readonly bridgeAddress: string;
  /** Whether offloads could be turned off (ethtool present). */
  readonly framesExact = existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool');

  constructor(
    readonly prefix: string,
    /** The first three octets, e.g. `10.99.0`. */
    readonly subnet: string,
  ) {
    this.bridgeNs = `${prefix}-lan`;
    this.bridgeAddress = `${subnet}.1`;
  }

  /** Declares a host (created by `build`); its address is `<subnet>.<10 + index>`. */
  addHost(name: string, uplinkBytesPerSec: number, downlinkBytesPerSec: number): LabHost {
    const host = {
      name,
      ns: `${this.prefix}-${name}`,
      address: `${this.subnet}.${10 + this.hosts.length}`,
      uplinkBytesPerSec,
      downlinkBytesPerSec,
    };
    this.hosts.push(host);
    return host;
  }

  build(): void {
    const names = [this.bridgeNs, ...this.hosts.map((host) => host.ns)];
    const existing = sh(['ip', 'netns', 'list'])
      .split('\n')
      .map((line) => line.split(' ')[0]);
    const clash = names.filter((name) => existing.includes(name));
    if (clash.length > 0) {
      throw new Error(
        `network namespaces ${clash.join(', ')} already exist (an earlier run killed hard, or ` +
          `someone else's); not touching them. If they are this bench's: ip netns del NAME`,
      );
    }
    for (const name of names) {
      sh(['ip', 'netns', 'add', name]);
      this.created.push(name);
      sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    }
    const lan = this.bridgeNs;
    sh(['ip', '-n', lan, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    sh(['ip', '-n', lan, 'addr', 'add', `${this.bridgeAddress}/24`, 'dev', 'br0']);
    sh(['ip', '-n', lan, 'link', 'set', 'br0', 'up']);
    this.hosts.forEach((host, i) => {
      const port = `p${i + 1}`;
      sh([
        ...['ip', 'link', 'add', 'eth0', 'netns', host.ns, 'type', 'veth'],
        ...['peer', 'name', port, 'netns', lan],
      ]);
      if (this.framesExact) {
        const off = ['tso', 'off', 'gso', 'off', 'gro', 'off'];
        sh(['ip', 'netns', 'exec', host.ns, 'ethtool', '-K', 'eth0', ...off]);
        sh(['ip', 'netns', 'exec', lan, 'ethtool', '-K', port, ...off]);
      }
      sh(['ip', '-n', lan, 'link', 'set', port, 'master', 'br0']);
      sh(['ip', '-n', lan, 'link', 'set', port, 'up']);
      sh(['ip', '-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
      sh(['ip', '-n', host.ns, 'link', 'set', 'eth0', 'up']);
      sh(['ip', '-n', host.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      sh(['tc', '-n', host.ns, 'qdisc', 'add', 'dev', 'eth0', ...tbf(host.uplinkBytesPerSec)]);
      sh(['tc', '-n', lan, 'qdisc', 'add', 'dev', port, ...tbf(host.downlinkBytesPerSec)]);
    });
  }

  /** `eth0`'s transmit counters in a host (what it sent into the bridge). */
  sent(host: LabHost): LinkCounters {
    const [link] = JSON.parse(sh(['ip', '-n', host.ns, '-s', '-j', 'link', 'show', 'eth0'])) as [
      { stats64: { tx: { bytes: number; packets: number } } },
    ];
    return { bytes: link.stats64.tx.bytes, packets: link.stats64.tx.packets };
  }

  /** Packets the host's uplink tbf dropped so far. */
  uplinkDrops(host: LabHost): number {
    const text = sh(['tc', '-n', host.ns, '-s', 'qdisc', 'show', 'dev', 'eth0']);
    return Number(/dropped (\d+)/.exec(text)?.[1] ?? 0);
  }

  /** Synchronous, so it also runs from a signal handler; idempotent. */
  destroy(): void {
    for (const name of this.created.splice(0).reverse()) {
      try {
        sh(['ip', 'netns', 'del', name]);
      } catch (error) {
        process.stderr.write(`lab: could not delete namespace ${name}: ${String(error)}\n`);
      }
    }
  }
}

/** Counters `after` minus `before`. */
export function counterDelta(before: LinkCounters, after: LinkCounters): LinkCounters {
  return { bytes: after.bytes - before.bytes, packets: after.packets - before.packets };
}

/** TCP payload bytes in a counter delta (headers of full-size frames off). */
export function payloadBytes(counters: LinkCounters): number {
  return counters.bytes - counters.packets * HEADER_BYTES_PER_PACKET;
}

/** What one finished command left. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** The processes a bench started; `stopAll` and `killAllNow` end exactly those. */
export class Processes {
  private readonly children: ChildProcess[] = [];

  /** `niceness` > 0 runs every child under `nice -n niceness` (the bench's own CPU comes first). */
  constructor(private readonly niceness = 0) {}

  spawn(
    ns: string | undefined,
    command: string,
    args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; log?: string; cwd?: string } = {},
  ): ChildProcess {
    const niced: [string, string[]] =
      this.niceness === 0
        ? [command, [...args]]
        : ['nice', ['-n', String(this.niceness), command, ...args]];
    const [file, argv] =
      ns === undefined ? niced : ['ip', ['netns', 'exec', ns, niced[0], ...niced[1]]];
    const fd = options.log === undefined ? undefined : openSync(options.log, 'a');
    const child = spawn(file, argv, {
      env: options.env ?? process.env,
      stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    if (fd !== undefined) closeSync(fd);
    this.children.push(child);
    child.once('exit', () => {
      const at = this.children.indexOf(child);
      if (at >= 0) this.children.splice(at, 1);
    });
    return child;
  }

  /** Runs to the end; resolves with its exit code, output and wall-clock seconds. */
  async run(
    ns: string | undefined,
    command: string,
    args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ): Promise<RunResult> {
    const started = performance.now();
    const child = this.spawn(ns, command, args, options);
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

  /** SIGTERM to one child; SIGKILL after 5 s. Resolves once it exited. */
  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((child) => this.stop(child)));
  }

  killAllNow(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}

let interrupted = false;

/** Whether SIGINT or SIGTERM stopped the run (what fails afterwards is the stop itself). */
export function wasInterrupted(): boolean {
  return interrupted;
}

/**
 * Runs `body` with cleanup on every way out: its end, an error, SIGINT or SIGTERM (then the
 * process exits 130 once `cleanup` finished, or after 8 s with `hardStop`).
 */
export async function withCleanup<T>(
  name: string,
  cleanup: () => Promise<void>,
  hardStop: () => void,
  body: () => Promise<T>,
): Promise<T> {
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    process.stderr.write(`\n${name}: ${signal}: stopping and removing what this run created\n`);
    const timer = setTimeout(() => {
      hardStop();
      process.exit(130);
    }, 8000);
    void cleanup().finally(() => {
      clearTimeout(timer);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body();
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of createReadStream(path, { highWaterMark: 4 * 2 ** 20 })) {
    hash.update(part as Buffer);
  }
  return hash.digest('hex');
}

/** Bits per second in Mbit/s, for printing. */
export function mbit(bytesPerSec: number): string {
  return ((bytesPerSec * 8) / 1e6).toFixed(0);
}
