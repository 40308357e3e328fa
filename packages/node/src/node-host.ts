/**
 * The Node host: runs one pea-core `Core` over real TCP sockets, on the core's `HostDriver`
 * (host-driver.ts: feed an input, drain `poll()`, arm one timer; an input that arrives while
 * draining is queued, never re-entered). `perform` is this package's one switch over every
 * core output kind, ending in `unreachableOutput`: a new output kind does not compile until it
 * is handled here.
 *
 * It owns: the TCP listener, one socket per link (link IDs are assigned here), the dials the
 * core's peer table orders (`connect` -> a socket, then `link-opened` with its `dialId`, or
 * `dial-failed`), the one timer, and the monotonic clock (`performance.now()`). It decides
 * nothing about the protocol. Transfer outputs go to the adapters the daemon passes
 * (`transfers`, io-adapters.ts): an origin fetcher, a delivery adapter (the download jobs'
 * sinks) and a chunk store; each answers through `input`, which any code may call at any time.
 * Without adapters the core does not run transfers and transfer frames reach the user as
 * `peer:message` events (link-level tools, tests, benches). Users get typed events
 * (`peer:connect`, `peer:disconnect`, `peer:message`, `peer:rtt`, `dial:failed`) and can send
 * messages on ready links. TCP links use the byte-stream framing (`framing: 'stream'`).
 *
 * The accept path: the listener accepts sockets paused, and the inbound guard (inbound-guard.ts)
 * decides before any byte is read whether this device spends handshake crypto on one; a refused
 * socket is reset at once and never reaches the core. An admitted one holds a half-open slot until
 * `peer:connect` or its close, and is destroyed if its handshake outlives the guard's deadline.
 * `peer:refused` reports each refusal, and each handshake that failed because the remote does
 * not hold the pod secret (in either direction); `inboundStats` counts what the guard decided.
 */
import { EventEmitter } from 'node:events';
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { randomInt } from 'node:crypto';
import {
  Core,
  HostDriver,
  ReasonCode,
  unreachableOutput,
  type CoreEvent,
  type CoreInput,
  type CoreOptions,
  type CoreOutput,
  type WireMessage,
} from '@peapod/core';
import { throttleRead, ThrottledWriter, writeBatch } from './link-throttle.js';
import { createNodeCryptoProvider } from './node-crypto-provider.js';
import { peerBucket, type BandwidthLimits } from './rate-limit.js';
import { InboundGuard, type GuardRefusal, type InboundGuardLimits } from './inbound-guard.js';
import { NO_TRANSFERS, type TransferAdapters } from './transfer-adapters.js';
import type { DialVerdict } from './dial-policy.js';

export type { TransferAdapters } from './transfer-adapters.js';

export interface NodeHostOptions extends Omit<CoreOptions, 'crypto' | 'seed' | 'handleTransfers'> {
  /** Seed for the core's PRNG; random by default. */
  readonly seed?: number;
  readonly crypto?: CoreOptions['crypto'];
  /**
   * Builds the adapters that carry out the core's transfer outputs, given the host's `input`
   * to answer through. Absent: the core runs with `handleTransfers: false` and transfer frames
   * reach the user as `peer:message` events (link-level tools and tests).
   */
  readonly transfers?: (feed: (input: CoreInput) => void) => TransferAdapters;
  /** Bandwidth limits for peer links (LAN peers exempt unless `limitLan`). */
  readonly limits?: BandwidthLimits;
  /**
   * Limits on incoming handshakes (inbound-guard.ts; defaults in `InboundGuardDefaults`), or
   * false for none: only for tools that open many links from one address on purpose (benches).
   */
  readonly inboundGuard?: Partial<InboundGuardLimits> | false;
  /**
   * Asked before each `connect` output opens its socket (dial-policy.ts): a refusal fails the
   * dial (`dial-failed` and `dial:failed` with its reason), a `lookup` resolves DNS names.
   */
  readonly dialPolicy?: (dial: Extract<CoreOutput, { type: 'connect' }>) => DialVerdict;
}

/**
 * A connection refused or a handshake that failed for want of the pod secret. `cause`:
 * `pod-secret` (the handshake failed: the remote does not hold this pod's secret), or the guard's
 * refusal of an inbound connection before any byte was read (`rate`, `busy`, `half-open`,
 * `half-open-address`, see inbound-guard.ts).
 */
export interface PeerRefusedEvent {
  readonly type: 'peer:refused';
  /** The remote's IP address (no port). */
  readonly address: string;
  readonly direction: 'inbound' | 'outbound';
  readonly cause: 'pod-secret' | GuardRefusal;
  /** The core's detail for `pod-secret`; the guard's limit otherwise. */
  readonly detail: string;
}

/** A dial the peer table ordered could not open its socket (reported to the core too). */
export interface DialFailedEvent {
  readonly type: 'dial:failed';
  /** undefined for a stranger dialled by address alone. */
  readonly deviceId: Uint8Array | undefined;
  readonly address: string;
  readonly port: number;
  readonly detail: string;
}

/** What the inbound guard decided since the host started. */
export interface InboundStats {
  /** Inbound connections admitted to a handshake (the crypto ran for these). */
  readonly admitted: number;
  /** Inbound connections refused before any byte was read. */
  readonly refused: number;
  /** Inbound connections admitted whose handshake has not completed yet. */
  readonly halfOpen: number;
}

type HostEvents = { [E in CoreEvent as E['type']]: [E] } & {
  'peer:refused': [PeerRefusedEvent];
  'dial:failed': [DialFailedEvent];
};

/** A link whose handshake has not completed: where it goes, and its guard ticket if inbound. */
interface PendingLink {
  readonly address: string;
  readonly direction: 'inbound' | 'outbound';
  readonly ticket: number | undefined;
}

/** A dial whose TCP connect takes longer than this fails (a cached address gone quiet). */
const DIAL_TIMEOUT_MS = 10_000;

export class NodeHost extends EventEmitter<HostEvents> {
  readonly core: Core;
  private readonly driver: HostDriver;
  private readonly sockets = new Map<number, Socket>();
  /** Links whose uploads are limited write through one of these. */
  private readonly writers = new Map<number, ThrottledWriter>();
  private readonly limits: BandwidthLimits | undefined;
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private nextLinkId = 1;
  /** Sends of the current drain, per link, written when it ends (`writeBatches`). */
  private readonly batches = new Map<number, { chunks: Uint8Array[]; byteCount: number }>();
  private readonly transfers: TransferAdapters;
  private readonly dialPolicy: NodeHostOptions['dialPolicy'];
  /** Sockets of `connect` outputs still connecting, by dial ID. */
  private readonly dialing = new Map<number, Socket>();
  private closing = false;
  private readonly guard: InboundGuard | undefined;
  private readonly pending = new Map<number, PendingLink>();
  private readonly ticketLinks = new Map<number, number>();
  private guardTimer: NodeJS.Timeout | undefined;
  private admitted = 0;
  private refused = 0;

  constructor(options: NodeHostOptions) {
    super();
    const { transfers, limits, inboundGuard, dialPolicy, ...coreOptions } = options;
    this.core = new Core({
      ...coreOptions,
      crypto: options.crypto ?? createNodeCryptoProvider(),
      seed: options.seed ?? randomInt(2 ** 47),
      // AES-GCM: with AES-NI, node:crypto seals it ~15% faster than ChaChaPoly here (bench/link).
      // Browsers (noble) are the other way round, so their host keeps the core's ChaChaPoly.
      cipher: options.cipher ?? 'AESGCM',
      handleTransfers: transfers !== undefined,
    });
    this.driver = new HostDriver(this.core, {
      perform: (output) => this.perform(output),
      setTimer: (deadlineMs) => this.setTimer(deadlineMs),
      afterDrain: () => this.writeBatches(),
    });
    this.transfers = transfers?.((input) => this.input(input)) ?? NO_TRANSFERS;
    this.dialPolicy = dialPolicy;
    this.limits = limits;
    if (inboundGuard !== false) this.guard = new InboundGuard(inboundGuard);
  }

  /** What the inbound guard decided so far. */
  get inboundStats(): InboundStats {
    return {
      admitted: this.admitted,
      refused: this.refused,
      halfOpen: this.guard?.halfOpenCount ?? 0,
    };
  }

  /**
   * Feeds the core one input through the host driver (queued when it arrives while outputs are
   * being carried out), then runs the host loop. Safe to call from anywhere, at any time.
   */
  input(input: CoreInput): void {
    this.driver.handle(input);
  }

  /** Starts accepting links on `host:port` (port 0 picks a free one). Resolves to the address. */
  async listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    // Paused: no byte is read (nor reaches the core) before the guard admits the socket.
    const server = createServer({ pauseOnConnect: true }, (socket) => this.onInbound(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server.address() as AddressInfo;
  }

  /**
   * Dials an address the user gave, outside the peer table (link-level tools, tests, benches).
   * Resolves to the link ID once TCP connects (the handshake follows). `localAddress` picks the
   * source address (tests and benches speak from several loopback addresses, as devices of a
   * LAN would).
   */
  async dial(port: number, host = '127.0.0.1', localAddress?: string): Promise<number> {
    const socket = connect({
      port,
      host,
      noDelay: true,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return this.adopt(socket, 'outbound');
  }

  /**
   * Sends a message on a ready link (DATA is queued as a stream and paced by the send window).
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE if the link is not ready.
   */
  send(linkId: number, message: WireMessage): void {
    this.input({ type: 'send-message', nowMs: performance.now(), linkId, message });
  }

  /** Ends one link: GOODBYE (`reason`, default `goingAway`) when the session is open, then close. */
  closeLink(linkId: number, reason: ReasonCode = ReasonCode.goingAway): void {
    this.input({ type: 'close-link', nowMs: performance.now(), linkId, reason });
  }

  /** Sends GOODBYE on every link, closes them and the listener. */
  async close(): Promise<void> {
    this.closing = true;
    for (const socket of this.dialing.values()) socket.destroy();
    this.input({ type: 'shutdown', nowMs: performance.now() });
    clearTimeout(this.timer);
    clearTimeout(this.guardTimer);
    // A handshake cannot finish now, and a remote that never closes must not hold this up.
    for (const linkId of this.pending.keys()) this.sockets.get(linkId)?.destroy();
    const closing = [...this.sockets.values()].map(
      (socket) =>
        new Promise<void>((resolve) =>
          socket.closed ? resolve() : socket.once('close', () => resolve()),
        ),
    );
    await Promise.all(closing);
    if (this.server !== undefined)
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  /** An accepted socket: the guard admits it to a handshake, or it is reset unread. */
  private onInbound(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    if (this.guard === undefined) {
      this.adopt(socket, 'inbound', undefined);
      socket.resume();
      return;
    }
    const verdict = this.guard.admit(address, performance.now(), socket.localAddress);
    if (!verdict.admitted) {
      this.refused++;
      // A reset, not a FIN: nothing to drain, and no TIME_WAIT left on this side per refusal.
      socket.on('error', () => undefined);
      socket.resetAndDestroy();
      this.emit('peer:refused', {
        type: 'peer:refused',
        address,
        direction: 'inbound',
        cause: verdict.refusal,
        detail: refusalDetail(verdict.refusal, this.guard.limits),
      });
      return;
    }
    this.admitted++;
    const linkId = this.adopt(socket, 'inbound', verdict.ticket);
    this.ticketLinks.set(verdict.ticket, linkId);
    this.armGuardTimer();
    socket.resume();
  }

  /** A link's handshake `completed` or it closed: it is no longer half-open. */
  private settle(linkId: number, completed: boolean): void {
    const pending = this.pending.get(linkId);
    if (pending === undefined) return;
    this.pending.delete(linkId);
    if (pending.ticket === undefined) return;
    this.ticketLinks.delete(pending.ticket);
    this.guard?.settle(pending.ticket, completed);
  }

  /** One timer for the guard's earliest handshake deadline; overdue sockets are destroyed. */
  private armGuardTimer(): void {
    if (this.guardTimer !== undefined || this.guard === undefined) return;
    const deadline = this.guard.nextDeadlineMs();
    if (deadline === undefined) return;
    this.guardTimer = setTimeout(
      () => {
        this.guardTimer = undefined;
        for (const ticket of this.guard!.overdue(performance.now())) {
          const linkId = this.ticketLinks.get(ticket);
          this.ticketLinks.delete(ticket);
          if (linkId !== undefined) this.sockets.get(linkId)?.destroy();
        }
        this.armGuardTimer();
      },
      Math.max(0, Math.ceil(deadline - performance.now())),
    );
    this.guardTimer.unref();
  }

  /** A `connect` output: open the socket; `link-opened` with its dial ID, or `dial-failed`. */
  private dialFor(out: Extract<CoreOutput, { type: 'connect' }>): void {
    const { dialId, deviceId, address, port } = out;
    const verdict = this.dialPolicy?.(out) ?? {};
    if (verdict.refused !== undefined) {
      this.input({
        type: 'dial-failed',
        nowMs: performance.now(),
        dialId,
        detail: verdict.refused,
      });
      this.emit('dial:failed', {
        type: 'dial:failed',
        deviceId,
        address,
        port,
        detail: verdict.refused,
      });
      return;
    }
    const socket = connect({
      port,
      host: address,
      noDelay: true,
      timeout: DIAL_TIMEOUT_MS,
      ...(verdict.lookup === undefined ? {} : { lookup: verdict.lookup }),
    });
    this.dialing.set(dialId, socket);
    const failed = (detail: string) => {
      if (!this.dialing.delete(dialId)) return;
      socket.destroy();
      this.input({ type: 'dial-failed', nowMs: performance.now(), dialId, detail });
      this.emit('dial:failed', { type: 'dial:failed', deviceId, address, port, detail });
    };
    const onTimeout = () => failed(`no answer within ${DIAL_TIMEOUT_MS} ms`);
    const onError = (error: Error) => failed(error.message);
    const onClose = () => failed('closed before it connected');
    socket.once('timeout', onTimeout);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('connect', () => {
      this.dialing.delete(dialId);
      socket.setTimeout(0);
      socket.off('timeout', onTimeout);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (this.closing) socket.destroy();
      else this.adopt(socket, 'outbound', undefined, dialId);
    });
  }

  private adopt(
    socket: Socket,
    direction: 'inbound' | 'outbound',
    ticket: number | undefined = undefined,
    dialId: number | undefined = undefined,
  ): number {
    const linkId = this.nextLinkId++;
    socket.setNoDelay(true);
    this.sockets.set(linkId, socket);
    this.pending.set(linkId, { address: socket.remoteAddress ?? '', direction, ticket });
    const address = socket.remoteAddress ?? '';
    const upload = this.limits && peerBucket(this.limits, 'upload', address);
    const download = this.limits && peerBucket(this.limits, 'download', address);
    if (upload !== undefined) this.writers.set(linkId, new ThrottledWriter(socket, upload));
    socket.on('data', (bytes) => {
      this.input({
        type: 'bytes-received',
        nowMs: performance.now(),
        linkId,
        bytes,
        wallClockMs: Date.now(),
      });
      if (download !== undefined) throttleRead(socket, download, bytes.length);
    });
    socket.on('error', () => socket.destroy()); // 'close' follows and reports it
    socket.on('close', () => {
      this.settle(linkId, false);
      this.sockets.delete(linkId);
      this.writers.delete(linkId);
      this.input({ type: 'link-closed', nowMs: performance.now(), linkId });
    });
    this.input({
      type: 'link-opened',
      nowMs: performance.now(),
      linkId,
      direction,
      remoteAddress: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`,
      ...(dialId === undefined ? {} : { dialId }),
      framing: 'stream', // TCP is a byte stream: records carry length prefixes
    });
    return linkId;
  }

  /**
   * Writes each link's sends of one drain as one corked batch (one writev) with one flush
   * callback, on the last write, for all of its bytes: a record leaves as several sends (length
   * prefix, ciphertext pieces, tag), and a callback per send cost a core input and a host loop
   * each. Stream writes complete in order, so the last callback means every byte went out.
   */
  private writeBatches(): void {
    for (const [linkId, batch] of this.batches) {
      this.batches.delete(linkId);
      const socket = this.sockets.get(linkId);
      if (socket === undefined || socket.destroyed) continue;
      const { chunks, byteCount } = batch;
      const onFlushed = () =>
        this.input({ type: 'bytes-flushed', nowMs: performance.now(), linkId, byteCount });
      const writer = this.writers.get(linkId);
      if (writer !== undefined) writer.write(chunks, byteCount, onFlushed);
      else writeBatch(socket, chunks, onFlushed);
    }
  }

  /** The driver's one timer. */
  private setTimer(deadlineMs: number | undefined): void {
    clearTimeout(this.timer);
    if (deadlineMs === undefined) return;
    this.timer = setTimeout(
      () => this.driver.timerFired(performance.now(), Date.now()),
      Math.max(0, Math.ceil(deadlineMs - performance.now())),
    );
    this.timer.unref();
  }

  /**
   * A link that ended before its handshake completed, with handshakeFailed: the remote does not
   * hold the pod secret (at message 3 the psk does not match, or the remote aborted so; see
   * secure-session.ts). Other failures (a replay that stopped, a timeout) say nothing of the pod.
   */
  private onPendingFailed(event: Extract<CoreEvent, { type: 'peer:disconnect' }>): void {
    const pending = this.pending.get(event.linkId);
    if (pending === undefined || event.reason !== ReasonCode.handshakeFailed) return;
    this.emit('peer:refused', {
      type: 'peer:refused',
      address: pending.address,
      direction: pending.direction,
      cause: 'pod-secret',
      detail: event.detail,
    });
  }

  /** The one switch over every core output kind (see the module comment). */
  private perform(out: CoreOutput): void {
    switch (out.type) {
      case 'send': {
        const batch = this.batches.get(out.linkId);
        if (batch === undefined) {
          this.batches.set(out.linkId, { chunks: [out.bytes], byteCount: out.bytes.length });
        } else {
          batch.chunks.push(out.bytes);
          batch.byteCount += out.bytes.length;
        }
        return;
      }
      case 'disconnect':
        this.writeBatches(); // the bytes before a disconnect (GOODBYE) go first
        if (this.writers.has(out.linkId)) this.writers.get(out.linkId)!.end();
        else this.sockets.get(out.linkId)?.end();
        return;
      case 'connect':
        if (this.closing) {
          this.input({
            type: 'dial-failed',
            nowMs: performance.now(),
            dialId: out.dialId,
            detail: 'this host is closing',
          });
        } else this.dialFor(out);
        return;
      case 'event':
        if (out.event.type === 'peer:connect') this.settle(out.event.linkId, true);
        if (out.event.type === 'peer:disconnect') this.onPendingFailed(out.event);
        this.emit(out.event.type, out.event as never);
        return;
      case 'fetch-origin':
        this.transfers.origin.fetch(out);
        return;
      case 'cancel-fetch':
        this.transfers.origin.cancel(out.fetchId);
        return;
      case 'deliver':
        this.transfers.delivery.deliver(out);
        return;
      case 'read-delivered':
        this.transfers.delivery.readDelivered(out);
        return;
      case 'read-chunk':
        this.transfers.store.readChunk(out);
        return;
      case 'store-chunk':
        this.transfers.store.storeChunk(out);
        return;
      default:
        return unreachableOutput(out);
    }
  }
}

/** The limit a refused connection ran into, as a clause for logs and `peapod peers`. */
function refusalDetail(refusal: GuardRefusal, limits: InboundGuardLimits): string {
  switch (refusal) {
    case 'rate':
      return `more than ${limits.burst} handshakes, then one per ${limits.refillIntervalMs} ms, from one address`;
    case 'busy':
      return `more than ${limits.globalBurst} handshakes, then one per ${limits.globalRefillIntervalMs} ms, from all new addresses together`;
    case 'half-open':
      return `${limits.halfOpenMax} handshakes were already under way`;
    case 'half-open-address':
      return `${limits.halfOpenPerAddressMax} handshakes from this address were already under way`;
  }
}
