/**
 * LAN discovery on UDP multicast (DESIGN.md decision 8; docs/protocol.md, "Discovery beacons").
 *
 * Theory of operation
 * - One `LanDiscovery` per pod and process. It owns one UDP socket, bound to `0.0.0.0:port` with
 *   `reuseAddr` so that several processes on one machine (and several instances in one process)
 *   share the port; it joins the multicast group on `interfaceAddress` and sends only there
 *   (`setMulticastInterface`), with TTL 1 (beacons never leave the LAN) and multicast loopback
 *   on, so peers on the same machine see each other. The pea-core `BeaconCodec` seals and opens
 *   the beacons; this class adds sockets, clocks and randomness, and decides nothing about the
 *   wire format.
 * - Defaults: group 239.255.80.65 (in the IPv4 organisation-local scope 239.255.0.0/16, RFC
 *   2365; 80.65 is ASCII "PA") and UDP port 9001, next to the peer TCP port 9000.
 * - Schedule: `start()` sends an `announce` (so peers learn of this device at once) and a
 *   `query` (so peers that are already up reply at once; a peer thus appears in one round trip
 *   plus the reply jitter, well under 100 ms on a LAN). It answers every `query` from another
 *   device with a `reply` after a random delay of 0-`replyJitterMsMax` ms, so N peers do not
 *   answer in one burst; queries that arrive while a reply is pending share it. It re-announces
 *   every `announceIntervalMs` (30 s), so restarted peers and anyone who missed a beacon catch up.
 * - Events: `peer` for every accepted beacon from another device of the pod, with the UDP source
 *   address and the TCP port from the beacon; `firstSeen` is true when this instance has not
 *   seen the device before at that address and port (a new or restarted peer), false for a
 *   repeat. Beacons of this device (multicast loopback) are ignored. `beacon:rejected` reports
 *   dropped datagrams (another pod's beacon, a replay, a stale clock) for diagnostics.
 *   `error` reports socket errors after `start()`, and failed sends; attach a listener.
 * - Trust: a beacon proves pod membership, not the source address (see beacon.ts). The peer
 *   link's XXpsk3 handshake authenticates the device; a `peer` event is a hint to dial.
 * - Clocks: the beacon timestamp and the replay window use the wall clock (`Date.now()`), since
 *   they are compared across machines.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import {
  BeaconCodec,
  DEVICE_ID_BYTES,
  PeapodError,
  equalBytes,
  type BeaconKind,
  type BeaconRejectReason,
  type CryptoProvider,
} from '@peapod/core';
import { createNodeCryptoProvider } from './node-crypto-provider.js';

/** Default multicast group of PeaPod discovery beacons. */
export const DISCOVERY_GROUP = '239.255.80.65';
/** Default UDP port of PeaPod discovery beacons (the peer TCP port is 9000). */
export const DISCOVERY_PORT = 9001;
/** Default period between re-announcements. */
export const DISCOVERY_ANNOUNCE_INTERVAL_MS = 30_000;
/** Default upper bound of the random delay before answering a query. */
export const DISCOVERY_REPLY_JITTER_MS_MAX = 50;

/** Options of a `LanDiscovery`. */
export interface LanDiscoveryOptions {
  /** The pod's 32-byte secret: only beacons of this pod are sent and accepted. */
  readonly podSecret: Uint8Array;
  /** This device's raw 32-byte Device ID. */
  readonly deviceId: Uint8Array;
  /** The TCP port this device accepts peer links on (announced in every beacon). */
  readonly peerPort: number;
  /** Multicast group (default 239.255.80.65). */
  readonly group?: string;
  /** UDP port (default 9001). */
  readonly port?: number;
  /** Address of the interface to join the group on and send from (default 127.0.0.1). */
  readonly interfaceAddress?: string;
  /** Period between re-announcements in ms (default 30 000). */
  readonly announceIntervalMs?: number;
  /** Upper bound of the random reply delay in ms (default 50). */
  readonly replyJitterMsMax?: number;
  /** Crypto provider (default: node:crypto). */
  readonly crypto?: CryptoProvider;
}

/** A pod member heard on the LAN. */
export interface DiscoveredPeer {
  /** Its raw 32-byte Device ID (format with `formatDeviceId`). */
  readonly deviceId: Uint8Array;
  /** The UDP source address of its beacon: where to dial. */
  readonly address: string;
  /** The TCP port it accepts peer links on. */
  readonly port: number;
  /** True when this instance had not seen the device at this address and port before. */
  readonly firstSeen: boolean;
  /** The kind of beacon it was heard by. */
  readonly kind: BeaconKind;
}

/** A datagram `LanDiscovery` dropped, and why. */
export interface RejectedBeacon {
  readonly reason: BeaconRejectReason;
  readonly detail: string;
  readonly address: string;
}

/** Events of a `LanDiscovery`. */
export interface LanDiscoveryEvents {
  peer: [DiscoveredPeer];
  'beacon:rejected': [RejectedBeacon];
  error: [Error];
}

/**
 * Finds the other devices of a pod on the LAN, and lets them find this one.
 * @example
 * const discovery = new LanDiscovery({ podSecret, deviceId, peerPort: 9000 });
 * discovery.on('peer', (peer) => console.log(formatDeviceId(peer.deviceId), peer.address));
 * discovery.on('error', (error) => console.error(error.message));
 * await discovery.start();
 * // ...
 * await discovery.close();
 */
export class LanDiscovery extends EventEmitter<LanDiscoveryEvents> {
  readonly group: string;
  readonly port: number;
  readonly interfaceAddress: string;
  private readonly deviceId: Uint8Array;
  private readonly peerPort: number;
  private readonly announceIntervalMs: number;
  private readonly replyJitterMsMax: number;
  private readonly codec: BeaconCodec;
  /** Device ID (hex) -> "address:port" last heard. */
  private readonly endpoints = new Map<string, string>();
  private socket: Socket | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private replyTimer: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'closed' = 'new';

  /**
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT naming the option if the pod secret or
   *   Device ID is not 32 bytes, or a port or interval is out of range.
   */
  constructor(options: LanDiscoveryOptions) {
    super();
    this.group = options.group ?? DISCOVERY_GROUP;
    this.port = options.port ?? DISCOVERY_PORT;
    this.interfaceAddress = options.interfaceAddress ?? '127.0.0.1';
    this.deviceId = options.deviceId.slice();
    this.peerPort = options.peerPort;
    this.announceIntervalMs = options.announceIntervalMs ?? DISCOVERY_ANNOUNCE_INTERVAL_MS;
    this.replyJitterMsMax = options.replyJitterMsMax ?? DISCOVERY_REPLY_JITTER_MS_MAX;
    if (this.deviceId.length !== DEVICE_ID_BYTES) {
      invalid('deviceId', `must be ${DEVICE_ID_BYTES} bytes, got ${this.deviceId.length}`);
    }
    checkInteger('port', this.port, 1, 0xffff);
    checkInteger('peerPort', this.peerPort, 1, 0xffff);
    checkInteger('announceIntervalMs', this.announceIntervalMs, 1, 2 ** 31 - 1);
    checkInteger('replyJitterMsMax', this.replyJitterMsMax, 0, 2 ** 31 - 1);
    this.codec = new BeaconCodec({
      crypto: options.crypto ?? createNodeCryptoProvider(),
      podSecret: options.podSecret,
    });
  }

  /**
   * Binds the socket, joins the group, sends an announce and a query, and starts the
   * re-announce timer.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE if called twice or after `close()`.
   * @throws Error from node:dgram if the port cannot be bound or the group not joined (for
   *   example EADDRINUSE, or EADDRNOTAVAIL for an interface address this machine lacks).
   */
  async start(): Promise<void> {
    if (this.state !== 'new') {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `LanDiscovery is ${this.state}`);
    }
    this.state = 'running';
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = socket;
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(this.port, '0.0.0.0', () => {
          socket.off('error', reject);
          resolve();
        });
      });
      socket.addMembership(this.group, this.interfaceAddress);
      socket.setMulticastInterface(this.interfaceAddress);
      socket.setMulticastLoopback(true);
      socket.setMulticastTTL(1);
    } catch (error) {
      this.state = 'closed';
      socket.close();
      throw error;
    }
    socket.on('error', (error) => this.emit('error', error));
    socket.on('message', (bytes, remote) => this.onMessage(bytes, remote));
    this.send('announce');
    this.send('query');
    this.announceTimer = setInterval(() => this.send('announce'), this.announceIntervalMs);
  }

  /** Sends a query now; peers reply within their jitter and appear as `peer` events. */
  query(): void {
    this.send('query');
  }

  /** Stops the timers and closes the socket. Safe to call more than once. */
  async close(): Promise<void> {
    const socket = this.socket;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    clearInterval(this.announceTimer);
    clearTimeout(this.replyTimer);
    this.replyTimer = undefined;
    if (!wasRunning || socket === undefined) return;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private send(kind: BeaconKind): void {
    const socket = this.socket;
    if (this.state !== 'running' || socket === undefined) return;
    const bytes = this.codec.encode({
      kind,
      deviceId: this.deviceId,
      peerPort: this.peerPort,
      timestampMs: Date.now(),
    });
    socket.send(bytes, this.port, this.group, (error) => {
      if (error !== null && this.state === 'running') this.emit('error', error);
    });
  }

  private onMessage(bytes: Buffer, remote: RemoteInfo): void {
    const result = this.codec.decode(bytes, Date.now());
    if (!result.ok) {
      this.emit('beacon:rejected', {
        reason: result.reason,
        detail: result.detail,
        address: remote.address,
      });
      return;
    }
    const { beacon } = result;
    if (equalBytes(beacon.deviceId, this.deviceId)) return; // our own, looped back
    if (beacon.kind === 'query' && this.replyTimer === undefined) {
      this.replyTimer = setTimeout(
        () => {
          this.replyTimer = undefined;
          this.send('reply');
        },
        randomInt(this.replyJitterMsMax + 1),
      );
    }
    const key = Buffer.from(beacon.deviceId).toString('hex');
    const endpoint = `${remote.address}:${beacon.peerPort}`;
    const firstSeen = this.endpoints.get(key) !== endpoint;
    this.endpoints.set(key, endpoint);
    this.emit('peer', {
      deviceId: beacon.deviceId,
      address: remote.address,
      port: beacon.peerPort,
      firstSeen,
      kind: beacon.kind,
    });
  }
}

function invalid(name: string, problem: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `${name}: ${problem}`);
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    invalid(name, `must be an integer in ${min}-${max}, got ${value}`);
  }
}
