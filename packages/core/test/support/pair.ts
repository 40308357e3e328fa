/**
 * Pair harness (quinn's `Pair`, str0m's `progress`): two Cores joined by an in-memory link and a
 * virtual clock. Each core runs on the shared `HostDriver` (host-driver.ts): every input goes
 * through `input(side, x)`, which drains `poll()` into `perform` (one exhaustive switch):
 * `send` queues the bytes for the other core, `disconnect` queues an end of stream that tells
 * the other core its link closed. `step` delivers what is in flight; the driver's `setTimer`
 * records each side's deadline and `advance` fires them in order on the virtual clock. Tests
 * never sleep.
 */
import {
  Core,
  type CoreEvent,
  type CoreInput,
  type CoreOptions,
  type CoreOutput,
} from '../../src/core.js';
import { HostDriver, unreachableOutput } from '../../src/host-driver.js';
import { deterministicCrypto } from './deterministic-crypto.js';
import type { KeyPair } from '../../src/crypto-provider.js';
import type { LinkFraming } from '../../src/peer-link.js';

export type Side = 'a' | 'b';

export interface PairOptions {
  readonly a?: Partial<CoreOptions>;
  readonly b?: Partial<CoreOptions>;
  /** Report every delivered byte flushed at once (an infinitely fast link). Default true. */
  readonly autoFlush?: boolean;
  readonly seed?: number;
  /**
   * Each side's link framing (`link-opened.framing`). Every `send` is delivered as one
   * `bytes-received`, so 'message' sides see exactly one record per input. Default 'stream'.
   */
  readonly framing?: Readonly<Record<Side, LinkFraming>>;
}

/** The pair's wall clock at virtual time 0 (2026-01-01T00:00:00Z), passed with bytes and timers. */
export const WALL_CLOCK_EPOCH_MS = 1_767_225_600_000;

/** The link ID both cores use for the one link between them. */
export const LINK = 1;

export class Pair {
  nowMs = 0;
  readonly cores: Record<Side, Core>;
  private readonly drivers: Record<Side, HostDriver>;
  /** Each side's armed timer (the driver's `setTimer`). */
  private readonly deadlines: Record<Side, number | undefined> = { a: undefined, b: undefined };
  /** Each side's Ed25519 identity. */
  readonly identities = {} as Record<Side, KeyPair>;
  readonly events: Record<Side, CoreEvent[]> = { a: [], b: [] };
  /** Raw bytes each side sent, in order (the wire transcript). */
  readonly sent: Record<Side, Uint8Array[]> = { a: [], b: [] };
  readonly disconnected: Record<Side, boolean> = { a: false, b: false };
  /** Transfer outputs (fetch-origin, deliver, ...) each side produced; the pair does not act on them. */
  readonly transferOutputs: Record<Side, CoreOutput[]> = { a: [], b: [] };
  /** When set, bytes from that side are dropped instead of delivered (a stalled peer). */
  readonly muted: Record<Side, boolean> = { a: false, b: false };
  /** Optional tap that may rewrite bytes in flight (tampering tests). */
  tap: ((from: Side, bytes: Uint8Array) => Uint8Array) | undefined;
  private readonly autoFlush: boolean;
  /** Sends not yet delivered (a test may take them off the wire). */
  readonly inFlight: Record<Side, Array<Uint8Array | 'eof'>> = { a: [], b: [] };
  private readonly framing: Readonly<Record<Side, LinkFraming>>;

  constructor(options: PairOptions = {}) {
    const seed = options.seed ?? 1;
    const make = (side: Side, index: number): Core => {
      const crypto = deterministicCrypto(seed * 2 + index);
      this.identities[side] = crypto.ed25519GenerateKeyPair();
      return new Core({
        crypto,
        identity: this.identities[side],
        seed: seed * 2 + index,
        deviceName: `device-${side}`,
        // The pair tests links: transfer messages surface as peer:message unless a test opts in.
        handleTransfers: false,
        ...options[side],
      });
    };
    this.cores = { a: make('a', 0), b: make('b', 1) };
    const driver = (side: Side): HostDriver =>
      new HostDriver(this.cores[side], {
        perform: (out) => this.perform(side, out),
        setTimer: (deadlineMs) => {
          this.deadlines[side] = deadlineMs;
        },
      });
    this.drivers = { a: driver('a'), b: driver('b') };
    this.autoFlush = options.autoFlush ?? true;
    this.framing = options.framing ?? { a: 'stream', b: 'stream' };
  }

  /** Feeds `side`'s core one input through its host driver. */
  input(side: Side, input: CoreInput): void {
    this.drivers[side].handle(input);
  }

  /** a dials b. */
  connect(): void {
    this.open('b', 'inbound');
    this.open('a', 'outbound');
  }

  /** Opens `side`'s end of the link. */
  open(side: Side, direction: 'inbound' | 'outbound'): void {
    this.input(side, {
      type: 'link-opened',
      nowMs: this.nowMs,
      linkId: LINK,
      direction,
      remoteAddress: side === 'a' ? 'b' : 'a',
      framing: this.framing[side],
    });
  }

  /** Feeds `bytes` to `side` as one input from its remote (one message, for 'message'). */
  inject(side: Side, bytes: Uint8Array): void {
    this.input(side, { type: 'bytes-received', nowMs: this.nowMs, linkId: LINK, bytes });
  }

  /** One round: deliver what is in flight (outputs were carried out as each input drained). Returns true if anything moved. */
  step(): boolean {
    let moved = false;
    for (const side of ['a', 'b'] as const) {
      const other: Side = side === 'a' ? 'b' : 'a';
      const queue = this.inFlight[side].splice(0);
      for (const item of queue) {
        moved = true;
        if (item === 'eof') {
          this.input(other, { type: 'link-closed', nowMs: this.nowMs, linkId: LINK });
          continue;
        }
        if (!this.muted[side]) {
          const bytes = this.tap === undefined ? item : this.tap(side, item);
          this.input(other, {
            type: 'bytes-received',
            nowMs: this.nowMs,
            linkId: LINK,
            bytes,
            wallClockMs: WALL_CLOCK_EPOCH_MS + this.nowMs,
          });
        }
        if (this.autoFlush) this.flush(side, item.length);
      }
    }
    return moved;
  }

  /** Steps until nothing moves (bounded, so a livelock fails the test instead of hanging it). */
  drive(maxSteps = 100_000): void {
    for (let i = 0; i < maxSteps; i++) if (!this.step()) return;
    throw new Error(`pair did not settle within ${maxSteps} steps`);
  }

  /** Tells `side`'s core that `byteCount` of its sent bytes left the socket. */
  flush(side: Side, byteCount: number): void {
    this.input(side, { type: 'bytes-flushed', nowMs: this.nowMs, linkId: LINK, byteCount });
  }

  /** Moves the virtual clock forward by `ms`, firing every deadline on the way, in order. */
  advance(ms: number): void {
    const until = this.nowMs + ms;
    for (;;) {
      this.drive();
      const next = Math.min(this.deadlines.a ?? Infinity, this.deadlines.b ?? Infinity);
      if (next > until) break;
      this.nowMs = Math.max(this.nowMs, next);
      for (const side of ['a', 'b'] as const) {
        const due = this.deadlines[side];
        if (due === undefined || due > this.nowMs) continue;
        this.deadlines[side] = undefined; // a timer is one-shot: the driver re-arms it
        this.drivers[side].timerFired(this.nowMs, WALL_CLOCK_EPOCH_MS + this.nowMs);
      }
    }
    this.nowMs = until;
    this.drive();
  }

  /** Events of one type seen by `side`. */
  eventsOf<T extends CoreEvent['type']>(
    side: Side,
    type: T,
  ): Array<Extract<CoreEvent, { type: T }>> {
    return this.events[side].filter((e): e is Extract<CoreEvent, { type: T }> => e.type === type);
  }

  private perform(side: Side, out: CoreOutput): void {
    switch (out.type) {
      case 'send':
        this.sent[side].push(out.bytes);
        if (!this.disconnected[side]) this.inFlight[side].push(out.bytes);
        break;
      case 'disconnect':
        if (!this.disconnected[side]) this.inFlight[side].push('eof');
        this.disconnected[side] = true;
        break;
      case 'event':
        this.events[side].push(out.event);
        break;
      case 'fetch-origin':
      case 'cancel-fetch':
      case 'read-chunk':
      case 'read-delivered':
      case 'deliver':
      case 'store-chunk':
        this.transferOutputs[side].push(out);
        break;
      case 'connect':
        // This harness feeds no `peer-discovered`, so the core never asks it to dial.
        throw new Error(`unexpected connect output for dial ${out.dialId}`);
      default:
        unreachableOutput(out);
    }
  }
}
