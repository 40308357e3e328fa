/**
 * The chunk files of the store: one file per chunk hash at `<dir>/chunks/<2 hex>/<64 hex>`, the
 * name being the SHA-256 of the bytes (store-api.ts). This module moves and checks bytes; which files
 * should exist is the index's business (store-index.ts), and the order of the two is
 * chunk-store.ts's: a file is complete on disk before the index names it, and the index forgets
 * it before the file is unlinked, so a crash between the two leaves an orphan file (deleted by
 * recovery), never a row without its bytes.
 *
 * A write goes to `.tmp-<random>` in the chunk's own directory (so the rename never crosses a
 * file system), is fdatasynced, renamed over the final name (atomic: a reader sees the old file,
 * the new one or none, never a half-written one), and then the directory is fsynced so the
 * rename itself survives a power cut. A new two-hex directory is fsynced into `chunks/` too.
 * Anything that goes wrong removes the temporary file (and the final one, if the rename was
 * done), and the error goes to the caller as it came (ENOSPC is the caller's to explain).
 *
 * Reads never throw for what the disk holds, and `readVerified` checks the SHA-256: a missing
 * file, a short, long, unreadable or changed one is `undefined`, a copy that failed its check. The same goes for
 * reads of a user's file by path and offset (references), which are opened read-only and never
 * written, truncated or unlinked here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkLocation } from './store-index.js';

/** The prefix of a chunk file being written; recovery deletes every file that has it. */
export const TEMPORARY_PREFIX = '.tmp-';

const CHUNK_NAME = /^[0-9a-f]{64}$/;
const SUBDIRECTORY_NAME = /^[0-9a-f]{2}$/;

/** What `scan` found under `chunks/`. */
export interface ChunkFileScan {
  /** Temporary files (paths): writes a crash interrupted. */
  readonly temporaryPaths: string[];
  /** Chunk files by hash (hex): their sizes. */
  readonly chunkSizes: Map<string, number>;
  /** Other regular files in the chunk directories (paths): not ours to keep. */
  readonly strayPaths: string[];
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** A view of bytes Node read, as a plain `Uint8Array` (no `Buffer` semantics for callers). */
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** The file system's error code of `error`, if any (ENOSPC, EDQUOT...). */
export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class ChunkFiles {
  /** Two-hex directories known to exist (created or seen), so a write skips the mkdir. */
  private readonly knownDirectories = new Set<string>();

  /** @param root `<store dir>/chunks`. */
  constructor(readonly root: string) {}

  /** Creates `chunks/` (and its parent) if needed. */
  async prepare(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  /** Where the chunk with SHA-256 `hashHex` lives. */
  pathOf(hashHex: string): string {
    return join(this.root, hashHex.slice(0, 2), hashHex);
  }

  /**
   * Writes `bytes` as the chunk file of `hashHex`, durably (see the module comment).
   * @throws the file system's error (ENOSPC, EDQUOT, EIO...), with no temporary file left.
   */
  async write(hashHex: string, bytes: Uint8Array): Promise<void> {
    const directory = join(this.root, hashHex.slice(0, 2));
    await this.ensureDirectory(directory);
    const temporary = join(directory, `${TEMPORARY_PREFIX}${randomBytes(8).toString('hex')}`);
    const final = join(directory, hashHex);
    let renamed = false;
    try {
      const handle = await open(temporary, 'wx', 0o644);
      try {
        await handle.writeFile(bytes);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(temporary, final);
      renamed = true;
      await fsyncDirectory(directory);
    } catch (error) {
      await rm(temporary, { force: true });
      if (renamed) await rm(final, { force: true });
      throw error;
    }
  }

  /** The whole chunk file of `hashHex`; undefined when it cannot be read. */
  async read(hashHex: string): Promise<Uint8Array | undefined> {
    try {
      return plain(await readFile(this.pathOf(hashHex)));
    } catch {
      return undefined;
    }
  }

  /**
   * `length` bytes of a user's file from `offset`, opened read-only; undefined when the file is
   * gone, unreadable, or ends before `offset + length`.
   */
  async readReference(
    path: string,
    offset: number,
    length: number,
  ): Promise<Uint8Array | undefined> {
    let handle;
    try {
      handle = await open(path, 'r');
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) return undefined;
        filled += bytesRead;
      }
      return plain(buffer);
    } catch {
      return undefined;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /**
   * The `length` bytes at `location` if they hash to its SHA-256; undefined for anything else
   * (missing, short, long, changed).
   */
  async readVerified(location: ChunkLocation, length: number): Promise<Uint8Array | undefined> {
    const bytes =
      location.kind === 'file'
        ? await this.read(Buffer.from(location.hash).toString('hex'))
        : await this.readReference(location.path, location.offset, length);
    if (bytes === undefined || bytes.length !== length) return undefined;
    return sameBytes(sha256(bytes), location.hash) ? bytes : undefined;
  }

  /** Deletes the chunk file of `hashHex` (gone already is fine). */
  async remove(hashHex: string): Promise<void> {
    await rm(this.pathOf(hashHex), { force: true });
  }

  /** Deletes any file under `chunks/` by path (recovery's temporary and stray files). */
  async removePath(path: string): Promise<void> {
    await unlink(path).catch((error: unknown) => {
      if (errorCode(error) !== 'ENOENT') throw error;
    });
  }

  /** Every file under `chunks/`, sorted into temporary, chunk and stray files. */
  async scan(): Promise<ChunkFileScan> {
    const scan: ChunkFileScan = { temporaryPaths: [], chunkSizes: new Map(), strayPaths: [] };
    for (const top of await readdir(this.root, { withFileTypes: true })) {
      const topPath = join(this.root, top.name);
      if (top.isFile()) {
        (top.name.startsWith(TEMPORARY_PREFIX) ? scan.temporaryPaths : scan.strayPaths).push(
          topPath,
        );
        continue;
      }
      if (!top.isDirectory() || !SUBDIRECTORY_NAME.test(top.name)) continue;
      this.knownDirectories.add(topPath);
      const entries = await readdir(topPath, { withFileTypes: true });
      await Promise.all(
        entries.map(async (entry) => {
          if (!entry.isFile()) return;
          const path = join(topPath, entry.name);
          if (entry.name.startsWith(TEMPORARY_PREFIX)) scan.temporaryPaths.push(path);
          else if (CHUNK_NAME.test(entry.name) && entry.name.startsWith(top.name)) {
            scan.chunkSizes.set(entry.name, (await stat(path)).size);
          } else scan.strayPaths.push(path);
        }),
      );
    }
    return scan;
  }

  private async ensureDirectory(directory: string): Promise<void> {
    if (this.knownDirectories.has(directory)) return;
    const created = await mkdir(directory, { recursive: true });
    // A new directory entry in chunks/ must be durable before a file in it is named by the index.
    if (created !== undefined) await fsyncDirectory(this.root);
    this.knownDirectories.add(directory);
  }
}
