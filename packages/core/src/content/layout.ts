/**
 * Chunk layout: how a content of `totalBytes` bytes is cut into chunks of `chunkSizeBytes`
 * (docs/content.md, "Chunking"). Every chunk is full-size except the last, which holds the
 * remainder; empty content has no chunks. The layout is pure arithmetic on two numbers, so
 * the scheduler, the manifest and a browser that holds only a content ID's parameters all
 * share these helpers.
 *
 * Bounds: the chunk size is a power of two from 64 KiB to 16 MiB (default 4 MiB, justified in
 * docs/content.md), and a content has at most 2^20 chunks. So the total size is at most
 * 2^44 bytes (16 TiB), well inside `Number.MAX_SAFE_INTEGER`, and a manifest is at most
 * 32 MiB of hashes.
 */
import { invalidArgument } from '../errors.js';

/** Smallest allowed chunk size: 64 KiB, one full DATA frame's worth of payload. */
export const CHUNK_SIZE_BYTES_MIN = 64 * 1024;
/** Largest allowed chunk size: 16 MiB (ElioP2P's object-cache chunk size). */
export const CHUNK_SIZE_BYTES_MAX = 16 * 1024 * 1024;
/** Default chunk size: 4 MiB (docs/content.md, "Why 4 MiB"). */
export const CHUNK_SIZE_BYTES_DEFAULT = 4 * 1024 * 1024;
/** Most chunks one content may have: 2^20 (a 32 MiB manifest). */
export const CHUNK_COUNT_MAX = 2 ** 20;
/** Length of a chunk hash (SHA-256). */
export const CHUNK_HASH_BYTES = 32;

/** The two numbers that fix how a content is chunked. Both are pinned by its content ID. */
export interface ChunkLayout {
  /** Size of the whole content in bytes. */
  readonly totalBytes: number;
  /** Size of every chunk but the last; a power of two in [64 KiB, 16 MiB]. */
  readonly chunkSizeBytes: number;
}

/** A half-open byte range `[start, end)` of the content. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Whether `chunkSizeBytes` is an allowed chunk size: an integer power of two in
 * [CHUNK_SIZE_BYTES_MIN, CHUNK_SIZE_BYTES_MAX]. Never throws.
 * @example
 * isValidChunkSize(4 * 1024 * 1024); // => true
 * isValidChunkSize(100_000); // => false
 */
export function isValidChunkSize(chunkSizeBytes: number): boolean {
  return (
    Number.isInteger(chunkSizeBytes) &&
    chunkSizeBytes >= CHUNK_SIZE_BYTES_MIN &&
    chunkSizeBytes <= CHUNK_SIZE_BYTES_MAX &&
    (chunkSizeBytes & (chunkSizeBytes - 1)) === 0
  );
}

/**
 * Explains why a layout is not allowed, or returns `undefined` when it is. Never throws; the
 * manifest decoder turns the explanation into a failure result and API entry points into an
 * exception.
 */
export function layoutProblem(layout: ChunkLayout): string | undefined {
  const { totalBytes, chunkSizeBytes } = layout;
  if (!isValidChunkSize(chunkSizeBytes)) {
    const range = `[${CHUNK_SIZE_BYTES_MIN}, ${CHUNK_SIZE_BYTES_MAX}]`;
    return `chunk size ${chunkSizeBytes} is not a power of two in ${range}`;
  }
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
    return `total size ${totalBytes} is not a non-negative integer`;
  }
  if (Math.ceil(totalBytes / chunkSizeBytes) > CHUNK_COUNT_MAX) {
    const chunks = `${CHUNK_COUNT_MAX} chunks of ${chunkSizeBytes} bytes`;
    return `total size ${totalBytes} needs more than ${chunks}; use a larger chunk size`;
  }
  return undefined;
}

/**
 * Checks a layout supplied by a caller.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed.
 */
export function assertValidLayout(layout: ChunkLayout, name = 'layout'): void {
  const problem = layoutProblem(layout);
  if (problem !== undefined) invalidArgument(name, problem);
}

/**
 * Number of chunks in a layout: `ceil(totalBytes / chunkSizeBytes)`, so 0 for empty content.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed.
 * @example
 * chunkCount({ totalBytes: 65_537, chunkSizeBytes: 65_536 }); // => 2
 * chunkCount({ totalBytes: 0, chunkSizeBytes: 65_536 }); // => 0
 */
export function chunkCount(layout: ChunkLayout): number {
  assertValidLayout(layout);
  return Math.ceil(layout.totalBytes / layout.chunkSizeBytes);
}

/**
 * Byte range `[start, end)` of chunk `index` within the content.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the layout is not allowed or `index` is
 * not an integer in `[0, chunkCount)`.
 * @example
 * chunkRange({ totalBytes: 65_537, chunkSizeBytes: 65_536 }, 1); // => {"start":65536,"end":65537}
 */
export function chunkRange(layout: ChunkLayout, index: number): ByteRange {
  const count = chunkCount(layout);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    invalidArgument('index', `${index} is not a chunk index in [0, ${count})`);
  }
  const start = index * layout.chunkSizeBytes;
  return { start, end: Math.min(start + layout.chunkSizeBytes, layout.totalBytes) };
}

/**
 * Length in bytes of chunk `index`: the chunk size, except for a shorter last chunk.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT like `chunkRange`.
 * @example
 * chunkLength({ totalBytes: 65_537, chunkSizeBytes: 65_536 }, 0); // => 65536
 * chunkLength({ totalBytes: 65_537, chunkSizeBytes: 65_536 }, 1); // => 1
 */
export function chunkLength(layout: ChunkLayout, index: number): number {
  const range = chunkRange(layout, index);
  return range.end - range.start;
}
