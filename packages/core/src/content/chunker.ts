/**
 * The streaming chunker: turns a byte stream into chunk hashes and, at the end, a manifest
 * (docs/content.md, "Chunking"). It is pure and sans-I/O: the host pushes bytes in pieces of
 * any size, and each `push` returns the chunks that those bytes completed. It hashes as bytes
 * arrive (one incremental SHA-256 for the open chunk) and never keeps chunk bytes, so its
 * memory is the hasher state plus 32 bytes per finished chunk. A host that stores chunks
 * keeps its own copy of the bytes of the open chunk and writes them out when `push` reports
 * the chunk done.
 *
 * The result depends only on the concatenated input, not on how it was split (a property the
 * tests check). A chunk is reported as soon as its last byte arrives; the short last chunk,
 * if any, is reported by `finish`.
 */
import type { CryptoProvider, Sha256Hasher } from '../crypto-provider.js';
import { assert, invalidArgument, PeapodError } from '../errors.js';
import { fileTableProblem } from './file-table.js';
import { CHUNK_COUNT_MAX, CHUNK_SIZE_BYTES_DEFAULT, isValidChunkSize } from './layout.js';
import { createManifest, type Manifest, type ManifestFile } from './manifest.js';

/** A completed chunk. */
export interface ChunkInfo {
  /** Position of the chunk in the content, from 0. */
  readonly index: number;
  /** SHA-256 of the chunk's bytes. */
  readonly hash: Uint8Array;
  /** Length of the chunk in bytes (the chunk size, except for a short last chunk). */
  readonly length: number;
}

export interface ChunkerOptions {
  /** A power of two in [64 KiB, 16 MiB]; default CHUNK_SIZE_BYTES_DEFAULT (4 MiB). */
  readonly chunkSizeBytes?: number;
}

/**
 * Streaming chunker. Push bytes with `push`, then call `finish` once for the manifest.
 * @example
 * const chunker = new Chunker(crypto, { chunkSizeBytes: 65536 });
 * chunker.push(new Uint8Array(65536)).length; // => 1
 * chunker.push(new Uint8Array(10)).length; // => 0
 * const manifest = chunker.finish();
 * manifest.chunkHashes.length; // => 2
 * manifest.totalBytes; // => 65546
 * const tree = new Chunker(crypto, { chunkSizeBytes: 65536 });
 * tree.push(new Uint8Array(3));
 * const a = { path: 'docs/a', sizeBytes: 1, executable: false };
 * const b = { path: 'docs/b', sizeBytes: 2, executable: true };
 * tree.finish([a, b]).files.map((file) => file.path); // => ["docs/a","docs/b"]
 */
export class Chunker {
  /** The chunk size this chunker cuts at. */
  readonly chunkSizeBytes: number;
  readonly #crypto: CryptoProvider;
  readonly #chunkHashes: Uint8Array[] = [];
  #hasher: Sha256Hasher | undefined;
  #openChunkBytes = 0;
  #totalBytes = 0;
  #finished = false;

  /**
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `chunkSizeBytes` is not allowed.
   */
  constructor(crypto: CryptoProvider, options: ChunkerOptions = {}) {
    const chunkSizeBytes = options.chunkSizeBytes ?? CHUNK_SIZE_BYTES_DEFAULT;
    if (!isValidChunkSize(chunkSizeBytes)) {
      invalidArgument(
        'chunkSizeBytes',
        `${chunkSizeBytes} is not a power of two in [64 KiB, 16 MiB]`,
      );
    }
    this.#crypto = crypto;
    this.chunkSizeBytes = chunkSizeBytes;
  }

  /** Bytes pushed so far. */
  get totalBytes(): number {
    return this.#totalBytes;
  }

  /**
   * Feeds the next bytes of the content. Returns the chunks they completed, in order (often
   * none, one for every `chunkSizeBytes` pushed). The bytes are hashed before `push` returns
   * and not retained, so the caller may reuse the buffer.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE after `finish`.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when the content would need more than
   * CHUNK_COUNT_MAX chunks; nothing of `bytes` is consumed then.
   */
  push(bytes: Uint8Array): ChunkInfo[] {
    this.#assertOpen('push');
    if (!(bytes instanceof Uint8Array)) invalidArgument('bytes', 'must be a Uint8Array');
    const limitBytes = CHUNK_COUNT_MAX * this.chunkSizeBytes;
    if (bytes.length > limitBytes - this.#totalBytes) {
      invalidArgument(
        'bytes',
        `content would exceed ${limitBytes} bytes (${CHUNK_COUNT_MAX} chunks); ` +
          'use a larger chunk size',
      );
    }
    const completed: ChunkInfo[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      const take = Math.min(this.chunkSizeBytes - this.#openChunkBytes, bytes.length - offset);
      this.#hasher ??= this.#crypto.createSha256();
      this.#hasher.update(bytes.subarray(offset, offset + take));
      offset += take;
      this.#openChunkBytes += take;
      this.#totalBytes += take;
      if (this.#openChunkBytes === this.chunkSizeBytes) completed.push(this.#closeChunk());
    }
    return completed;
  }

  /**
   * Ends the content: closes the short last chunk, if any, and returns the manifest. An empty
   * content gives a manifest with no chunks. With `files` (the bytes pushed were these files,
   * concatenated in this order), the manifest is a tree's (file-table.ts). The chunker cannot
   * be used afterwards.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE when called twice.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `files` breaks a file table rule, for
   * instance when its sizes do not add up to the bytes pushed; the chunker then stays open.
   */
  finish(files?: readonly ManifestFile[]): Manifest {
    this.#assertOpen('finish');
    const layout = { totalBytes: this.#totalBytes, chunkSizeBytes: this.chunkSizeBytes };
    if (files !== undefined) {
      const problem = fileTableProblem(files, layout.totalBytes);
      if (problem !== undefined) invalidArgument('files', problem);
    }
    if (this.#openChunkBytes > 0) this.#closeChunk();
    this.#finished = true;
    return createManifest(this.#crypto, {
      ...layout,
      chunkHashes: this.#chunkHashes,
      ...(files === undefined ? {} : { files }),
    });
  }

  #closeChunk(): ChunkInfo {
    const hasher = this.#hasher;
    assert(hasher !== undefined, 'Chunker: closing a chunk that was never opened');
    const info: ChunkInfo = {
      index: this.#chunkHashes.length,
      hash: hasher.digest(),
      length: this.#openChunkBytes,
    };
    this.#chunkHashes.push(info.hash);
    this.#hasher = undefined;
    this.#openChunkBytes = 0;
    return info;
  }

  #assertOpen(method: string): void {
    if (this.#finished) {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `Chunker.${method}: already finished`);
    }
  }
}
