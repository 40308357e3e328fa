/**
 * The checkers can fail: planted violations (a wrong byte, out of order, twice, too large a
 * send, unbounded memory, a bad stored chunk, a completion with the wrong digest) are reported
 * with the right invariant name. A checker that cannot fail proves nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Content } from '../src/content.js';
import { EventQueue } from '../src/event-queue.js';
import {
  DeliveryChecker,
  MAX_SEND_BYTES,
  Violation,
  checkMemory,
  checkSend,
  checkStoredChunk,
} from '../src/invariants.js';

const content = new Content(7, 300_000);

function violationOf(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof Violation) return error.invariant;
    throw error;
  }
  return 'none';
}

test('a correct in-order delivery passes and completes', () => {
  const checker = new DeliveryChecker(0, 1, content);
  checker.onDeliver(0, content.slice(0, 100_000));
  checker.onDeliver(100_000, content.slice(100_000, 300_000));
  checker.onComplete(300_000, content.digest(65536).sha256, content.digest(65536).sha256);
  assert.equal(checker.outputSha256, Buffer.from(content.digest(65536).sha256).toString('hex'));
});

test('a wrong byte is caught', () => {
  const checker = new DeliveryChecker(0, 1, content);
  const bytes = content.slice(0, 1000);
  bytes[500] = bytes[500]! ^ 1;
  assert.equal(
    violationOf(() => checker.onDeliver(0, bytes)),
    'delivered-bytes-verified',
  );
});

test('a wrong byte in a shared block is caught without mutating the block', () => {
  const checker = new DeliveryChecker(0, 1, content);
  const block = content.slice(0, 65536); // shared
  const copy = block.slice();
  copy[65535] = copy[65535]! ^ 0x80;
  assert.equal(
    violationOf(() => checker.onDeliver(0, copy)),
    'delivered-bytes-verified',
  );
  assert.ok(content.matches(0, content.slice(0, 65536)));
});

test('out of order (a gap) is caught', () => {
  const checker = new DeliveryChecker(0, 1, content);
  checker.onDeliver(0, content.slice(0, 10));
  assert.equal(
    violationOf(() => checker.onDeliver(20, content.slice(20, 30))),
    'delivery-in-order-exactly-once',
  );
});

test('the same bytes twice are caught', () => {
  const checker = new DeliveryChecker(0, 1, content);
  checker.onDeliver(0, content.slice(0, 10));
  assert.equal(
    violationOf(() => checker.onDeliver(0, content.slice(0, 10))),
    'delivery-in-order-exactly-once',
  );
});

test('delivering past the end, completing early, and a wrong digest are caught', () => {
  const checker = new DeliveryChecker(0, 1, content);
  assert.equal(
    violationOf(() => checker.onDeliver(0, new Uint8Array(300_001))),
    'delivery-within-object',
  );
  const sha = content.digest(65536).sha256;
  assert.equal(
    violationOf(() => checker.onComplete(300_000, sha, sha)),
    'complete-after-all-bytes',
  );
  checker.onDeliver(0, content.slice(0, 300_000));
  assert.equal(
    violationOf(() => checker.onComplete(300_000, new Uint8Array(32), sha)),
    'complete-sha256',
  );
});

test('oversized sends and unbounded memory are caught', () => {
  checkSend(0, 1, MAX_SEND_BYTES);
  assert.equal(
    violationOf(() => checkSend(0, 1, MAX_SEND_BYTES + 1)),
    'send-size',
  );
  checkMemory(0, 1, 10, 10);
  assert.equal(
    violationOf(() => checkMemory(0, 1, 11, 10)),
    'download-memory-bounded',
  );
});

test('a stored chunk must match the manifest hash and the content', () => {
  const digest = content.digest(65536);
  const good = content.slice(65536, 131072);
  checkStoredChunk(0, content, 65536, digest.chunkHashes, 1, digest.chunkHashes[1]!, good);
  const bad = good.slice();
  bad[0] = bad[0]! ^ 1;
  assert.equal(
    violationOf(() =>
      checkStoredChunk(0, content, 65536, digest.chunkHashes, 1, digest.chunkHashes[1]!, bad),
    ),
    'stored-chunk-verified',
  );
  assert.equal(
    violationOf(() =>
      checkStoredChunk(0, content, 65536, digest.chunkHashes, 1, digest.chunkHashes[0]!, good),
    ),
    'stored-chunk-verified',
  );
});

test('content is a pure function of (seed, offset), whatever the slicing', () => {
  const a = new Content(99, 1_000_000, 2);
  const b = new Content(99, 1_000_000, 2);
  const whole = a.slice(0, 1_000_000);
  for (const [s, e] of [
    [0, 1],
    [65535, 65537],
    [123_456, 654_321],
    [999_999, 1_000_000],
  ] as const) {
    assert.deepEqual(b.slice(s, e), whole.subarray(s, e));
  }
  assert.notDeepEqual(new Content(100, 1000).slice(0, 1000), new Content(99, 1000).slice(0, 1000));
});

test('the event queue runs events by time, then by insertion order', () => {
  const queue = new EventQueue();
  const seen: string[] = [];
  queue.schedule(5, 'x', 0, 0, () => seen.push('b'));
  queue.schedule(1, 'x', 0, 0, () => seen.push('a'));
  queue.schedule(5, 'x', 0, 0, () => seen.push('c'));
  queue.schedule(3, 'x', 0, 0, () => queue.schedule(0, 'x', 0, 0, () => seen.push('now')));
  while (queue.step());
  assert.deepEqual(seen, ['a', 'now', 'b', 'c']);
  assert.equal(queue.nowMs, 5);
});
