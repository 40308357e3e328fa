/**
 * Manifests: the list of a content's chunk hashes, with the layout they belong to
 * (docs/content.md, "Manifest"). A manifest is self-certifying: its content ID is recomputed
 * from its fields, never read from the bytes, so a manifest fetched from any peer is accepted
 * only when it hashes to the ID the caller asked for.
 *
 * Encoding, version 1 (all integers big-endian):
 *
 *   offset  size    field
 *   0       4       magic "PEAM" (0x50 0x45 0x41 0x4d)
 *   4       1       version = 1
 *   5       8       totalBytes (u64)
 *   13      4       chunkSizeBytes (u32, power of two in [64 KiB, 16 MiB])
 *   17      4       chunkCount (u32, = ceil(totalBytes / chunkSizeBytes) <= 2^20)
 *   21      32 * n  chunk hashes (SHA-256 of each chunk, in order)
 *
 * `decodeManifest` never throws. It checks every field and the exact length before it
 * allocates anything, copies the hashes out of the input (so a reused network buffer cannot
 * change a manifest after its ID was checked), and recomputes the content ID.
 */
import { equalBytes } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { computeContentId } from './content-id.js';
import { CHUNK_HASH_BYTES, layoutProblem, type ChunkLayout } from './layout.js';

/** The 4 magic bytes that open an encoded manifest: ASCII "PEAM". */
export const MANIFEST_MAGIC: Uint8Array = Uint8Array.of(0x50, 0x45, 0x41, 0x4d);
/** The manifest encoding version this implementation writes and reads. */
export const MANIFEST_VERSION = 1;
/** Bytes before the first chunk hash. */
export const MANIFEST_HEADER_BYTES = 21;

/** A content's chunk layout, chunk hashes and the content ID they hash to. */
export interface Manifest extends ChunkLayout {
  /** SHA-256(0x02 || totalBytes || chunkSizeBytes || Merkle root of `chunkHashes`). */
  readonly contentId: Uint8Array;
  /** SHA-256 of each chunk, in order; `chunkCount(manifest)` entries of 32 bytes. */
  readonly chunkHashes: readonly Uint8Array[];
  /**
   * The tree's layout (`peapod share DIR`, or a single named file): the content is these
   * files' bytes concatenated in this order (sizes sum to `totalBytes`). Absent for a bare
   * object (a URL download). Pinned by the content ID (docs/content.md, "Trees").
   */
  readonly files?: readonly ManifestFile[];
}

/** One entry of a tree manifest's file table. */
export interface ManifestFile {
  /** Relative path, `/`-separated, each segment non-empty and not `.` or `..`; UTF-8. */
  readonly path: string;
  readonly sizeBytes: number;
  /** The file had an execute bit when shared. */
  readonly executable: boolean;
}

/** Why `decodeManifest` rejected its input. */
export type ManifestDecodeFailureReason =
  /** Shorter than the header, or than the hashes the header announces. */
  | 'truncated'
  /** Does not start with "PEAM". */
  | 'bad-magic'
  /** A version this implementation cannot read. */
  | 'unsupported-version'
  /** Chunk size not allowed, total size too large, or more than 2^20 chunks. */
  | 'invalid-layout'
  /** The chunk count field disagrees with the total size and chunk size. */
  | 'chunk-count-mismatch'
  /** Bytes after the last hash. */
  | 'trailing-bytes'
  /** Well-formed, but hashes to a different content ID than the caller expected. */
  | 'content-id-mismatch';

/** The outcome of `decodeManifest`: a manifest, or why there is none. */
export type ManifestDecodeResult =
  | { readonly ok: true; readonly manifest: Manifest }
  | {
      readonly ok: false;
      readonly reason: ManifestDecodeFailureReason;
      /** A sentence for logs, e.g. "chunk count field is 3; the layout needs 2". */
      readonly detail: string;
    };

/** The inputs of a manifest; `createManifest` computes the ID. */
export interface ManifestFields extends ChunkLayout {
  readonly chunkHashes: readonly Uint8Array[];
  /** A tree's file table (see `Manifest.files`). */
  readonly files?: readonly ManifestFile[];
}

/** Builds a frozen manifest; the layout and hashes must already be valid. */
function freezeManifest(
  crypto: CryptoProvider,
  layout: ChunkLayout,
  chunkHashes: Uint8Array[],
): Manifest {
  const contentId = computeContentId(crypto, layout, chunkHashes);
  return Object.freeze({
    contentId,
    totalBytes: layout.totalBytes,
    chunkSizeBytes: layout.chunkSizeBytes,
    chunkHashes: Object.freeze(chunkHashes),
  });
}

/**
 * Creates a manifest and computes its content ID. The hashes are copied, so later changes to
 * the caller's arrays cannot make the manifest disagree with its ID.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed, the number of
 * hashes is not the layout's chunk count, or a hash is not 32 bytes.
 * @example
 * const fields = { totalBytes: 0, chunkSizeBytes: 4194304, chunkHashes: [] };
 * toHex(createManifest(crypto, fields).contentId).slice(0, 16); // => "7fc47325c8616273"
 */
export function createManifest(crypto: CryptoProvider, fields: ManifestFields): Manifest {
  const layout = { totalBytes: fields.totalBytes, chunkSizeBytes: fields.chunkSizeBytes };
  const copies = fields.chunkHashes.map((hash) => hash.slice());
  // computeContentId checks the layout, the hash count and every hash length.
  return freezeManifest(crypto, layout, copies);
}

/**
 * Encodes a manifest (format in this module's header comment). The content ID is not written:
 * a reader recomputes it.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the manifest's layout is not allowed or
 * its hashes do not match the layout.
 * @example
 * const fields = { totalBytes: 0, chunkSizeBytes: 65536, chunkHashes: [] };
 * const manifest = createManifest(crypto, fields);
 * toHex(encodeManifest(manifest)); // => "5045414d0100000000000000000001000000000000"
 */
export function encodeManifest(manifest: Manifest): Uint8Array {
  const problem = layoutProblem(manifest);
  if (problem !== undefined) invalidArgument('manifest', problem);
  const count = Math.ceil(manifest.totalBytes / manifest.chunkSizeBytes);
  if (manifest.chunkHashes.length !== count) {
    invalidArgument('manifest.chunkHashes', `has ${manifest.chunkHashes.length}; needs ${count}`);
  }
  const out = new Uint8Array(MANIFEST_HEADER_BYTES + count * CHUNK_HASH_BYTES);
  const view = new DataView(out.buffer);
  out.set(MANIFEST_MAGIC, 0);
  out[4] = MANIFEST_VERSION;
  view.setUint32(5, Math.floor(manifest.totalBytes / 2 ** 32));
  view.setUint32(9, manifest.totalBytes >>> 0);
  view.setUint32(13, manifest.chunkSizeBytes);
  view.setUint32(17, count);
  manifest.chunkHashes.forEach((hash, index) => {
    if (hash.length !== CHUNK_HASH_BYTES) {
      invalidArgument(`manifest.chunkHashes[${index}]`, 'must be 32 bytes');
    }
    out.set(hash, MANIFEST_HEADER_BYTES + index * CHUNK_HASH_BYTES);
  });
  return out;
}

function failure(reason: ManifestDecodeFailureReason, detail: string): ManifestDecodeResult {
  return { ok: false, reason, detail };
}

/**
 * Decodes and validates a manifest. With `expectedContentId`, a manifest that hashes to any
 * other ID is rejected, so the result can be trusted as the manifest of that content. Never
 * throws, whatever the bytes. It costs two small hashes per chunk: about 1 ms for 256 chunks,
 * about 7 s for the largest manifest (2^20 chunks), on either provider here.
 * @example
 * const fields = { totalBytes: 0, chunkSizeBytes: 65536, chunkHashes: [] };
 * const manifest = createManifest(crypto, fields);
 * const result = decodeManifest(crypto, encodeManifest(manifest), manifest.contentId);
 * result.ok; // => true
 * decodeManifest(crypto, new Uint8Array(3)).reason; // => "truncated"
 */
export function decodeManifest(
  crypto: CryptoProvider,
  bytes: Uint8Array,
  expectedContentId?: Uint8Array,
): ManifestDecodeResult {
  if (bytes.length < MANIFEST_HEADER_BYTES) {
    return failure('truncated', `${bytes.length} bytes is shorter than the 21-byte header`);
  }
  if (!equalBytes(bytes.subarray(0, 4), MANIFEST_MAGIC)) {
    return failure('bad-magic', 'does not start with "PEAM"');
  }
  if (bytes[4] !== MANIFEST_VERSION) {
    return failure('unsupported-version', `version ${bytes[4]} (this side reads 1)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const totalHigh = view.getUint32(5);
  const chunkSizeBytes = view.getUint32(13);
  const countField = view.getUint32(17);
  // 2^53 would not be exact; any size that large is invalid anyway (at most 2^44).
  if (totalHigh >= 2 ** 21) {
    return failure('invalid-layout', `total size high word ${totalHigh} is too large`);
  }
  const totalBytes = totalHigh * 2 ** 32 + view.getUint32(9);
  const layout = { totalBytes, chunkSizeBytes };
  const problem = layoutProblem(layout);
  if (problem !== undefined) return failure('invalid-layout', problem);
  const count = Math.ceil(totalBytes / chunkSizeBytes);
  if (countField !== count) {
    return failure('chunk-count-mismatch', `chunk count field is ${countField}; needs ${count}`);
  }
  const expectedLength = MANIFEST_HEADER_BYTES + count * CHUNK_HASH_BYTES;
  if (bytes.length < expectedLength) {
    return failure('truncated', `${bytes.length} bytes; ${count} hashes need ${expectedLength}`);
  }
  if (bytes.length > expectedLength) {
    return failure('trailing-bytes', `${bytes.length - expectedLength} bytes after the last hash`);
  }
  // One copy of all hashes, viewed per chunk: the manifest never aliases the caller's buffer.
  const hashBlock = bytes.slice(MANIFEST_HEADER_BYTES);
  const chunkHashes: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    chunkHashes.push(hashBlock.subarray(i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES));
  }
  const manifest = freezeManifest(crypto, layout, chunkHashes);
  if (expectedContentId !== undefined && !equalBytes(manifest.contentId, expectedContentId)) {
    return failure('content-id-mismatch', 'the manifest hashes to a different content ID');
  }
  return { ok: true, manifest };
}
