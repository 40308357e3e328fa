/**
 * Where a download's bytes go: a file (`peapod get -o FILE`) or a stream (`-o -`, the proxy).
 *
 * Theory of operation: the core delivers verified bytes strictly in order; a pooled URL download
 * may later send a `repair` for a range whose helper was caught lying (transfer-api.ts). A file
 * overwrites the range in place; a stream cannot take back bytes it already sent, so a repair
 * fails it with a clear error (the user re-runs with `-o FILE`). Writes of one sink are
 * serialized by the caller (`DownloadJob`), which acknowledges each to the core only after it
 * completed, so memory stays bounded by the core's reorder window.
 */
import type { Writable } from 'node:stream';
import { OutputFile, type OutputIdentity, type OutputOptions } from './output-file.js';

export interface DownloadSink {
  /** Bytes already present from an earlier run (resume); the download starts there. */
  readonly resumeOffset: number;
  write(offset: number, bytes: Uint8Array, repair: boolean): Promise<void>;
  /** Reads back written bytes (verification after repairs); undefined if it cannot. */
  read(offset: number, length: number): Promise<Uint8Array | undefined>;
  /** The in-order verified prefix: a file checkpoints it for resume. */
  progress(verifiedBytes: number): Promise<void>;
  /**
   * The object changed at the origin: the download starts over from byte 0 (a file drops what
   * it holds). Rejects with a clear message when that is impossible (bytes already streamed).
   */
  restart(): Promise<void>;
  /** All bytes verified (whole-object SHA-256 given): make them final. */
  commit(sha256Hex: string): Promise<void>;
  /** The download failed: `keep` true leaves what is on disk for a resume. */
  abort(keep: boolean): Promise<void>;
}

export class FileSink implements DownloadSink {
  private constructor(private readonly file: OutputFile) {}

  /**
   * `onPrefix` sees a resumed prefix's bytes as they are checked (OutputFile.open).
   * @throws Error with one sentence for the user (see OutputFile.open).
   */
  static async open(
    path: string,
    identity: OutputIdentity,
    options: OutputOptions,
    onPrefix?: (bytes: Uint8Array) => void,
  ): Promise<FileSink> {
    return new FileSink(await OutputFile.open(path, identity, options, onPrefix));
  }

  get resumeOffset(): number {
    return this.file.resumeOffset;
  }
  get resumeNote(): string {
    return this.file.resumeNote;
  }
  write(offset: number, bytes: Uint8Array): Promise<void> {
    return this.file.write(offset, bytes);
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.file.read(offset, length);
  }
  progress(verifiedBytes: number): Promise<void> {
    return this.file.progress(verifiedBytes);
  }
  restart(): Promise<void> {
    return this.file.restart();
  }
  commit(): Promise<void> {
    return this.file.commit();
  }
  abort(keep: boolean): Promise<void> {
    return keep ? this.file.close() : this.file.discard();
  }
}

/** A sink over a Writable (stdout through the CLI, an HTTP response of the proxy). */
export class StreamSink implements DownloadSink {
  readonly resumeOffset = 0;
  private written = 0;

  /**
   * `beforeEnd` runs just before the stream ends after success (e.g. to add HTTP trailers);
   * `onAbort` replaces the default failure handling, which destroys the stream so its reader
   * sees a truncated transfer.
   */
  constructor(
    private readonly stream: Writable,
    private readonly beforeEnd: (sha256Hex: string) => void = () => undefined,
    private readonly onAbort: () => void = () => stream.destroy(),
  ) {}

  async write(offset: number, bytes: Uint8Array, repair: boolean): Promise<void> {
    if (repair || offset !== this.written) {
      throw new Error(
        'a pod peer was caught sending bad bytes after some of them were already streamed; ' +
          're-run with -o FILE so they can be repaired in place',
      );
    }
    this.written += bytes.length;
    if (!this.stream.write(bytes)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.stream.off('close', onClose);
          resolve();
        };
        const onClose = () => {
          this.stream.off('drain', onDrain);
          reject(new Error('the output stream closed'));
        };
        this.stream.once('drain', onDrain);
        this.stream.once('close', onClose);
      });
    }
  }
  read(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  progress(): Promise<void> {
    return Promise.resolve();
  }
  restart(): Promise<void> {
    if (this.written === 0) return Promise.resolve();
    return Promise.reject(
      new Error(
        `the object changed at the origin after ${this.written} bytes of it were already ` +
          'streamed, and they cannot be taken back; download it again (or with -o FILE)',
      ),
    );
  }
  commit(sha256Hex: string): Promise<void> {
    this.beforeEnd(sha256Hex);
    return new Promise((resolve) => this.stream.end(resolve));
  }
  abort(): Promise<void> {
    this.onAbort();
    return Promise.resolve();
  }
}
