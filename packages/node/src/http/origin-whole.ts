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
 * its Content-Length rejects. A body without a length is read as curl reads it: a
 * close-delimited one ends where the connection closes cleanly; a chunked one must end with its
 * last chunk, so a reset or a close mid-body rejects (node:http reports it as 'aborted').
 *
 * Stalls: when the origin sends nothing for `stallTimeoutMs` (default 60 s) while the fetch
 * waits for it, the request is destroyed (its socket closed) and the fetch rejects with a
 * sentence naming the origin. The clock runs only while waiting on the origin: time spent in
 * `onData` (a slow disk, a slow proxy client) or in the bandwidth limit's wait is not a stall.
 * An abort through `signal` (the user cancelled) destroys the socket at once, stall or not.
 * Errors are one line for a person. It resolves with the digests
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
  /** No byte from the origin for this long rejects (see the module comment). Default 60 000. */
  readonly stallTimeoutMs?: number | undefined;
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
  const stallTimeoutMs = options.stallTimeoutMs ?? 60_000;
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
    idleTimeoutMs: stallTimeoutMs,
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
  const host = new URL(opened.url).host;
  // From here the stall watchdog below times the origin; the socket's own idle timeout would
  // also count the time this side spends writing.
  request.setTimeout(0);
  let received = 0;
  let stalled = false;
  let watchdog: NodeJS.Timeout | undefined;
  const arm = () => {
    watchdog = setTimeout(() => {
      stalled = true;
      request.destroy();
    }, stallTimeoutMs);
  };
  const of = Number.isFinite(length) ? ` of ${length}` : '';
  try {
    arm();
    for await (const part of response) {
      clearTimeout(watchdog);
      const bytes = part as Uint8Array;
      received += bytes.length;
      const waitMs = options.limiter?.take(bytes.length) ?? 0;
      await onData(bytes);
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      arm();
    }
  } catch (error) {
    if (stalled) {
      throw new Error(
        `the origin (${host}) sent no byte for ${Math.round(stallTimeoutMs / 1000)} s ` +
          `after ${received}${of} bytes; try again later, or raise the daemon's --stall-timeout`,
      );
    }
    if (options.signal?.aborted === true) throw error;
    if (error instanceof Error && error.message === 'aborted') {
      throw new Error(
        `the origin (${host}) closed the connection after ${received}${of} bytes, ` +
          `before the end of the body; try again`,
      );
    }
    throw error;
  } finally {
    clearTimeout(watchdog);
  }
  if (Number.isFinite(length) && received !== length) {
    throw new Error(`the origin sent ${received} of ${length} bytes, then closed the connection`);
  }
  return { digests };
}

/**
 * The note for an object the origin sends without a length (a 200 with no Content-Length:
 * chunked or close-delimited), which cannot be pooled; undefined for any other answer.
 */
export function lengthlessNote(probe: {
  readonly status: number;
  readonly totalBytes: number | undefined;
}): string | undefined {
  if (probe.status !== 200 || probe.totalBytes !== undefined) return undefined;
  return (
    'the origin sends the object without a length (no Content-Length, no byte ranges), ' +
    'so it is downloaded from the origin alone, to the end of its body'
  );
}

/** The sentence for a probe that got no complete answer within the stall timeout. */
export function probeStalled(url: string, stallTimeoutMs: number): string {
  return (
    `the origin (${new URL(url).host}) sent no complete answer within ` +
    `${Math.round(stallTimeoutMs / 1000)} s; try again later, or raise the daemon's --stall-timeout`
  );
}
