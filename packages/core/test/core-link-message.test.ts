/**
 * Peer links with 'message' framing (data channels, WebSockets): each `bytes-received` is one
 * whole record and each `send` output is one whole record. Two Cores on the shared HostDriver,
 * joined in memory by the pair harness, which delivers every send as one message; and
 * fast-check properties that no message, however malformed or oversized, makes the core throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Core } from '../src/core.js';
import type { LinkFraming } from '../src/peer-link.js';
import { SESSION_WIRE_VERSION } from '../src/secure-session.js';
import { MAX_DATA_BYTES } from '../src/wire/codec.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import { MAX_RECORD_BYTES } from '../src/wire/record-framer.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { LINK, Pair, type Side } from './support/pair.js';

/** Two cores joined in memory, each send delivered as one message (`framing` per side). */
function messagePair(
  seed = 1,
  framing: Record<Side, LinkFraming> = { a: 'message', b: 'message' },
): Pair {
  return new Pair({ seed, framing });
}

function readyPair(seed = 1): Pair {
  const pair = messagePair(seed);
  pair.connect();
  pair.drive();
  assert.equal(pair.eventsOf('a', 'peer:connect').length, 1);
  assert.equal(pair.eventsOf('b', 'peer:connect').length, 1);
  return pair;
}

test('over messages two cores connect, stream DATA, and each send is one whole record', () => {
  const pair = readyPair();
  assert.equal(pair.eventsOf('a', 'peer:connect')[0]?.remote.deviceName, 'device-b');
  // The initiator's first message is its first record itself: [version][suite id] e, no prefix.
  assert.equal(pair.sent.a[0]?.[0], SESSION_WIRE_VERSION);
  const bytes = new Uint8Array(5 * MAX_DATA_BYTES + 77).map((_, i) => (i * 13 + (i >> 8)) & 0xff);
  pair.input('a', {
    type: 'send-message',
    nowMs: 0,
    linkId: LINK,
    message: { type: 'data', requestId: 4, offset: 10, bytes },
  });
  pair.drive();
  const data = pair.eventsOf('b', 'peer:message').map((e) => e.message);
  assert.equal(data.length, Math.ceil(bytes.length / MAX_DATA_BYTES));
  const received = new Uint8Array(bytes.length);
  for (const message of data) {
    assert.ok(message.type === 'data');
    received.set(message.bytes, message.offset - 10);
  }
  assert.deepEqual(received, bytes);
  // A full DATA record (one send, joined from the provider's pieces) is exactly the limit.
  assert.ok(pair.sent.a.some((record) => record.length === MAX_RECORD_BYTES));
  assert.ok(
    pair.sent.a.every((record) => record.length >= 16 && record.length <= MAX_RECORD_BYTES),
  );
});

test('GOODBYE over messages carries its reason to the remote', () => {
  const pair = readyPair();
  pair.input('a', {
    type: 'close-link',
    nowMs: 0,
    linkId: LINK,
    reason: ReasonCode.goingAway,
  });
  pair.drive();
  const [gone] = pair.eventsOf('b', 'peer:disconnect');
  assert.equal(gone?.reason, ReasonCode.goingAway);
  assert.equal(gone?.by, 'remote');
  assert.equal(pair.cores.a.openLinkCount + pair.cores.b.openLinkCount, 0);
});

test('an oversized or empty message closes the link with a reason, and the remote hears it', () => {
  const cases = [
    { bytes: new Uint8Array(MAX_RECORD_BYTES + 1), reason: ReasonCode.frameTooLarge },
    { bytes: new Uint8Array(0), reason: ReasonCode.protocolError },
  ];
  for (const { bytes, reason } of cases) {
    const pair = readyPair();
    pair.inject('b', bytes);
    pair.drive();
    assert.equal(pair.eventsOf('b', 'peer:disconnect')[0]?.reason, reason, `${bytes.length} B`);
    const [heard] = pair.eventsOf('a', 'peer:disconnect');
    assert.equal(heard?.reason, reason, 'the GOODBYE carried the reason');
    assert.equal(heard?.by, 'remote');

    // While handshaking too: a fresh responder refuses it at once.
    const fresh = messagePair(3);
    fresh.open('b', 'inbound');
    fresh.inject('b', bytes);
    assert.equal(fresh.eventsOf('b', 'peer:disconnect')[0]?.reason, reason, `${bytes.length} B`);
  }
});

test('a record split over two messages, or two records in one, closes the link cleanly', () => {
  for (const mangle of ['split', 'joined'] as const) {
    const pair = readyPair();
    pair.input('a', {
      type: 'send-message',
      nowMs: 0,
      linkId: LINK,
      message: { type: 'data', requestId: 1, offset: 0, bytes: new Uint8Array(3000) },
    });
    pair.input('a', {
      type: 'send-message',
      nowMs: 0,
      linkId: LINK,
      message: { type: 'data', requestId: 1, offset: 3000, bytes: new Uint8Array(3000) },
    });
    // Take a's two DATA records off the wire and hand them to b re-cut.
    const [first, second] = pair.sent.a.slice(-2);
    assert.ok(first !== undefined && second !== undefined);
    pair.inFlight.a.length = 0;
    if (mangle === 'split') {
      pair.inject('b', first.subarray(0, 1000));
      pair.inject('b', first.subarray(1000));
    } else {
      const both = new Uint8Array(first.length + second.length);
      both.set(first);
      both.set(second, first.length);
      pair.inject('b', both);
    }
    pair.drive();
    assert.equal(pair.eventsOf('b', 'peer:message').length, 0, mangle);
    assert.equal(pair.eventsOf('b', 'peer:disconnect')[0]?.reason, ReasonCode.decryptFailed);
  }
});

test('a stream-framed dialer and a message-framed listener never connect, and nobody throws', () => {
  const pair = messagePair(5, { a: 'stream', b: 'message' });
  pair.connect();
  pair.drive();
  assert.equal(
    pair.eventsOf('a', 'peer:connect').length + pair.eventsOf('b', 'peer:connect').length,
    0,
  );
  assert.equal(pair.cores.a.openLinkCount + pair.cores.b.openLinkCount, 0);
});

test('an unknown framing is host misuse and throws', () => {
  const crypto = deterministicCrypto(1);
  const core = new Core({ crypto, identity: crypto.ed25519GenerateKeyPair(), seed: 1 });
  assert.throws(
    () =>
      core.handle({
        type: 'link-opened',
        nowMs: 0,
        linkId: 1,
        direction: 'inbound',
        remoteAddress: 'x',
        framing: 'datagram' as LinkFraming,
      }),
    { code: 'PEAPOD_ERR_INVALID_ARGUMENT' },
  );
  assert.equal(core.openLinkCount, 0);
});

/** Messages as a hostile remote might send them: short garbage, and sizes around the limit. */
const hostileMessage = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  {
    weight: 1,
    arbitrary: fc
      .record({
        size: fc.integer({ min: MAX_RECORD_BYTES - 2, max: MAX_RECORD_BYTES + 2 }),
        fill: fc.nat(255),
      })
      .map(({ size, fill }) => new Uint8Array(size).fill(fill)),
  },
);

test('property: arbitrary messages at a fresh message-framed responder never throw', () => {
  fc.assert(
    fc.property(fc.array(hostileMessage, { maxLength: 6 }), (messages) => {
      const pair = messagePair(7);
      pair.open('b', 'inbound');
      for (const bytes of messages) pair.inject('b', bytes);
      assert.equal(pair.eventsOf('b', 'peer:connect').length, 0, 'garbage never connects');
      assert.ok(pair.cores.b.openLinkCount <= 1);
    }),
    { numRuns: 300 },
  );
});

test('property: arbitrary messages at a mid-handshake message-framed initiator never throw', () => {
  fc.assert(
    fc.property(fc.array(hostileMessage, { minLength: 1, maxLength: 4 }), (messages) => {
      const pair = messagePair(9);
      pair.open('a', 'outbound'); // a sent message 1 and waits for message 2
      for (const bytes of messages) pair.inject('a', bytes);
      assert.equal(pair.eventsOf('a', 'peer:connect').length, 0);
      assert.equal(pair.eventsOf('a', 'peer:disconnect').length, 1, 'the link ended with a reason');
    }),
    { numRuns: 300 },
  );
});

test('property: arbitrary messages into a ready message-framed link never throw and end it', () => {
  fc.assert(
    fc.property(fc.array(hostileMessage, { minLength: 1, maxLength: 3 }), (messages) => {
      const pair = readyPair(11);
      for (const bytes of messages) pair.inject('b', bytes);
      pair.drive();
      assert.equal(pair.eventsOf('b', 'peer:message').length, 0, 'nothing forged is delivered');
      const [gone] = pair.eventsOf('b', 'peer:disconnect');
      const ends: number[] = [
        ReasonCode.decryptFailed,
        ReasonCode.protocolError,
        ReasonCode.frameTooLarge,
      ];
      assert.ok(gone !== undefined && ends.includes(gone.reason), `ended with ${gone?.reason}`);
      // The link layer's own refusals (size) go out in a GOODBYE; a record the session could
      // not open takes the transport keys with it, so the remote sees the transport end.
      const heard = pair.eventsOf('a', 'peer:disconnect')[0]?.reason;
      assert.ok(heard === gone.reason || heard === ReasonCode.connectionLost, `a heard ${heard}`);
    }),
    { numRuns: 100 },
  );
});
