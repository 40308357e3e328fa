/**
 * fast-check properties of the request validators, the record check, the signed-request
 * layout and the token bucket: arbitrary input never throws, and what is accepted is exactly
 * what the API promises (docs/tracker.md). fast-check prints the seed and the shrunk
 * counterexample on failure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PeerRecordLimits } from '@peapod/core';
import { checkRecord } from '../src/record-check.js';
import { signedRequestMessage } from '../src/signed-request.js';
import { TokenBuckets } from '../src/token-bucket.js';
import {
  checkFields,
  checkQuery,
  parseContentIds,
  parseHex32,
  parseJsonObject,
  parseLimit,
  parseRecordField,
  parseSignatureHeader,
  parseTimestamp,
} from '../src/validators.js';
import { newDevice, recordOf, testCrypto } from './support/devices.js';

const RUNS = 2000;
const anything = fc.oneof(
  fc.anything(),
  fc.string(),
  fc.stringMatching(/^[0-9a-fA-F]{60,70}$/),
  fc.stringMatching(/^[0-9a-f]{64}$/),
  fc.stringMatching(/^[0-9a-f]{128}$/),
  fc.double(),
  fc.bigInt(),
);

test('parseJsonObject never throws and accepts exactly the bytes of one JSON object', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v))),
      ),
      (bytes) => {
        const result = parseJsonObject(bytes);
        let expected: unknown;
        try {
          expected = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
        } catch {
          expected = undefined;
        }
        const isObject =
          typeof expected === 'object' && expected !== null && !Array.isArray(expected);
        assert.equal(result.ok, isObject);
        if (!result.ok)
          assert.ok(result.refusal.code === 'bad-json' && result.refusal.error.length > 0);
      },
    ),
    { numRuns: RUNS },
  );
});

test('checkFields accepts exactly the objects whose keys are the allowed set', () => {
  const allowed = ['publicKey', 'timestampMs', 'contentIds'];
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.oneof(fc.constantFrom(...allowed, '__proto__', 'constructor'), fc.string()),
        anything,
      ),
      (body) => {
        const keys = Object.keys(body).sort();
        const result = checkFields(body, allowed);
        assert.equal(result.ok, JSON.stringify(keys) === JSON.stringify([...allowed].sort()));
      },
    ),
    { numRuns: RUNS },
  );
});

test('parseRecordField accepts canonical base64 of 1..limit bytes only, and decodes it exactly', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        anything,
        fc.base64String(),
        fc
          .uint8Array({ maxLength: PeerRecordLimits.recordBytes + 10 })
          .map((b) => Buffer.from(b).toString('base64')),
      ),
      (value) => {
        const result = parseRecordField(value);
        if (!result.ok) return;
        assert.equal(typeof value, 'string');
        assert.equal(Buffer.from(result.value).toString('base64'), value);
        assert.ok(
          result.value.length >= 1 && result.value.length <= PeerRecordLimits.recordBytes + 2,
        );
      },
    ),
    { numRuns: RUNS },
  );
});

test('parseHex32 accepts exactly 64 lowercase hex characters and round-trips them', () => {
  fc.assert(
    fc.property(anything, (value) => {
      const result = parseHex32('publicKey', value);
      assert.equal(result.ok, typeof value === 'string' && /^[0-9a-f]{64}$/.test(value));
      if (result.ok) assert.equal(Buffer.from(result.value).toString('hex'), value);
    }),
    { numRuns: RUNS },
  );
});

test('parseTimestamp accepts exactly the non-negative safe integers', () => {
  fc.assert(
    fc.property(fc.oneof(anything, fc.integer(), fc.maxSafeInteger()), (value) => {
      const result = parseTimestamp(value);
      assert.equal(
        result.ok,
        typeof value === 'number' && Number.isSafeInteger(value) && value >= 0,
      );
    }),
    { numRuns: RUNS },
  );
});

test('parseContentIds accepts only bounded lists of distinct lowercase hex IDs', () => {
  const id = fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.constant('a'.repeat(64)), anything);
  fc.assert(
    fc.property(
      fc.oneof(fc.array(id, { maxLength: 12 }), anything),
      fc.integer({ min: 0, max: 10 }),
      fc.boolean(),
      (value, max, allowEmpty) => {
        const result = parseContentIds(value, max, allowEmpty);
        if (!result.ok) return;
        assert.ok(Array.isArray(value));
        assert.ok(result.value.length <= max);
        assert.ok(allowEmpty || result.value.length > 0);
        assert.equal(new Set(result.value).size, result.value.length);
        for (const contentId of result.value) assert.match(contentId, /^[0-9a-f]{64}$/);
        assert.deepEqual(result.value, value);
      },
    ),
    { numRuns: RUNS },
  );
});

test('parseSignatureHeader accepts exactly one 128-character lowercase hex value', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.constant(undefined),
        fc.string(),
        fc.stringMatching(/^[0-9a-f]{128}$/),
        fc.array(fc.string()),
      ),
      (value) => {
        const result = parseSignatureHeader(value);
        assert.equal(result.ok, typeof value === 'string' && /^[0-9a-f]{128}$/.test(value));
        if (!result.ok) assert.equal(result.refusal.code, 'unsigned');
      },
    ),
    { numRuns: RUNS },
  );
});

test('parseLimit and checkQuery never throw; a limit accepted is an integer from 1 to max', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string(), fc.stringMatching(/^limit=[0-9]{0,5}(&limit=[0-9]{1,3})?$/)),
      fc.integer({ min: 1, max: 100 }),
      (search, max) => {
        const query = new URLSearchParams(search);
        const checked = checkQuery(query, ['limit']);
        const limit = parseLimit(query, 1, max);
        if (limit.ok)
          assert.ok(Number.isInteger(limit.value) && limit.value >= 1 && limit.value <= max);
        if (checked.ok) for (const key of query.keys()) assert.equal(key, 'limit');
      },
    ),
    { numRuns: RUNS },
  );
});

test('checkRecord never throws, never accepts arbitrary bytes, and refuses every one-byte change of a valid record', () => {
  const nowMs = 1_800_000_000_000;
  const device = newDevice();
  const valid = recordOf(device, nowMs);
  assert.ok(checkRecord(testCrypto, valid, nowMs, 'bootstrap').ok, 'the unchanged record passes');
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 1400 }),
      fc.constantFrom('bootstrap', 'node' as const),
      (bytes, purpose) => {
        assert.equal(checkRecord(testCrypto, bytes, nowMs, purpose).ok, false);
      },
    ),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), (index, flip) => {
      const mutated = valid.slice();
      mutated[index]! ^= flip;
      assert.equal(checkRecord(testCrypto, mutated, nowMs, 'node').ok, false);
    }),
    { numRuns: RUNS },
  );
});

test('signed-request messages differ whenever the method, path, timestamp or body differs', () => {
  const request = fc.record({
    method: fc.constantFrom('POST', 'PUT', 'GET'),
    path: fc.stringMatching(/^\/[a-z0-9/]{0,30}$/),
    timestampMs: fc.nat(),
    body: fc.uint8Array({ maxLength: 40 }),
  });
  fc.assert(
    fc.property(request, request, (a, b) => {
      const same =
        a.method === b.method &&
        a.path === b.path &&
        a.timestampMs === b.timestampMs &&
        Buffer.from(a.body).equals(Buffer.from(b.body));
      const ma = Buffer.from(signedRequestMessage(a.method, a.path, a.timestampMs, a.body));
      const mb = Buffer.from(signedRequestMessage(b.method, b.path, b.timestampMs, b.body));
      assert.equal(ma.equals(mb), same);
    }),
    { numRuns: RUNS },
  );
});

test('a token bucket never grants more than burst + rate x elapsed time', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 1, max: 20 }),
      fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 200 }),
      (rate, burst, gapsMs) => {
        const buckets = new TokenBuckets({ ratePerSecond: rate, burst, bucketsMax: 4 });
        let nowMs = 0;
        let granted = 0;
        for (const gap of gapsMs) {
          nowMs += gap;
          const wait = buckets.take('client', nowMs);
          if (wait === 0) granted++;
          else assert.ok(Number.isInteger(wait) && wait >= 1);
        }
        assert.ok(granted <= burst + Math.floor((nowMs * rate) / 1000) + 1);
        assert.ok(granted >= 1, 'the first request of a new client passes');
      },
    ),
    { numRuns: RUNS },
  );
});
