/**
 * The probe that plans a URL download: one request tells whether the object can be pooled
 * (split into byte ranges fetched by several devices) and which digests can verify it.
 *
 * Theory of operation
 * - Method: one `GET` with `Range: bytes=0-0`, not `HEAD`. A 206 answer *proves* range support,
 *   where HEAD's `Accept-Ranges` is only a hint; presigned URLs (S3, GCS, CDN tokens) are signed
 *   for one method, so a HEAD is often refused with 403; and it costs one round trip instead of
 *   HEAD plus a confirming GET. If the origin ignores Range and starts sending the whole object
 *   (200), the probe reads the headers and closes the connection at once, so no body is
 *   downloaded. Each probe uses its own connection (no pool to leak into the caller's process).
 * - Redirects: up to 5 are followed (`REDIRECTS_MAX`); `url` in the result is the final one.
 *   Credentials are dropped on a redirect to another origin (origin-request.ts).
 * - What it reports: the object's total size (`Content-Range: bytes 0-0/SIZE` on a 206,
 *   `Content-Length` on a 200, `bytes *\/SIZE` on a 416 for an empty object), range support (a
 *   206 whose Content-Range is exactly the first byte), the pin that ties a pooled download's
 *   ranges to this version (origin-pin.ts: the strongest validator the response carries, and the
 *   total length), Last-Modified, Content-Type, and every digest of the whole object the origin states:
 *   - `Repr-Digest` (RFC 9530 section 3) sha-256 / sha-512: it covers the selected
 *     representation, so it holds on a 206 too;
 *   - `Content-Digest` (RFC 9530 section 2) only on a 200: it covers the message content, which
 *     is the whole representation only in a full 200 response (on a 206 it is the digest of the
 *     one byte sent);
 *   - `x-amz-checksum-sha256` (base64 SHA-256), unless `x-amz-checksum-type: COMPOSITE` says
 *     it is a checksum of part checksums;
 *   - a single-part S3 ETag: 32 hex digits and no `-N` part count, which S3 documents as the MD5
 *     of the object. Only when the response comes from S3 (`x-amz-request-id` or `x-amz-id-2`),
 *     and not for SSE-KMS or SSE-C objects, whose ETags S3 documents as not being the MD5: many
 *     other servers use 32-hex ETags that hash something else (inode, mtime), and reading them
 *     as MD5 would fail good downloads.
 * - `reasonNotPoolable` is one line for the CLI when pooling is impossible: no range support,
 *   no size, or an empty object. Every origin that answers the first byte with 206 and a total
 *   length is poolable; `pin.level` says how strongly its ranges are tied to one version.
 * - Failures (unreachable, a status other than 200/206/416, too many redirects, aborted by
 *   `signal`) come back as `{ kind: 'failed', detail }`, never as an exception.
 * - The conditional variant (`probeConditional`, the revalidation of a copy the pod holds,
 *   url-content.ts) is the same request with `If-None-Match` or `If-Modified-Since` added: a 304
 *   (RFC 9110 section 15.4.5: no body, the validators and any Repr-Digest of the current
 *   version) comes back as `not-modified`; a 206 or 200 (the object changed, or the origin
 *   ignores the condition) is described exactly as `probeOrigin` describes it, so it serves as
 *   the probe of the fresh download and no second request is sent.
 */
import { PeapodError } from '@peapod/core';
import type { IncomingHttpHeaders } from 'node:http';
import { parseContentRange } from './content-range.js';
import type { ExpectedDigest } from './digest.js';
import { parseDigestField } from './digest-field.js';
import { parseEntityTag, type EntityTag } from './entity-tag.js';
import { encodePin, pinFromResponse, type OriginPin } from './origin-pin.js';
import { openOrigin, type HttpHeader } from './origin-request.js';

/** Redirects the probe follows before giving up. */
export const REDIRECTS_MAX = 5;
/** The probe fails when the origin is silent this long. */
export const PROBE_IDLE_TIMEOUT_MS = 30_000;

export interface ProbeOptions {
  /** Request headers the download needs (e.g. authorization); the fetches send the same. */
  readonly headers?: readonly HttpHeader[];
  /** Source address for the request (this device's own internet link). */
  readonly localAddress?: string;
  readonly signal?: AbortSignal;
}

/** What the pooled path needs to know about an object. */
export interface OriginDescription {
  readonly kind: 'described';
  /** The URL after redirects. */
  readonly url: string;
  readonly redirects: number;
  /** The final response's status: 206, 200 or 416 (an empty object). */
  readonly status: number;
  readonly totalBytes: number | undefined;
  readonly rangesSupported: boolean;
  /** How the ranges of a pooled download are pinned to this version; undefined when not poolable. */
  readonly pin: OriginPin | undefined;
  /** `pin` encoded (origin-pin.ts) as the core's and FETCH_ASSIGN's validator; else undefined. */
  readonly validator: string | undefined;
  readonly lastModified: string | undefined;
  readonly contentType: string | undefined;
  /** Digests of the whole object the origin states, for `DigestVerifier`. */
  readonly digests: readonly ExpectedDigest[];
  /** Why the object cannot be pooled, as one line; undefined when it can. */
  readonly reasonNotPoolable: string | undefined;
  /** The final response's header fields as received (the proxy passes them on). */
  readonly rawHeaders: readonly string[];
}

export type OriginProbe =
  OriginDescription | { readonly kind: 'failed'; readonly url: string; readonly detail: string };

/**
 * Probes `url`; see the module comment.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `url` is not an http(s) URL.
 * @example
 * const probe = await probeOrigin('http://127.0.0.1:8088/object.bin', {});
 * if (probe.kind === 'described' && probe.reasonNotPoolable === undefined) {
 *   // pooled: probe.totalBytes, probe.pin, probe.validator, probe.digests
 * }
 */
export async function probeOrigin(url: string, options: ProbeOptions = {}): Promise<OriginProbe> {
  const answer = await probeWith(url, options, {});
  return answer.kind === 'not-modified'
    ? {
        kind: 'failed',
        url,
        detail: `the origin answered 304 Not Modified to a plain request for ${answer.url}`,
      }
    : answer;
}

/** What a revalidation sends: the ETags of the copies, or the date of one (lower-case names). */
export type RevalidationConditions =
  { readonly 'if-none-match': string } | { readonly 'if-modified-since': string };

/** A 304 to a conditional probe: the copy the conditions named is the current version. */
export interface NotModified {
  readonly kind: 'not-modified';
  /** The URL that answered, after redirects. */
  readonly url: string;
  /** The 304's ETag and Last-Modified, as sent (undefined when absent). */
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  /** Digests of the whole object the 304 states (Repr-Digest, x-amz-checksum-sha256, S3 ETag). */
  readonly digests: readonly ExpectedDigest[];
  readonly rawHeaders: readonly string[];
}

/**
 * The probe with revalidation `conditions` (`if-none-match`, `if-modified-since`, lower-case):
 * `not-modified` on a 304, otherwise what `probeOrigin` reports; see the module comment.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `url` is not an http(s) URL.
 * @example
 * const answer = await probeConditional(url, { 'if-none-match': '"v1"' });
 * if (answer.kind === 'not-modified') {
 *   // the pod's copy of version "v1" is current
 * }
 */
export function probeConditional(
  url: string,
  conditions: RevalidationConditions,
  options: ProbeOptions = {},
): Promise<OriginProbe | NotModified> {
  return probeWith(url, options, conditions);
}

async function probeWith(
  url: string,
  options: ProbeOptions,
  conditions: RevalidationConditions | Record<string, never>,
): Promise<OriginProbe | NotModified> {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `url: not an http(s) URL: ${url}`);
  }
  const opened = await openOrigin({
    url,
    headers: options.headers ?? [],
    protocolHeaders: { ...conditions, range: 'bytes=0-0' },
    redirectsMax: REDIRECTS_MAX,
    localAddress: options.localAddress,
    signal: options.signal,
    idleTimeoutMs: PROBE_IDLE_TIMEOUT_MS,
  });
  if (opened.kind === 'failed') return { kind: 'failed', url, detail: opened.detail };
  const { response, request } = opened;
  // Only the headers matter; close rather than read a body that may be the whole object.
  response.on('error', () => undefined);
  request.destroy();
  const status = response.statusCode ?? 0;
  if (status === 304) {
    const { headers } = response;
    const etag = typeof headers.etag === 'string' ? headers.etag.trim() : undefined;
    const lastModified = headers['last-modified'];
    return {
      kind: 'not-modified',
      url: opened.url,
      etag,
      lastModified: typeof lastModified === 'string' ? lastModified.trim() : undefined,
      digests: statedDigests(304, headers, parseEntityTag(etag)),
      rawHeaders: response.rawHeaders,
    };
  }
  if (status !== 200 && status !== 206 && status !== 416) {
    const reason = response.statusMessage === undefined ? '' : ` ${response.statusMessage}`;
    return {
      kind: 'failed',
      url,
      detail: `the origin answered ${status}${reason} for ${opened.url}`,
    };
  }
  return describeResponse(opened.url, opened.redirects, status, response);
}

/** Everything `probeOrigin` reports, from the final response's status and headers. */
function describeResponse(
  url: string,
  redirects: number,
  status: number,
  response: { readonly headers: IncomingHttpHeaders; readonly rawHeaders: readonly string[] },
): OriginDescription {
  const { headers } = response;
  const contentRange = parseContentRange(headers['content-range']);
  let totalBytes: number | undefined;
  let rangesSupported = false;
  if (status === 206 && contentRange?.kind === 'satisfied') {
    rangesSupported = contentRange.start === 0 && contentRange.end === 1;
    totalBytes = contentRange.totalBytes;
  } else if (status === 416 && contentRange?.kind === 'unsatisfied') {
    rangesSupported = true;
    totalBytes = contentRange.totalBytes;
  } else if (status === 200) {
    totalBytes = parseContentLength(headers['content-length']);
  }
  const etag = parseEntityTag(headers.etag);
  let reasonNotPoolable: string | undefined;
  if (!rangesSupported) {
    reasonNotPoolable =
      status === 200
        ? 'the origin does not support byte ranges (it answered a request for the first byte with the whole object)'
        : `the origin answered 206 with an unusable Content-Range (${headers['content-range'] ?? 'none'})`;
  } else if (totalBytes === undefined) {
    reasonNotPoolable = "the origin does not state the object's size";
  } else if (totalBytes === 0) {
    reasonNotPoolable = 'the object is empty';
  }
  const pin =
    reasonNotPoolable === undefined && totalBytes !== undefined
      ? pinFromResponse(headers, totalBytes)
      : undefined;
  return {
    kind: 'described',
    url,
    redirects,
    status,
    totalBytes,
    rangesSupported,
    pin,
    validator: pin === undefined ? undefined : encodePin(pin),
    lastModified: headers['last-modified'],
    contentType: headers['content-type'],
    digests: statedDigests(status, headers, etag),
    reasonNotPoolable,
    rawHeaders: response.rawHeaders,
  };
}

/** The digests of the whole object in a response's headers; see the module comment. */
export function statedDigests(
  status: number,
  headers: IncomingHttpHeaders,
  etag: EntityTag | undefined,
): ExpectedDigest[] {
  const digests: ExpectedDigest[] = [];
  const fromField = (field: 'repr-digest' | 'content-digest', source: string) => {
    const value = headers[field];
    const stated = parseDigestField(typeof value === 'string' ? value : undefined);
    for (const [algorithm, digest] of Object.entries(stated)) {
      digests.push({ algorithm: algorithm as 'sha-256' | 'sha-512', digest, source });
    }
  };
  fromField('repr-digest', 'Repr-Digest');
  if (status === 200) fromField('content-digest', 'Content-Digest');
  const amzChecksum = headers['x-amz-checksum-sha256'];
  const amzType = headers['x-amz-checksum-type'];
  if (
    typeof amzChecksum === 'string' &&
    /^[A-Za-z0-9+/]{43}=$/.test(amzChecksum.trim()) &&
    !(typeof amzType === 'string' && amzType.trim().toUpperCase() === 'COMPOSITE')
  ) {
    digests.push({
      algorithm: 'sha-256',
      digest: new Uint8Array(Buffer.from(amzChecksum.trim(), 'base64')),
      source: 'x-amz-checksum-sha256',
    });
  }
  const fromS3 = headers['x-amz-request-id'] !== undefined || headers['x-amz-id-2'] !== undefined;
  const encryption = String(headers['x-amz-server-side-encryption'] ?? '').toLowerCase();
  const customerKey = headers['x-amz-server-side-encryption-customer-algorithm'] !== undefined;
  if (
    fromS3 &&
    etag !== undefined &&
    !etag.weak &&
    /^"[0-9a-fA-F]{32}"$/.test(etag.opaqueTag) &&
    !encryption.startsWith('aws:kms') &&
    !customerKey
  ) {
    digests.push({
      algorithm: 'md5',
      digest: new Uint8Array(Buffer.from(etag.opaqueTag.slice(1, -1), 'hex')),
      source: 'S3 ETag',
    });
  }
  return digests;
}

/** A Content-Length of 1 to 15 digits (RFC 9110 section 8.6); undefined otherwise. */
function parseContentLength(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
