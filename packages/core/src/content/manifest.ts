/**
 * Manifests: the list of a content's chunk hashes, with the layout they belong to and, for a
 * tree, its file table (docs/content.md, "Manifest" and "Trees"). A manifest is
 * self-certifying: its content ID is recomputed from its fields, never read from the bytes, so
 * a manifest fetched from any peer is accepted only when it hashes to the ID the caller asked
 * for.
 *
 * Encoding (all integers big-endian):
 *
 *   offset  size    field
 *   0       4       magic "PEAM" (0x50 0x45 0x41 0x4d)
 *   4       1       version: 1 (a bare object) or 2 (a tree: the file table follows)
 *   5       8       totalBytes (u64)
 *   13      4       chunkSizeBytes (u32, power of two in [64 KiB, 16 MiB])
 *   17      4       chunkCount (u32, = ceil(totalBytes / chunkSizeBytes) <= 2^20)
 *   21      32 * n  chunk hashes (SHA-256 of each chunk, in order)
 *   21+32n  ...     version 2 only: the file table (file-table.ts), to the end
 *
 * A manifest with `files` encodes as version 2 and has a tree's content ID (content-id.ts,
 * prefix 0x03); one without encodes as version 1, unchanged. `decodeManifest` never throws.
 * It checks every field and the exact length before it allocates anything, copies the hashes
 * out of the input (so a reused network buffer cannot change a manifest after its ID was
 * checked), and recomputes the content ID.
 */
import { equalBytes } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { computeContentId } from './content-id.js';
import {
  decodeFileTable,
  encodeFileTable,
  FILE_TABLE_BYTES_MAX,
  fileTableProblem,
  type ManifestFile,
} from './file-table.js';
import {
  assertValidLayout,
  CHUNK_COUNT_MAX,
  CHUNK_HASH_BYTES,
  layoutProblem,
  type ChunkLayout,
} from './layout.js';

export type { ManifestFile } from './file-table.js';

/** The 4 magic bytes that open an encoded manifest: ASCII "PEAM". */
export const MANIFEST_MAGIC: Uint8Array = Uint8Array.of(0x50, 0x45, 0x41, 0x4d);
/** The encoding version of a manifest without a file table (a bare object). */
export const MANIFEST_VERSION = 1;
/** The encoding version of a tree's manifest (a file table after the hashes). */
export const MANIFEST_VERSION_TREE = 2;
/** Bytes before the first chunk hash. */
export const MANIFEST_HEADER_BYTES = 21;
/**
 * The largest encoded manifest: the header, 2^20 chunk hashes and a 16 MiB file table
 * (48 MiB + 21 bytes). A receiver bounds a manifest download by it.
 */
export const MANIFEST_BYTES_MAX =
  MANIFEST_HEADER_BYTES + CHUNK_COUNT_MAX * CHUNK_HASH_BYTES + FILE_TABLE_BYTES_MAX;

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
  /** Bytes after the last hash (version 1) or after the file table (version 2). */
  | 'trailing-bytes'
  /** A version 2 file table that breaks a rule of file-table.ts (the detail says which). */
  | 'invalid-file-table'
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

/**
 * Builds a frozen manifest; the layout, hashes and file table must already be valid, and
 * `fileTable` must be the table's encoding (its hash goes into the ID).
 */
function freezeManifest(
  crypto: CryptoProvider,
  layout: ChunkLayout,
  chunkHashes: Uint8Array[],
  tree?: { readonly files: readonly ManifestFile[]; readonly fileTable: Uint8Array },
): Manifest {
  const fileTableHash = tree === undefined ? undefined : crypto.sha256(tree.fileTable);
  const contentId = computeContentId(crypto, layout, chunkHashes, fileTableHash);
  const manifest = {
    contentId,
    totalBytes: layout.totalBytes,
    chunkSizeBytes: layout.chunkSizeBytes,
    chunkHashes: Object.freeze(chunkHashes),
  };
  return Object.freeze(tree === undefined ? manifest : { ...manifest, files: tree.files });
}

/** Frozen copies of a caller's file entries (already checked by `fileTableProblem`). */
function copyFiles(files: readonly ManifestFile[]): readonly ManifestFile[] {
  return Object.freeze(
    files.map(({ path, sizeBytes, executable }) => Object.freeze({ path, sizeBytes, executable })),
  );
}

/**
 * Creates a manifest and computes its content ID; with `files`, a tree's manifest (version 2,
 * ID prefix 0x03). The hashes and file entries are copied, so later changes to the caller's
 * arrays cannot make the manifest disagree with its ID.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed, the number of
 * hashes is not the layout's chunk count, a hash is not 32 bytes, or `files` breaks a file
 * table rule (file-table.ts; the message names the entry and the rule).
 * @example
 * const fields = { totalBytes: 0, chunkSizeBytes: 4194304, chunkHashes: [] };
 * toHex(createManifest(crypto, fields).contentId).slice(0, 16); // => "7fc47325c8616273"
 * const files = [{ path: 'notes.txt', sizeBytes: 0, executable: false }];
 * toHex(createManifest(crypto, { ...fields, files }).contentId).slice(0, 16); // => "548c605b10395087"
 */
export function createManifest(crypto: CryptoProvider, fields: ManifestFields): Manifest {
  const layout = { totalBytes: fields.totalBytes, chunkSizeBytes: fields.chunkSizeBytes };
  const copies = fields.chunkHashes.map((hash) => hash.slice());
  if (fields.files === undefined) {
    // computeContentId checks the layout, the hash count and every hash length.
    return freezeManifest(crypto, layout, copies);
  }
  assertValidLayout(layout);
  const problem = fileTableProblem(fields.files, layout.totalBytes);
  if (problem !== undefined) invalidArgument('files', problem);
  const files = copyFiles(fields.files);
  return freezeManifest(crypto, layout, copies, { files, fileTable: encodeFileTable(files) });
}

/**
 * Encodes a manifest (format in this module's header comment): version 2 with its file table
 * when it has `files`, else version 1. The content ID is not written: a reader recomputes it.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the manifest's layout is not allowed,
 * its hashes do not match the layout, or its file table breaks a rule.
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
  let fileTable: Uint8Array | undefined;
  if (manifest.files !== undefined) {
    const tableProblem = fileTableProblem(manifest.files, manifest.totalBytes);
    if (tableProblem !== undefined) invalidArgument('manifest.files', tableProblem);
    fileTable = encodeFileTable(manifest.files);
  }
  const hashesEnd = MANIFEST_HEADER_BYTES + count * CHUNK_HASH_BYTES;
  const out = new Uint8Array(hashesEnd + (fileTable?.length ?? 0));
  const view = new DataView(out.buffer);
  out.set(MANIFEST_MAGIC, 0);
  out[4] = fileTable === undefined ? MANIFEST_VERSION : MANIFEST_VERSION_TREE;
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
  if (fileTable !== undefined) out.set(fileTable, hashesEnd);
  return out;
}

function failure(reason: ManifestDecodeFailureReason, detail: string): ManifestDecodeResult {
  return { ok: false, reason, detail };
}

/**
 * Decodes and validates a manifest, version 1 or 2 (a tree: its file table is checked against
 * every rule of file-table.ts). With `expectedContentId`, a manifest that hashes to any other
 * ID is rejected, so the result can be trusted as the manifest of that content. Never throws,
 * whatever the bytes. It costs two small hashes per chunk: about 1 ms for 256 chunks,
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
  const version = bytes[4];
  if (version !== MANIFEST_VERSION && version !== MANIFEST_VERSION_TREE) {
    return failure('unsupported-version', `version ${version} (this side reads 1 and 2)`);
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
  const hashesEnd = MANIFEST_HEADER_BYTES + count * CHUNK_HASH_BYTES;
  if (bytes.length < hashesEnd) {
    return failure('truncated', `${bytes.length} bytes; ${count} hashes need ${hashesEnd}`);
  }
  let tree: { files: readonly ManifestFile[]; fileTable: Uint8Array } | undefined;
  let end = hashesEnd;
  if (version === MANIFEST_VERSION_TREE) {
    const table = decodeFileTable(bytes, hashesEnd, totalBytes);
    if (!table.ok) return failure(table.reason, table.detail);
    tree = { files: table.files, fileTable: bytes.subarray(hashesEnd, table.end) };
    end = table.end;
  }
  if (bytes.length > end) {
    const after = tree === undefined ? 'the last hash' : 'the file table';
    return failure('trailing-bytes', `${bytes.length - end} bytes after ${after}`);
  }
  // One copy of all hashes, viewed per chunk: the manifest never aliases the caller's buffer.
  const hashBlock = bytes.slice(MANIFEST_HEADER_BYTES, hashesEnd);
  const chunkHashes: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    chunkHashes.push(hashBlock.subarray(i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES));
  }
  // The table is hashed straight from the input here; its files are already copies (strings).
  const manifest = freezeManifest(crypto, layout, chunkHashes, tree);
  if (expectedContentId !== undefined && !equalBytes(manifest.contentId, expectedContentId)) {
    return failure('content-id-mismatch', 'the manifest hashes to a different content ID');
  }
  return { ok: true, manifest };
}
