/**
 * Where `peapod get -o FILE` puts its bytes: a part file next to the target, written in place,
 * renamed to the target only after the whole object verified. Re-running the same download
 * resumes from the last checkpoint.
 *
 * Theory of operation
 * - Bytes go to `FILE.peapod-part` at their offset (positional writes; a `repair` write may go
 *   back and overwrite a range, see transfer-api.ts).
 * - Every `CHECKPOINT_BYTES` of in-order progress the part file is fdatasync'ed, then the sidecar
 *   `FILE.peapod-part.json` is replaced atomically (write temp, rename) with the verified prefix
 *   length. The sidecar never claims bytes that are not on disk.
 * - `open` resumes when the sidecar names the same URL, the same strong validator (ETag) and the
 *   same size; anything else starts from zero and says why. Without a validator there is no way
 *   to know the object did not change, so there is no resume.
 * - `commit` fsyncs, renames the part file onto the target and removes the sidecar.
 */
import { open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';

const CHECKPOINT_BYTES = 16 * 1024 * 1024;

interface Sidecar {
  readonly version: 1;
  readonly url: string;
  readonly validator: string;
  readonly totalBytes: number;
  readonly verifiedBytes: number;
}

export interface OutputIdentity {
  readonly url: string;
  readonly validator: string;
  readonly totalBytes: number;
}

export class OutputFile {
  private checkpointed: number;
  private checkpoints = true;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly identity: OutputIdentity,
    /** Bytes already on disk from an earlier run (0: fresh). */
    readonly resumeOffset: number,
    /** Why an existing part file was not resumed, for the user; empty if none. */
    readonly resumeNote: string,
  ) {
    this.checkpointed = resumeOffset;
  }

  get partPath(): string {
    return `${this.path}.peapod-part`;
  }

  static async open(path: string, identity: OutputIdentity): Promise<OutputFile> {
    const partPath = `${path}.peapod-part`;
    const sidecarPath = `${partPath}.json`;
    let resumeOffset = 0;
    let note = '';
    const sidecar = await readSidecar(sidecarPath);
    if (sidecar !== undefined) {
      if (identity.validator === '')
        note = 'the origin gives no ETag, so the part file cannot be trusted';
      else if (sidecar.url !== identity.url) note = 'the part file is for another URL';
      else if (sidecar.validator !== identity.validator)
        note = 'the object changed since (new ETag)';
      else if (sidecar.totalBytes !== identity.totalBytes) note = 'the object size changed';
      else resumeOffset = Math.min(sidecar.verifiedBytes, identity.totalBytes);
    }
    const handle = await open(partPath, resumeOffset > 0 ? 'r+' : 'w+', 0o644);
    await handle.truncate(resumeOffset);
    const file = new OutputFile(path, handle, identity, resumeOffset, note);
    if (resumeOffset === 0) await rm(sidecarPath, { force: true });
    return file;
  }

  /** Writes `bytes` at `offset` (absolute in the object). */
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(
        bytes,
        done,
        bytes.length - done,
        offset + done,
      );
      done += bytesWritten;
    }
  }

  /** Reads `length` bytes at `offset` (for read-back verification). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(bytes, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? bytes : bytes.subarray(0, done);
  }

  /** The in-order verified prefix reached `verifiedBytes`: maybe persist a checkpoint. */
  async progress(verifiedBytes: number): Promise<void> {
    if (!this.checkpoints || verifiedBytes - this.checkpointed < CHECKPOINT_BYTES) return;
    await this.handle.datasync();
    this.checkpointed = verifiedBytes;
    const sidecar: Sidecar = { version: 1, ...this.identity, verifiedBytes };
    const sidecarPath = `${this.partPath}.json`;
    await writeFile(`${sidecarPath}.tmp`, JSON.stringify(sidecar));
    await rename(`${sidecarPath}.tmp`, sidecarPath);
  }

  /**
   * Starts over from byte 0 (the object changed at the origin): empties the part file and
   * removes the sidecar. No checkpoint is written after this: the sidecar would name the old
   * version's ETag, so a re-run could not resume from it anyway.
   */
  async restart(): Promise<void> {
    this.checkpointed = 0;
    this.checkpoints = false;
    await this.handle.truncate(0);
    await rm(`${this.partPath}.json`, { force: true });
  }

  /** The object verified: make it the target file. */
  async commit(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
    await rename(this.partPath, this.path);
    await rm(`${this.partPath}.json`, { force: true });
  }

  /** Stops writing; keeps the part file and sidecar for a later resume. */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }

  /** Removes the part file and sidecar (the bytes are known bad). */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.partPath, { force: true });
    await rm(`${this.partPath}.json`, { force: true });
  }
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<Sidecar>;
    if (
      value.version === 1 &&
      typeof value.url === 'string' &&
      typeof value.validator === 'string' &&
      Number.isSafeInteger(value.totalBytes) &&
      Number.isSafeInteger(value.verifiedBytes) &&
      (value.verifiedBytes ?? -1) >= 0
    )
      return value as Sidecar;
  } catch {
    // A torn or foreign sidecar: start over.
  }
  return undefined;
}
