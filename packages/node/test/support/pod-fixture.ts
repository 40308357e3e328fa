/**
 * A pod of real daemons for tests: each a separate `peapod daemon` process with its own data
 * directory, ports and origin source address (127.0.0.11, .12, ...), all on one fresh discovery
 * port so parallel test files do not see each other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getPeers, type ApiTarget } from '../../src/api-client.js';
import { CLI_PATH, freeUdpPort, spawnLocalDaemon, waitFor } from '../../src/local-pod.js';
import { createPod } from '../../src/pod.js';

export interface DaemonProcess {
  readonly index: number;
  readonly home: string;
  readonly api: ApiTarget;
  readonly peerPort: number;
  readonly child: ChildProcess;
  /** stdout and stderr so far (pino logs at info level and above). */
  readonly log: () => string;
}

/** How a `peapod get` process ended, and what it printed. */
export interface GetResult {
  readonly status: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface PodOptions {
  readonly daemons: number;
  /** Extra daemon flags by index (e.g. the test-only corruption switch). */
  readonly flags?: Readonly<Record<number, readonly string[]>>;
  /** Use this pod secret instead of a new one. */
  readonly secret?: Uint8Array;
  readonly discoveryPort?: number;
  readonly root?: string;
  /**
   * Daemons (by index) that keep the default destination policy: they refuse to fetch for
   * peers from the loopback test origins. The others get `--allow-private-origins`.
   */
  readonly publicOriginsOnly?: readonly number[];
}

export class PodFixture {
  readonly daemons: DaemonProcess[] = [];

  private constructor(
    readonly root: string,
    readonly secret: Uint8Array,
    readonly discoveryPort: number,
    private readonly ownsRoot: boolean,
  ) {}

  static async start(options: PodOptions): Promise<PodFixture> {
    const root = options.root ?? (await mkdtemp(join(tmpdir(), 'peapod-test-')));
    const pod = new PodFixture(
      root,
      options.secret ?? createPod(),
      options.discoveryPort ?? (await freeUdpPort()),
      options.root === undefined,
    );
    for (let i = 0; i < options.daemons; i++) {
      await pod.add(options.flags?.[i] ?? [], !(options.publicOriginsOnly ?? []).includes(i));
    }
    return pod;
  }

  async add(flags: readonly string[] = [], allowPrivateOrigins = true): Promise<DaemonProcess> {
    const index = this.daemons.length;
    const { home, api, peerPort, child } = await spawnLocalDaemon({
      root: this.root,
      index,
      secret: this.secret,
      discoveryPort: this.discoveryPort,
      logLevel: 'info',
      flags,
      stdio: 'pipe',
      allowPrivateOrigins,
    });
    let log = '';
    child.stdout?.on('data', (part: Buffer) => (log += part.toString()));
    child.stderr?.on('data', (part: Buffer) => (log += part.toString()));
    const daemon: DaemonProcess = {
      index,
      home,
      api,
      peerPort,
      child,
      log: () => log,
    };
    this.daemons.push(daemon);
    await waitFor(() => getPeers(daemon.api).then(() => true), 10_000, `daemon ${index + 1} API`);
    return daemon;
  }

  /** Waits until daemon `index` has `count` connected peers; returns the time it took. */
  async connected(index: number, count: number, timeoutMs = 15_000): Promise<number> {
    const started = performance.now();
    await waitFor(
      async () =>
        (await getPeers(this.daemons[index]!.api)).peers.filter((p) => p.state === 'connected')
          .length >= count,
      timeoutMs,
      `daemon ${index + 1} to see ${count} connected peers`,
    );
    return performance.now() - started;
  }

  /**
   * Runs `peapod get` as a process against daemon `index` (asynchronously: the origin may live
   * in the test process); stdout comes back as bytes.
   */
  get(index: number, args: readonly string[]): Promise<GetResult> {
    return this.startGet(index, args).done;
  }

  /**
   * Like `get`, but also hands back the child process (to interrupt it); `done` resolves when
   * it exited, with `status` -1 and `signal` set when a signal ended it.
   */
  startGet(
    index: number,
    args: readonly string[],
  ): { child: ChildProcess; done: Promise<GetResult> } {
    const child = spawn(process.execPath, [CLI_PATH, 'get', ...args], {
      env: { ...process.env, PEAPOD_HOME: this.daemons[index]!.home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (part: Buffer) => stdout.push(part));
    child.stderr!.on('data', (part: Buffer) => (stderr += part.toString()));
    const done = new Promise<GetResult>((resolve) =>
      child.once('close', (code, signal) =>
        resolve({ status: code ?? -1, signal, stdout: Buffer.concat(stdout), stderr }),
      ),
    );
    return { child, done };
  }

  async stop(): Promise<void> {
    for (const daemon of this.daemons) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill('SIGTERM');
        await new Promise((resolve) => daemon.child.once('exit', resolve));
      }
    }
    if (this.ownsRoot) await rm(this.root, { recursive: true, force: true });
  }
}
