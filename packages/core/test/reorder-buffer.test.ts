/**
 * ReorderBuffer: in-order release, the window, and the repair bookkeeping (taking back a held
 * piece; acknowledgements that count in-order and repair bytes in the order they were given).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReorderBuffer } from '../src/transfer/reorder-buffer.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

const crypto = deterministicCrypto(5);
const bytes = (length: number, fill: number): Uint8Array => new Uint8Array(length).fill(fill);

test('pieces are released in order, once, and the digest covers them', () => {
  const buffer = new ReorderBuffer(crypto, 30, 100);
  buffer.insert(10, bytes(10, 2));
  assert.deepEqual(buffer.release(), []);
  buffer.insert(0, bytes(10, 1));
  buffer.insert(20, bytes(10, 3));
  const out = buffer.release();
  assert.deepEqual(
    out.map((p) => p.offset),
    [0, 10, 20],
  );
  assert.ok(buffer.finished);
  const all = new Uint8Array(30);
  out.forEach((p) => all.set(p.bytes, p.offset));
  assert.deepEqual(buffer.digest(), crypto.sha256(all));
});

test('remove takes back a held piece: its place is a gap until it is inserted again', () => {
  const buffer = new ReorderBuffer(crypto, 30, 100);
  buffer.insert(10, bytes(10, 2));
  buffer.insert(20, bytes(10, 3));
  assert.equal(buffer.heldBytes, 20);
  assert.ok(buffer.holds(10));
  assert.deepEqual(buffer.remove(10), bytes(10, 2));
  assert.equal(buffer.remove(10), undefined, 'only once');
  assert.equal(buffer.heldBytes, 10);
  buffer.insert(0, bytes(10, 1));
  assert.deepEqual(
    buffer.release().map((p) => p.offset),
    [0],
    'stops at the gap',
  );
  buffer.insert(10, bytes(10, 9));
  const rest = buffer.release();
  assert.deepEqual(
    rest.map((p) => [p.offset, p.bytes[0]]),
    [
      [10, 9],
      [20, 3],
    ],
  );
});

test('acknowledgements count repair bytes in output order; only in-order ones move the window', () => {
  const buffer = new ReorderBuffer(crypto, 40, 100);
  buffer.insert(0, bytes(20, 1));
  buffer.release(); // 20 in order
  buffer.repairEmitted(0, 10); // 10 repair
  buffer.insert(20, bytes(10, 2));
  buffer.release(); // 10 in order
  assert.equal(buffer.heldBytes, 40);
  buffer.acknowledge(15);
  assert.equal(buffer.ackedOffset, 15);
  assert.equal(buffer.heldBytes, 25);
  buffer.acknowledge(10); // 5 in order + 5 repair
  assert.equal(buffer.ackedOffset, 20);
  assert.equal(buffer.heldBytes, 15);
  buffer.acknowledge(10); // 5 repair + 5 in order
  assert.equal(buffer.ackedOffset, 25);
  assert.equal(buffer.windowEnd, 125);
  assert.throws(() => buffer.acknowledge(6), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  buffer.acknowledge(5);
  assert.equal(buffer.heldBytes, 0);
  assert.equal(buffer.ackedOffset, 30);
});

test('a repair of bytes not yet emitted is an internal error', () => {
  const buffer = new ReorderBuffer(crypto, 40, 100);
  buffer.insert(0, bytes(10, 1));
  buffer.release();
  assert.throws(() => buffer.repairEmitted(5, 10), { code: 'PEAPOD_ERR_ASSERTION' });
});
