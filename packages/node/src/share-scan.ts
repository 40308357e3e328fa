/**
 * `peapod share PATH`: a file or a directory tree becomes a content in the store, without a
 * second copy of its bytes.
 *
 * Theory of operation
 * 1. Walk (`scanTree`): a file shares as a tree of one entry, its base name; a directory
 *    `photos/` as every regular file under it, paths starting with `photos/`. The daemon's data
 *    directory (keys, store), a tree inside it and a tree holding it are refused (real paths).
 *    Names starting with '.' (.git, .env, .ssh) are skipped unless `hidden`. Symlinks are never
 *    followed and special files (sockets, FIFOs, devices) are skipped, each with a note, as are
 *    names a tree cannot carry (`treePathProblem`: a backslash, a control character). Files are
 *    sorted by the UTF-8 bytes of their paths (the manifest's order) and keep their execute bit.
 *    Every step takes an AbortSignal (the API client went away): the walk, the hash pass and
 *    the store step stop at the next directory, read or chunk.
 * 2. Hash (`hashTree`): one read of every file, in order, into the Chunker; the manifest is
 *    `Chunker.finish(files)`. A file that changes size while it is read fails the share.
 * 3. Store (`shareIntoStore`): the content is recorded pinned with origin `shared`. A chunk that
 *    lies inside one file is REFERENCED there (`store.referenceChunks`: path and offset; the
 *    store verifies it on every read, so a file edited later is detected, never served). A
 *    chunk that spans two or more files cannot be one reference: it is read back once, checked
 *    against its hash and stored as a chunk file (`putChunk`; pinned, so never evicted).
 *    If this step fails or is aborted, a content that was new to the store is removed again.
 * The caller tells the core (`content-available`) once this resolves.
 */
import type { Dirent } from 'node:fs';
import { lstat, open, readdir, realpath } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import {
  Chunker,
  fileRanges,
  equalBytes,
  treePathProblem,
  type CryptoProvider,
  type Manifest,
  type ManifestFile,
} from '@peapod/core';
import type { ChunkReference, ChunkStoreApi } from './store/store-api.js';

/** A regular file found by the walk: its tree path and where it is on disk. */
export interface ScannedFile extends ManifestFile {
  readonly absolutePath: string;
}

export interface ScannedTree {
  /** The absolute path that was shared. */
  readonly root: string;
  /** The base name: the single file's name, or the directory's (every path's first segment). */
  readonly name: string;
  /** Sorted by the UTF-8 bytes of `path`. */
  readonly files: readonly ScannedFile[];
  /** What was left out and why, one line each (`skipped link "a/b": symbolic link`). */
  readonly notes: readonly string[];
}

/** Read size of the hash pass. */
const READ_BYTES = 1024 * 1024;

export interface ScanOptions {
  /** Include files and directories whose names start with '.' (`--hidden`); default skip. */
  readonly hidden?: boolean;
  /** The daemon's data directory (its keys and store): it and any tree holding it are refused. */
  readonly dataDir?: string | undefined;
  /** Stops the walk and the hash pass (the client went away). */
  readonly signal?: AbortSignal;
}

/**
 * Walks `path` (absolute). Rejects with one sentence when it is not a file or a directory, when
 * it is or holds the daemon's data directory, or when nothing under it can be shared.
 */
export async function scanTree(path: string, options: ScanOptions = {}): Promise<ScannedTree> {
  const root = resolve(path);
  const name = basename(root);
  let info;
  try {
    info = await lstat(root);
  } catch (error) {
    throw new Error(`cannot share ${root}: ${errorText(error)}`);
  }
  if (options.dataDir !== undefined) await refuseDataDir(root, options.dataDir);
  if (info.isSymbolicLink()) {
    throw new Error(`${root} is a symbolic link; share the file or directory it points to`);
  }
  const problem = treePathProblem(name);
  if (problem !== undefined || name === '') {
    throw new Error(`cannot share ${root}: its name ${problem ?? 'is empty'}; rename it first`);
  }
  if (info.isFile()) {
    const file = { path: name, sizeBytes: info.size, executable: (info.mode & 0o111) !== 0 };
    return { root, name, files: [{ ...file, absolutePath: root }], notes: [] };
  }
  if (!info.isDirectory()) {
    throw new Error(`${root} is neither a regular file nor a directory; it cannot be shared`);
  }
  const files: ScannedFile[] = [];
  const notes: string[] = [];
  await walk(root, name, { files, notes, hidden: options.hidden === true, signal: options.signal });
  if (files.length === 0) {
    const skipped =
      notes.length === 0
        ? ''
        : ` (${notes.slice(0, 5).join('; ')}${notes.length > 5 ? `; and ${notes.length - 5} more` : ''})`;
    throw new Error(`${root} holds no regular file to share${skipped}`);
  }
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  return { root, name, files, notes };
}

/** What the walk gathers, and how. */
interface Walk {
  readonly files: ScannedFile[];
  readonly notes: string[];
  readonly hidden: boolean;
  readonly signal: AbortSignal | undefined;
}

async function walk(directory: string, treePath: string, into: Walk): Promise<void> {
  const { files, notes } = into;
  into.signal?.throwIfAborted();
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    notes.push(`skipped "${treePath}": cannot read it (${errorText(error)})`);
    return;
  }
  for (const entry of entries) {
    const path = `${treePath}/${entry.name}`;
    const absolutePath = join(directory, entry.name);
    if (!into.hidden && entry.name.startsWith('.')) {
      notes.push(`skipped "${path}": a hidden name (add --hidden to share it)`);
      continue;
    }
    const problem = treePathProblem(path);
    if (problem !== undefined) {
      notes.push(`skipped ${JSON.stringify(path)}: the path ${problem}`);
      continue;
    }
    if (entry.isSymbolicLink()) notes.push(`skipped "${path}": a symbolic link (not followed)`);
    else if (entry.isDirectory()) await walk(absolutePath, path, into);
    else if (!entry.isFile()) notes.push(`skipped "${path}": not a regular file`);
    else {
      const info = await lstat(absolutePath);
      files.push({
        path,
        sizeBytes: info.size,
        executable: (info.mode & 0o111) !== 0,
        absolutePath,
      });
    }
  }
}

/**
 * Refuses `root` when it is the daemon's data directory, lies inside it, or holds it (real
 * paths, so a symlinked or `..` spelling is caught too): it holds the API key, the device key
 * and the store.
 */
export async function refuseDataDir(root: string, dataDir: string): Promise<void> {
  const real = async (path: string) => realpath(path).catch(() => resolve(path));
  const [shared, data] = await Promise.all([real(root), real(dataDir)]);
  const within = (inner: string, outer: string) =>
    inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);
  if (within(data, shared) || within(shared, data)) {
    throw new Error(
      `cannot share ${root}: it ${within(data, shared) && data !== shared ? 'holds' : 'is part of'} the daemon's data directory ${data} (its keys and store); share a directory that does not contain it`,
    );
  }
}

/** An errno error as words (`no such file or directory`), else its message. */
function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const words: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOTDIR: 'a part of the path is not a directory',
    ELOOP: 'too many symbolic links',
    ENAMETOOLONG: 'the name is too long',
  };
  return (code !== undefined ? words[code] : undefined) ?? (error as Error).message;
}

/** One hash pass over the tree's files, in order: the tree's manifest. */
export async function hashTree(
  crypto: CryptoProvider,
  tree: ScannedTree,
  chunkSizeBytes?: number,
  signal?: AbortSignal,
): Promise<Manifest> {
  const chunker = new Chunker(crypto, chunkSizeBytes === undefined ? {} : { chunkSizeBytes });
  const buffer = Buffer.alloc(READ_BYTES);
  for (const file of tree.files) {
    const handle = await open(file.absolutePath, 'r');
    try {
      let read = 0;
      for (;;) {
        signal?.throwIfAborted();
        const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, read);
        if (bytesRead === 0) break;
        read += bytesRead;
        if (read > file.sizeBytes) break;
        chunker.push(buffer.subarray(0, bytesRead));
      }
      if (read !== file.sizeBytes) throw changedWhileSharing(file);
    } finally {
      await handle.close();
    }
  }
  return chunker.finish(
    tree.files.map(({ path, sizeBytes, executable }) => ({ path, sizeBytes, executable })),
  );
}

/**
 * Records the hashed tree in the store (module header, step 3). Rejects with one sentence when
 * a file changed since it was hashed, or the store cannot hold the chunks that span files.
 */
export async function shareIntoStore(
  crypto: CryptoProvider,
  store: ChunkStoreApi,
  tree: ScannedTree,
  manifest: Manifest,
  signal?: AbortSignal,
): Promise<void> {
  // A content the store held before (shared already, or fetched) keeps its row on a failure;
  // a new one is removed again, so no half-shared content stays pinned.
  const isNew = store.manifest(manifest.contentId) === undefined;
  store.addContent(manifest, { kind: 'shared', path: tree.root }, { pinned: true });
  try {
    await recordChunks(crypto, store, tree, manifest, signal);
  } catch (error) {
    if (isNew) await store.remove(manifest.contentId).catch(() => false);
    throw error;
  }
}

async function recordChunks(
  crypto: CryptoProvider,
  store: ChunkStoreApi,
  tree: ScannedTree,
  manifest: Manifest,
  signal: AbortSignal | undefined,
): Promise<void> {
  const ranges = fileRanges(manifest);
  const onDisk = new Map(tree.files.map((file) => [file.path, file.absolutePath]));
  const references: ChunkReference[] = [];
  const spanning: number[] = [];
  const chunk = manifest.chunkSizeBytes;
  let fileIndex = 0;
  for (let index = 0; index < manifest.chunkHashes.length; index += 1) {
    const start = index * chunk;
    const end = Math.min(manifest.totalBytes, start + chunk);
    while (ranges[fileIndex]!.end <= start) fileIndex += 1;
    const range = ranges[fileIndex]!;
    if (range.end >= end) {
      references.push({ index, path: onDisk.get(range.file.path)!, offset: start - range.start });
    } else spanning.push(index);
  }
  store.referenceChunks(manifest.contentId, references);
  for (const index of spanning) {
    signal?.throwIfAborted();
    const bytes = await readContentRange(tree, ranges, index * chunk, chunk, manifest.totalBytes);
    if (!equalBytes(crypto.sha256(bytes), manifest.chunkHashes[index]!)) {
      throw new Error(
        `a file under ${tree.root} changed while it was shared (chunk ${index} no longer matches); share it again`,
      );
    }
    await store.putChunk(manifest.contentId, index, bytes);
  }
}

/** Bytes `[start, start + length)` of the tree's content, read from its files. */
async function readContentRange(
  tree: ScannedTree,
  ranges: ReturnType<typeof fileRanges>,
  start: number,
  length: number,
  totalBytes: number,
): Promise<Uint8Array> {
  const end = Math.min(totalBytes, start + length);
  const out = new Uint8Array(end - start);
  const byPath = new Map(tree.files.map((file) => [file.path, file]));
  for (const range of ranges) {
    if (range.end <= start || range.start >= end || range.end === range.start) continue;
    const from = Math.max(start, range.start);
    const to = Math.min(end, range.end);
    const file = byPath.get(range.file.path)!;
    const handle = await open(file.absolutePath, 'r');
    try {
      const { bytesRead } = await handle.read(out, from - start, to - from, from - range.start);
      if (bytesRead !== to - from) throw changedWhileSharing(file);
    } finally {
      await handle.close();
    }
  }
  return out;
}

function changedWhileSharing(file: ScannedFile): Error {
  return new Error(`${file.absolutePath} changed size while it was shared; share it again`);
}
