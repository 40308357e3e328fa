/**
 * The file table of a tree manifest (docs/content.md, "Trees"): which files a content is made
 * of, in order. A tree's bytes are its files' bytes concatenated in table order, so file `k`
 * occupies content offsets `[sum of sizes before k, + its size)`, and the chunks that hold a
 * file follow from the chunk layout (`chunksOfFiles`, for `peapod fetch --only`).
 *
 * Encoding (all integers big-endian), appended to a version 2 manifest after the chunk hashes:
 *
 *   u32 fileCount, then per file: u16 pathBytes, path (UTF-8), u64 sizeBytes, u8 flags
 *   (bit 0: executable; every other bit 0)
 *
 * Rules, checked the same way when a manifest is created (`fileTableProblem`, the caller's
 * mistake: an exception) and when one is decoded (`decodeFileTable`, a peer's bytes: a failure
 * result, never an exception):
 * - 1 to 2^20 files, and the table (from `fileCount` on) at most 16 MiB;
 * - each path relative and `/`-separated, every segment non-empty, not `.` or `..`, at most
 *   255 UTF-8 bytes; the whole path at most 4096 bytes; no control character (below 0x20, or
 *   0x7f; so no NUL) and no `\` (`treePathProblem`);
 * - paths strictly ascending by their UTF-8 bytes (so unique, and one table per tree);
 * - no path is a directory prefix of another (`a` and `a/b`): a receiver could not create both;
 * - the sizes sum to the content's `totalBytes`.
 * These make a table something a receiver can write to disk as it is: nothing escapes the
 * target directory, nothing collides, and Windows-hostile separators are refused at the source.
 *
 * State: none; every function is pure.
 */
import { utf8Encode } from '../bytes.js';
import { invalidArgument } from '../errors.js';
import type { IndexRange } from '../wire/messages.js';
import type { ChunkLayout } from './layout.js';

/** One entry of a tree manifest's file table. */
export interface ManifestFile {
  /** Relative path, `/`-separated, each segment non-empty and not `.` or `..`; UTF-8. */
  readonly path: string;
  readonly sizeBytes: number;
  /** The file had an execute bit when shared. */
  readonly executable: boolean;
}

/** A file of a tree and where its bytes are in the content: `[start, end)`. */
export interface FileRange {
  readonly file: ManifestFile;
  readonly start: number;
  readonly end: number;
}

/** Most files one tree may have. */
export const FILE_COUNT_MAX = 2 ** 20;
/** Largest encoded file table (from `fileCount` on): 16 MiB. */
export const FILE_TABLE_BYTES_MAX = 16 * 1024 * 1024;
/** Longest path, in UTF-8 bytes (Linux's PATH_MAX). */
export const TREE_PATH_BYTES_MAX = 4096;
/** Longest path segment, in UTF-8 bytes (NAME_MAX of ext4, APFS, NTFS in UTF-16 units). */
export const TREE_SEGMENT_BYTES_MAX = 255;

/** Flag bit 0 of a file entry. */
const EXECUTABLE_FLAG = 0x01;
/** Bytes of an entry besides its path: u16 length, u64 size, u8 flags. */
const ENTRY_FIXED_BYTES = 2 + 8 + 1;
/** The largest high word of a u64 that stays <= 2^53 - 1. */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;
const SLASH = 0x2f;
const DOT = 0x2e;
const BACKSLASH = 0x5c;

/** Strict UTF-8 that keeps a leading U+FEFF, so a path round-trips byte for byte. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const loneSurrogate = /\p{Surrogate}/u;

/** The path rules on a path's UTF-8 bytes (UTF-8 continuation bytes are all >= 0x80). */
function pathBytesProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return 'is empty';
  if (bytes.length > TREE_PATH_BYTES_MAX) {
    return `is ${bytes.length} UTF-8 bytes, above ${TREE_PATH_BYTES_MAX}`;
  }
  let segmentStart = 0;
  for (let i = 0; i <= bytes.length; i++) {
    const byte = i < bytes.length ? bytes[i]! : SLASH;
    if (byte < 0x20 || byte === 0x7f) {
      return `holds control character 0x${byte.toString(16).padStart(2, '0')} at byte ${i}`;
    }
    if (byte === BACKSLASH) return `holds a backslash at byte ${i}`;
    if (byte !== SLASH) continue;
    const length = i - segmentStart;
    if (length === 0) return 'has an empty segment (a leading, doubled or trailing "/")';
    if (length > TREE_SEGMENT_BYTES_MAX) {
      return `has a segment of ${length} UTF-8 bytes, above ${TREE_SEGMENT_BYTES_MAX}`;
    }
    const dots = bytes[segmentStart] === DOT && (length === 1 || bytes[segmentStart + 1] === DOT);
    if (dots && length <= 2) return 'has a "." or ".." segment';
    segmentStart = i + 1;
  }
  return undefined;
}

/**
 * Explains why `path` may not name a file of a tree, or returns `undefined` when it may (the
 * path rules of this module's header). Never throws.
 * @example
 * treePathProblem('photos/2024/beach.jpg') === undefined; // => true
 * treePathProblem('photos/../etc/passwd'); // => "has a \".\" or \"..\" segment"
 */
export function treePathProblem(path: string): string | undefined {
  if (typeof path !== 'string') return `is not a string but a ${typeof path}`;
  if (loneSurrogate.test(path)) return 'holds a lone UTF-16 surrogate (no UTF-8 form)';
  return pathBytesProblem(utf8Encode(path));
}

/** Negative, zero or positive as `a` sorts before, with or after `b` (bytewise). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The rules across entries, on paths already checked one by one. */
function acrossEntriesProblem(paths: readonly string[]): string | undefined {
  const all = new Set(paths);
  for (const path of paths) {
    for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) {
      const directory = path.slice(0, slash);
      if (all.has(directory)) return `"${directory}" is a file and a directory of "${path}"`;
    }
  }
  return undefined;
}

/**
 * Explains why `files` is not a valid file table for a content of `totalBytes` bytes, or returns
 * `undefined` (the rules of this module's header; the types are checked too, as the value may
 * come from a caller's JSON). Never throws.
 */
export function fileTableProblem(files: unknown, totalBytes: number): string | undefined {
  if (!Array.isArray(files)) return 'must be an array of { path, sizeBytes, executable }';
  const entries = files as readonly unknown[];
  if (entries.length < 1 || entries.length > FILE_COUNT_MAX) {
    return `holds ${entries.length} files; a tree has 1 to ${FILE_COUNT_MAX}`;
  }
  let tableBytes = 4;
  let sumBytes = 0;
  let previous: Uint8Array | undefined;
  const paths: string[] = [];
  for (let i = 0; i < entries.length; i++) {
    const file = entries[i] as Partial<ManifestFile> | null | undefined;
    if (typeof file !== 'object' || file === null) return `[${i}] is not an object`;
    const { path, sizeBytes, executable } = file;
    if (typeof path !== 'string') return `[${i}].path is not a string`;
    const pathProblem = treePathProblem(path);
    if (pathProblem !== undefined) return `[${i}].path "${path}" ${pathProblem}`;
    if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      return `[${i}].sizeBytes ${String(sizeBytes)} is not a non-negative integer`;
    }
    if (typeof executable !== 'boolean') return `[${i}].executable is not a boolean`;
    const bytes = utf8Encode(path);
    if (previous !== undefined && compareBytes(previous, bytes) >= 0) {
      return `[${i}].path "${path}" does not sort after the previous path (UTF-8 byte order, no duplicates)`;
    }
    previous = bytes;
    tableBytes += ENTRY_FIXED_BYTES + bytes.length;
    if (tableBytes > FILE_TABLE_BYTES_MAX) {
      return `encodes to more than ${FILE_TABLE_BYTES_MAX} bytes`;
    }
    if (sizeBytes > totalBytes - sumBytes) {
      return `sizes add up to more than the content's ${totalBytes} bytes`;
    }
    sumBytes += sizeBytes;
    paths.push(path);
  }
  if (sumBytes !== totalBytes) {
    return `sizes add up to ${sumBytes} bytes; the content has ${totalBytes}`;
  }
  return acrossEntriesProblem(paths);
}

/**
 * Encodes a file table (from `fileCount` on). The table must be valid (`fileTableProblem`).
 */
export function encodeFileTable(files: readonly ManifestFile[]): Uint8Array {
  const paths = files.map((file) => utf8Encode(file.path));
  const size = paths.reduce((sum, path) => sum + ENTRY_FIXED_BYTES + path.length, 4);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, files.length);
  let at = 4;
  files.forEach((file, index) => {
    const path = paths[index]!;
    view.setUint16(at, path.length);
    out.set(path, at + 2);
    at += 2 + path.length;
    view.setUint32(at, Math.floor(file.sizeBytes / 2 ** 32));
    view.setUint32(at + 4, file.sizeBytes >>> 0);
    out[at + 8] = file.executable ? EXECUTABLE_FLAG : 0;
    at += 9;
  });
  return out;
}

/** The outcome of `decodeFileTable`. */
export type FileTableDecodeResult =
  | { readonly ok: true; readonly files: readonly ManifestFile[]; readonly end: number }
  | {
      readonly ok: false;
      readonly reason: 'truncated' | 'invalid-file-table';
      readonly detail: string;
    };

function invalid(detail: string): FileTableDecodeResult {
  return { ok: false, reason: 'invalid-file-table', detail: `file table: ${detail}` };
}

function truncated(detail: string): FileTableDecodeResult {
  return { ok: false, reason: 'truncated', detail: `file table: ${detail}` };
}

/**
 * Decodes the file table that starts at `start` of `bytes`, for a content of `totalBytes`
 * bytes, and checks every rule. `end` is the offset after the table. Never throws; every count
 * and length is checked against the bytes remaining before anything is allocated.
 */
export function decodeFileTable(
  bytes: Uint8Array,
  start: number,
  totalBytes: number,
): FileTableDecodeResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length - start < 4) return truncated('no room for the file count');
  const count = view.getUint32(start);
  if (count < 1 || count > FILE_COUNT_MAX) {
    return invalid(`file count ${count} is outside 1 to ${FILE_COUNT_MAX}`);
  }
  // Every entry is at least its fixed 11 bytes.
  if (count * ENTRY_FIXED_BYTES > bytes.length - start - 4) {
    return truncated(`${count} files cannot fit in ${bytes.length - start - 4} bytes`);
  }
  const files: ManifestFile[] = [];
  const paths: string[] = [];
  let previous: Uint8Array | undefined;
  let sumBytes = 0;
  let at = start + 4;
  for (let i = 0; i < count; i++) {
    if (bytes.length - at < 2) return truncated(`entry ${i} is cut short`);
    const pathLength = view.getUint16(at);
    if (bytes.length - at < ENTRY_FIXED_BYTES + pathLength) {
      return truncated(`entry ${i} is cut short`);
    }
    if (at + ENTRY_FIXED_BYTES + pathLength - start > FILE_TABLE_BYTES_MAX) {
      return invalid(`longer than ${FILE_TABLE_BYTES_MAX} bytes`);
    }
    const pathBytes = bytes.subarray(at + 2, at + 2 + pathLength);
    const pathProblem = pathBytesProblem(pathBytes);
    if (pathProblem !== undefined) return invalid(`path ${i} ${pathProblem}`);
    let path: string;
    try {
      path = strictUtf8.decode(pathBytes);
    } catch {
      return invalid(`path ${i} is not valid UTF-8`);
    }
    if (previous !== undefined && compareBytes(previous, pathBytes) >= 0) {
      return invalid(
        `path ${i} does not sort after path ${i - 1} (UTF-8 byte order, no duplicates)`,
      );
    }
    previous = pathBytes;
    at += 2 + pathLength;
    const sizeHigh = view.getUint32(at);
    if (sizeHigh > MAX_SAFE_HIGH_WORD) return invalid(`size of file ${i} is above 2^53 - 1`);
    const sizeBytes = sizeHigh * 2 ** 32 + view.getUint32(at + 4);
    const flags = bytes[at + 8]!;
    if ((flags & ~EXECUTABLE_FLAG) !== 0) {
      return invalid(`file ${i} has flags 0x${flags.toString(16)}; only bit 0 is defined`);
    }
    at += 9;
    if (sizeBytes > totalBytes - sumBytes) {
      return invalid(`sizes add up to more than the content's ${totalBytes} bytes`);
    }
    sumBytes += sizeBytes;
    files.push(Object.freeze({ path, sizeBytes, executable: flags === EXECUTABLE_FLAG }));
    paths.push(path);
  }
  if (sumBytes !== totalBytes) {
    return invalid(`sizes add up to ${sumBytes} bytes; the content has ${totalBytes}`);
  }
  const across = acrossEntriesProblem(paths);
  if (across !== undefined) return invalid(across);
  return { ok: true, files: Object.freeze(files), end: at };
}

/**
 * Where each file of a tree is in the content: `[start, end)` content offsets, in table order
 * (an empty file has `start === end`). A manifest without a file table (a URL object) has none.
 * @example
 * const files = [
 *   { path: 'a/one', sizeBytes: 3, executable: false },
 *   { path: 'a/two', sizeBytes: 5, executable: true },
 * ];
 * fileRanges({ files }).map((r) => [r.file.path, r.start, r.end]); // => [["a/one",0,3],["a/two",3,8]]
 */
export function fileRanges(manifest: { readonly files?: readonly ManifestFile[] }): FileRange[] {
  const ranges: FileRange[] = [];
  let start = 0;
  for (const file of manifest.files ?? []) {
    ranges.push({ file, start, end: start + file.sizeBytes });
    start += file.sizeBytes;
  }
  return ranges;
}

/**
 * The chunks that hold any byte of `files` (entries of `manifest.files`, or their paths):
 * sorted, non-overlapping index ranges with adjacent ones merged, ready for a content source's
 * `chunks`. Empty files hold no chunk.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the manifest has no file table or a file
 * is not in it.
 * @example
 * const files = [
 *   { path: 'big', sizeBytes: 65536 * 2, executable: false },
 *   { path: 'small', sizeBytes: 10, executable: false },
 * ];
 * const manifest = { totalBytes: 131082, chunkSizeBytes: 65536, files };
 * chunksOfFiles(manifest, ['small']); // => [{"start":2,"end":3}]
 * chunksOfFiles(manifest, ['small', 'big']); // => [{"start":0,"end":3}]
 */
export function chunksOfFiles(
  manifest: ChunkLayout & { readonly files?: readonly ManifestFile[] },
  files: readonly (ManifestFile | string)[],
): IndexRange[] {
  if (manifest.files === undefined) invalidArgument('manifest', 'has no file table (not a tree)');
  const byPath = new Map(fileRanges(manifest).map((range) => [range.file.path, range]));
  const chunkSize = manifest.chunkSizeBytes;
  const wanted: IndexRange[] = [];
  files.forEach((file, index) => {
    const path = typeof file === 'string' ? file : file?.path;
    const range = byPath.get(path);
    if (range === undefined) invalidArgument(`files[${index}]`, `"${path}" is not in the tree`);
    if (range.end === range.start) return;
    wanted.push({
      start: Math.floor(range.start / chunkSize),
      end: Math.ceil(range.end / chunkSize),
    });
  });
  wanted.sort((a, b) => a.start - b.start);
  const merged: IndexRange[] = [];
  for (const range of wanted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range.start <= last.end) {
      merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, range.end) };
    } else {
      merged.push(range);
    }
  }
  return merged;
}
