/**
 * URL downloads become content (DESIGN.md decision 16): after a `peapod get` committed its
 * output file, the object is kept in the chunk store as a content keyed by (URL, validator), so
 * the next pod member's `get` of the same version is served over the LAN (pod-source.ts).
 *
 * Theory of operation
 * - `UrlContentRecorder.record` reads the output file once, in 4 MiB chunks (the core's
 *   `Chunker`), giving the manifest (no file table: a URL object is a bare content). The store
 *   gets the manifest (origin `url`, unpinned: it may be evicted) and a reference to each chunk
 *   in the user's file rather than a second copy; the store verifies every read, so a file the
 *   user changed later is never served. Then the URL mapping, and the core hears
 *   `content-available` (it announces the chunks to the pod) and `url-content` (it answers the
 *   pod's URL_QUERY with it).
 * - Only a version the origin can revalidate is kept, and only for a URL that fits in URL_QUERY
 *   (8 KiB; longer ones the core refuses to map) (pod-source.ts `revalidatable`: a strong or
 *   weak ETag, or a Last-Modified date). A length-only pin names no version the origin could
 *   confirm, so such a download is not recorded at all.
 * - `expectedContentId`: a copy served from the pod must chunk to the content it was served as;
 *   when it does not, nothing is recorded (the recorder says so in the log).
 * The daemon tells the core, at start, every URL mapping the store kept from earlier runs.
 * Failures (an unreadable file, a store error) are logged and never fail the download: the file
 * is already verified and committed.
 */
import { open } from 'node:fs/promises';
import {
  Chunker,
  CHUNK_SIZE_BYTES_DEFAULT,
  equalBytes,
  Limits,
  toHex,
  type CoreInput,
  type CryptoProvider,
  type Manifest,
} from '@peapod/core';
import type { Logger } from 'pino';
import { revalidatable } from './pod-source.js';
import { escalateIfInvariant } from './process-guard.js';
import type { ChunkStoreApi } from './store/store-api.js';

/** Bytes read from the output file at a time (one chunk). */
const READ_BYTES = CHUNK_SIZE_BYTES_DEFAULT;

export interface UrlContentOptions {
  readonly store: ChunkStoreApi;
  /** The host's `input`. */
  readonly feed: (input: CoreInput) => void;
  readonly crypto: CryptoProvider;
  readonly logger: Logger;
}

/** What one completed download leaves behind. */
export interface CompletedDownload {
  /** The URL the user asked for (the key the next member's `get` looks up). */
  readonly url: string;
  /** The pin of the version the file holds (http/origin-pin.ts encoding). */
  readonly validator: string;
  /** The committed output file. */
  readonly path: string;
  /** A copy served from the pod: the content it was served as. */
  readonly expectedContentId?: Uint8Array;
}

export class UrlContentRecorder {
  constructor(private readonly options: UrlContentOptions) {}

  /** Keeps `download` as content; the manifest, or undefined when it was not kept. */
  async record(download: CompletedDownload): Promise<Manifest | undefined> {
    const { store, feed, logger } = this.options;
    const { url, validator, path } = download;
    if (Buffer.byteLength(url, 'utf8') > Limits.urlBytes) {
      // URL_QUERY cannot carry it, and the core refuses such a mapping (at every start, too).
      logger.info({ url: url.slice(0, 200) }, 'not kept for the pod: the URL is over 8 KiB');
      return undefined;
    }
    if (revalidatable(validator) === undefined) {
      logger.info({ url }, 'not kept for the pod: the origin gives no validator to revalidate it');
      return undefined;
    }
    let manifest: Manifest;
    try {
      manifest = await this.chunkFile(path);
    } catch (error) {
      logger.warn({ url, path, error: String(error) }, 'could not read a download back to keep it');
      return undefined;
    }
    const expected = download.expectedContentId;
    if (expected !== undefined && !equalBytes(expected, manifest.contentId)) {
      logger.warn(
        { url, expected: toHex(expected), actual: toHex(manifest.contentId) },
        'a download served from the pod reads back as another content; not kept',
      );
      return undefined;
    }
    if (manifest.totalBytes === 0) return undefined; // no chunk to serve
    const { contentId, chunkSizeBytes } = manifest;
    try {
      store.addContent(manifest, { kind: 'url', url, validator }, { pinned: false });
      store.referenceChunks(
        contentId,
        manifest.chunkHashes.map((_, index) => ({ index, path, offset: index * chunkSizeBytes })),
      );
      store.mapUrl(url, validator, contentId);
    } catch (error) {
      escalateIfInvariant(error);
      logger.warn({ url, error: String(error) }, 'the store could not keep a download');
      return undefined;
    }
    const nowMs = performance.now();
    feed({ type: 'content-available', nowMs, manifest });
    feed({ type: 'url-content', nowMs, url, validator, contentId });
    logger.info(
      { url, contentId: toHex(contentId), bytes: manifest.totalBytes },
      'download kept as content for the pod',
    );
    return manifest;
  }

  /** The file's manifest, read once in chunk-sized pieces. */
  private async chunkFile(path: string): Promise<Manifest> {
    const chunker = new Chunker(this.options.crypto, { chunkSizeBytes: CHUNK_SIZE_BYTES_DEFAULT });
    const file = await open(path, 'r');
    try {
      const buffer = new Uint8Array(READ_BYTES);
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, READ_BYTES, null);
        if (bytesRead === 0) break;
        chunker.push(buffer.subarray(0, bytesRead));
      }
    } finally {
      await file.close();
    }
    return chunker.finish();
  }
}
