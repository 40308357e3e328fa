/**
 * Where `peapod get -o FILE` puts its bytes: a part file next to the target, written in place,
 * renamed to the target only after the whole object verified. Re-running the same download
 * resumes from the last checkpoint, and only from bytes that still match it.
 *
 * Theory of operation
 * - `preflight` runs before the origin is even asked: a directory, a device or FIFO (renaming
 *   onto /dev/null as root would replace it) and an existing file without `--force` or a part
 *   file to resume are refused with one sentence.
 * - Bytes go to `FILE.peapod-part` at their offset (positional writes; a `repair` write may go
 *   back and overwrite a range, see transfer-api.ts).
 * - The part file is cut into `CHECKPOINT_BYTES` blocks. Each time the in-order verified prefix
 *   completes a block, the part file is fdatasync'ed, the new blocks are read back and hashed
 *   (SHA-256 of what is on disk: what a resume will find), and the sidecar
 *   `FILE.peapod-part.json` is replaced atomically (write temp, rename) with the covered prefix
 *   length and one digest per block. The sidecar never claims bytes that are not on disk. A
 *   write that goes back below the checkpoint (a repair) drops the digests of the blocks it
 *   touches; the next progress hashes them again.
 * - `open` resumes when the sidecar is well formed, names the same URL, validator (as the
 *   prober encodes it) and size, its lengths agree with each other and with the part file, and
 *   every block of the part file still hashes to its digest. Anything else starts from zero
 *   and says why in one line (`resumeNote`); a malformed sidecar is a note, never an error.
 *   Without a validator there is no way to know the object did not change, so no resume.
 *   `onPrefix` sees the prefix's bytes as that check reads them, in order: the caller's
 *   whole-object hashes take them from this one read (a resume reads its prefix once). When
 *   the check fails (`resumeOffset` 0), what `onPrefix` saw is moot.
 * - An existing target is replaced only with `force`, or when a verified part file resumes
 *   (the user ran this download before). The check is made before the part file is touched,
 *   so a refused job destroys nothing.
 * - Every file-system error is rethrown as one sentence naming the output (output-errors.ts).
 * - The part file and the sidecar are opened with O_NOFOLLOW (see `openForWrite`).
 * - `commit` fsyncs, renames the part file onto the target and removes the sidecar.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { describeFileError, OutputError } from './output-errors.js';

/** Checkpoint interval and digest block size (one SHA-256 per block in the sidecar). */
export const CHECKPOINT_BYTES = 16 * 1024 * 1024;
/** Read size when hashing blocks back from the part file. */
const READ_BYTES = 4 * 1024 * 1024;

interface Sidecar {
  readonly version: 2;
  readonly url: string;
  readonly validator: string;
  readonly totalBytes: number;
  /** The covered prefix: `blockSha256.length * CHECKPOINT_BYTES`. */
  readonly verifiedBytes: number;
  /** Lower-case hex SHA-256 of each `CHECKPOINT_BYTES` block of the part file, in order. */
  readonly blockSha256: readonly string[];
}

export interface OutputIdentity {
  readonly url: string;
  readonly validator: string;
  readonly totalBytes: number;
}

export interface OutputOptions {
  /** Replace an existing target file (`peapod get --force`). */
  readonly force: boolean;
}

export class OutputFile {
  /** Digests of the blocks the sidecar covers (or will, at the next checkpoint). */
  private blocks: string[];
  private checkpoints = true;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly identity: OutputIdentity,
    /** Bytes already on disk from an earlier run (0: fresh). */
    readonly resumeOffset: number,
    /** Why an existing part file was not resumed, for the user; empty if none. */
    readonly resumeNote: string,
    blocks: string[],
  ) {
    this.blocks = blocks;
  }

  get partPath(): string {
    return `${this.path}.peapod-part`;
  }

  /**
   * The checks that need no origin: `path` is not a directory or a special file, and an
   * existing file is replaced only with `force` or when a part file may resume it (`open`
   * decides that once it knows the object).
   * @throws Error with one sentence for the user.
   */
  static async preflight(path: string, options: OutputOptions): Promise<void> {
    const target = await stat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw new OutputError(describeFileError(error, path));
    });
    if (target === undefined) return;
    if (target.isDirectory()) throw new OutputError(describeFileError({ code: 'EISDIR' }, path));
    if (!target.isFile()) {
      throw new OutputError(
        `${path} is not a regular file (a device, FIFO or socket) and would be replaced; ` +
          'choose another -o, or -o - to stream the bytes',
      );
    }
    if (options.force) return;
    const sidecar = await stat(`${path}.peapod-part.json`).catch(() => undefined);
    if (sidecar === undefined) throw new OutputError(existsMessage(path));
  }

  /**
   * Opens (or resumes) the part file of `path` for the object `identity`.
   * @throws Error with one sentence for the user (file-system errors; an existing target that
   *   nothing may replace).
   */
  static async open(
    path: string,
    identity: OutputIdentity,
    options: OutputOptions,
    onPrefix?: (bytes: Uint8Array) => void,
  ): Promise<OutputFile> {
    try {
      return await OutputFile.openPart(path, identity, options, onPrefix);
    } catch (error) {
      throw new OutputError(describeFileError(error, path));
    }
  }

  private static async openPart(
    path: string,
    identity: OutputIdentity,
    options: OutputOptions,
    onPrefix: ((bytes: Uint8Array) => void) | undefined,
  ): Promise<OutputFile> {
    await OutputFile.preflight(path, { force: true }); // a directory or a device, again
    const partPath = `${path}.peapod-part`;
    const sidecarPath = `${partPath}.json`;
    const { sidecar, note: sidecarNote } = await readSidecar(sidecarPath);
    let note = sidecarNote;
    if (sidecar !== undefined) note = identityMismatch(sidecar, identity);
    const trusted = sidecar !== undefined && note === '' ? sidecar : undefined;
    let handle: FileHandle | undefined;
    try {
      let blocks: string[] = [];
      if (trusted !== undefined) {
        handle = await open(partPath, NO_FOLLOW | constants.O_RDWR).catch(() => undefined);
        note = handle === undefined ? 'the part file is missing' : '';
        if (handle !== undefined) note = await checkBlocks(handle, trusted, onPrefix);
        if (note === '') blocks = [...trusted.blockSha256];
      }
      const resumeOffset = blocks.length * CHECKPOINT_BYTES;
      if (resumeOffset === 0 && !options.force && (await exists(path))) {
        throw new OutputError(existsMessage(path));
      }
      if (resumeOffset === 0) {
        await handle?.close();
        handle = await openForWrite(partPath);
        await rm(sidecarPath, { force: true });
      }
      await handle!.truncate(resumeOffset);
      const resumeNote = note === '' ? '' : `not resuming the part file: ${note}; starting over`;
      return new OutputFile(path, handle!, identity, resumeOffset, resumeNote, blocks);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      throw error;
    }
  }

  /** Writes `bytes` at `offset` (absolute in the object). */
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    // A rewrite below the checkpoint (a repair): those blocks are hashed again later.
    const firstBlock = Math.floor(offset / CHECKPOINT_BYTES);
    if (firstBlock < this.blocks.length) this.blocks.length = firstBlock;
    let done = 0;
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await this.handle.write(
          bytes,
          done,
          bytes.length - done,
          offset + done,
        );
        done += bytesWritten;
      }
    } catch (error) {
      throw new OutputError(describeFileError(error, this.path));
    }
  }

  /** Reads `length` bytes at `offset` (for read-back verification). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    try {
      return await readAt(this.handle, offset, length);
    } catch (error) {
      throw new OutputError(describeFileError(error, this.path));
    }
  }

  /** The in-order verified prefix reached `verifiedBytes`: maybe persist a checkpoint. */
  async progress(verifiedBytes: number): Promise<void> {
    const covered = Math.floor(verifiedBytes / CHECKPOINT_BYTES);
    if (!this.checkpoints || covered <= this.blocks.length) return;
    try {
      await this.handle.datasync();
      for (let block = this.blocks.length; block < covered; block++) {
        this.blocks.push(await hashBlock(this.handle, block));
      }
      const sidecar: Sidecar = {
        version: 2,
        ...this.identity,
        verifiedBytes: covered * CHECKPOINT_BYTES,
        blockSha256: this.blocks,
      };
      const sidecarPath = `${this.partPath}.json`;
      const temp = await openForWrite(`${sidecarPath}.tmp`);
      try {
        await temp.writeFile(JSON.stringify(sidecar));
      } finally {
        await temp.close();
      }
      await rename(`${sidecarPath}.tmp`, sidecarPath);
    } catch (error) {
      throw new OutputError(describeFileError(error, this.path));
    }
  }

  /**
   * Starts over from byte 0 (the object changed at the origin): empties the part file and
   * removes the sidecar. No checkpoint is written after this: the sidecar would name the old
   * version's validator, so a re-run could not resume from it anyway.
   */
  async restart(): Promise<void> {
    this.blocks = [];
    this.checkpoints = false;
    try {
      await this.handle.truncate(0);
      await rm(`${this.partPath}.json`, { force: true });
    } catch (error) {
      throw new OutputError(describeFileError(error, this.path));
    }
  }

  /** The object verified: make it the target file. */
  async commit(): Promise<void> {
    try {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.partPath, this.path);
      await rm(`${this.partPath}.json`, { force: true });
    } catch (error) {
      await this.close();
      throw new OutputError(describeFileError(error, this.path));
    }
  }

  /** Stops writing; keeps the part file and sidecar for a later resume. */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }

  /** Removes the part file and sidecar (the bytes are known bad). */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.partPath, { force: true }).catch(() => undefined);
    await rm(`${this.partPath}.json`, { force: true }).catch(() => undefined);
  }
}

/**
 * The part file and the sidecar are never opened through a symbolic link: in a shared directory
 * (/tmp) another user could plant `FILE.peapod-part -> /etc/shadow` and have a root daemon
 * truncate it. O_NOFOLLOW makes such an open fail with ELOOP instead.
 */
const NO_FOLLOW = constants.O_NOFOLLOW;

async function openForWrite(path: string): Promise<FileHandle> {
  try {
    return await open(
      path,
      NO_FOLLOW | constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC,
      0o644,
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOOP') throw error;
    throw new OutputError(
      `${path} is a symbolic link, and PeaPod does not write through one; remove it or choose another -o`,
    );
  }
}

function existsMessage(path: string): string {
  return `${path} exists; use --force to replace it`;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Why a well-formed sidecar does not describe this object, or '' when it does. */
function identityMismatch(sidecar: Sidecar, identity: OutputIdentity): string {
  if (identity.validator === '') return 'the origin gives no validator, so it cannot be trusted';
  if (sidecar.url !== identity.url) return 'it is for another URL';
  if (sidecar.validator !== identity.validator) return 'the object changed since (new validator)';
  if (sidecar.totalBytes !== identity.totalBytes) return 'the object size changed';
  return '';
}

/** '' when every block the sidecar covers is on disk and hashes to its digest; else why not. */
async function checkBlocks(
  handle: FileHandle,
  sidecar: Sidecar,
  onPrefix: ((bytes: Uint8Array) => void) | undefined,
): Promise<string> {
  const { size } = await handle.stat();
  if (size < sidecar.verifiedBytes) {
    return `it holds ${size} bytes, fewer than the ${sidecar.verifiedBytes} its record claims`;
  }
  for (let block = 0; block < sidecar.blockSha256.length; block++) {
    if ((await hashBlock(handle, block, onPrefix)) !== sidecar.blockSha256[block]) {
      return `block ${block + 1} of ${sidecar.blockSha256.length} no longer matches its checkpoint`;
    }
  }
  return '';
}

/** Lower-case hex SHA-256 of block `block` of the part file, read from disk (and seen by `onBytes`). */
async function hashBlock(
  handle: FileHandle,
  block: number,
  onBytes?: (bytes: Uint8Array) => void,
): Promise<string> {
  const hash = createHash('sha256');
  const start = block * CHECKPOINT_BYTES;
  for (let offset = start; offset < start + CHECKPOINT_BYTES; offset += READ_BYTES) {
    const bytes = await readAt(handle, offset, READ_BYTES);
    hash.update(bytes);
    onBytes?.(bytes);
    if (bytes.length < READ_BYTES) break;
  }
  return hash.digest('hex');
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(bytes, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? bytes : bytes.subarray(0, done);
}

/**
 * The sidecar at `path`: absent (no note), malformed or inconsistent (a note, no sidecar), or
 * well formed with lengths that agree with each other.
 */
async function readSidecar(path: string): Promise<{ sidecar?: Sidecar; note: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { note: '' };
  }
  let value: Partial<Sidecar>;
  try {
    value = JSON.parse(text) as Partial<Sidecar>;
  } catch {
    return { note: 'its record is not valid JSON (torn or edited)' };
  }
  if (typeof value !== 'object' || value === null || value.version !== 2) {
    return { note: 'its record is from another PeaPod version, or not from PeaPod' };
  }
  const blocks = value.blockSha256;
  if (
    typeof value.url !== 'string' ||
    typeof value.validator !== 'string' ||
    !Number.isSafeInteger(value.totalBytes) ||
    !Number.isSafeInteger(value.verifiedBytes) ||
    !Array.isArray(blocks) ||
    !blocks.every((digest) => typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest))
  ) {
    return { note: 'its record is malformed' };
  }
  const verifiedBytes = value.verifiedBytes!;
  if (
    verifiedBytes !== blocks.length * CHECKPOINT_BYTES ||
    verifiedBytes > value.totalBytes! ||
    verifiedBytes <= 0
  ) {
    return { note: 'the lengths in its record do not agree' };
  }
  return { sidecar: value as Sidecar, note: '' };
}
