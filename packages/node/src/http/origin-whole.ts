/**
 * The single-source download: the object (or its rest, on resume) in one GET through this
 * device's own link. It is what `peapod get` falls back to when an origin cannot be pooled (no
 * Range support, no size) or the object changed mid-way.
 *
 * Theory of operation: from offset 0 it is a plain GET that must answer 200. From an offset it
 * asks `Range: bytes=OFFSET-` with the pin's preconditions (origin-pin.ts: If-Match / If-Range
 * with a strong ETag, If-Unmodified-Since with a Last-Modified date): a 206 starting at OFFSET
 * whose head passes the pin's check continues the same version; anything else (a 200 or 412:
 * the object changed) rejects with a message saying to start over. Bytes are handed on in order and the next read
 * waits for `onData` (backpressure) and for the download bandwidth limit. A body shorter than
 * its Content-Length rejects. Errors are one line for a person. It resolves with the digests
 * this response states for the whole object (Repr-Digest, and so on): after the object changed
 * mid-way, those of the new version are the ones to verify against, not the first probe's.
 */
import type { ExpectedDigest } from './digest.js';
import { parseContentRange } from './content-range.js';
import { parseEntityTag } from './entity-tag.js';
import type { ByteLimiter } from './origin-fetcher.js';
import { checkPinnedHead, decodePin, pinRequestHeaders } from './origin-pin.js';
import { REDIRECTS_MAX, statedDigests } from './origin-probe.js';
import { openOrigin, type HttpHeader } from './origin-request.js';

/** What the response said about the object it carried. */
export interface WholeFetchResult {
  /** The digests of the whole object that the response states (possibly none). */
  readonly digests: readonly ExpectedDigest[];
}

export interface WholeFetchOptions {
  readonly localAddress?: string | undefined;
  readonly limiter?: ByteLimiter | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Streams `[offset, end)` of `url` to `onData`; see the module comment. */
export async function fetchWhole(
  url: string,
  headers: readonly HttpHeader[],
  offset: number,
  validator: string,
  onData: (bytes: Uint8Array) => Promise<void>,
  options: WholeFetchOptions = {},
): Promise<WholeFetchResult> {
  const protocolHeaders: Record<string, string> = {};
  const decoded = decodePin(validator);
  const pin = decoded.kind === 'pin' ? decoded.pin : undefined;
  if (offset > 0) {
    protocolHeaders['range'] = `bytes=${offset}-`;
    if (pin !== undefined) Object.assign(protocolHeaders, pinRequestHeaders(pin));
  }
  const opened = await openOrigin({
    url,
    headers,
    protocolHeaders,
    redirectsMax: REDIRECTS_MAX,
    localAddress: options.localAddress,
    signal: options.signal,
    idleTimeoutMs: 30_000,
  });
  if (opened.kind === 'failed') throw new Error(opened.detail);
  const { response, request } = opened;
  const status = response.statusCode ?? 0;
  const range = parseContentRange(response.headers['content-range']);
  const resumed = status === 206 && range?.kind === 'satisfied' && range.start === offset;
  const pinCheck =
    resumed && pin !== undefined ? checkPinnedHead(pin, response.headers) : undefined;
  if (offset > 0 ? !resumed || pinCheck?.ok === false : status !== 200) {
    request.destroy();
    throw new Error(
      offset > 0
        ? `the origin answered ${status} when asked to resume at byte ${offset} (${pinCheck?.ok === false ? pinCheck.detail : 'the object may have changed'}); remove the .peapod-part file and start over`
        : `the origin answered ${status} ${response.statusMessage ?? ''}`.trim(),
    );
  }
  const etag = response.headers.etag;
  const digests = statedDigests(status, response.headers, parseEntityTag(etag));
  const length = Number(response.headers['content-length'] ?? NaN);
  let received = 0;
  for await (const part of response) {
    const bytes = part as Uint8Array;
    received += bytes.length;
    const waitMs = options.limiter?.take(bytes.length) ?? 0;
    await onData(bytes);
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
  if (Number.isFinite(length) && received !== length) {
    throw new Error(`the origin sent ${received} of ${length} bytes, then closed the connection`);
  }
  return { digests };
}
