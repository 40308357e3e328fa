/**
 * Peer links through the Core, driven by the pair harness: handshake, identity, HELLO version
 * negotiation, heartbeats, timeouts, GOODBYE, priority lanes, and hostile bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Core } from '../src/core.js';
import { deriveDeviceId } from '../src/identity.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import { MAX_DATA_BYTES } from '../src/wire/codec.js';
import { Pair, LINK } from './support/pair.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

const secret = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

test('two cores connect: each learns the other device ID, name and version', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  const [aConnect] = pair.eventsOf('a', 'peer:connect');
  const [bConnect] = pair.eventsOf('b', 'peer:connect');
  assert.ok(aConnect && bConnect, 'both sides report peer:connect');
  assert.equal(aConnect.remote.deviceName, 'device-b');
  assert.equal(bConnect.remote.deviceName, 'device-a');
  assert.equal(aConnect.remote.protocolVersion, 1);
  assert.equal(aConnect.direction, 'outbound');
  assert.equal(bConnect.direction, 'inbound');
  // The device ID a learned is the hash of b's Ed25519 key, which b proved it holds.
  const crypto = deterministicCrypto(0);
  assert.deepEqual(aConnect.remote.deviceId, deriveDeviceId(crypto, pair.identities.b.publicKey));
  assert.deepEqual(bConnect.remote.deviceId, deriveDeviceId(crypto, pair.identities.a.publicKey));
  assert.notDeepEqual(aConnect.remote.deviceId, bConnect.remote.deviceId);
});

test('the same pod secret connects with either cipher', () => {
  for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
    const pair = new Pair({ a: { podSecret: secret(7), cipher }, b: { podSecret: secret(7) } });
    pair.connect();
    pair.drive();
    assert.equal(pair.eventsOf('a', 'peer:connect').length, 1, cipher);
    assert.equal(pair.eventsOf('b', 'peer:connect').length, 1, cipher);
  }
});

test('a different pod secret never connects, and nobody throws', () => {
  const pair = new Pair({ a: { podSecret: secret(1) }, b: { podSecret: secret(2) } });
  pair.connect();
  pair.drive();
  assert.equal(pair.eventsOf('a', 'peer:connect').length, 0);
  assert.equal(pair.eventsOf('b', 'peer:connect').length, 0);
  const [bGone] = pair.eventsOf('b', 'peer:disconnect');
  assert.equal(bGone?.reason, ReasonCode.handshakeFailed);
  assert.equal(pair.eventsOf('a', 'peer:disconnect').length, 1);
  assert.equal(pair.cores.a.openLinkCount + pair.cores.b.openLinkCount, 0);
});

test('an outsider without the pod secret is refused with suiteUnsupported', () => {
  const pair = new Pair({ b: { podSecret: secret(3) } });
  pair.connect();
  pair.drive();
  assert.equal(pair.eventsOf('b', 'peer:disconnect')[0]?.reason, ReasonCode.suiteUnsupported);
  assert.equal(pair.eventsOf('a', 'peer:connect').length, 0);
});

test('acceptRemote can refuse a device after it proved its identity', () => {
  const pair = new Pair({ b: { acceptRemote: () => false } });
  pair.connect();
  pair.drive();
  assert.equal(pair.eventsOf('b', 'peer:disconnect')[0]?.reason, ReasonCode.identityRejected);
  assert.equal(pair.eventsOf('b', 'peer:connect').length, 0);
});

test('HELLO negotiates the highest common version, or closes with versionUnsupported', () => {
  const ok = new Pair({
    a: { versionRange: { min: 1, max: 3 } },
    b: { versionRange: { min: 1, max: 2 } },
  });
  ok.connect();
  ok.drive();
  assert.equal(ok.eventsOf('a', 'peer:connect')[0]?.remote.protocolVersion, 2);
  assert.equal(ok.eventsOf('b', 'peer:connect')[0]?.remote.protocolVersion, 2);

  const none = new Pair({ a: { versionRange: { min: 2, max: 3 } } });
  none.connect();
  none.drive();
  assert.equal(none.eventsOf('a', 'peer:connect').length, 0);
  assert.equal(none.eventsOf('a', 'peer:disconnect')[0]?.reason, ReasonCode.versionUnsupported);
  assert.equal(none.eventsOf('b', 'peer:disconnect')[0]?.reason, ReasonCode.versionUnsupported);
});

test('heartbeats measure RTT; a silent peer is dropped after the idle timeout', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  pair.advance(16_000);
  assert.ok(pair.eventsOf('a', 'peer:rtt').length >= 1, 'a measured an RTT');
  assert.equal(pair.eventsOf('a', 'peer:disconnect').length, 0, 'heartbeats keep the link up');
  pair.advance(120_000);
  assert.equal(pair.eventsOf('a', 'peer:disconnect').length, 0, 'still up after two minutes');

  pair.muted.b = true; // b stalls: nothing it sends arrives
  const stalledAt = pair.nowMs;
  pair.advance(60_000);
  const [gone] = pair.eventsOf('a', 'peer:disconnect');
  assert.equal(gone?.reason, ReasonCode.timeout);
  assert.ok(pair.nowMs - stalledAt >= 45_000 - 15_000, 'not before the idle timeout could pass');
});

test('a handshake that never completes times out', () => {
  const pair = new Pair();
  pair.muted.b = true;
  pair.connect();
  pair.advance(11_000);
  assert.equal(pair.eventsOf('a', 'peer:disconnect')[0]?.reason, ReasonCode.timeout);
});

test('shutdown sends GOODBYE: the remote learns the reason', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  pair.input('a', { type: 'shutdown', nowMs: pair.nowMs });
  pair.drive();
  const [bGone] = pair.eventsOf('b', 'peer:disconnect');
  assert.equal(bGone?.reason, ReasonCode.goingAway);
  assert.equal(bGone?.by, 'remote');
  assert.equal(pair.eventsOf('a', 'peer:disconnect')[0]?.by, 'local');
});

test('a peer that vanishes without GOODBYE is reported as connectionLost', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  pair.input('b', { type: 'link-closed', nowMs: pair.nowMs, linkId: LINK });
  pair.drive();
  assert.equal(pair.eventsOf('b', 'peer:disconnect')[0]?.reason, ReasonCode.connectionLost);
});

test('a tampered record closes the link with decryptFailed', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  pair.tap = (from, bytes) => {
    if (from !== 'a' || bytes.length <= 2) return bytes; // tamper with records, not their prefixes
    const copy = bytes.slice();
    copy[copy.length - 1]! ^= 1;
    return copy;
  };
  pair.input('a', {
    type: 'send-message',
    nowMs: pair.nowMs,
    linkId: LINK,
    message: { type: 'rpc-request', callId: 1, method: 'ping', body: new Uint8Array(3) },
  });
  pair.drive();
  assert.equal(pair.eventsOf('b', 'peer:disconnect')[0]?.reason, ReasonCode.decryptFailed);
  assert.equal(
    pair.eventsOf('b', 'peer:message').length,
    0,
    'nothing unauthenticated is delivered',
  );
});

test('control and RPC frames overtake a queued 16 MiB chunk', () => {
  const pair = new Pair({ autoFlush: false });
  pair.connect();
  // The handshake itself needs flushes: flush generously until ready.
  for (let i = 0; i < 10; i++) {
    pair.step();
    pair.flush('a', 1 << 20);
    pair.flush('b', 1 << 20);
  }
  assert.equal(pair.eventsOf('b', 'peer:connect').length, 1);
  const chunk = new Uint8Array(16 * 1024 * 1024);
  const send = (message: Parameters<Core['handle']>[0] & { type: 'send-message' }) =>
    pair.input('a', message);
  send({
    type: 'send-message',
    nowMs: pair.nowMs,
    linkId: LINK,
    message: { type: 'data', requestId: 9, offset: 0, bytes: chunk },
  });
  pair.step();
  send({
    type: 'send-message',
    nowMs: pair.nowMs,
    linkId: LINK,
    message: { type: 'rpc-request', callId: 5, method: 'status', body: new Uint8Array() },
  });
  // Now let the link drain: flush what was sent, step, repeat, until b has all 16 MiB.
  const order: string[] = [];
  let dataBytes = 0;
  for (let i = 0; i < 10_000 && dataBytes < chunk.length; i++) {
    pair.step();
    for (const event of pair.events.b.splice(0)) {
      if (event.type !== 'peer:message') continue;
      order.push(event.message.type);
      if (event.message.type === 'data') dataBytes += event.message.bytes.length;
    }
    pair.flush('a', 1 << 30);
  }
  assert.equal(dataBytes, chunk.length, 'the whole chunk arrived');
  const rpcAt = order.indexOf('rpc-request');
  const framesPerWindow = Math.ceil((256 * 1024) / MAX_DATA_BYTES) + 1;
  assert.ok(
    rpcAt >= 0 && rpcAt <= framesPerWindow,
    `RPC arrived after ${rpcAt} DATA frames, not after all ${order.length - 1}`,
  );
});

test('the same seeds give the same wire transcript (replayable runs)', () => {
  const run = () => {
    const pair = new Pair({ seed: 42 });
    pair.connect();
    pair.advance(40_000);
    return pair.sent.a
      .concat(pair.sent.b)
      .map((b) => Buffer.from(b).toString('hex'))
      .join('|');
  };
  assert.equal(run(), run());
});

test('arbitrary bytes from an unauthenticated peer never throw', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (pieces) => {
      const crypto = deterministicCrypto(3);
      const core = new Core({ crypto, identity: crypto.ed25519GenerateKeyPair(), seed: 3 });
      core.handle({
        type: 'link-opened',
        nowMs: 0,
        linkId: 1,
        direction: 'inbound',
        remoteAddress: 'x',
      });
      let disconnected = false;
      for (const bytes of pieces) {
        core.handle({ type: 'bytes-received', nowMs: 1, linkId: 1, bytes });
        for (let out = core.poll(); out !== undefined; out = core.poll()) {
          if (out.type === 'disconnect') disconnected = true;
          assert.ok(
            !(out.type === 'event' && out.event.type === 'peer:connect'),
            'garbage never connects',
          );
        }
      }
      assert.ok(disconnected || core.openLinkCount === 1);
    }),
    { numRuns: 2_000 },
  );
});

test('STATUS never overtakes the DATA of its own request', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  const bytes = new Uint8Array(1024 * 1024).fill(5);
  pair.input('a', {
    type: 'send-message',
    nowMs: 0,
    linkId: LINK,
    message: { type: 'data', requestId: 3, offset: 0, bytes },
  });
  pair.input('a', {
    type: 'send-message',
    nowMs: 0,
    linkId: LINK,
    message: { type: 'status', requestId: 3, status: 0, length: bytes.length, message: '' },
  });
  pair.drive();
  const kinds = pair.eventsOf('b', 'peer:message').map((e) => e.message.type);
  assert.equal(kinds.at(-1), 'status');
  assert.equal(kinds.filter((k) => k === 'data').length, Math.ceil(bytes.length / MAX_DATA_BYTES));
});

test('DATA frames carry their request ID, offsets and bytes exactly, past 2^32', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  // Sealed from a 13-byte header plus a view of the payload (never assembled): the receiver's
  // codec must decode exactly what encodeDataFrame would have produced.
  const bytes = new Uint8Array(3 * MAX_DATA_BYTES + 1234).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const baseOffset = 2 ** 40 + 5;
  pair.input('a', {
    type: 'send-message',
    nowMs: 0,
    linkId: LINK,
    message: { type: 'data', requestId: 0xfedcba98, offset: baseOffset, bytes },
  });
  pair.drive();
  const received = new Uint8Array(bytes.length);
  let expectedOffset = baseOffset;
  for (const { message } of pair.eventsOf('b', 'peer:message')) {
    assert.ok(message.type === 'data');
    assert.equal(message.requestId, 0xfedcba98);
    assert.equal(message.offset, expectedOffset);
    received.set(message.bytes, message.offset - baseOffset);
    expectedOffset += message.bytes.length;
  }
  assert.equal(expectedOffset, baseOffset + bytes.length);
  assert.deepEqual(received, bytes);
});

test('queueing DATA with a request ID or offset the codec cannot encode throws at once', () => {
  const pair = new Pair();
  pair.connect();
  pair.drive();
  const bad = [
    { requestId: -1, offset: 0 },
    { requestId: 2 ** 32, offset: 0 },
    { requestId: 1, offset: 2 ** 53 - 2 },
  ];
  for (const { requestId, offset } of bad) {
    assert.throws(
      () =>
        pair.input('a', {
          type: 'send-message',
          nowMs: 0,
          linkId: LINK,
          message: { type: 'data', requestId, offset, bytes: new Uint8Array(4) },
        }),
      { code: 'PEAPOD_ERR_INVALID_ARGUMENT' },
    );
  }
});
