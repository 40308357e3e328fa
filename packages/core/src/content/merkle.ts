/**
 * Merkle trees over chunk hashes, in the shape of RFC 6962 section 2.1 (Certificate
 * Transparency), which RFC 9162 section 2.1 restates (docs/content.md, "Merkle tree").
 *
 * - The leaves are data entries (for content: the 32-byte chunk hashes, in chunk order).
 * - A leaf node is SHA-256(0x00 || entry); an interior node is SHA-256(0x01 || left || right).
 *   The distinct prefixes keep a leaf from ever being read as an interior node (the second
 *   preimage attack RFC 6962 section 2.1 guards against).
 * - A tree of n > 1 leaves splits at k, the largest power of two smaller than n: the left
 *   subtree holds the first k leaves and is perfect, the right subtree holds the rest.
 * - The root of the empty tree is SHA-256 of the empty string.
 *
 * That recursive definition equals the bottom-up construction used here: hash adjacent pairs
 * level by level and carry an unpaired last node up unchanged. `buildMerkleTree` keeps every
 * level (2n hashes) so a serving peer can answer many proofs; `merkleRoot` keeps one level.
 *
 * An inclusion proof (RFC 6962 "audit path") lists the sibling hashes from the leaf up to the
 * root. `verifyMerkleProof` is RFC 9162 section 2.1.3.2, which also rejects proofs that are
 * too long or too short for the tree size. It never throws: proofs arrive from the network.
 */
import { concatBytes, equalBytes } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';

/** Length of every node hash (SHA-256). */
export const MERKLE_HASH_BYTES = 32;

/** Domain-separation prefixes of RFC 6962 section 2.1. */
const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/**
 * The leaf node hash of one data entry: SHA-256(0x00 || entry).
 * @example
 * toHex(merkleLeafHash(crypto, new Uint8Array(0))).slice(0, 16); // => "6e340b9cffb37a98"
 */
export function merkleLeafHash(crypto: CryptoProvider, entry: Uint8Array): Uint8Array {
  return crypto.sha256(concatBytes(Uint8Array.of(LEAF_PREFIX), entry));
}

/**
 * The interior node hash of two child hashes: SHA-256(0x01 || left || right).
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when a child is not 32 bytes.
 */
export function merkleNodeHash(
  crypto: CryptoProvider,
  left: Uint8Array,
  right: Uint8Array,
): Uint8Array {
  if (left.length !== MERKLE_HASH_BYTES) invalidArgument('left', 'must be 32 bytes');
  if (right.length !== MERKLE_HASH_BYTES) invalidArgument('right', 'must be 32 bytes');
  return nodeHash(crypto, left, right);
}

/**
 * Preimage scratch space, reused across calls: hashing a million-chunk tree allocates only the
 * digests. Safe because `sha256` is synchronous and consumes its input before returning.
 */
const nodeInput = new Uint8Array(1 + 2 * MERKLE_HASH_BYTES);
const leafInput = new Uint8Array(1 + MERKLE_HASH_BYTES);

/** `merkleNodeHash` without argument checks, for callers that already know the lengths. */
function nodeHash(crypto: CryptoProvider, left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeInput[0] = NODE_PREFIX;
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + MERKLE_HASH_BYTES);
  return crypto.sha256(nodeInput);
}

/** `merkleLeafHash`, without a copy for the usual 32-byte entries. */
function leafHash(crypto: CryptoProvider, entry: Uint8Array): Uint8Array {
  if (entry.length !== MERKLE_HASH_BYTES) return merkleLeafHash(crypto, entry);
  leafInput[0] = LEAF_PREFIX;
  leafInput.set(entry, 1);
  return crypto.sha256(leafInput);
}

/** One level up: pair adjacent nodes; an unpaired last node moves up unchanged. */
function nextLevel(crypto: CryptoProvider, level: readonly Uint8Array[]): Uint8Array[] {
  const up: Uint8Array[] = [];
  for (let i = 0; i < level.length; i += 2) {
    const left = level[i]!;
    const right = level[i + 1];
    up.push(right === undefined ? left : nodeHash(crypto, left, right));
  }
  return up;
}

function leafLevel(crypto: CryptoProvider, leaves: readonly Uint8Array[]): Uint8Array[] {
  return leaves.map((entry) => leafHash(crypto, entry));
}

/** A built Merkle tree: its root, and inclusion proofs for any leaf in O(log n). */
export interface MerkleTree {
  /** Number of leaves. */
  readonly leafCount: number;
  /** The 32-byte root (Merkle Tree Hash, RFC 6962 section 2.1). */
  readonly root: Uint8Array;
  /**
   * The inclusion proof (audit path) of leaf `index`: sibling hashes from the leaf level up.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `index` is not in `[0, leafCount)`.
   */
  proof(index: number): Uint8Array[];
}

/**
 * Builds the whole tree (every level, about 2n hashes of memory) so proofs are cheap to serve.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `leaves` is not an array.
 * @example
 * const tree = buildMerkleTree(crypto, [new Uint8Array(32), new Uint8Array(32).fill(1)]);
 * tree.proof(0).length; // => 1
 */
export function buildMerkleTree(crypto: CryptoProvider, leaves: readonly Uint8Array[]): MerkleTree {
  if (!Array.isArray(leaves)) invalidArgument('leaves', 'must be an array of Uint8Array');
  const leafCount = leaves.length;
  const levels: Uint8Array[][] = [leafLevel(crypto, leaves)];
  let top = levels[0]!;
  while (top.length > 1) {
    top = nextLevel(crypto, top);
    levels.push(top);
  }
  const root = top[0] ?? crypto.sha256(new Uint8Array(0));
  return {
    leafCount,
    root: root.slice(),
    proof(index: number): Uint8Array[] {
      if (!Number.isInteger(index) || index < 0 || index >= leafCount) {
        invalidArgument('index', `${index} is not a leaf index in [0, ${leafCount})`);
      }
      const path: Uint8Array[] = [];
      let position = index;
      for (let depth = 0; depth < levels.length - 1; depth++) {
        const level = levels[depth]!;
        const sibling = level[position % 2 === 0 ? position + 1 : position - 1];
        // No sibling: this node was promoted, so this level adds no hash. Copies keep the
        // tree immune to callers that modify a proof.
        if (sibling !== undefined) path.push(sibling.slice());
        position = Math.floor(position / 2);
      }
      return path;
    },
  };
}

/**
 * The Merkle Tree Hash (root) of `leaves`, keeping one level in memory.
 * @example
 * toHex(merkleRoot(crypto, [])).slice(0, 16); // => "e3b0c44298fc1c14"
 */
export function merkleRoot(crypto: CryptoProvider, leaves: readonly Uint8Array[]): Uint8Array {
  if (!Array.isArray(leaves)) invalidArgument('leaves', 'must be an array of Uint8Array');
  let level = leafLevel(crypto, leaves);
  while (level.length > 1) level = nextLevel(crypto, level);
  return level[0] ?? crypto.sha256(new Uint8Array(0));
}

/**
 * The inclusion proof of leaf `index` (RFC 6962 section 2.1.1, `PATH(m, D[n])`). Builds the
 * tree each call; use `buildMerkleTree` to serve many proofs of one tree.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `index` is not in `[0, leaves.length)`.
 * @example
 * const leaves = [new Uint8Array(32), new Uint8Array(32), new Uint8Array(32)];
 * merkleProof(crypto, leaves, 2).length; // => 1
 */
export function merkleProof(
  crypto: CryptoProvider,
  leaves: readonly Uint8Array[],
  index: number,
): Uint8Array[] {
  return buildMerkleTree(crypto, leaves).proof(index);
}

/** What an inclusion proof claims: `leaf` is entry `index` of the tree of `leafCount` leaves. */
export interface MerkleProofClaim {
  /** The expected 32-byte root. */
  readonly root: Uint8Array;
  /** Number of leaves in the tree (the proof's shape depends on it). */
  readonly leafCount: number;
  /** Position of the leaf, in `[0, leafCount)`. */
  readonly index: number;
  /** The data entry itself (for content: the chunk hash), not its leaf hash. */
  readonly leaf: Uint8Array;
  /** Sibling hashes from the leaf level up, each 32 bytes. */
  readonly proof: readonly Uint8Array[];
}

/**
 * Recomputes the root that `proof` implies for `leaf` at `index` in a tree of `leafCount`
 * leaves (RFC 9162 section 2.1.3.2 steps 1-5, without the final comparison). Returns
 * `undefined` for any malformed claim: index out of range, a proof hash that is not 32 bytes,
 * or a proof of the wrong length. Never throws.
 */
export function merkleRootFromProof(
  crypto: CryptoProvider,
  leafCount: number,
  index: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array | undefined {
  // Safe integers and halving by division, not 32-bit shifts, so any tree size works.
  if (!Number.isSafeInteger(leafCount) || leafCount < 1) return undefined;
  if (!Number.isSafeInteger(index) || index < 0 || index >= leafCount) return undefined;
  let fn = index;
  let sn = leafCount - 1;
  let r = leafHash(crypto, leaf);
  for (const p of proof) {
    if (sn === 0 || p.length !== MERKLE_HASH_BYTES) return undefined; // proof too long / malformed
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(crypto, p, r);
      // A right-edge node with no right sibling was promoted: skip the levels it rose through.
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(crypto, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined; // sn > 0: proof too short
}

/**
 * Verifies an inclusion proof against a root. Never throws; any malformed claim is `false`.
 * @example
 * const leaves = [1, 2, 3].map((n) => new Uint8Array(32).fill(n));
 * const tree = buildMerkleTree(crypto, leaves);
 * const claim = { root: tree.root, leafCount: 3, index: 1, leaf: leaves[1], proof: tree.proof(1) };
 * verifyMerkleProof(crypto, claim); // => true
 * verifyMerkleProof(crypto, { ...claim, index: 2 }); // => false
 */
export function verifyMerkleProof(crypto: CryptoProvider, claim: MerkleProofClaim): boolean {
  const { root, leafCount, index, leaf, proof } = claim;
  if (root.length !== MERKLE_HASH_BYTES || !Array.isArray(proof)) return false;
  const computed = merkleRootFromProof(crypto, leafCount, index, leaf, proof);
  return computed !== undefined && equalBytes(computed, root);
}
