/**
 * Devices of DIFFERENT pods meeting through gossip, for the multi-process tests: each daemon is
 * a separate `peapod daemon` process with its own data directory, its own pod (its own
 * `peapod init`, so no two of them share a pod secret: every link between them is a stranger
 * link) and its own discovery port, all on loopback. A real tracker (@peapod/tracker's
 * `createTracker`, SQLite in the test's directory) can be started, stopped and started again
 * on the same port.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDeviceId, toHex } from '@peapod/core';
import { createTracker, type Tracker } from '@peapod/tracker';
import { getPeers, type ApiTarget, type PeersAnswer } from '../../src/api-client.js';
import { DataDir } from '../../src/data-dir.js';
import type { GossipPeerRow } from '../../src/gossip-service.js';
import { freeUdpPort, spawnLocalDaemon, waitFor } from '../../src/local-pod.js';
import { createPod } from '../../src/pod.js';

export interface NetDaemon {
  readonly name: string;
  /** 0-based; also picks its origin source address 127.0.0.(11 + index). */
  readonly index: number;
  readonly home: string;
  readonly api: ApiTarget;
  readonly peerPort: number;
  /** Its own discovery port (its data directory's name holds it). */
  readonly discoveryPort: number;
  /** Formatted, as `peapod peers` prints Device IDs. */
  readonly deviceId: string;
  /** In hex, as fetch summaries name sources. */
  readonly deviceIdHex: string;
  readonly broadcast: boolean;
  readonly flags: readonly string[];
  readonly child: ChildProcess;
  /** stdout and stderr so far. */
  readonly log: () => string;
}

export class GossipNet {
  readonly daemons: NetDaemon[] = [];
  private tracker: Tracker | undefined;
  private trackerPort = 0;

  private constructor(readonly root: string) {}

  static async create(): Promise<GossipNet> {
    return new GossipNet(await mkdtemp(join(tmpdir(), 'peapod-gossip-')));
  }

  /** Starts the tracker (again on its first port, after `stopTracker`); returns its URL. */
  async startTracker(): Promise<string> {
    this.tracker = createTracker({
      db: join(this.root, 'tracker.db'),
      // Every daemon here speaks from 127.0.0.1: per-address limits would count them as one.
      rateLimits: { addressRatePerSecond: 0, keyRatePerSecond: 0 },
    });
    const url = await this.tracker.listen(this.trackerPort, '127.0.0.1');
    this.trackerPort = Number(new URL(url).port);
    return url;
  }

  get trackerUrl(): string {
    return `http://127.0.0.1:${this.trackerPort}`;
  }

  async stopTracker(): Promise<void> {
    await this.tracker?.close();
    this.tracker = undefined;
  }

  /**
   * Starts a device in a pod of its own: `peapod daemon --name NAME` plus `flags` (gossip flags:
   * --tracker, --broadcast or --silent, --peer, ...).
   */
  async add(name: string, flags: readonly string[]): Promise<NetDaemon> {
    const index = this.daemons.length;
    const daemon = await this.spawn(name, index, flags, undefined, await freeUdpPort());
    this.daemons.push(daemon);
    return daemon;
  }

  /** Stops a daemon (SIGTERM, waiting for its exit). */
  async stopDaemon(daemon: NetDaemon): Promise<void> {
    const { child } = daemon;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  /** Starts a stopped daemon again with its data directory and peer port; `flags` replace its. */
  async restart(daemon: NetDaemon, flags: readonly string[] = daemon.flags): Promise<NetDaemon> {
    await this.stopDaemon(daemon);
    const again = await this.spawn(
      daemon.name,
      daemon.index,
      flags,
      daemon.peerPort,
      daemon.discoveryPort,
    );
    this.daemons[daemon.index] = again;
    return again;
  }

  /** `GET /api/peers` of a daemon (what `peapod peers --json` prints). */
  peers(daemon: NetDaemon): Promise<PeersAnswer> {
    return getPeers(daemon.api);
  }

  /** The gossip rows a daemon shows. */
  async gossipRows(daemon: NetDaemon): Promise<readonly GossipPeerRow[]> {
    return (await this.peers(daemon)).gossip?.peers ?? [];
  }

  /** Waits until `daemon` shows a gossip row for each of `others` that passes `check`. */
  async learns(
    daemon: NetDaemon,
    others: readonly NetDaemon[],
    timeoutMs = 30_000,
    check: (row: GossipPeerRow, other: NetDaemon) => boolean = () => true,
  ): Promise<void> {
    await waitFor(
      async () => {
        const rows = await this.gossipRows(daemon);
        return others.every((other) => {
          const row = rows.find((r) => r.deviceId === other.deviceId);
          return row !== undefined && check(row, other);
        });
      },
      timeoutMs,
      `${daemon.name} to learn ${others.map((o) => o.name).join(', ')}\n${daemon.log().slice(-3000)}`,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.daemons.map((daemon) => this.stopDaemon(daemon)));
    await this.stopTracker();
    await rm(this.root, { recursive: true, force: true });
  }

  private async spawn(
    name: string,
    index: number,
    flags: readonly string[],
    peerPort: number | undefined,
    discoveryPort: number,
  ): Promise<NetDaemon> {
    const {
      home,
      api,
      child,
      peerPort: port,
    } = await spawnLocalDaemon({
      root: this.root,
      index,
      secret: (await this.podOf(index)) ?? createPod(), // each device its own pod
      discoveryPort,
      logLevel: 'debug',
      flags: [
        '--name',
        name,
        ...(peerPort === undefined ? [] : ['--peer-port', String(peerPort)]),
        // Every daemon of this net is on 127.0.0.1: learnt loopback addresses must be dialled.
        ...(flags.includes('--no-private-peers') ? [] : ['--allow-private-peers']),
        ...flags.filter((flag) => flag !== '--no-private-peers'),
      ],
      stdio: 'pipe',
    });
    const dir = await DataDir.open(home);
    const identity = await dir.loadIdentity();
    const daemon: NetDaemon = {
      name,
      index,
      home,
      api,
      peerPort: peerPort ?? port,
      discoveryPort,
      deviceId: formatDeviceId(identity.deviceId),
      deviceIdHex: toHex(identity.deviceId),
      broadcast: flags.includes('--broadcast'),
      flags,
      child,
      log: () => text,
    };
    let text = '';
    child.stdout?.on('data', (part: Buffer) => (text += part.toString()));
    child.stderr?.on('data', (part: Buffer) => (text += part.toString()));
    await waitFor(() => getPeers(api).then(() => true), 15_000, `${name}'s API`);
    return daemon;
  }

  /** The pod secret a restarted device already has (undefined for a new one). */
  private async podOf(index: number): Promise<Uint8Array | undefined> {
    const existing = this.daemons[index];
    if (existing === undefined) return undefined;
    return (await DataDir.open(existing.home)).readPodSecret();
  }
}
