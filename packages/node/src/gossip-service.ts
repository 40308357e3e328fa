/**
 * The daemon's side of gossip beyond the pod (docs/guide.md, "Beyond one LAN"): the settings
 * `--tracker`, `--broadcast`/`--silent`, `--public-address` and `--peer` turned into core inputs,
 * trackers, and the persisted peer table. The protocol itself (who is dialled, what is relayed,
 * what is accepted) is the core's gossip engine; this module only carries facts to it and
 * keeps what it learnt.
 *
 * Theory of operation
 * - This device's gossip self (`GossipSelf`): broadcast or silent, its listening port, its name,
 *   and, only when broadcasting, the host strangers dial: `--public-address`, else the address a
 *   tracker saw its requests come from (`observedAddress`), else the bind address when it is not
 *   a wildcard. A change goes to the core as `gossip-self` and makes every tracker re-register.
 * - Sources of peers, each a list of signed records handed to the core (`gossip-records`),
 *   which verifies every one: the persisted table at start (source 'cache'), each tracker's
 *   discover answer (source 'tracker', tracker-link.ts). `--peer HOST:PORT` is a stranger to
 *   dial (`dial-stranger`), redialled with backoff until a link to it has come up once; from
 *   then on the engine keeps its links from its own table.
 * - The core's `gossip:peer` events keep `peers.db` (peer-store.ts): learned/updated rows are
 *   written with the engine's last-heard time (as wall clock), expired/left rows deleted. Only
 *   records are stored, and the engine keeps records of broadcasting devices alone; a silent
 *   device that linked in is a row of the engine's table without one, never of peers.db. A record learnt from the cache is
 *   not rewritten (it would look freshly heard). On stop the engine's last-heard times and
 *   scores are written once more.
 * - `rows()`: the gossip peers of `peapod peers`, from the engine's snapshot. A peer's address
 *   is shown only when its own signed record carries one (it broadcasts): the IP-sharing rule
 *   holds in this output as everywhere, since records are the only place addresses come from.
 * The tracker signer is the device key: only this device can register or remove itself.
 */
import { join } from 'node:path';
import {
  buildPeerRecord,
  Capability,
  decodePeerRecord,
  formatDeviceId,
  toHex,
  type CoreInput,
  type CryptoProvider,
  type GossipEvent,
  type GossipPeerSnapshot,
  type GossipSelf,
  type GossipSource,
  type KeyPair,
} from '@peapod/core';
import { TrackerClient } from '@peapod/tracker';
import type { Logger } from 'pino';
import { DataDirFiles } from './data-dir.js';
import { PeerStore } from './peer-store.js';
import { backoffMs, TrackerLink, type TrackerStatus } from './tracker-link.js';
import { StrangerDialPolicy, type DialVerdict, type StrangerDialOrder } from './dial-policy.js';

/** The gossip settings of `peapod daemon` (data-dir.ts has their flags and variables). */
export interface GossipSettingsOfDaemon {
  readonly trackers: readonly string[];
  readonly broadcast: boolean;
  readonly publicAddress: string | undefined;
  /** `--peer` strangers to dial at start. */
  readonly peers: readonly { readonly host: string; readonly port: number }[];
  /**
   * `--allow-private-peers`: dial gossip- and tracker-learnt addresses that are loopback,
   * private or link-local too (default false: public addresses only, dial-policy.ts).
   */
  readonly allowPrivatePeers?: boolean;
}

/** What a record advertises to strangers: content by ID and gossip, never pod services. */
export const STRANGER_CAPABILITIES = Capability.serveChunks | Capability.gossip;

/** A tracker request gives up after this long (and so does the unregister on stop). */
const TRACKER_TIMEOUT_MS = 5_000;

/** True when any gossip setting asks for gossip. */
export function gossipEnabled(settings: GossipSettingsOfDaemon): boolean {
  return settings.trackers.length > 0 || settings.peers.length > 0 || settings.broadcast;
}

/** A row of `peapod peers`' gossip section (`GET /api/peers`, `gossip.peers`). */
export interface GossipPeerRow {
  readonly deviceId: string;
  readonly name: string;
  readonly source: GossipSource;
  /** When it was last heard from, directly or through gossip (ISO 8601). */
  readonly lastHeard: string;
  /** 0..1, availability and performance (higher is better). */
  readonly score: number;
  /** 'pod' for a member of this device's pod, 'stranger' otherwise. */
  readonly trust: 'pod' | 'stranger';
  readonly broadcast: boolean;
  /** HOST:PORT from its own signed record: only a broadcasting peer has one. */
  readonly address?: string;
  /** A gossip link to it is open now. */
  readonly linked: boolean;
}

/** The gossip part of `GET /api/peers`. */
export interface GossipAnswer {
  readonly broadcast: boolean;
  /** What this device's record tells strangers to dial; empty when silent. */
  readonly addresses: readonly string[];
  readonly listenPort: number;
  readonly trackers: readonly TrackerStatus[];
  readonly peers: readonly GossipPeerRow[];
}

export interface GossipServiceOptions {
  readonly settings: GossipSettingsOfDaemon;
  readonly identity: KeyPair;
  readonly crypto: CryptoProvider;
  readonly deviceName: string;
  readonly bindAddress: string;
  readonly listenPort: number;
  readonly dataDir: string | undefined;
  readonly logger: Logger;
  readonly feed: (input: CoreInput) => void;
  /** The engine's table (the core's). */
  readonly snapshot: () => readonly GossipPeerSnapshot[];
  /** Whether a Device ID (hex) is a member of this device's pod. */
  readonly isPodMember: (deviceIdHex: string) => boolean;
}

/** A `--peer` stranger: redialled until a link to it has come up once. */
interface StrangerDial {
  readonly host: string;
  readonly port: number;
  failures: number;
  linked: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class GossipService {
  private store: PeerStore | undefined;
  private readonly trackers: TrackerLink[];
  private readonly strangers: StrangerDial[];
  private listenPort: number;
  private observedAddress: string | undefined;
  private stopped = false;
  private readonly dials: StrangerDialPolicy;

  constructor(private readonly options: GossipServiceOptions) {
    this.listenPort = options.listenPort;
    this.dials = new StrangerDialPolicy({
      allowPrivate: options.settings.allowPrivatePeers === true,
      userGiven: options.settings.peers,
    });
    const { identity, crypto } = options;
    const signer = {
      publicKey: identity.publicKey,
      sign: (message: Uint8Array) => crypto.ed25519Sign(identity.secretKey, message),
    };
    this.trackers = options.settings.trackers.map(
      (url) =>
        new TrackerLink({
          client: new TrackerClient(url, signer, { timeoutMs: TRACKER_TIMEOUT_MS }),
          ownRecord: () => this.ownRecord(),
          onRecords: (records) => this.feedRecords(records, 'tracker'),
          onObservedAddress: (address) => this.observed(address),
          logger: options.logger,
        }),
    );
    this.strangers = options.settings.peers.map(({ host, port }) => ({
      host,
      port,
      failures: 0,
      linked: false,
      timer: undefined,
    }));
  }

  /** This device as its record describes it now (the core's `gossip.self`). */
  self(): GossipSelf {
    const { settings, deviceName } = this.options;
    return {
      broadcast: settings.broadcast,
      bootstrap: settings.broadcast && settings.trackers.length > 0,
      addresses: settings.broadcast ? this.addresses() : [],
      listenPort: this.listenPort,
      deviceName,
      capabilities: STRANGER_CAPABILITIES,
    };
  }

  /**
   * Opens the peer table and feeds it to the core, dials the `--peer` strangers and starts the
   * trackers. `listenPort` is the port the listener got (the configured one may be 0).
   */
  async start(listenPort: number): Promise<void> {
    const { dataDir, logger, crypto, settings } = this.options;
    if (listenPort !== this.listenPort) {
      this.listenPort = listenPort;
      this.selfChanged();
    }
    if (dataDir !== undefined) {
      const opened = await PeerStore.open(join(dataDir, DataDirFiles.peerTable), { crypto });
      if (opened.movedAside !== undefined) logger.warn(opened.movedAside);
      this.store = opened.store;
      const records = opened.store.rows().map((row) => row.record);
      if (records.length > 0) {
        logger.info({ peers: records.length }, 'gossip peers loaded from peers.db');
        this.feedRecords(records, 'cache');
      }
    }
    for (const stranger of this.strangers) this.dialStranger(stranger);
    for (const tracker of this.trackers) tracker.start();
    if (!settings.broadcast && settings.publicAddress !== undefined) {
      logger.warn(
        '--public-address is ignored without --broadcast: a silent address is never given out',
      );
    }
    if (settings.broadcast && this.trackers.length === 0 && this.addresses().length === 0) {
      logger.warn(
        'broadcasting, but no address to give out: the daemon binds a wildcard address and has no tracker; add --public-address HOST',
      );
    }
    logger.info(
      {
        broadcast: settings.broadcast,
        addresses: this.self().addresses,
        trackers: settings.trackers,
        peers: this.strangers.map(({ host, port }) => hostPort(host, port)),
      },
      settings.broadcast
        ? 'gossip on: broadcasting (strangers may learn this address)'
        : 'gossip on: silent (this address is never passed on)',
    );
  }

  /** Unregisters from the trackers, writes the engine's last view, closes the table. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const stranger of this.strangers) clearTimeout(stranger.timer);
    await Promise.all(this.trackers.map((tracker) => tracker.stop()));
    const store = this.store;
    if (store === undefined) return;
    this.store = undefined;
    const wallNow = Date.now();
    const monoNow = performance.now();
    for (const peer of this.options.snapshot()) {
      store.heard(peer.deviceIdHex, Math.round(wallNow - (monoNow - peer.lastHeardMs)), peer.score);
    }
    store.close();
  }

  /** The core's gossip events: the persisted table follows the engine's. */
  onEvent(event: GossipEvent): void {
    const { logger } = this.options;
    if (event.type === 'gossip:rejected') {
      logger.debug(
        { linkId: event.linkId, rejection: event.rejection, detail: event.detail },
        'gossip frame rejected',
      );
      return;
    }
    if (event.type !== 'gossip:peer') return;
    const hex = toHex(event.deviceId);
    logger.debug(
      { peer: hex.slice(0, 16), change: event.change, source: event.source },
      'gossip peer',
    );
    const store = this.store;
    if (store === undefined) return;
    if (event.change === 'expired' || event.change === 'left') {
      store.remove(hex);
      return;
    }
    if (event.record === undefined || event.source === 'cache') return;
    // The engine's view: a tracker's record was heard when it was issued, not when it arrived.
    const peer = this.options.snapshot().find((entry) => entry.deviceIdHex === hex);
    const heardAtMs =
      peer === undefined
        ? Date.now()
        : Date.now() - Math.max(0, performance.now() - peer.lastHeardMs);
    if (!store.upsert(event.record, event.source, Math.round(heardAtMs), peer?.score ?? 0)) {
      logger.warn(
        { peer: hex.slice(0, 16) },
        'the core handed on a peer record that does not verify',
      );
    }
  }

  /**
   * A link came up (`remoteAddress` as the host reports it, `address:port` without brackets):
   * a `--peer` stranger reached stops being redialled.
   */
  onLinkUp(remoteAddress: string, direction: 'inbound' | 'outbound'): void {
    if (direction !== 'outbound') return;
    this.dials.linked(remoteAddress);
    for (const stranger of this.strangers) {
      if (`${stranger.host}:${stranger.port}` === remoteAddress) {
        stranger.linked = true;
        clearTimeout(stranger.timer);
      }
    }
  }

  /** A dial failed: a `--peer` stranger not reached yet is tried again later. */
  onDialFailed(address: string, port: number, detail: string): void {
    for (const stranger of this.strangers) {
      if (stranger.linked || stranger.host !== address || stranger.port !== port) continue;
      stranger.failures += 1;
      const retryMs = backoffMs(stranger.failures);
      if (stranger.failures === 1) {
        this.options.logger.warn(
          { peer: hostPort(address, port), error: detail, retryInMs: retryMs },
          'could not reach the --peer device; retrying with backoff',
        );
      }
      clearTimeout(stranger.timer);
      stranger.timer = setTimeout(() => this.dialStranger(stranger), retryMs);
      stranger.timer.unref();
    }
  }

  /**
   * The host asks before each dial (NodeHost `dialPolicy`): learnt stranger addresses must be
   * public and are capped per IP address; pod peers and `--peer` are dialled as given.
   */
  dialPolicy(dial: StrangerDialOrder): DialVerdict {
    const verdict = this.dials.check(dial);
    if (verdict.refused !== undefined) {
      this.options.logger.debug({ refusal: verdict.refused }, 'stranger dial refused');
    }
    return verdict;
  }

  /** Stranger dials the address policy refused since start. */
  get refusedDials(): number {
    return this.dials.refusedCount;
  }

  /** The gossip section of `GET /api/peers`. */
  answer(): GossipAnswer {
    const self = this.self();
    return {
      broadcast: self.broadcast,
      addresses: self.addresses,
      listenPort: self.listenPort,
      trackers: this.trackers.map((tracker) => tracker.status()),
      peers: this.rows(),
    };
  }

  /** The engine's table as `peapod peers` shows it, best score first. */
  rows(): GossipPeerRow[] {
    const wallNow = Date.now();
    const monoNow = performance.now();
    return this.options
      .snapshot()
      .map((peer) => {
        const decoded = peer.record === undefined ? undefined : decodePeerRecord(peer.record);
        const record = decoded?.ok === true ? decoded.record : undefined;
        // The address comes only from the peer's own record, and only when it broadcasts.
        const host = record?.broadcast === true ? record.addresses[0] : undefined;
        const row: GossipPeerRow = {
          deviceId: formatDeviceId(peer.deviceId),
          name: peer.deviceName,
          source: peer.source,
          lastHeard: new Date(wallNow - Math.max(0, monoNow - peer.lastHeardMs)).toISOString(),
          score: Math.round(peer.score * 1000) / 1000,
          trust: this.options.isPodMember(peer.deviceIdHex) ? 'pod' : 'stranger',
          broadcast: record?.broadcast === true,
          ...(host === undefined ? {} : { address: hostPort(host, record!.listenPort) }),
          linked: peer.linked,
        };
        return row;
      })
      .sort((a, b) => b.score - a.score || a.deviceId.localeCompare(b.deviceId));
  }

  /** This device's signed record for a tracker registration, when it broadcasts somewhere. */
  private ownRecord(): Uint8Array | undefined {
    const self = this.self();
    if (!self.broadcast || self.addresses.length === 0 || self.listenPort === 0) return undefined;
    return buildPeerRecord(this.options.crypto, this.options.identity, {
      issuedAtMs: Date.now(),
      broadcast: true,
      bootstrap: true,
      leaving: false,
      capabilities: self.capabilities,
      listenPort: self.listenPort,
      deviceName: self.deviceName,
      addresses: self.addresses,
    });
  }

  /** Where strangers should dial this device (used only when it broadcasts). */
  private addresses(): string[] {
    const { publicAddress } = this.options.settings;
    const { bindAddress } = this.options;
    if (publicAddress !== undefined) return [publicAddress];
    if (this.observedAddress !== undefined) return [this.observedAddress];
    return bindAddress === '0.0.0.0' || bindAddress === '::' ? [] : [bindAddress];
  }

  /** A tracker saw this device at `address`. */
  private observed(address: string): void {
    const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    if (plain === this.observedAddress || plain === '') return;
    const before = this.addresses().join(',');
    this.observedAddress = plain;
    const { settings, logger } = this.options;
    if (!settings.broadcast || this.addresses().join(',') === before) return;
    logger.info({ address: plain }, 'public address learnt from the tracker');
    this.selfChanged();
  }

  /** The record changed: the core gossips a PEER_UPDATE, trackers re-register. */
  private selfChanged(): void {
    if (this.stopped) return;
    this.options.feed({
      type: 'gossip-self',
      nowMs: performance.now(),
      wallClockMs: Date.now(),
      self: this.self(),
    });
    for (const tracker of this.trackers) tracker.refresh();
  }

  private feedRecords(records: Uint8Array[], source: 'tracker' | 'cache'): void {
    if (this.stopped) return;
    this.options.feed({
      type: 'gossip-records',
      nowMs: performance.now(),
      wallClockMs: Date.now(),
      records,
      source,
    });
  }

  private dialStranger(stranger: StrangerDial): void {
    if (this.stopped || stranger.linked) return;
    this.options.feed({
      type: 'dial-stranger',
      nowMs: performance.now(),
      address: stranger.host,
      port: stranger.port,
    });
  }
}

/** `host:port`, with an IPv6 host in brackets, as a person types it. */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
