/**
 * Where `peapod fetch` puts a content's bytes: the files of its tree under an output
 * directory, or one file for a single-file content (a `DownloadSink` for content-job.ts).
 *
 * Theory of operation
 * - `targetsOf` lays the content out: a single-file content (one entry, no `/`) or a bare
 *   object (no file table) is the file `output`; a tree shared as `photos/` writes `photos/a`
 *   as `output/a` (the root directory is `output`); a table with several top-level entries
 *   writes each path under `output`. Every path is checked again with `treePathProblem` (the
 *   manifest decoder checked it already; this module writes files, so it checks for itself).
 * - `open` refuses before anything is written: selected files that do not fit the free space of
 *   the output's file system (`statfs`), a directory inside the output that is a symbolic link
 *   or a file (no symlink is ever followed inside the tree), a target that is a directory, and
 *   an existing target without `force`. It creates the directories as it checks them, each
 *   directory once (a hostile table of 2^20 deep paths costs one lstat per directory).
 * - Bytes arrive in order (content offsets; with `--only` the unselected chunks never come). A
 *   delivery may span several files: each part goes to `TARGET.peapod-part` at its offset in
 *   that file; bytes of files that were not selected (a selected chunk also holds some of its
 *   neighbours) are dropped. Part files are created with O_EXCL and O_NOFOLLOW, mode 0777 for an
 *   executable and 0666 otherwise (the umask applies), and opened one at a time as the bytes
 *   reach them.
 * - `commit` checks each selected file got all its bytes, fsyncs it and renames the part file
 *   onto its target (empty files are created then). `abort` closes and removes the part files:
 *   what was verified is in the store, so a re-run reads it back from there, not from the
 *   pod.
 * - Every file-system error is one sentence naming the file (output-errors.ts).
 */
import type { ChunkReference } from './store/store-api.js';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { treePathProblem, type Manifest } from '@peapod/core';
import { relativePath, treeRoot } from './fetch-select.js';
import { describeFileError, OutputError } from './output-errors.js';
import { formatBytes } from './rate-limit.js';
import type { DownloadSink } from './sinks.js';

/** One file the sink writes: its target and where its bytes are in the content. */
export interface TreeTarget {
  readonly path: string;
  readonly start: number;
  readonly end: number;
  readonly executable: boolean;
}

/** How a content is laid out under `output`: the file itself, or a directory of files. */
export interface TreeLayout {
  readonly kind: 'file' | 'directory';
  /** Absolute: the file, or the directory the files go under. */
  readonly output: string;
  /** In content order. */
  readonly targets: readonly TreeTarget[];
}

export interface TreeSinkOptions {
  /** Replace existing target files (`--force`). */
  readonly force: boolean;
  /** Indices into `layout.targets` to write (`--only`); default all. */
  readonly selected?: readonly number[];
}

const PART_SUFFIX = '.peapod-part';

/**
 * The layout of `manifest` under `output` (absolute). Throws one sentence when a path of the
 * table may not be written.
 */
export function targetsOf(manifest: Manifest, output: string): TreeLayout {
  const files = manifest.files;
  if (files === undefined) {
    return {
      kind: 'file',
      output,
      targets: [{ path: output, start: 0, end: manifest.totalBytes, executable: false }],
    };
  }
  const single = files.length === 1 && !files[0]!.path.includes('/');
  const targets: TreeTarget[] = [];
  let start = 0;
  for (const file of files) {
    const problem = treePathProblem(file.path);
    if (problem !== undefined) {
      throw new OutputError(
        `the content names a file ${JSON.stringify(file.path)} that ${problem}`,
      );
    }
    const path = single ? output : join(output, ...relativePath(manifest, file.path).split('/'));
    targets.push({ path, start, end: start + file.sizeBytes, executable: file.executable });
    start += file.sizeBytes;
  }
  return { kind: single ? 'file' : 'directory', output, targets };
}

/**
 * Where each chunk of `manifest` now lies whole inside one written file of `layout` (indices of
 * `written` targets): the store can reference those bytes in place instead of keeping a chunk
 * file beside them. A chunk that spans two files, or touches a file not written, is left out.
 */
export function chunksInFiles(
  manifest: Manifest,
  layout: TreeLayout,
  written: readonly number[],
): ChunkReference[] {
  const references: ChunkReference[] = [];
  const size = manifest.chunkSizeBytes;
  const count = manifest.chunkHashes.length;
  for (const index of written) {
    const target = layout.targets[index]!;
    // The chunks that start inside this file and end inside it too.
    for (let chunk = Math.ceil(target.start / size); chunk < count; chunk++) {
      const start = chunk * size;
      const end = Math.min(start + size, manifest.totalBytes);
      if (end > target.end) break;
      references.push({ index: chunk, path: target.path, offset: start - target.start });
    }
  }
  return references;
}

/** The default output name: the single file's name, the tree's root, or the short ID. */
export function defaultOutputName(manifest: Manifest, contentIdHex: string): string {
  const files = manifest.files;
  if (files?.length === 1 && !files[0]!.path.includes('/')) return files[0]!.path;
  return treeRoot(manifest) ?? `content-${contentIdHex.slice(0, 12)}`;
}

export class TreeSink implements DownloadSink {
  readonly resumeOffset = 0;
  /** Bytes written to each selected target. */
  private readonly written = new Map<number, number>();
  private open: { index: number; handle: FileHandle } | undefined;
  /** Targets before this index got all the bytes they will get. */
  private cursor = 0;

  private constructor(
    private readonly layout: TreeLayout,
    private readonly selected: ReadonlySet<number>,
  ) {}

  /**
   * Checks the output and creates its directories (module comment).
   * @throws OutputError with one sentence when it cannot be written.
   */
  static async open(layout: TreeLayout, options: TreeSinkOptions): Promise<TreeSink> {
    const selected = new Set(options.selected ?? layout.targets.map((_, index) => index));
    const sink = new TreeSink(layout, selected);
    if (layout.kind === 'directory') await prepareDirectory(layout.output);
    let bytes = 0;
    for (const index of selected)
      bytes += layout.targets[index]!.end - layout.targets[index]!.start;
    await checkFreeSpace(
      layout.kind === 'directory' ? layout.output : dirname(layout.output),
      bytes,
    );
    // Directories already checked or made: a table of 2^20 files costs one lstat per directory,
    // not one per path segment of every file.
    const ready = new Set<string>();
    for (const index of selected) {
      const target = layout.targets[index]!;
      if (layout.kind === 'directory') await prepareParents(layout.output, target.path, ready);
      await checkTarget(target.path, options.force);
      await rm(partOf(target.path), { force: true }).catch((error: unknown) => {
        throw new OutputError(describeFileError(error, target.path));
      });
    }
    return sink;
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const end = offset + bytes.length;
    const { targets } = this.layout;
    while (this.cursor < targets.length && targets[this.cursor]!.end <= offset) {
      if (targets[this.cursor]!.end > targets[this.cursor]!.start)
        await this.closeOpen(this.cursor);
      this.cursor += 1;
    }
    for (let index = this.cursor; index < targets.length; index += 1) {
      const target = targets[index]!;
      if (target.start >= end) break;
      if (!this.selected.has(index) || target.end === target.start) continue;
      const from = Math.max(offset, target.start);
      const to = Math.min(end, target.end);
      const handle = await this.handleOf(index);
      try {
        await writeAll(handle, bytes.subarray(from - offset, to - offset), from - target.start);
      } catch (error) {
        throw new OutputError(describeFileError(error, target.path));
      }
      this.written.set(index, (this.written.get(index) ?? 0) + (to - from));
    }
  }

  /** A content download never reads its output back (it never repairs). */
  read(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  progress(): Promise<void> {
    return Promise.resolve();
  }

  restart(): Promise<void> {
    return Promise.reject(new Error('a content download never restarts (its chunks are verified)'));
  }

  async commit(): Promise<void> {
    await this.closeOpen();
    for (const index of [...this.selected].sort((a, b) => a - b)) {
      const target = this.layout.targets[index]!;
      const size = target.end - target.start;
      const got = this.written.get(index) ?? 0;
      if (got !== size) {
        throw new Error(`${target.path} got ${got} of its ${size} bytes; fetch it again`);
      }
      try {
        if (size === 0) await (await createPart(target)).close();
        await rename(partOf(target.path), target.path);
      } catch (error) {
        throw new OutputError(describeFileError(error, target.path));
      }
    }
  }

  async abort(): Promise<void> {
    await this.closeOpen().catch(() => undefined);
    for (const index of this.selected) {
      await rm(partOf(this.layout.targets[index]!.path), { force: true }).catch(() => undefined);
    }
  }

  private async handleOf(index: number): Promise<FileHandle> {
    if (this.open?.index === index) return this.open.handle;
    await this.closeOpen();
    const target = this.layout.targets[index]!;
    let handle: FileHandle;
    try {
      handle = await createPart(target);
    } catch (error) {
      throw new OutputError(describeFileError(error, target.path));
    }
    this.open = { index, handle };
    return handle;
  }

  /** Syncs and closes the open part file (only if it is `index`, when given). */
  private async closeOpen(index?: number): Promise<void> {
    const open = this.open;
    if (open === undefined || (index !== undefined && open.index !== index)) return;
    this.open = undefined;
    try {
      await open.handle.sync();
    } catch (error) {
      throw new OutputError(describeFileError(error, this.layout.targets[open.index]!.path));
    } finally {
      await open.handle.close();
    }
  }
}

function partOf(path: string): string {
  return `${path}${PART_SUFFIX}`;
}

/** A new part file for `target` (never through a symlink, never an existing file). */
function createPart(target: TreeTarget): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  return open(partOf(target.path), flags, target.executable ? 0o777 : 0o666);
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** The output directory: created when missing (its parent must exist), else a directory. */
async function prepareDirectory(output: string): Promise<void> {
  try {
    const info = await stat(output);
    if (!info.isDirectory()) {
      throw new OutputError(
        `cannot write the tree under ${output}: it is a file, not a directory; choose another -o`,
      );
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (error instanceof OutputError) throw error;
      throw new OutputError(describeFileError(error, output));
    }
    await mkdir(output).catch((cause: unknown) => {
      throw new OutputError(describeFileError(cause, output));
    });
  }
}

/**
 * Refuses, before anything is written, `bytes` that the file system holding `directory` has no
 * room for (what an unprivileged user may still write).
 */
async function checkFreeSpace(directory: string, bytes: number): Promise<void> {
  let free: number;
  try {
    const info = await statfs(directory);
    free = info.bavail * info.bsize;
  } catch {
    return; // a file system that cannot say: writing finds out, and fails with its own sentence
  }
  if (bytes > free) {
    throw new OutputError(
      `cannot write ${formatBytes(bytes)} under ${directory}: its file system has ${formatBytes(free)} free; free some space or choose another -o`,
    );
  }
}

/**
 * Creates the directories between `output` and `path`, refusing any that is not one. `ready`
 * holds the directories already checked or made (and gains the new ones).
 */
async function prepareParents(output: string, path: string, ready: Set<string>): Promise<void> {
  const segments = relative(output, dirname(path))
    .split(sep)
    .filter((s) => s !== '');
  let directory = output;
  for (const segment of segments) {
    directory = join(directory, segment);
    if (ready.has(directory)) continue;
    ready.add(directory);
    let info;
    try {
      info = await lstat(directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new OutputError(describeFileError(error, path));
      }
      await mkdir(directory).catch((cause: unknown) => {
        // Made meanwhile by another part of this tree is fine; anything else is not.
        if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new OutputError(describeFileError(cause, path));
        }
      });
      continue;
    }
    if (info.isSymbolicLink()) {
      throw new OutputError(
        `cannot write ${path}: ${directory} is a symbolic link, and PeaPod follows none inside a tree; remove it or choose another -o`,
      );
    }
    if (!info.isDirectory()) {
      throw new OutputError(
        `cannot write ${path}: ${directory} is a file, not a directory; remove it or choose another -o`,
      );
    }
  }
}

/** An existing target is replaced only with `force`, and never when it is a directory. */
async function checkTarget(path: string, force: boolean): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new OutputError(describeFileError(error, path));
  }
  if (info.isDirectory()) {
    throw new OutputError(
      `cannot write ${path}: it is a directory; remove it or choose another -o`,
    );
  }
  if (!force) {
    throw new OutputError(`${path} exists; add --force to replace it, or choose another -o`);
  }
}
