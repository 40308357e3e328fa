/**
 * A whole session over each link framing on a real transport, each side a Core driven by the
 * shared HostDriver: the Noise handshake, HELLO, a DATA stream checked byte for byte, then
 * GOODBYE with its reason, and the transport closing after it.
 * - 'stream' over real TCP (node:net on loopback): each `send` is written to the socket as is
 *   (length prefixes and records as separate writes, batched per drain with cork/uncork).
 * - 'message' over a real WebSocket (the `ws` package on loopback): each `send` is one
 *   WebSocket message and each message received is one `bytes-received`. A WebSocket rather
 *   than Node's MessageChannel because it is the transport a browser host will use and it puts
 *   a real byte stream (TCP, with the WebSocket framing and fragmentation above it) under the
 *   message boundaries; a MessageChannel only structured-clones buffers between threads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer } from 'ws';
import { Core, type CoreEvent, type CoreOutput } from '../src/core.js';
import { HostDriver, unreachableOutput } from '../src/host-driver.js';
import type { LinkFraming } from '../src/peer-link.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import { MAX_RECORD_BYTES } from '../src/wire/record-framer.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

const LINK = 1;
const POD_SECRET = new Uint8Array(32).fill(9);
const STREAM_BYTES = 3 * 1024 * 1024 + 12_345;
const REQUEST_ID = 7;

/** What a side's transport must do for its host adapter. */
interface Transport {
  write(bytes: Uint8Array, onFlushed: () => void): void;
  /** Called after each drain (a stream host uncorks here). */
  flush(): void;
  end(): void;
}

/** One side: a Core, its HostDriver, the events it reported, and what it wrote. */
class Side {
  readonly core: Core;
  readonly driver: HostDriver;
  readonly events: CoreEvent[] = [];
  /** Sizes of the `send` outputs, in order. */
  readonly sendSizes: number[] = [];
  transport: Transport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly waiters: Array<{ match: (e: CoreEvent) => boolean; done: () => void }> = [];

  constructor(name: string, seed: number) {
    const crypto = deterministicCrypto(seed);
    this.core = new Core({
      crypto,
      identity: crypto.ed25519GenerateKeyPair(),
      seed,
      deviceName: name,
      podSecret: POD_SECRET,
      handleTransfers: false,
    });
    this.driver = new HostDriver(this.core, {
      perform: (output) => this.perform(output),
      setTimer: (deadlineMs) => {
        clearTimeout(this.timer);
        this.timer = undefined;
        if (deadlineMs === undefined) return;
        const delay = Math.max(0, deadlineMs - performance.now());
        this.timer = setTimeout(() => this.driver.timerFired(performance.now()), delay);
      },
      afterDrain: () => this.transport?.flush(),
    });
  }

  /** Resolves at the first event (already seen or to come) that `match` accepts. */
  waitFor(match: (event: CoreEvent) => boolean): Promise<void> {
    if (this.events.some(match)) return Promise.resolve();
    return new Promise((done) => this.waiters.push({ match, done }));
  }

  opened(direction: 'inbound' | 'outbound', framing: LinkFraming, transport: Transport): void {
    this.transport = transport;
    this.driver.handle({
      type: 'link-opened',
      nowMs: performance.now(),
      linkId: LINK,
      direction,
      remoteAddress: '127.0.0.1',
      framing,
    });
  }

  received(bytes: Uint8Array): void {
    this.driver.handle({ type: 'bytes-received', nowMs: performance.now(), linkId: LINK, bytes });
  }

  closed(): void {
    this.driver.handle({ type: 'link-closed', nowMs: performance.now(), linkId: LINK });
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private perform(output: CoreOutput): void {
    switch (output.type) {
      case 'send': {
        const byteCount = output.bytes.length;
        this.sendSizes.push(byteCount);
        this.transport?.write(output.bytes, () =>
          this.driver.handle({
            type: 'bytes-flushed',
            nowMs: performance.now(),
            linkId: LINK,
            byteCount,
          }),
        );
        return;
      }
      case 'disconnect':
        this.transport?.end();
        return;
      case 'event': {
        this.events.push(output.event);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          const waiter = this.waiters[i]!;
          if (waiter.match(output.event)) {
            this.waiters.splice(i, 1);
            waiter.done();
          }
        }
        return;
      }
      case 'connect':
      case 'fetch-origin':
      case 'cancel-fetch':
      case 'read-chunk':
      case 'read-delivered':
      case 'deliver':
      case 'store-chunk':
        // No peer-discovered is fed and transfers are off: none of these can come.
        throw new Error(`unexpected ${output.type} output`);
      default:
        unreachableOutput(output);
    }
  }
}

function tcpTransport(socket: Socket): Transport {
  let corked = false;
  return {
    write(bytes, onFlushed) {
      if (!corked) {
        socket.cork();
        corked = true;
      }
      socket.write(bytes, onFlushed);
    },
    flush() {
      if (corked) socket.uncork();
      corked = false;
    },
    end() {
      if (corked) socket.uncork();
      corked = false;
      socket.end();
    },
  };
}

function webSocketTransport(socket: WebSocket): Transport {
  return {
    write(bytes, onFlushed) {
      socket.send(bytes, { binary: true }, () => onFlushed());
    },
    flush() {},
    end() {
      socket.close(1000);
    },
  };
}

/** The bytes the sender streams: a pattern that catches reordered, dropped or shifted frames. */
function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >>> 11)) & 0xff;
  return bytes;
}

/** Links `dialer` (outbound) to `listener` (inbound) over `framing`; resolves on teardown. */
async function linkOver(
  framing: LinkFraming,
  dialer: Side,
  listener: Side,
): Promise<() => Promise<void>> {
  if (framing === 'stream') {
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('data', (bytes) => listener.received(bytes));
      socket.on('close', () => listener.closed());
      socket.on('error', () => socket.destroy());
      listener.opened('inbound', 'stream', tcpTransport(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(typeof address === 'object' && address !== null);
    const socket = connect({ port: address.port, host: '127.0.0.1', noDelay: true });
    socket.on('data', (bytes) => dialer.received(bytes));
    socket.on('close', () => dialer.closed());
    socket.on('error', () => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    dialer.opened('outbound', 'stream', tcpTransport(socket));
    return () => new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  server.on('connection', (socket) => {
    socket.on('message', (data: Buffer) => listener.received(data));
    socket.on('close', () => listener.closed());
    listener.opened('inbound', 'message', webSocketTransport(socket));
  });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  const socket = new WebSocket(`ws://127.0.0.1:${address.port}`);
  socket.on('message', (data: Buffer) => dialer.received(data));
  socket.on('close', () => dialer.closed());
  await new Promise<void>((resolve) => socket.once('open', resolve));
  dialer.opened('outbound', 'message', webSocketTransport(socket));
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

for (const framing of ['stream', 'message'] as const) {
  const transport = framing === 'stream' ? 'TCP' : 'a WebSocket';
  test(
    `a whole session over ${transport} (${framing} framing): handshake, HELLO, DATA, GOODBYE`,
    { timeout: 60_000 },
    async () => {
      const a = new Side('device-a', 11);
      const b = new Side('device-b', 12);
      const teardown = await linkOver(framing, a, b);
      try {
        // Handshake and HELLO: each side learns the other's name and the negotiated version.
        await Promise.all([
          a.waitFor((e) => e.type === 'peer:connect'),
          b.waitFor((e) => e.type === 'peer:connect'),
        ]);
        const aConnect = a.events.find((e) => e.type === 'peer:connect');
        const bConnect = b.events.find((e) => e.type === 'peer:connect');
        assert.ok(aConnect?.type === 'peer:connect' && bConnect?.type === 'peer:connect');
        assert.equal(aConnect.remote.deviceName, 'device-b');
        assert.equal(bConnect.remote.deviceName, 'device-a');
        assert.equal(aConnect.remote.protocolVersion, 1);
        assert.equal(bConnect.direction, 'inbound');

        // DATA: a stream longer than many records, then the STATUS that ends it.
        const payload = pattern(STREAM_BYTES);
        const nowMs = performance.now();
        a.driver.handle({
          type: 'send-message',
          nowMs,
          linkId: LINK,
          message: { type: 'data', requestId: REQUEST_ID, offset: 0, bytes: payload },
        });
        a.driver.handle({
          type: 'send-message',
          nowMs,
          linkId: LINK,
          message: {
            type: 'status',
            requestId: REQUEST_ID,
            status: 0,
            length: STREAM_BYTES,
            message: '',
          },
        });
        await b.waitFor((e) => e.type === 'peer:message' && e.message.type === 'status');
        const received = new Uint8Array(STREAM_BYTES);
        let expectedOffset = 0;
        for (const event of b.events) {
          if (event.type !== 'peer:message' || event.message.type !== 'data') continue;
          assert.equal(event.message.requestId, REQUEST_ID);
          assert.equal(event.message.offset, expectedOffset, 'DATA in order, without gaps');
          received.set(event.message.bytes, expectedOffset);
          expectedOffset += event.message.bytes.length;
        }
        assert.equal(expectedOffset, STREAM_BYTES);
        assert.deepEqual(received, payload);

        // GOODBYE: a closes with a reason; b hears it from the remote, and both transports end.
        a.driver.handle({
          type: 'close-link',
          nowMs: performance.now(),
          linkId: LINK,
          reason: ReasonCode.goingAway,
        });
        await b.waitFor((e) => e.type === 'peer:disconnect');
        const aGone = a.events.find((e) => e.type === 'peer:disconnect');
        const bGone = b.events.find((e) => e.type === 'peer:disconnect');
        assert.ok(aGone?.type === 'peer:disconnect' && bGone?.type === 'peer:disconnect');
        assert.equal(aGone.by, 'local');
        assert.equal(bGone.by, 'remote');
        assert.equal(bGone.reason, ReasonCode.goingAway);
        assert.match(bGone.detail, /goingAway/);
        assert.equal(a.core.openLinkCount + b.core.openLinkCount, 0);

        // Framing on the wire: over a stream, records go out behind 2-byte length prefixes; over
        // messages, every send is one whole record (never a prefix, never above the record limit).
        for (const side of [a, b]) {
          if (framing === 'stream') {
            assert.ok(side.sendSizes.includes(2), 'stream sends include length prefixes');
          } else {
            assert.ok(side.sendSizes.every((size) => size > 2 && size <= MAX_RECORD_BYTES));
          }
        }
      } finally {
        a.stop();
        b.stop();
        await teardown();
      }
    },
  );
}
