/**
 * The peer table (peer-table.ts): who dials whom, backoff after failures, bans, and bounds.
 * Driven directly and through a Core (`peer-discovered` in, `connect` out).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import { Core, type CoreOutput } from '../src/core.js';
import { deriveDeviceId } from '../src/identity.js';
import { PeerTable } from '../src/peer-table.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

const id = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);
const settings = { redialMinMs: 1_000, redialMaxMs: 8_000, maxEntries: 3 };

test('of two devices, only the one with the smaller Device ID dials', () => {
  const low = new PeerTable(toHex(id(1)), settings);
  const high = new PeerTable(toHex(id(2)), settings);
  const order = low.discovered(id(2), '10.0.0.2', 9000, 'lan', 0);
  assert.deepEqual(order && { ...order, deviceId: toHex(order.deviceId!) }, {
    dialId: 1,
    deviceId: toHex(id(2)),
    address: '10.0.0.2',
    port: 9000,
    trust: 'pod',
  });
  assert.equal(high.discovered(id(1), '10.0.0.1', 9000, 'lan', 0), undefined);
  assert.equal(high.snapshot()[0]!.state, 'discovered');
  // While connecting, a second beacon does not dial again.
  assert.equal(low.discovered(id(2), '10.0.0.2', 9000, 'lan', 10), undefined);
  assert.equal(low.snapshot()[0]!.state, 'connecting');
});

test('a device never dials itself', () => {
  const table = new PeerTable(toHex(id(1)), settings);
  assert.equal(table.discovered(id(1), '10.0.0.1', 9000, 'lan', 0), undefined);
  assert.equal(table.snapshot().length, 0);
});

test('failed dials back off exponentially up to the ceiling; a ready link resets it', () => {
  const table = new PeerTable(toHex(id(1)), settings);
  let now = 0;
  let order = table.discovered(id(2), '10.0.0.2', 9000, 'lan', now)!;
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) {
    if (i % 2 === 0) table.dialFailed(order.dialId, now);
    else {
      // A transport that opened but closed before HELLO is a failure too.
      table.linkOpened(100 + i, order.dialId);
      table.linkClosed(100 + i, now);
    }
    let wait = 0;
    for (;;) {
      wait += 100;
      const next = table.discovered(id(2), '10.0.0.2', 9000, 'lan', now + wait);
      if (next !== undefined) {
        order = next;
        break;
      }
    }
    waits.push(wait);
    now += wait;
  }
  assert.deepEqual(waits, [1_000, 2_000, 4_000, 8_000, 8_000]);
  table.linkOpened(7, order.dialId);
  table.linkReady(7, id(2), 'b', 1, '10.0.0.2:51000', 9000, 'outbound', now);
  const row = table.snapshot()[0]!;
  assert.equal(row.state, 'connected');
  assert.equal(row.failures, 0);
  assert.equal(row.protocolVersion, 1);
  assert.equal(row.port, 9000, 'the HELLO listen port, not the ephemeral source port');
  table.linkClosed(7, now + 5);
  assert.ok(table.discovered(id(2), '10.0.0.2', 9000, 'lan', now + 6), 'redial at once');
});

test('a banned device is never dialled again', () => {
  const table = new PeerTable(toHex(id(1)), settings);
  table.discovered(id(2), '10.0.0.2', 9000, 'lan', 0);
  table.banned(id(2));
  table.dialFailed(1, 0);
  assert.equal(table.discovered(id(2), '10.0.0.2', 9000, 'lan', 1e9), undefined);
  assert.equal(table.snapshot()[0]!.banned, true);
});

test('an address that answers as another device counts as a failed dial of the first', () => {
  const table = new PeerTable(toHex(id(1)), settings);
  const order = table.discovered(id(2), '10.0.0.2', 9000, 'lan', 0)!;
  table.linkOpened(5, order.dialId);
  table.linkReady(5, id(3), 'c', 1, '10.0.0.2:9000', 9000, 'outbound', 1);
  const rows = new Map(table.snapshot().map((row) => [row.deviceIdHex, row]));
  assert.equal(rows.get(toHex(id(2)))!.state, 'gone');
  assert.equal(rows.get(toHex(id(2)))!.failures, 1);
  assert.equal(rows.get(toHex(id(3)))!.state, 'connected');
});

test('the table stays within maxEntries, keeping connected peers', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 2, max: 60 }), { maxLength: 200 }), (fills) => {
      const table = new PeerTable(toHex(id(1)), settings);
      table.discovered(id(100), '10.0.0.100', 9000, 'lan', 0);
      table.linkReady(1, id(100), 'kept', 1, '10.0.0.100:9000', 9000, 'inbound', 0);
      fills.forEach((fill, t) => table.discovered(id(fill), '10.0.0.9', 9000, 'lan', t + 1));
      const rows = table.snapshot();
      assert.ok(rows.length <= settings.maxEntries, `${rows.length} rows`);
      assert.ok(rows.some((row) => row.name === 'kept' && row.state === 'connected'));
    }),
  );
});

test('through a Core: peer-discovered yields one connect, and the link it opens is the peer', () => {
  const crypto = deterministicCrypto(0);
  const identity = crypto.ed25519GenerateKeyPair();
  const core = new Core({ crypto, identity, seed: 1 });
  const own = deriveDeviceId(crypto, identity.publicKey);
  // A remote ID greater than ours, so this side dials.
  const remote = new Uint8Array(32).fill(0xff);
  assert.ok(toHex(own) < toHex(remote));
  core.handle({
    type: 'peer-discovered',
    nowMs: 0,
    deviceId: remote,
    address: '10.0.0.2',
    port: 9000,
    source: 'lan',
  });
  const outputs: CoreOutput[] = [];
  for (let out = core.poll(); out !== undefined; out = core.poll()) outputs.push(out);
  assert.equal(outputs.length, 1);
  const connect = outputs[0]!;
  assert.equal(connect.type, 'connect');
  if (connect.type !== 'connect') return;
  assert.equal(connect.address, '10.0.0.2');
  core.handle({ type: 'dial-failed', nowMs: 1, dialId: connect.dialId, detail: 'refused' });
  assert.equal(core.peers()[0]!.state, 'gone');
  assert.equal(core.peers()[0]!.failures, 1);
  assert.throws(
    () =>
      core.handle({
        type: 'peer-discovered',
        nowMs: 2,
        deviceId: new Uint8Array(3),
        address: 'x',
        port: 1,
        source: 'lan',
      }),
    /deviceId/,
  );
});

test('stranger addresses are never kept: a gossip dial, an inbound stranger link and its close leave no address; a pod peer keeps its own', () => {
  const table = new PeerTable('00'.repeat(32));
  const stranger = new Uint8Array(32).fill(0xaa);
  const dial = table.dialStranger(stranger, '203.0.113.7', 4000, 'gossip', 0);
  assert.equal(dial?.address, '203.0.113.7', 'the dial order still carries the address');
  table.linkOpened(1, dial!.dialId);
  table.linkReady(1, stranger, 's', 1, '203.0.113.7:4000', 4000, 'outbound', 1, 'stranger');
  const inbound = new Uint8Array(32).fill(0xbb);
  table.linkReady(2, inbound, 'i', 1, '198.51.100.9:5555', 4001, 'inbound', 1, 'stranger');
  table.linkClosed(1, 2);
  for (const row of table.snapshot()) {
    assert.equal(row.address, '', `no address kept for stranger ${row.name}`);
    assert.equal(row.port, 0);
  }
  const pod = new Uint8Array(32).fill(0xcc);
  table.discovered(pod, '192.168.1.5', 7000, 'lan', 3);
  const podRow = table.snapshot().find((row) => row.deviceIdHex === toHex(pod));
  assert.equal(podRow?.address, '192.168.1.5', 'a pod peer keeps its address');
});
