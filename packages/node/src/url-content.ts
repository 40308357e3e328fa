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
 * - Private downloads are never kept (`privateRequestReason`): a request that carried
 *   credentials (`Authorization`, `Cookie`, `Proxy-Authorization`), a URL with userinfo
 *   (`user:pass@`) or a presigned query string (`PRESIGNED_QUERY_PARAMETERS`) would otherwise
 *   become content any pod member fetches by ID without them. The job factory also never looks
 *   such a URL up in the pod (URL_QUERY would hand its signature to every member).
 * - A copy served from the pod reaches the recorder only when something bound it to the URL (an
 *   origin digest, the user's `--sha256` or the 16 KiB sample, pod-source.ts `podBinding`);
 *   an unbound one is never served, so never recorded.
 * - `expectedContentId`: a copy served from the pod is recorded with the manifest it was served
 *   as (already in the store: every chunk was verified against it on arrival), not read back;
 *   its chunk files become references into the output, so the copy is not kept twice. Without
 *   that manifest in the store, the output is chunked and must give the same content.
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

/**
 * Query parameters that make a URL a credential (matched case-insensitively): AWS SigV4 and
 * SigV2 presigned URLs (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`,
 * `Signature`), Google Cloud Storage signed URLs (`X-Goog-Signature`, `X-Goog-Credential`),
 * Azure SAS (`sig`) and bearer tokens in the query (`token`, `access_token`). A short list on
 * purpose: it catches the common signed-URL schemes, and `--no-pool` keeps any other download
 * to this device.
 */
export const PRESIGNED_QUERY_PARAMETERS: readonly string[] = [
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'signature',
  'x-goog-signature',
  'x-goog-credential',
  'sig',
  'token',
  'access_token',
];

/** Request header fields that carry credentials. */
const CREDENTIAL_HEADERS = /^(authorization|cookie|proxy-authorization)$/i;

/**
 * Why a download of `url` with request `headers` is private to this device (never kept as
 * content, never looked up in the pod), as a clause; undefined when it may be shared. Never
 * throws (an unparsable URL is private).
 * @example privateRequestReason('https://a.test/x?X-Amz-Signature=ab', []) // 'its URL is presigned (X-Amz-Signature)'
 */
export function privateRequestReason(
  url: string,
  headers: readonly { readonly name: string; readonly value: string }[],
): string | undefined {
  const credential = headers.find(({ name }) => CREDENTIAL_HEADERS.test(name));
  if (credential !== undefined) return `the request carries a ${credential.name} header`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'its URL cannot be parsed';
  }
  if (parsed.username !== '' || parsed.password !== '') return 'its URL carries a user name';
  for (const key of parsed.searchParams.keys()) {
    if (PRESIGNED_QUERY_PARAMETERS.includes(key.toLowerCase())) {
      return `its URL is presigned (${key})`;
    }
  }
  return undefined;
}

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
  /** The request's header fields (credentials make the download private). */
  readonly headers: readonly { readonly name: string; readonly value: string }[];
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
    const privacy = privateRequestReason(url, download.headers);
    if (privacy !== undefined) {
      logger.info({ url: redactedUrl(url) }, `not kept for the pod: ${privacy}`);
      return undefined;
    }
    if (revalidatable(validator) === undefined) {
      logger.info({ url }, 'not kept for the pod: the origin gives no validator to revalidate it');
      return undefined;
    }
    // A copy served from the pod was verified chunk by chunk against its manifest (in the
    // store since the download started) and committed as is: reading it back would be a second
    // pass over every byte. Any other download is chunked from its output file once.
    const expected = download.expectedContentId;
    let manifest = expected === undefined ? undefined : store.manifest(expected);
    if (manifest === undefined) {
      try {
        manifest = await this.chunkFile(path);
      } catch (error) {
        logger.warn({ url, path, error: String(error) }, 'could not read a download back');
        return undefined;
      }
    }
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
        // For a pod copy this frees its chunk files: the bytes are in the output already.
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

/** `url` without userinfo and query string, for the log (they may be credentials). */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}
