/**
 * L1 (gateway/memory-cache.ts): the byte bound holds after any sequence of operations, what is
 * read is what was stored, GDSF keeps small often-used chunks through a scan of big one-time
 * ones, and the counters and heat levels say what happened.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemoryCache } from '../src/gateway/memory-cache.js';

const MIB = 2 ** 20;

test('property: after any operations, bytes <= maxBytes, and get returns exactly what set stored', () => {
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('set' as const),
      key: fc.nat(20),
      size: fc.nat(5000),
      fill: fc.nat(255),
    }),
    fc.record({ kind: fc.constant('get' as const), key: fc.nat(20) }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.nat(20) }),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20_000 }),
      fc.array(op, { maxLength: 200 }),
      (maxBytes, ops) => {
        const cache = new MemoryCache({ maxBytes, maxEntryBytes: maxBytes });
        const model = new Map<string, number>(); // what a held key must hold: its fill byte
        for (const o of ops) {
          const key = `k${o.key}`;
          if (o.kind === 'set') {
            if (cache.set(key, new Uint8Array(o.size).fill(o.fill))) model.set(key, o.fill);
            else model.delete(key);
          } else if (o.kind === 'get') {
            const got = cache.get(key);
            if (got !== undefined) assert.ok(got.every((b) => b === model.get(key)));
          } else {
            cache.delete(key);
            model.delete(key);
          }
          const stats = cache.stats();
          assert.ok(stats.bytes <= maxBytes, `${stats.bytes} > ${maxBytes}`);
          assert.ok(stats.bytes >= 0);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('GDSF: a small, often-read chunk survives a scan of big chunks read once', () => {
  const cache = new MemoryCache({ maxBytes: 64 * MIB, maxEntryBytes: 16 * MIB });
  const hot = new Uint8Array(MIB).fill(7);
  cache.set('hot', hot);
  for (let i = 0; i < 10; i++) assert.equal(cache.get('hot'), hot);
  for (let i = 0; i < 40; i++) cache.set(`scan${i}`, new Uint8Array(8 * MIB));
  assert.equal(cache.get('hot'), hot, 'the hot chunk is still held');
  const stats = cache.stats();
  assert.ok(stats.evictions >= 30, `evictions ${stats.evictions}`);
  assert.equal(stats.levels.hot, 1);
  assert.ok(stats.bytes <= 64 * MIB);
});

test('an entry over maxEntryBytes is not kept; counters count hits and misses', () => {
  const cache = new MemoryCache({ maxBytes: 10 * MIB });
  assert.equal(cache.maxEntryBytes, Math.floor((10 * MIB) / 8));
  assert.equal(cache.set('big', new Uint8Array(2 * MIB)), false);
  assert.equal(cache.get('big'), undefined);
  cache.set('a', new Uint8Array(10));
  cache.get('a');
  const stats = cache.stats();
  assert.deepEqual([stats.hits, stats.misses, stats.entries], [1, 1, 1]);
});

test('bad budgets are refused with a RangeError', () => {
  assert.throws(() => new MemoryCache({ maxBytes: 0 }), RangeError);
  assert.throws(() => new MemoryCache({ maxBytes: 10, maxEntryBytes: 0 }), RangeError);
});
