/**
 * The checkers can fail: planted violations (a wrong byte, out of order, twice, too large a
 * send, unbounded memory, a bad stored chunk, a completion with the wrong digest; a repair of a
 * manifest-verified download or of bytes never delivered, a read past the output, a URL output
 * still wrong at completion) are reported with the right invariant name. A checker that cannot
 * fail proves nothing.
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

test('content by ID: a wrong byte is caught at delivery, and any repair is a violation', () => {
  const checker = new DeliveryChecker(0, 1, content, 'content');
  checker.onDeliver(0, content.slice(0, 1000));
  assert.equal(
    violationOf(() => checker.onDeliver(0, content.slice(0, 1000), true)),
    'content-never-repaired',
  );
});

/** The content's bytes at [start, end) with one byte flipped at `at` (a fresh copy). */
function flipped(start: number, end: number, at: number): Uint8Array {
  const bytes = content.slice(start, end).slice();
  bytes[at - start] = bytes[at - start]! ^ 0x40;
  return bytes;
}

test('URL: a lie may be delivered, but the output must equal the content at completion', () => {
  const sha = content.digest(65536).sha256;
  const checker = new DeliveryChecker(0, 1, content, 'url');
  checker.onDeliver(0, flipped(0, 100_000, 70_000));
  checker.onDeliver(100_000, content.slice(100_000, 300_000));
  assert.equal(
    violationOf(() => checker.onComplete(300_000, sha, sha)),
    'output-equals-content',
  );
});

test('URL: a repair over the lie fixes the output; reads see the output as written', () => {
  const sha = content.digest(65536).sha256;
  const checker = new DeliveryChecker(0, 1, content, 'url');
  checker.onDeliver(0, flipped(0, 100_000, 70_000));
  checker.onDeliver(100_000, flipped(100_000, 300_000, 299_999));
  assert.equal(checker.read(69_999, 3)[1], content.slice(70_000, 70_001)[0]! ^ 0x40);
  checker.onDeliver(0, content.slice(0, 100_000), true);
  // A repair that covers only part of a differing range leaves the rest differing.
  checker.onDeliver(100_000, content.slice(100_000, 299_000), true);
  assert.deepEqual(checker.read(60_000, 20_000), content.slice(60_000, 80_000));
  assert.equal(
    violationOf(() => checker.onComplete(300_000, sha, sha)),
    'output-equals-content',
  );
  checker.onDeliver(299_000, content.slice(299_000, 300_000), true);
  checker.onComplete(300_000, sha, sha);
  assert.equal(checker.repairs, 3);
  assert.equal(checker.outputSha256, Buffer.from(sha).toString('hex'));
});

test('URL: repairs and reads only of delivered bytes, nothing after completion', () => {
  const sha = content.digest(65536).sha256;
  const checker = new DeliveryChecker(0, 1, content, 'url');
  checker.onDeliver(0, content.slice(0, 100_000));
  assert.equal(
    violationOf(() => checker.onDeliver(50_000, content.slice(50_000, 100_001), true)),
    'repair-within-delivered',
  );
  assert.equal(
    violationOf(() => checker.read(99_000, 1_001)),
    'read-within-output',
  );
  checker.onDeliver(100_000, content.slice(100_000, 300_000));
  assert.equal(
    violationOf(() => checker.onComplete(300_000, new Uint8Array(32), sha)),
    'complete-sha256',
  );
  checker.onComplete(300_000, sha, sha);
  assert.equal(
    violationOf(() => checker.onDeliver(0, content.slice(0, 10), true)),
    'delivery-in-order-exactly-once',
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
