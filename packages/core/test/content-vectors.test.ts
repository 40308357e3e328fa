/**
 * Golden vectors for the content layer (test/vectors/content-v1.json). They were computed once,
 * checked against an independent Python hashlib transcription of RFC 6962's recursive MTH and
 * PATH, and frozen. Each case runs under both the pure-JS provider and node:crypto, in both
 * directions (bytes -> manifest and manifest bytes -> manifest), with the input fed whole,
 * in small pieces, and with a trailing byte (STYLE.md section 7).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '../src/bytes.js';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import { ChunkVerifier } from '../src/content/chunk-verifier.js';
import { Chunker } from '../src/content/chunker.js';
import { computeContentId, verifyChunkProof } from '../src/content/content-id.js';
import { chunkRange } from '../src/content/layout.js';
import { decodeManifest, encodeManifest } from '../src/content/manifest.js';
import { buildMerkleTree, verifyMerkleProof } from '../src/content/merkle.js';

interface ContentVector {
  readonly name: string;
  readonly totalBytes: number;
  readonly chunkSizeBytes: number;
  readonly first16BytesHex: string;
  readonly chunkHashes: string[];
  readonly treeRoot: string;
  readonly contentId: string;
  readonly manifestHex: string;
  readonly proofs: string[][];
}
interface MerkleVector {
  readonly leaves: string[];
  readonly root: string;
  readonly proofs: string[][];
}
interface Vectors {
  readonly contents: ContentVector[];
  readonly merkle: MerkleVector[];
}

/** The package root, whether this runs from test/ (tsx) or dist/test/ (compiled). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const vectors = JSON.parse(
  readFileSync(join(packageRoot(), 'test', 'vectors', 'content-v1.json'), 'utf8'),
) as Vectors;

const noble = createNobleCryptoProvider({
  randomBytes: () => {
    throw new Error('the content layer must not draw randomness');
  },
});
const node: CryptoProvider = {
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

/** The vectors' content: byte i is ((i * 2654435761) mod 2^32) >> 24. */
function pattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.imul(i, 2654435761) >>> 24;
  return out;
}

const hex = (text: string): Uint8Array => {
  const bytes = fromHex(text);
  assert.ok(bytes !== undefined, `bad hex in vectors: ${text}`);
  return bytes;
};

test('vectors: the file has the agreed cases', () => {
  assert.deepEqual(
    vectors.contents.map((v) => v.name),
    [
      'empty',
      'one-byte',
      'exactly-one-chunk',
      'one-chunk-plus-one-byte',
      'five-chunks',
      'default-size-one-chunk',
    ],
  );
});

for (const crypto of [noble, node]) {
  for (const v of vectors.contents) {
    test(`vectors (${crypto.name}): ${v.name}`, () => {
      const data = pattern(v.totalBytes);
      assert.equal(toHex(data.subarray(0, 16)), v.first16BytesHex);

      // Bytes -> manifest, fed whole and in 64,000-byte pieces (not chunk-aligned).
      const pieceSizes = [v.totalBytes || 1, 64_000];
      // Byte by byte for the small cases (the 4 MiB case would take seconds).
      if (v.totalBytes <= 70_000) pieceSizes.push(1);
      for (const pieceSize of pieceSizes) {
        const chunker = new Chunker(crypto, { chunkSizeBytes: v.chunkSizeBytes });
        for (let at = 0; at < data.length; at += pieceSize) {
          chunker.push(data.subarray(at, at + pieceSize));
        }
        const manifest = chunker.finish();
        assert.deepEqual(manifest.chunkHashes.map(toHex), v.chunkHashes, `piece ${pieceSize}`);
        assert.equal(toHex(manifest.contentId), v.contentId);
        assert.equal(toHex(encodeManifest(manifest)), v.manifestHex);
      }

      // Manifest bytes -> manifest, pinned to the vector's content ID.
      const decoded = decodeManifest(crypto, hex(v.manifestHex), hex(v.contentId));
      assert.ok(decoded.ok);
      assert.equal(toHex(decoded.manifest.contentId), v.contentId);
      const trailing = decodeManifest(crypto, Uint8Array.of(...hex(v.manifestHex), 0));
      assert.ok(!trailing.ok && trailing.reason === 'trailing-bytes');

      // Tree root, content ID and every chunk's proof against the ID alone.
      const hashes = v.chunkHashes.map(hex);
      const tree = buildMerkleTree(crypto, hashes);
      assert.equal(toHex(tree.root), v.treeRoot);
      const layout = { totalBytes: v.totalBytes, chunkSizeBytes: v.chunkSizeBytes };
      assert.equal(toHex(computeContentId(crypto, layout, hashes)), v.contentId);
      hashes.forEach((chunkHash, index) => {
        assert.deepEqual(tree.proof(index).map(toHex), v.proofs[index]);
        const proof = (v.proofs[index] ?? []).map(hex);
        const claim = { ...layout, contentId: hex(v.contentId), index, chunkHash, proof };
        assert.ok(verifyChunkProof(crypto, claim), `proof of chunk ${index}`);

        // Each chunk's bytes verify in DATA-sized frames.
        const range = chunkRange(layout, index);
        const chunk = data.subarray(range.start, range.end);
        const verifier = new ChunkVerifier(crypto, chunkHash, chunk.length);
        for (let at = 0; at < chunk.length; at += 65_000) {
          assert.ok(verifier.write(at, chunk.subarray(at, at + 65_000)).ok);
        }
        const verified = verifier.finish();
        assert.ok(verified.ok && verified.bytes.length === chunk.length);
      });
    });
  }

  test(`vectors (${crypto.name}): merkle tree of 7 leaves`, () => {
    for (const m of vectors.merkle) {
      const leaves = m.leaves.map(hex);
      leaves.forEach((leaf, i) => assert.deepEqual(leaf, crypto.sha256(Uint8Array.of(i))));
      const tree = buildMerkleTree(crypto, leaves);
      assert.equal(toHex(tree.root), m.root);
      leaves.forEach((leaf, index) => {
        assert.deepEqual(tree.proof(index).map(toHex), m.proofs[index]);
        const proof = (m.proofs[index] ?? []).map(hex);
        const claim = { root: hex(m.root), leafCount: leaves.length, index, leaf, proof };
        assert.ok(verifyMerkleProof(crypto, claim));
      });
    }
  });
}
