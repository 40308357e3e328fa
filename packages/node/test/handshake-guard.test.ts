/**
 * The inbound guard on real sockets (node-host.ts's accept path): an outsider replaying a
 * member's first handshake record from 127.0.0.2 (Linux routes all of 127/8 to lo) gets at most
 * its burst of handshakes, every other connection closed unread, while a member connecting from
 * 127.0.0.1 during the flood completes its handshake; from 200 addresses it gets the burst all
 * strangers share, while a member's known address still connects; and a silent connection is
 * closed at the guard's deadline. Work is asserted by the host's counters, never by timing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { test } from 'node:test';
import { NodeHost, type PeerRefusedEvent } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { captureFirstRecord, memberHost } from './support/handshake-replay.js';

const crypto = createNodeCryptoProvider();

/** Connects from `localAddress`, sends `record`; resolves to whether any answer came back. */
function replay(port: number, localAddress: string, record: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    let answered = false;
    socket.once('connect', () => socket.write(record));
    socket.once('data', () => {
      answered = true;
      socket.destroy();
    });
    socket.once('error', () => socket.destroy());
    socket.once('close', () => resolve(answered));
  });
}

/** A listener whose guard never refills within a test, so its bounds are exact. */
function listenerWith(
  secret: Uint8Array,
  limits: { burst?: number; globalBurst?: number },
): NodeHost {
  return new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    inboundGuard: { ...limits, refillIntervalMs: 3_600_000, globalRefillIntervalMs: 3_600_000 },
  });
}

/** `openings` replays, `parallel` at once, opening `index` from `from(index)`; answers seen. */
async function flood(
  port: number,
  record: Buffer,
  openings: number,
  parallel: number,
  from: (index: number) => string,
): Promise<number> {
  let next = 0;
  let answered = 0;
  const worker = async () => {
    while (next < openings) {
      if (await replay(port, from(next++), record)) answered++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return answered;
}

test('a replay flood from one address gets its burst; a member connects meanwhile', async () => {
  const secret = randomBytes(32);
  const record = await captureFirstRecord(secret);
  const burst = 16;
  const listener = listenerWith(secret, { burst });
  const refusals: PeerRefusedEvent[] = [];
  listener.on('peer:refused', (event) => refusals.push(event));
  const { port } = await listener.listen(0);
  const openings = 300;
  const flooding = flood(port, record, openings, 16, () => '127.0.0.2');

  // The member dials once the flood has used up the flooder's burst.
  const waitForRefusal = new Promise<void>((resolve) =>
    listener.once('peer:refused', () => resolve()),
  );
  await waitForRefusal;
  const dialer = memberHost(secret);
  const connected = new Promise<string>((resolve) =>
    listener.once('peer:connect', (event) => resolve(event.remoteAddress)),
  );
  const dialerConnected = new Promise<void>((resolve) =>
    dialer.once('peer:connect', () => resolve()),
  );
  await dialer.dial(port, '127.0.0.1', '127.0.0.1');
  await dialerConnected;
  assert.match(await connected, /^127\.0\.0\.1:/);
  const answered = await flooding;

  const stats = listener.inboundStats;
  assert.equal(stats.admitted + stats.refused, openings + 1, 'every connection was decided');
  assert.ok(stats.admitted <= burst + 1, `${stats.admitted} admitted: the burst plus the member`);
  assert.ok(answered <= burst, `the flooder got ${answered} answers, at most its burst`);
  assert.equal(refusals.length, stats.refused);
  assert.ok(refusals.every((e) => e.address === '127.0.0.2' && e.direction === 'inbound'));
  assert.ok(refusals.some((e) => e.cause === 'rate'));
  await dialer.close();
  await listener.close();
});

test('a flood from many addresses gets the shared burst; a known member still connects', async () => {
  const secret = randomBytes(32);
  const record = await captureFirstRecord(secret);
  const globalBurst = 8;
  const listener = listenerWith(secret, { globalBurst });
  const { port } = await listener.listen(0);
  const connectFrom = async (localAddress: string) => {
    const dialer = memberHost(secret);
    const up = new Promise<void>((resolve) => dialer.once('peer:connect', () => resolve()));
    await dialer.dial(port, '127.0.0.1', localAddress);
    await up;
    await dialer.close();
  };
  await connectFrom('127.0.0.1'); // a member's address, known from now on
  const openings = 200;
  const answered = await flood(port, record, openings, 8, (index) => `127.0.3.${1 + index}`);
  await connectFrom('127.0.0.1');
  const stats = listener.inboundStats;
  assert.equal(stats.admitted + stats.refused, openings + 2);
  assert.ok(stats.admitted <= globalBurst + 1, `${stats.admitted} admitted`);
  assert.ok(answered <= globalBurst - 1, `the flood got ${answered} answers`);
  await listener.close();
});

test('a silent connection is closed at the guard deadline and frees its half-open slot', async () => {
  const secret = randomBytes(32);
  const listener = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    // The core's own handshake timeout is far later, so the guard is what closes it.
    handshakeTimeoutMs: 600_000,
    inboundGuard: { handshakeDeadlineMs: 200, halfOpenPerAddressMax: 1 },
  });
  const { port } = await listener.listen(0);
  const silent = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' });
  await new Promise((resolve) => silent.once('connect', resolve));
  const closed = new Promise((resolve) => silent.once('close', resolve));
  silent.on('error', () => undefined);
  // While it is half-open, a second connection from the same address is refused at once.
  const refused = new Promise<PeerRefusedEvent>((resolve) =>
    listener.once('peer:refused', resolve),
  );
  const second = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' });
  second.on('error', () => undefined);
  assert.equal((await refused).cause, 'half-open-address');
  await closed;
  assert.equal(listener.inboundStats.halfOpen, 0);
  assert.equal(listener.inboundStats.admitted, 1);
  second.destroy();
  // The slot is free again: a member from that address completes its handshake.
  const dialer = memberHost(secret);
  const up = new Promise<void>((resolve) => dialer.once('peer:connect', () => resolve()));
  await dialer.dial(port, '127.0.0.1', '127.0.0.3');
  await up;
  assert.equal(listener.inboundStats.admitted, 2);
  await dialer.close();
  await listener.close();
});
