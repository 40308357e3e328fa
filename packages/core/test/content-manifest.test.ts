/**
 * Manifests and layouts: the layout helpers, the binary encoding, every decoder failure
 * reason, round-trips, and "decodeManifest never throws" on arbitrary and mutated bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import {
  createManifest,
  decodeManifest,
  encodeManifest,
  MANIFEST_HEADER_BYTES,
  type Manifest,
} from '../src/content/manifest.js';
import {
  CHUNK_COUNT_MAX,
  CHUNK_SIZE_BYTES_MAX,
  CHUNK_SIZE_BYTES_MIN,
  chunkCount,
  chunkLength,
  chunkRange,
  isValidChunkSize,
  layoutProblem,
} from '../src/content/layout.js';

const crypto = createNobleCryptoProvider({
  randomBytes: () => {
    throw new Error('the content layer must not draw randomness');
  },
});
const KIB64 = CHUNK_SIZE_BYTES_MIN;
const CHUNK_SIZES = Array.from({ length: 9 }, (_, i) => KIB64 * 2 ** i);

function hashesOf(seed: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    crypto.sha256(Uint8Array.of(seed & 0xff, seed >> 8, i & 0xff, i >> 8)),
  );
}

/** A valid manifest: `count` chunks, the last `lastLength` bytes long. */
function manifestOf(seed: number, count: number, chunkSizeBytes: number, lastLength: number) {
  const totalBytes = count === 0 ? 0 : (count - 1) * chunkSizeBytes + lastLength;
  return createManifest(crypto, { totalBytes, chunkSizeBytes, chunkHashes: hashesOf(seed, count) });
}

const manifestArbitrary = fc
  .tuple(
    fc.nat({ max: 0xffff }),
    fc.integer({ min: 0, max: 24 }),
    fc.constantFrom(...CHUNK_SIZES),
    fc.integer({ min: 1, max: CHUNK_SIZE_BYTES_MAX }),
  )
  .map(([seed, count, size, last]) => manifestOf(seed, count, size, ((last - 1) % size) + 1));

test('layout: chunk sizes, counts, lengths and ranges', () => {
  assert.deepEqual(
    CHUNK_SIZES.map((s) => isValidChunkSize(s)),
    CHUNK_SIZES.map(() => true),
  );
  for (const bad of [0, 1, KIB64 / 2, KIB64 + 1, 3 * KIB64, 2 * CHUNK_SIZE_BYTES_MAX, NaN, 1e300]) {
    assert.equal(isValidChunkSize(bad), false, String(bad));
  }
  const layout = { totalBytes: 2 * KIB64 + 10, chunkSizeBytes: KIB64 };
  assert.equal(chunkCount(layout), 3);
  assert.deepEqual(chunkRange(layout, 0), { start: 0, end: KIB64 });
  assert.deepEqual(chunkRange(layout, 2), { start: 2 * KIB64, end: 2 * KIB64 + 10 });
  assert.deepEqual(
    [0, 1, 2].map((i) => chunkLength(layout, i)),
    [KIB64, KIB64, 10],
  );
  assert.equal(chunkCount({ totalBytes: 0, chunkSizeBytes: KIB64 }), 0);
  assert.equal(chunkCount({ totalBytes: CHUNK_COUNT_MAX * KIB64, chunkSizeBytes: KIB64 }), 2 ** 20);
  for (const index of [-1, 3, 1.5]) {
    assert.throws(() => chunkRange(layout, index), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  }
  for (const bad of [
    { totalBytes: CHUNK_COUNT_MAX * KIB64 + 1, chunkSizeBytes: KIB64 },
    { totalBytes: -1, chunkSizeBytes: KIB64 },
    { totalBytes: 0.5, chunkSizeBytes: KIB64 },
    { totalBytes: 10, chunkSizeBytes: 1000 },
  ]) {
    assert.notEqual(layoutProblem(bad), undefined);
    assert.throws(() => chunkCount(bad), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  }
});

test('manifest: the encoding is the documented header followed by the hashes', () => {
  const manifest = manifestOf(1, 2, KIB64, 1);
  const bytes = encodeManifest(manifest);
  assert.equal(bytes.length, MANIFEST_HEADER_BYTES + 64);
  assert.deepEqual(
    [...bytes.subarray(0, MANIFEST_HEADER_BYTES)],
    [
      ...[0x50, 0x45, 0x41, 0x4d, 1],
      ...[0, 0, 0, 0, 0, 1, 0, 1], // totalBytes 65537
      ...[0, 1, 0, 0], // chunkSizeBytes 65536
      ...[0, 0, 0, 2], // chunkCount 2
    ],
  );
  assert.deepEqual(bytes.subarray(21, 53), manifest.chunkHashes[0]);
  assert.deepEqual(bytes.subarray(53), manifest.chunkHashes[1]);
});

test('manifest: sizes above 2^32 encode the high word', () => {
  const chunkSizeBytes = CHUNK_SIZE_BYTES_MAX;
  const count = 300; // 300 chunks of 16 MiB: about 4.7 GiB
  const manifest = manifestOf(2, count, chunkSizeBytes, 5);
  const bytes = encodeManifest(manifest);
  assert.deepEqual([...bytes.subarray(5, 13)], [0, 0, 0, 1, 0x2b, 0, 0, 5]);
  const decoded = decodeManifest(crypto, bytes, manifest.contentId);
  assert.ok(decoded.ok);
  assert.equal(decoded.manifest.totalBytes, 299 * chunkSizeBytes + 5);
});

test('manifest: createManifest copies and freezes; misuse throws', () => {
  const hashes = hashesOf(3, 2);
  const manifest = createManifest(crypto, {
    totalBytes: KIB64 + 1,
    chunkSizeBytes: KIB64,
    chunkHashes: hashes,
  });
  const before = encodeManifest(manifest);
  hashes[0]!.fill(0);
  hashes.pop();
  assert.deepEqual(encodeManifest(manifest), before);
  assert.ok(Object.isFrozen(manifest) && Object.isFrozen(manifest.chunkHashes));
  const invalid = [
    { totalBytes: KIB64 + 1, chunkSizeBytes: KIB64, chunkHashes: hashesOf(1, 1) },
    { totalBytes: KIB64 + 1, chunkSizeBytes: KIB64, chunkHashes: hashesOf(1, 3) },
    { totalBytes: 10, chunkSizeBytes: KIB64, chunkHashes: [new Uint8Array(31)] },
    { totalBytes: 10, chunkSizeBytes: 12345, chunkHashes: hashesOf(1, 1) },
  ];
  for (const fields of invalid) {
    assert.throws(() => createManifest(crypto, fields), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  }
  const forged = { ...manifest, chunkHashes: [] } as Manifest;
  assert.throws(() => encodeManifest(forged), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
});

test('manifest: every decoder failure reason', () => {
  const manifest = manifestOf(4, 3, KIB64, 100);
  const good = encodeManifest(manifest);
  const edit = (offset: number, values: number[]): Uint8Array => {
    const out = good.slice();
    out.set(values, offset);
    return out;
  };
  const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  const cases: [string, Uint8Array, string][] = [
    ['empty input', new Uint8Array(0), 'truncated'],
    ['header cut short', good.subarray(0, 20), 'truncated'],
    ['last hash cut short', good.subarray(0, good.length - 1), 'truncated'],
    ['wrong magic', edit(0, [0x50, 0x45, 0x41, 0x4e]), 'bad-magic'],
    ['version 0', edit(4, [0]), 'unsupported-version'],
    ['version 3', edit(4, [3]), 'unsupported-version'],
    ['version 2 without its file table', edit(4, [2]), 'truncated'],
    ['chunk size not a power of two', edit(13, u32(KIB64 + 1)), 'invalid-layout'],
    ['chunk size too small', edit(13, u32(KIB64 / 2)), 'invalid-layout'],
    ['chunk size too large', edit(13, u32(2 * CHUNK_SIZE_BYTES_MAX)), 'invalid-layout'],
    ['chunk size zero', edit(13, u32(0)), 'invalid-layout'],
    ['total size 2^53', edit(5, [0, 0x20, 0, 0, 0, 0, 0, 0]), 'invalid-layout'],
    ['total size 2^64-1', edit(5, Array(8).fill(255)), 'invalid-layout'],
    ['more than 2^20 chunks', edit(5, [0, 0, 0, 0x10, 0, 0, 0, 1]), 'invalid-layout'],
    ['count field too small', edit(17, u32(2)), 'chunk-count-mismatch'],
    ['count field 2^32-1', edit(17, u32(0xffffffff)), 'chunk-count-mismatch'],
    ['total size implies 4 chunks', edit(9, u32(3 * KIB64 + 1)), 'chunk-count-mismatch'],
    ['one trailing byte', Uint8Array.of(...good, 0), 'trailing-bytes'],
  ];
  for (const [name, bytes, reason] of cases) {
    const result = decodeManifest(crypto, bytes);
    assert.equal(result.ok, false, name);
    assert.ok(!result.ok && result.reason === reason, `${name}: got ${JSON.stringify(result)}`);
    assert.ok(!result.ok && result.detail.length > 0);
  }
  // Well-formed, but not the manifest of the content the caller asked for.
  const other = manifestOf(5, 3, KIB64, 100);
  const mismatch = decodeManifest(crypto, good, other.contentId);
  assert.ok(!mismatch.ok && mismatch.reason === 'content-id-mismatch');
  const wrongLengthId = decodeManifest(crypto, good, manifest.contentId.subarray(1));
  assert.ok(!wrongLengthId.ok && wrongLengthId.reason === 'content-id-mismatch');
  assert.ok(decodeManifest(crypto, good, manifest.contentId).ok);
});

test('manifest: the decoded hashes do not alias the input buffer', () => {
  const manifest = manifestOf(6, 2, KIB64, 1);
  const bytes = encodeManifest(manifest);
  const decoded = decodeManifest(crypto, bytes, manifest.contentId);
  assert.ok(decoded.ok);
  bytes.fill(0);
  assert.deepEqual(encodeManifest(decoded.manifest), encodeManifest(manifest));
});

test('manifest: a view into a larger buffer decodes (byteOffset respected)', () => {
  const manifest = manifestOf(7, 4, 2 * KIB64, 3);
  const bytes = encodeManifest(manifest);
  const framed = new Uint8Array(bytes.length + 10);
  framed.set(bytes, 7);
  const decoded = decodeManifest(crypto, framed.subarray(7, 7 + bytes.length), manifest.contentId);
  assert.ok(decoded.ok);
});

// 10,000 runs: manifests of up to 24 chunks at every chunk size.
test('property: encode/decode round-trips, and the ID is recomputed from the fields', () => {
  fc.assert(
    fc.property(manifestArbitrary, (manifest) => {
      const bytes = encodeManifest(manifest);
      assert.equal(bytes.length, MANIFEST_HEADER_BYTES + 32 * manifest.chunkHashes.length);
      const decoded = decodeManifest(crypto, bytes, manifest.contentId);
      assert.ok(decoded.ok, JSON.stringify(decoded));
      assert.deepEqual(decoded.manifest, manifest);
      assert.deepEqual(encodeManifest(decoded.manifest), bytes);
    }),
    { numRuns: 10_000 },
  );
});

// 10,000 runs each: arbitrary bytes, and arbitrary bytes behind a plausible header.
test('property: decodeManifest never throws on arbitrary bytes', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 32 }),
      (bytes, id) => {
        const result = decodeManifest(crypto, bytes, id);
        assert.equal(typeof result.ok, 'boolean');
      },
    ),
    { numRuns: 10_000 },
  );
  const u32 = fc.oneof(
    fc.constantFrom(0, 1, 2, 0xffffffff, KIB64, CHUNK_SIZE_BYTES_MAX, 2 ** 20, 2 ** 21),
    fc.nat({ max: 0xffffffff }),
  );
  fc.assert(
    fc.property(
      fc.nat({ max: 3 }),
      u32,
      u32,
      u32,
      u32,
      fc.uint8Array({ maxLength: 400 }),
      (version, totalHigh, totalLow, chunkSize, count, rest) => {
        const header = new Uint8Array(MANIFEST_HEADER_BYTES);
        const view = new DataView(header.buffer);
        header.set([0x50, 0x45, 0x41, 0x4d, version]);
        view.setUint32(5, totalHigh % 4);
        view.setUint32(9, totalLow);
        view.setUint32(13, chunkSize);
        view.setUint32(17, count);
        const result = decodeManifest(crypto, Uint8Array.of(...header, ...rest));
        if (result.ok) {
          assert.equal(result.manifest.chunkHashes.length, count);
          assert.equal(rest.length, 32 * count);
        }
      },
    ),
    { numRuns: 10_000 },
  );
});

// 10,000 runs: mutations of valid manifests of up to 24 chunks.
test('property: a mutated manifest never throws and never passes as the original', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
  );
  fc.assert(
    fc.property(manifestArbitrary, fc.array(mutation, { minLength: 1, maxLength: 4 }), (m, ms) => {
      const original = encodeManifest(m);
      let bytes = original.slice();
      for (const mu of ms) {
        const at = bytes.length === 0 ? 0 : mu.at % bytes.length;
        if (mu.kind === 'flip' && bytes.length > 0) bytes[at]! ^= 1 << mu.bit;
        if (mu.kind === 'set' && bytes.length > 0) bytes[at] = mu.value;
        if (mu.kind === 'truncate') bytes = bytes.slice(0, at);
        if (mu.kind === 'insert')
          bytes = Uint8Array.of(...bytes.subarray(0, at), mu.value, ...bytes.subarray(at));
        if (mu.kind === 'delete')
          bytes = Uint8Array.of(...bytes.subarray(0, at), ...bytes.subarray(at + 1));
      }
      const result = decodeManifest(crypto, bytes, m.contentId);
      // Accepted under the original's ID only if the bytes are the original's bytes.
      assert.equal(result.ok, Buffer.from(bytes).equals(Buffer.from(original)));
      const unpinned = decodeManifest(crypto, bytes);
      if (unpinned.ok) assert.deepEqual(encodeManifest(unpinned.manifest), bytes);
    }),
    { numRuns: 10_000 },
  );
});
