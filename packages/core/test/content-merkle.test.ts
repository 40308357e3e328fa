/**
 * Merkle trees and inclusion proofs (RFC 6962 section 2.1), checked against a reference that
 * transcribes the RFC's recursive definitions of MTH and PATH, and chunk proofs bound to a
 * content ID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { concatBytes, toHex } from '../src/bytes.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import {
  buildMerkleTree,
  merkleLeafHash,
  merkleNodeHash,
  merkleProof,
  merkleRoot,
  merkleRootFromProof,
  verifyMerkleProof,
} from '../src/content/merkle.js';
import { computeContentId, verifyChunkProof } from '../src/content/content-id.js';
import { CHUNK_SIZE_BYTES_MIN } from '../src/content/layout.js';

const crypto = createNobleCryptoProvider({
  randomBytes: () => {
    throw new Error('the content layer must not draw randomness');
  },
});

// ---- Reference: RFC 6962 section 2.1 and 2.1.1, transcribed literally. ----
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
function referenceMth(entries: readonly Uint8Array[]): Uint8Array {
  if (entries.length === 0) return crypto.sha256(new Uint8Array(0));
  if (entries.length === 1) return crypto.sha256(concatBytes(Uint8Array.of(0), entries[0]!));
  const k = largestPowerOfTwoBelow(entries.length);
  return crypto.sha256(
    concatBytes(
      Uint8Array.of(1),
      referenceMth(entries.slice(0, k)),
      referenceMth(entries.slice(k)),
    ),
  );
}
function referencePath(m: number, entries: readonly Uint8Array[]): Uint8Array[] {
  if (entries.length <= 1) return [];
  const k = largestPowerOfTwoBelow(entries.length);
  return m < k
    ? [...referencePath(m, entries.slice(0, k)), referenceMth(entries.slice(k))]
    : [...referencePath(m - k, entries.slice(k)), referenceMth(entries.slice(0, k))];
}

/** `count` distinct 32-byte leaves derived from `seed`. */
function leavesOf(seed: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    crypto.sha256(Uint8Array.of(seed & 0xff, (seed >> 8) & 0xff, i & 0xff, i >> 8)),
  );
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[(bit >> 3) % out.length]! ^= 1 << (bit & 7);
  return out;
}

test('merkle: empty, one-leaf and two-leaf roots are RFC 6962 MTH', () => {
  const [a, b] = leavesOf(1, 2) as [Uint8Array, Uint8Array];
  assert.equal(
    toHex(merkleRoot(crypto, [])),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  );
  assert.deepEqual(merkleRoot(crypto, [a]), crypto.sha256(concatBytes(Uint8Array.of(0), a)));
  assert.deepEqual(merkleRoot(crypto, [a]), merkleLeafHash(crypto, a));
  assert.deepEqual(
    merkleRoot(crypto, [a, b]),
    merkleNodeHash(crypto, merkleLeafHash(crypto, a), merkleLeafHash(crypto, b)),
  );
  assert.deepEqual(buildMerkleTree(crypto, []).root, merkleRoot(crypto, []));
  assert.deepEqual(buildMerkleTree(crypto, [a]).proof(0), []);
});

test('merkle: root and every proof equal the RFC reference for every size 1..64', () => {
  for (let n = 1; n <= 64; n++) {
    const leaves = leavesOf(n, n);
    const tree = buildMerkleTree(crypto, leaves);
    assert.deepEqual(tree.root, referenceMth(leaves), `root, n=${n}`);
    assert.deepEqual(merkleRoot(crypto, leaves), tree.root, `merkleRoot, n=${n}`);
    for (let m = 0; m < n; m++) {
      assert.deepEqual(tree.proof(m), referencePath(m, leaves), `proof n=${n} m=${m}`);
    }
  }
});

test('merkle: all proofs of all trees of 1..300 leaves verify; up to 64, neighbours fail', () => {
  for (let n = 1; n <= 300; n++) {
    const leaves = leavesOf(n, n);
    const tree = buildMerkleTree(crypto, leaves);
    for (let m = 0; m < n; m++) {
      const claim = {
        root: tree.root,
        leafCount: n,
        index: m,
        leaf: leaves[m]!,
        proof: tree.proof(m),
      };
      assert.ok(verifyMerkleProof(crypto, claim), `n=${n} m=${m}`);
      if (n > 1 && n <= 64) {
        assert.ok(
          !verifyMerkleProof(crypto, { ...claim, index: (m + 1) % n }),
          `index n=${n} m=${m}`,
        );
        assert.ok(!verifyMerkleProof(crypto, { ...claim, leaf: leaves[(m + 1) % n]! }));
      }
    }
  }
});

// 500 runs: each builds a tree of up to 300 leaves plus the RFC reference path (~3 ms a run).
test('property: proofs match the RFC reference and fail for a wrong index, leaf or sibling', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.nat(),
      fc.nat(),
      fc.nat({ max: 255 }),
      fc.nat(),
      (n, seed, indexSeed, bit, otherSeed) => {
        const leaves = leavesOf(seed, n);
        const tree = buildMerkleTree(crypto, leaves);
        const index = indexSeed % n;
        const proof = tree.proof(index);
        assert.deepEqual(proof, referencePath(index, leaves));
        const claim = { root: tree.root, leafCount: n, index, leaf: leaves[index]!, proof };
        assert.ok(verifyMerkleProof(crypto, claim));
        assert.deepEqual(merkleProof(crypto, leaves, index), proof);
        if (n > 1 && n <= 64) {
          const other = (index + 1 + (otherSeed % (n - 1))) % n;
          assert.ok(!verifyMerkleProof(crypto, { ...claim, index: other }), 'wrong index');
        }
        assert.ok(!verifyMerkleProof(crypto, { ...claim, leaf: flipBit(claim.leaf, bit) }), 'leaf');
        assert.ok(!verifyMerkleProof(crypto, { ...claim, root: flipBit(claim.root, bit) }), 'root');
        proof.forEach((sibling, i) => {
          const bad = proof.map((p, j) => (j === i ? flipBit(sibling, bit) : p));
          assert.ok(!verifyMerkleProof(crypto, { ...claim, proof: bad }), `sibling ${i}`);
        });
        if (proof.length > 0) {
          assert.ok(!verifyMerkleProof(crypto, { ...claim, proof: proof.slice(1) }), 'short');
          assert.ok(!verifyMerkleProof(crypto, { ...claim, proof: proof.slice(0, -1) }), 'short');
        }
        assert.ok(!verifyMerkleProof(crypto, { ...claim, proof: [...proof, tree.root] }), 'long');
      },
    ),
    { numRuns: 500 },
  );
});

test('merkle: malformed claims are false, never exceptions', () => {
  const leaves = leavesOf(7, 5);
  const tree = buildMerkleTree(crypto, leaves);
  const claim = { root: tree.root, leafCount: 5, index: 4, leaf: leaves[4]!, proof: tree.proof(4) };
  assert.ok(verifyMerkleProof(crypto, claim));
  const bad = [
    { ...claim, index: 5 },
    { ...claim, index: -1 },
    { ...claim, index: 1.5 },
    { ...claim, index: Number.NaN },
    { ...claim, leafCount: 0 },
    { ...claim, leafCount: -5 },
    { ...claim, leafCount: Infinity },
    { ...claim, leafCount: 2 ** 60 },
    { ...claim, root: tree.root.subarray(1) },
    { ...claim, proof: claim.proof.map((p) => p.subarray(0, 31)) },
    { ...claim, proof: Array.from({ length: 100_000 }, () => tree.root) },
    { ...claim, proof: 'nope' as unknown as Uint8Array[] },
  ];
  for (const c of bad) assert.equal(verifyMerkleProof(crypto, c), false);
  // Index 4 of 5 needs exactly one sibling (the root of the first four leaves).
  assert.notEqual(merkleRootFromProof(crypto, 5, 4, leaves[4]!, [tree.root]), undefined);
  assert.equal(merkleRootFromProof(crypto, 5, 4, leaves[4]!, [tree.root, tree.root]), undefined);
  assert.equal(merkleRootFromProof(crypto, 5, 4, leaves[4]!, []), undefined);
});

test('merkle: a proof does not fix the tree size; the content ID pins it', () => {
  // RFC 9162 inclusion proofs are only meaningful with a trusted tree size: the path of leaf
  // 0 in a 5-leaf tree also "verifies" against the same root when the size is claimed as 6.
  const leaves = leavesOf(3, 5);
  const tree = buildMerkleTree(crypto, leaves);
  const claim = { root: tree.root, leafCount: 5, index: 0, leaf: leaves[0]!, proof: tree.proof(0) };
  assert.ok(verifyMerkleProof(crypto, { ...claim, leafCount: 6 }));
  // verifyChunkProof derives the size from the layout, and the layout is hashed into the ID.
  const chunkSizeBytes = CHUNK_SIZE_BYTES_MIN;
  const layout = { totalBytes: 5 * chunkSizeBytes, chunkSizeBytes };
  const contentId = computeContentId(crypto, layout, leaves);
  const chunkClaim = { ...layout, contentId, index: 0, chunkHash: leaves[0]!, proof: claim.proof };
  assert.ok(verifyChunkProof(crypto, chunkClaim));
  assert.ok(!verifyChunkProof(crypto, { ...chunkClaim, totalBytes: 6 * chunkSizeBytes }));
  assert.ok(!verifyChunkProof(crypto, { ...chunkClaim, totalBytes: 5 * chunkSizeBytes - 1 }));
});

// 500 runs: a random layout of up to 300 chunks, and one chunk's proof against its ID.
test('property: chunk proofs verify against the content ID and fail when anything changes', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.integer({ min: 1, max: CHUNK_SIZE_BYTES_MIN }),
      fc.integer({ min: 0, max: 8 }),
      fc.nat(),
      fc.nat({ max: 255 }),
      (count, lastLength, sizeShift, indexSeed, bit) => {
        const chunkSizeBytes = CHUNK_SIZE_BYTES_MIN * 2 ** sizeShift;
        const layout = { totalBytes: (count - 1) * chunkSizeBytes + lastLength, chunkSizeBytes };
        const hashes = leavesOf(count + sizeShift, count);
        const contentId = computeContentId(crypto, layout, hashes);
        const index = indexSeed % count;
        const proof = buildMerkleTree(crypto, hashes).proof(index);
        const claim = { ...layout, contentId, index, chunkHash: hashes[index]!, proof };
        assert.ok(verifyChunkProof(crypto, claim));
        assert.ok(!verifyChunkProof(crypto, { ...claim, contentId: flipBit(contentId, bit) }));
        assert.ok(
          !verifyChunkProof(crypto, { ...claim, chunkHash: flipBit(claim.chunkHash, bit) }),
        );
        assert.ok(!verifyChunkProof(crypto, { ...claim, totalBytes: layout.totalBytes + 1 }));
        assert.ok(!verifyChunkProof(crypto, { ...claim, chunkSizeBytes: chunkSizeBytes * 2 }));
        assert.ok(!verifyChunkProof(crypto, { ...claim, chunkSizeBytes: chunkSizeBytes + 1 }));
        assert.ok(!verifyChunkProof(crypto, { ...claim, index: count }));
        if (count > 1)
          assert.ok(!verifyChunkProof(crypto, { ...claim, index: (index + 1) % count }));
      },
    ),
    { numRuns: 500 },
  );
});

// 10,000 runs: arbitrary claims (lengths, numbers, proof shapes) never throw.
test('property: verifyMerkleProof and verifyChunkProof never throw on arbitrary claims', () => {
  const bytes = fc.uint8Array({ maxLength: 40 });
  const number = fc.oneof(
    fc.integer({ min: -2, max: 2 ** 21 }),
    fc.double(),
    fc.constantFrom(0, 1, 2 ** 53, -0, Number.MAX_SAFE_INTEGER),
  );
  fc.assert(
    fc.property(
      bytes,
      number,
      number,
      bytes,
      fc.array(bytes, { maxLength: 70 }),
      number,
      number,
      (root, leafCount, index, leaf, proof, totalBytes, chunkSizeBytes) => {
        assert.equal(
          typeof verifyMerkleProof(crypto, { root, leafCount, index, leaf, proof }),
          'boolean',
        );
        const claim = {
          totalBytes,
          chunkSizeBytes,
          contentId: root,
          index,
          chunkHash: leaf,
          proof,
        };
        assert.equal(typeof verifyChunkProof(crypto, claim), 'boolean');
      },
    ),
    { numRuns: 10_000 },
  );
});

test('merkle: argument misuse throws', () => {
  const tree = buildMerkleTree(crypto, leavesOf(1, 3));
  for (const index of [-1, 3, 0.5, Number.NaN]) {
    assert.throws(() => tree.proof(index), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  }
  assert.throws(() => merkleProof(crypto, [], 0), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  assert.throws(() => merkleNodeHash(crypto, new Uint8Array(31), new Uint8Array(32)), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  assert.throws(() => merkleRoot(crypto, 'x' as unknown as Uint8Array[]), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
});
