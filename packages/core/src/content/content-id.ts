/**
 * Content IDs (DESIGN.md decision 6; docs/content.md, "Content ID" and "Trees").
 *
 *   contentId = SHA-256(0x02 || u64 BE totalBytes || u32 BE chunkSizeBytes || treeRoot)
 *
 * where `treeRoot` is the RFC 6962 Merkle Tree Hash over the chunk hashes (merkle.ts). A tree
 * (a content with a file table, file-table.ts) also pins its table, under its own prefix:
 *
 *   contentId = SHA-256(0x03 || u64 BE totalBytes || u32 BE chunkSizeBytes || treeRoot
 *                       || SHA-256(file table bytes, from fileCount on))
 *
 * so the same bytes shared as a bare object and as a tree have two IDs, and no file table can
 * be swapped under a tree's ID (the names and sizes a receiver writes are as certified as the
 * bytes). The ID
 * pins the size and the chunking as well as the bytes, so a peer that knows only the ID knows
 * how many chunks to expect and how long each is, and can check one chunk hash with an
 * inclusion proof instead of fetching the whole manifest (`verifyChunkProof`). The 0x02
 * prefix keeps the 45-byte ID preimage apart from leaf (0x00) and node (0x01) preimages.
 *
 * Empty content has no chunks; its tree root is SHA-256 of the empty string (RFC 6962's empty
 * tree), and its ID follows the same formula, so it depends on the chunk size like any other.
 */
import { equalBytes } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { assertValidLayout, CHUNK_HASH_BYTES, layoutProblem, type ChunkLayout } from './layout.js';
import { MERKLE_HASH_BYTES, merkleRoot, merkleRootFromProof } from './merkle.js';

/** Length of a content ID in bytes. */
export const CONTENT_ID_BYTES = 32;

/** Domain-separation prefix of the content ID preimage (after RFC 6962's 0x00 and 0x01). */
const CONTENT_ID_PREFIX = 0x02;
/** The prefix of a tree's content ID preimage, which also holds its file table's hash. */
const TREE_CONTENT_ID_PREFIX = 0x03;

/**
 * Writes the preimage (45 bytes; 77 with a file table hash) and hashes it. The layout must
 * already be valid.
 */
function hashContentId(
  crypto: CryptoProvider,
  layout: ChunkLayout,
  treeRoot: Uint8Array,
  fileTableHash: Uint8Array | undefined,
) {
  const extra = fileTableHash === undefined ? 0 : MERKLE_HASH_BYTES;
  const preimage = new Uint8Array(1 + 8 + 4 + MERKLE_HASH_BYTES + extra);
  const view = new DataView(preimage.buffer);
  preimage[0] = fileTableHash === undefined ? CONTENT_ID_PREFIX : TREE_CONTENT_ID_PREFIX;
  view.setUint32(1, Math.floor(layout.totalBytes / 2 ** 32));
  view.setUint32(5, layout.totalBytes >>> 0);
  view.setUint32(9, layout.chunkSizeBytes);
  preimage.set(treeRoot, 13);
  if (fileTableHash !== undefined) preimage.set(fileTableHash, 13 + MERKLE_HASH_BYTES);
  return crypto.sha256(preimage);
}

function checkFileTableHash(fileTableHash: Uint8Array | undefined): void {
  if (fileTableHash !== undefined && fileTableHash.length !== MERKLE_HASH_BYTES) {
    invalidArgument('fileTableHash', 'must be 32 bytes');
  }
}

/**
 * The content ID of a layout and the root of its chunk-hash tree; with `fileTableHash`
 * (SHA-256 of a tree's encoded file table), the ID of that tree.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed or `treeRoot`
 * or `fileTableHash` is not 32 bytes.
 * @example
 * const emptyRoot = merkleRoot(crypto, []);
 * const empty = { totalBytes: 0, chunkSizeBytes: 4194304 };
 * toHex(contentIdFromTreeRoot(crypto, empty, emptyRoot)).slice(0, 16); // => "7fc47325c8616273"
 */
export function contentIdFromTreeRoot(
  crypto: CryptoProvider,
  layout: ChunkLayout,
  treeRoot: Uint8Array,
  fileTableHash?: Uint8Array,
): Uint8Array {
  assertValidLayout(layout);
  if (treeRoot.length !== MERKLE_HASH_BYTES) invalidArgument('treeRoot', 'must be 32 bytes');
  checkFileTableHash(fileTableHash);
  return hashContentId(crypto, layout, treeRoot, fileTableHash);
}

/**
 * The content ID of a layout and its chunk hashes, in chunk order; with `fileTableHash`, the ID
 * of the tree with that file table (see `contentIdFromTreeRoot`).
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed, the number of
 * hashes is not the layout's chunk count, or a hash is not 32 bytes.
 * @example
 * const empty = { totalBytes: 0, chunkSizeBytes: 4194304 };
 * toHex(computeContentId(crypto, empty, [])).slice(0, 16); // => "7fc47325c8616273"
 */
export function computeContentId(
  crypto: CryptoProvider,
  layout: ChunkLayout,
  chunkHashes: readonly Uint8Array[],
  fileTableHash?: Uint8Array,
): Uint8Array {
  assertValidLayout(layout);
  checkFileTableHash(fileTableHash);
  const expected = Math.ceil(layout.totalBytes / layout.chunkSizeBytes);
  if (chunkHashes.length !== expected) {
    invalidArgument('chunkHashes', `has ${chunkHashes.length} hashes; the layout has ${expected}`);
  }
  chunkHashes.forEach((hash, index) => {
    if (hash.length !== CHUNK_HASH_BYTES) invalidArgument(`chunkHashes[${index}]`, 'not 32 bytes');
  });
  return hashContentId(crypto, layout, merkleRoot(crypto, chunkHashes), fileTableHash);
}

/**
 * What a chunk inclusion proof claims: chunk `index` of content `contentId` (whose layout is
 * `totalBytes`/`chunkSizeBytes`) has SHA-256 `chunkHash`.
 */
export interface ChunkProofClaim extends ChunkLayout {
  readonly contentId: Uint8Array;
  readonly index: number;
  readonly chunkHash: Uint8Array;
  /** The audit path from `buildMerkleTree(crypto, manifest.chunkHashes).proof(index)`. */
  readonly proof: readonly Uint8Array[];
  /** For a tree: SHA-256 of its encoded file table, the ID's last input. */
  readonly fileTableHash?: Uint8Array;
}

/**
 * Verifies one chunk hash against a content ID without the manifest: the layout gives the
 * tree size, the proof gives the root, and the root with the layout must hash to the ID. A
 * browser fetching a few chunks of a huge object needs only the ID, the layout and ~20 hashes
 * per chunk. Never throws: every part of the claim may come from the network.
 * @example
 * const hashes = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
 * const layout = { totalBytes: 65_537, chunkSizeBytes: 65_536 };
 * const contentId = computeContentId(crypto, layout, hashes);
 * const proof = buildMerkleTree(crypto, hashes).proof(1);
 * const claim = { ...layout, contentId, index: 1, chunkHash: hashes[1], proof };
 * verifyChunkProof(crypto, claim); // => true
 * verifyChunkProof(crypto, { ...claim, index: 0 }); // => false
 */
export function verifyChunkProof(crypto: CryptoProvider, claim: ChunkProofClaim): boolean {
  const { contentId, index, chunkHash, proof } = claim;
  const layout = { totalBytes: claim.totalBytes, chunkSizeBytes: claim.chunkSizeBytes };
  if (layoutProblem(layout) !== undefined) return false;
  if (contentId.length !== CONTENT_ID_BYTES || chunkHash.length !== CHUNK_HASH_BYTES) return false;
  if (!Array.isArray(proof)) return false;
  const fileTableHash = claim.fileTableHash;
  const badTableHash =
    fileTableHash !== undefined &&
    (!(fileTableHash instanceof Uint8Array) || fileTableHash.length !== MERKLE_HASH_BYTES);
  if (badTableHash) return false;
  const count = Math.ceil(layout.totalBytes / layout.chunkSizeBytes);
  const root = merkleRootFromProof(crypto, count, index, chunkHash, proof);
  return (
    root !== undefined && equalBytes(hashContentId(crypto, layout, root, fileTableHash), contentId)
  );
}
