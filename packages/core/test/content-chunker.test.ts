/**
 * The streaming chunker and the content ID it produces: split independence, sensitivity of
 * the ID to every byte, the size and the chunk size, and misuse errors.
 *
 * Big-data properties hash with node:crypto (13x faster than the pure-JS provider here); the
 * content layer only calls `sha256`/`createSha256`, and content-vectors.test.ts checks that
 * both providers give the golden bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import { Chunker, type ChunkInfo } from '../src/content/chunker.js';
import { computeContentId } from '../src/content/content-id.js';
import {
  CHUNK_COUNT_MAX,
  CHUNK_SIZE_BYTES_DEFAULT,
  CHUNK_SIZE_BYTES_MIN,
  chunkLength,
} from '../src/content/layout.js';
import type { Manifest } from '../src/content/manifest.js';

const noble = createNobleCryptoProvider({
  randomBytes: () => {
    throw new Error('the content layer must not draw randomness');
  },
});
const crypto: CryptoProvider = {
  ...noble,
  name: 'node:crypto sha256 (test)',
  sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
  createSha256() {
    const hash = createHash('sha256');
    return {
      update: (data) => void hash.update(data),
      digest: () => new Uint8Array(hash.digest()),
    };
  },
};

/** Deterministic pseudo-random bytes (xorshift32), cheap enough for megabytes. */
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

function chunkWhole(bytes: Uint8Array, chunkSizeBytes: number): Manifest {
  const chunker = new Chunker(crypto, { chunkSizeBytes });
  chunker.push(bytes);
  return chunker.finish();
}

/** Cuts `bytes` at the given fractions of its length (sorted, duplicates allowed). */
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

const KIB64 = CHUNK_SIZE_BYTES_MIN;

test('Chunker: empty content has no chunks and the empty tree', () => {
  const chunker = new Chunker(crypto);
  assert.equal(chunker.chunkSizeBytes, CHUNK_SIZE_BYTES_DEFAULT);
  assert.deepEqual(chunker.push(new Uint8Array(0)), []);
  const manifest = chunker.finish();
  assert.equal(manifest.totalBytes, 0);
  assert.equal(manifest.chunkHashes.length, 0);
  assert.deepEqual(manifest.contentId, computeContentId(crypto, manifest, []));
});

test('Chunker: reports each chunk as its last byte arrives, the short last one at finish', () => {
  const bytes = contentBytes(1, 2 * KIB64 + 5);
  const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
  assert.deepEqual(chunker.push(bytes.subarray(0, KIB64 - 1)), []);
  const first = chunker.push(bytes.subarray(KIB64 - 1, KIB64));
  assert.equal(first.length, 1);
  assert.deepEqual(first[0], {
    index: 0,
    hash: crypto.sha256(bytes.subarray(0, KIB64)),
    length: KIB64,
  });
  const second = chunker.push(bytes.subarray(KIB64));
  assert.deepEqual(
    second.map((c) => c.index),
    [1],
  );
  assert.equal(chunker.totalBytes, bytes.length);
  const manifest = chunker.finish();
  assert.equal(manifest.chunkHashes.length, 3);
  assert.deepEqual(manifest.chunkHashes[2], crypto.sha256(bytes.subarray(2 * KIB64)));
  assert.equal(chunkLength(manifest, 2), 5);
});

test('Chunker: one push of many chunks reports all of them in order', () => {
  const bytes = contentBytes(2, 5 * KIB64);
  const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
  const infos = chunker.push(bytes);
  assert.deepEqual(
    infos.map((c) => [c.index, c.length]),
    [0, 1, 2, 3, 4].map((i) => [i, KIB64]),
  );
  infos.forEach((info, i) => {
    assert.deepEqual(info.hash, crypto.sha256(bytes.subarray(i * KIB64, (i + 1) * KIB64)));
  });
  assert.equal(chunker.finish().chunkHashes.length, 5); // no empty 6th chunk
});

test('Chunker: the caller may reuse its buffer after push', () => {
  const bytes = contentBytes(3, KIB64 + 100);
  const reused = bytes.slice();
  const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
  chunker.push(reused.subarray(0, 100));
  reused.fill(0, 0, 100); // overwrite what was pushed
  chunker.push(bytes.subarray(100));
  assert.deepEqual(chunker.finish().contentId, chunkWhole(bytes, KIB64).contentId);
});

test('Chunker: misuse throws with stable codes', () => {
  assert.throws(() => new Chunker(crypto, { chunkSizeBytes: 100_000 }), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  assert.throws(() => new Chunker(crypto, { chunkSizeBytes: 32 * 1024 }), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  assert.throws(() => new Chunker(crypto, { chunkSizeBytes: 32 * 1024 * 1024 }), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
  assert.throws(() => chunker.push('abc' as unknown as Uint8Array), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  chunker.finish();
  assert.throws(() => chunker.push(new Uint8Array(1)), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => chunker.finish(), { code: 'PEAPOD_ERR_INVALID_STATE' });
});

test('Chunker: refuses content beyond CHUNK_COUNT_MAX chunks without consuming the push', () => {
  // A zero-copy view of a buffer larger than the limit for 64 KiB chunks (64 GiB) is not
  // allocatable here, so fake its length: the check runs before any byte is read.
  const tooLong = { length: CHUNK_COUNT_MAX * KIB64 + 1 } as Uint8Array;
  Object.setPrototypeOf(tooLong, Uint8Array.prototype);
  const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
  assert.throws(
    () => chunker.push(tooLong),
    (error: { code?: string; message?: string }) => {
      assert.equal(error.code, 'PEAPOD_ERR_INVALID_ARGUMENT');
      assert.match(error.message ?? '', /use a larger chunk size/);
      return true;
    },
  );
  assert.equal(chunker.totalBytes, 0);
  chunker.push(new Uint8Array(10));
  assert.equal(chunker.finish().totalBytes, 10);
});

// 2,000 runs: each hashes up to ~330 KB twice (about 0.5 ms per run with node:crypto).
test('property: the manifest does not depend on how the input is split', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.oneof(
        fc.integer({ min: 0, max: 5 * KIB64 + 7 }),
        fc.constantFrom(KIB64 - 1, KIB64, KIB64 + 1, 3 * KIB64),
      ),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }),
      (seed, length, fractions) => {
        const bytes = contentBytes(seed, length);
        const expected = chunkWhole(bytes, KIB64);
        const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
        const reported: ChunkInfo[] = [];
        for (const piece of splitAt(bytes, fractions)) reported.push(...chunker.push(piece));
        const manifest = chunker.finish();
        assert.deepEqual(manifest, expected);
        // Every chunk but a short last one is reported by push, in order.
        const fullChunks = Math.floor(length / KIB64);
        assert.deepEqual(
          reported.map((c) => c.index),
          [...Array(fullChunks).keys()],
        );
        reported.forEach((c) => assert.deepEqual(c.hash, manifest.chunkHashes[c.index]));
      },
    ),
    { numRuns: 2_000 },
  );
});

// 1,000 runs: one-byte pieces within 64 bytes either side of the first chunk boundary.
test('property: one-byte pieces around a chunk boundary give the same manifest', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 0, max: 2 * KIB64 + 3 }),
      fc.integer({ min: 0, max: 64 }),
      (seed, length, window) => {
        const bytes = contentBytes(seed, length);
        const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
        const from = Math.max(0, Math.min(length, KIB64 - window));
        const to = Math.min(length, KIB64 + window);
        chunker.push(bytes.subarray(0, from));
        for (let i = from; i < to; i++) chunker.push(bytes.subarray(i, i + 1));
        chunker.push(bytes.subarray(to));
        assert.deepEqual(chunker.finish(), chunkWhole(bytes, KIB64));
      },
    ),
    { numRuns: 1_000 },
  );
});

// 2,000 runs: each hashes a content of up to ~200 KB five times.
test('property: the content ID changes when any byte, the size or the chunk size changes', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 3 * KIB64 + 1 }),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (seed, length, position, bit) => {
        const bytes = contentBytes(seed, length);
        const id = chunkWhole(bytes, KIB64).contentId;
        const flipped = bytes.slice();
        flipped[position % length]! ^= 1 << bit;
        assert.notDeepEqual(chunkWhole(flipped, KIB64).contentId, id, 'one bit flipped');
        assert.notDeepEqual(chunkWhole(bytes.subarray(1), KIB64).contentId, id, 'one byte shorter');
        const longer = new Uint8Array(length + 1);
        longer.set(bytes);
        assert.notDeepEqual(chunkWhole(longer, KIB64).contentId, id, 'a zero byte appended');
        assert.notDeepEqual(chunkWhole(bytes, 2 * KIB64).contentId, id, 'other chunk size');
      },
    ),
    { numRuns: 2_000 },
  );
});

test('the content ID of the same bytes differs for every allowed chunk size', () => {
  const bytes = contentBytes(9, 1000); // one chunk at every size: only the size field differs
  const ids = new Set<string>();
  for (let size = KIB64; size <= 16 * 1024 * 1024; size *= 2) {
    ids.add(toHex(chunkWhole(bytes, size).contentId));
  }
  assert.equal(ids.size, 9);
});
