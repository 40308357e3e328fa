/**
 * ChunkVerifier and verifyChunk: exact bytes in any frame split are released; any bit flip,
 * short or long data, and out-of-order offsets are failure results, never exceptions; the
 * bytes cannot be reached before they verify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import {
  ChunkVerifier,
  verifyChunk,
  type ChunkVerifyResult,
  type ChunkWriteResult,
} from '../src/content/chunk-verifier.js';
import { CHUNK_SIZE_BYTES_MAX } from '../src/content/layout.js';

const noble = createNobleCryptoProvider({
  randomBytes: () => {
    throw new Error('the content layer must not draw randomness');
  },
});
/** node:crypto hashing for the megabyte-sized properties (vectors hold both to the same bytes). */
const fast: CryptoProvider = {
  ...noble,
  sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
  createSha256() {
    const hash = createHash('sha256');
    return {
      update: (data) => void hash.update(data),
      digest: () => new Uint8Array(hash.digest()),
    };
  },
};

function contentBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Cuts `bytes` into pieces at the given fractions of its length. */
function splitAt(bytes: Uint8Array, fractions: readonly number[]): Uint8Array[] {
  const cuts = fractions.map((f) => Math.floor(f * bytes.length)).sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    pieces.push(bytes.subarray(start, cut));
    start = cut;
  }
  return pieces;
}

/** Writes the pieces in order, stopping at the first failure; returns finish()'s result. */
function feed(verifier: ChunkVerifier, pieces: readonly Uint8Array[]): ChunkVerifyResult {
  let offset = 0;
  for (const piece of pieces) {
    const written = verifier.write(offset, piece);
    if (!written.ok) break;
    offset += piece.length;
  }
  return verifier.finish();
}

test('ChunkVerifier: whole, frame by frame and byte by byte, the right bytes verify', () => {
  const data = contentBytes(1, 3 * 65_519 + 17);
  const hash = noble.sha256(data);
  const frames = (size: number): Uint8Array[] =>
    Array.from({ length: Math.ceil(data.length / size) }, (_, i) =>
      data.subarray(i * size, (i + 1) * size),
    );
  for (const pieces of [[data], splitAt(data, [1 / 3, 2 / 3, 0.9]), frames(65_000), frames(997)]) {
    const result = feed(new ChunkVerifier(noble, hash, data.length), pieces);
    assert.ok(result.ok);
    assert.deepEqual(result.bytes, data);
  }
  const small = contentBytes(2, 300);
  const byteByByte = Array.from({ length: small.length }, (_, i) => small.subarray(i, i + 1));
  const result = feed(new ChunkVerifier(noble, noble.sha256(small), small.length), byteByByte);
  assert.ok(result.ok && result.bytes.length === 300);
});

test('ChunkVerifier: write reports completion; empty writes are harmless', () => {
  const data = contentBytes(3, 100);
  const verifier = new ChunkVerifier(noble, noble.sha256(data), 100);
  assert.deepEqual(verifier.write(0, new Uint8Array(0)), { ok: true, complete: false });
  assert.deepEqual(verifier.write(0, data.subarray(0, 60)), { ok: true, complete: false });
  assert.equal(verifier.receivedBytes, 60);
  assert.deepEqual(verifier.write(60, data.subarray(60)), { ok: true, complete: true });
  assert.deepEqual(verifier.write(100, new Uint8Array(0)), { ok: true, complete: true });
  const result = verifier.finish();
  assert.ok(result.ok);
  assert.deepEqual(result.bytes, data);
});

test('ChunkVerifier: every kind of bad data is a failure result', () => {
  const data = contentBytes(4, 1000);
  const hash = noble.sha256(data);
  const make = (): ChunkVerifier => new ChunkVerifier(noble, hash, data.length);

  const flipped = data.slice();
  flipped[500]! ^= 0x10;
  const corrupt = feed(make(), [flipped]);
  assert.ok(!corrupt.ok && corrupt.reason === 'checksum-mismatch');

  const short = feed(make(), [data.subarray(0, 999)]);
  assert.ok(!short.ok && short.reason === 'length-mismatch');

  const nothing = make().finish();
  assert.ok(!nothing.ok && nothing.reason === 'length-mismatch');

  const long = make();
  const overlong = long.write(0, Uint8Array.of(...data, 0));
  assert.ok(!overlong.ok && overlong.reason === 'length-mismatch');
  const longResult = long.finish();
  assert.ok(!longResult.ok && longResult.reason === 'length-mismatch');

  const tail = make();
  assert.ok(tail.write(0, data).ok);
  const extra = tail.write(1000, Uint8Array.of(1));
  assert.ok(!extra.ok && extra.reason === 'length-mismatch');

  for (const badOffset of [1, -1, 0.5, NaN, 2 ** 53, 1000]) {
    const gap = make();
    const written = gap.write(badOffset, data.subarray(0, 10));
    assert.ok(!written.ok && written.reason === 'out-of-order', String(badOffset));
  }
  const resend = make();
  assert.ok(resend.write(0, data.subarray(0, 10)).ok);
  const duplicate = resend.write(0, data.subarray(0, 10));
  assert.ok(!duplicate.ok && duplicate.reason === 'out-of-order');
});

test('ChunkVerifier: after a failure every later write and finish report it', () => {
  const data = contentBytes(5, 200);
  const verifier = new ChunkVerifier(noble, noble.sha256(data), 200);
  const first = verifier.write(5, data);
  assert.ok(!first.ok && first.reason === 'out-of-order');
  // Even the right bytes at the right offset are refused now: the chunk is already discarded.
  const second = verifier.write(0, data);
  assert.deepEqual(second, first);
  assert.deepEqual(verifier.finish(), first);
});

test('ChunkVerifier: the bytes are unreachable before verification and immune to reuse', () => {
  const data = contentBytes(6, 500);
  const frame = data.slice();
  const verifier = new ChunkVerifier(noble, noble.sha256(data), 500);
  assert.ok(verifier.write(0, frame).ok);
  frame.fill(0); // the network stack reuses its frame buffer
  // No own property, no JSON field, no getter exposes the buffer.
  assert.deepEqual(Object.keys(verifier), ['expectedLength']);
  assert.equal(JSON.stringify(verifier).length < 2000, true); // hash + length, not 500 bytes
  assert.equal((verifier as unknown as Record<string, unknown>)['buffer'], undefined);
  const result = verifier.finish();
  assert.ok(result.ok);
  assert.deepEqual(result.bytes, data);
  // A failure result has no bytes field at all; TypeScript refuses to read it unnarrowed.
  const failed: ChunkVerifyResult = new ChunkVerifier(noble, noble.sha256(data), 500).finish();
  assert.equal('bytes' in failed, false);
  // @ts-expect-error -- `bytes` exists only on the `ok: true` branch.
  void failed.bytes;
  // The expected hash is copied in and out: neither the caller's array nor the getter's result
  // can change what the bytes must hash to.
  const hash = noble.sha256(data);
  const pinned = new ChunkVerifier(noble, hash, 500);
  hash.fill(0);
  pinned.expectedHash.fill(0);
  assert.ok(feed(pinned, [data]).ok);
});

test('ChunkVerifier: misuse throws with stable codes', () => {
  const hash = noble.sha256(new Uint8Array(1));
  for (const length of [0, -1, 1.5, NaN, CHUNK_SIZE_BYTES_MAX + 1]) {
    assert.throws(() => new ChunkVerifier(noble, hash, length), {
      code: 'PEAPOD_ERR_INVALID_ARGUMENT',
    });
  }
  assert.throws(() => new ChunkVerifier(noble, hash.subarray(1), 1), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  const verifier = new ChunkVerifier(noble, hash, 1);
  verifier.write(0, new Uint8Array(1));
  assert.ok(verifier.finish().ok);
  assert.throws(() => verifier.write(1, new Uint8Array(0)), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => verifier.finish(), { code: 'PEAPOD_ERR_INVALID_STATE' });
});

test('verifyChunk: one-shot check', () => {
  const data = contentBytes(7, 1234);
  const hash = noble.sha256(data);
  assert.equal(verifyChunk(noble, hash, data), true);
  assert.equal(verifyChunk(noble, hash, data.subarray(1)), false);
  assert.equal(verifyChunk(noble, hash.subarray(1), data), false);
  assert.equal(verifyChunk(noble, new Uint8Array(0), new Uint8Array(0)), false);
});

// 500 runs: chunks up to 1 MiB in up to 40 frames (hashing with node:crypto; ~2 ms a run).
test('property: the right bytes verify in any frame split', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 1 << 20 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }),
      (seed, length, fractions) => {
        const data = contentBytes(seed, length);
        const result = feed(
          new ChunkVerifier(fast, fast.sha256(data), length),
          splitAt(data, fractions),
        );
        assert.ok(result.ok && Buffer.from(result.bytes).equals(data));
      },
    ),
    { numRuns: 500 },
  );
});

// 1,000 runs: chunks up to 256 KiB; one bit flipped anywhere, in any frame split.
test('property: any single-bit flip is a checksum mismatch', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 1 << 18 }),
      fc.nat(),
      fc.nat({ max: 7 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 }),
      (seed, length, position, bit, fractions) => {
        const data = contentBytes(seed, length);
        const hash = fast.sha256(data);
        const corrupt = data.slice();
        corrupt[position % length]! ^= 1 << bit;
        const result = feed(new ChunkVerifier(fast, hash, length), splitAt(corrupt, fractions));
        assert.ok(!result.ok && result.reason === 'checksum-mismatch');
        assert.equal('bytes' in result, false);
      },
    ),
    { numRuns: 1_000 },
  );
});

// 10,000 runs: a model of the verifier (small chunks, 1..300 bytes) against random sequences of
// good, corrupted, misplaced, short and overlong writes.
test('property: model test: nothing throws; bytes come out only when exactly right', () => {
  type Step = { readonly kind: 'next' | 'corrupt' | 'offset' | 'long'; n: number; x: number };
  const step: fc.Arbitrary<Step> = fc.record({
    kind: fc.constantFrom('next', 'next', 'next', 'corrupt', 'offset', 'long'),
    n: fc.nat({ max: 120 }),
    x: fc.integer({ min: -3, max: 400 }),
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 300 }),
      fc.array(step, { maxLength: 12 }),
      (seed, length, steps) => {
        const data = contentBytes(seed, length);
        const verifier = new ChunkVerifier(noble, noble.sha256(data), length);
        // The model: bytes accepted so far, whether any accepted byte is wrong, first failure.
        let received = 0;
        let dirty = false;
        let failedAs: string | undefined;
        for (const s of steps) {
          let offset = received;
          let piece = data.subarray(received, Math.min(length, received + s.n));
          if (s.kind === 'corrupt' && piece.length > 0) {
            piece = piece.slice();
            piece[s.x % piece.length < 0 ? 0 : s.x % piece.length]! ^= 0x80;
          }
          if (s.kind === 'offset' && s.x !== received) offset = s.x;
          if (s.kind === 'long') piece = new Uint8Array(length - received + 1 + (s.n % 3));
          const result: ChunkWriteResult = verifier.write(offset, piece);
          let expected: string | undefined;
          if (failedAs !== undefined) expected = failedAs;
          else if (offset !== received) expected = 'out-of-order';
          else if (piece.length > length - received) expected = 'length-mismatch';
          if (expected === undefined) {
            assert.ok(result.ok);
            received += piece.length;
            dirty ||= s.kind === 'corrupt' && piece.length > 0;
            assert.equal(result.complete, received === length);
          } else {
            assert.ok(
              !result.ok && result.reason === expected,
              `${s.kind}: ${JSON.stringify(result)}`,
            );
            failedAs = expected;
          }
          assert.equal(verifier.receivedBytes, received);
        }
        const final = verifier.finish();
        if (failedAs !== undefined) assert.ok(!final.ok && final.reason === failedAs);
        else if (received !== length) assert.ok(!final.ok && final.reason === 'length-mismatch');
        else if (dirty) assert.ok(!final.ok && final.reason === 'checksum-mismatch');
        else assert.ok(final.ok && equal(final.bytes, data));
      },
    ),
    { numRuns: 10_000 },
  );
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
