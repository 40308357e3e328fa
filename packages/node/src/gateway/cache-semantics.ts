/**
 * What RFC 9110 and RFC 9111 say a shared cache answers, as pure functions of header fields and
 * times: byte ranges, preconditions, what may be stored, and whether a stored response is fresh.
 *
 * Theory of operation
 * - Inputs are what node:http gives (`Record<string, string | string[] | undefined>`, lowercase
 *   names) and numbers (wall-clock Unix ms is always an argument, never read here). Every
 *   function reads text from the network, so none throws: text outside the grammar counts as
 *   absent, which is what RFC 9110 asks of a recipient of an invalid Range or date.
 * - Ranges (RFC 9110 14.1.2, 14.2): `bytes=` with one or more of `first-last`, `first-` and
 *   `-suffix`. Unsatisfiable ranges are dropped; none left is 416. Overlapping or adjacent ranges
 *   are merged (14.2 lets a server coalesce), more than MAX_RANGES, or ranges covering the whole
 *   object, are answered with the whole object (200). A range header with a different unit, or
 *   that does not parse, is ignored (200). `If-Range` with an entity tag needs a strong match,
 *   with a date an exactly equal Last-Modified (13.1.5), else the whole object. `multi: 'whole'`
 *   answers any multi-range request with the whole object, as S3 does.
 * - Preconditions (RFC 9110 13.2.2), in order: If-Match (strong), else If-Unmodified-Since;
 *   If-None-Match (weak; 304 for GET and HEAD, 412 otherwise), else If-Modified-Since (GET and
 *   HEAD only).
 * - Storing (RFC 9111 3): only a 200 to GET, without `no-store` in the request or the response,
 *   and without `private` (a shared cache). Errors are never stored as data. Credentialed
 *   requests are stored too, but marked so that every later use revalidates with the origin
 *   (cached-get.ts): stricter than RFC 9111 3.5, which would serve them with `public`.
 * - Freshness (RFC 9111 4.2): lifetime from `s-maxage`, else `max-age`, else `Expires - Date`,
 *   else 10% of `Date - Last-Modified` (at most a day); age from `Age`, `Date` and the time the
 *   response was stored. Stale, or `no-cache` on either side, or a request `max-age=0`: revalidate.
 */
import { parseEntityTag, strongMatch } from '../http/entity-tag.js';
import { privateRequestReason } from '../url-content.js';

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

export interface ByteRange {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

export type RangePlan =
  | { readonly kind: 'whole' }
  | ({ readonly kind: 'single' } & ByteRange)
  | { readonly kind: 'multi'; readonly ranges: readonly ByteRange[] }
  | { readonly kind: 'unsatisfiable' };

/** Ranges served at most as parts; more is answered whole. */
export const MAX_RANGES = 16;

function text(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * What to answer a GET's `Range` with (see the module comment).
 * @example planRange('bytes=-500', 10000, undefined, {}) // { kind: 'single', start: 9500, end: 10000 }
 */
export function planRange(
  rangeHeader: string | undefined,
  totalBytes: number,
  ifRange: string | undefined,
  current: { readonly etag?: string | undefined; readonly lastModified?: string | undefined },
  options: { readonly multi: 'multipart' | 'whole' } = { multi: 'multipart' },
): RangePlan {
  if (rangeHeader === undefined) return { kind: 'whole' };
  if (ifRange !== undefined && !ifRangeHolds(ifRange, current)) return { kind: 'whole' };
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(rangeHeader);
  if (match === null) return { kind: 'whole' };
  const specs = match[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length === 0) return { kind: 'whole' };
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const parsed = /^(\d{0,15})-(\d{0,15})$/.exec(spec);
    if (parsed === null || (parsed[1] === '' && parsed[2] === '')) return { kind: 'whole' };
    const [first, last] = [parsed[1]!, parsed[2]!];
    if (first === '') {
      const length = Number(last);
      if (length > 0 && totalBytes > 0)
        ranges.push({ start: Math.max(0, totalBytes - length), end: totalBytes });
      continue;
    }
    const start = Number(first);
    if (last !== '' && Number(last) < start) return { kind: 'whole' }; // invalid: ignored
    if (start >= totalBytes) continue; // unsatisfiable
    const end = last === '' ? totalBytes : Math.min(totalBytes, Number(last) + 1);
    ranges.push({ start, end });
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' };
  const merged = coalesce(ranges);
  if (merged.length === 1) {
    const only = merged[0]!;
    if (specs.length > 1 && options.multi === 'whole') return { kind: 'whole' };
    return { kind: 'single', ...only };
  }
  if (options.multi === 'whole' || merged.length > MAX_RANGES) return { kind: 'whole' };
  return { kind: 'multi', ranges: merged };
}

function coalesce(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const range of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && range.start <= last.end)
      out[out.length - 1] = { start: last.start, end: Math.max(last.end, range.end) };
    else out.push(range);
  }
  return out;
}

function ifRangeHolds(
  ifRange: string,
  current: { readonly etag?: string | undefined; readonly lastModified?: string | undefined },
): boolean {
  const tag = parseEntityTag(ifRange);
  if (tag !== undefined) return strongMatch(tag, parseEntityTag(current.etag ?? ''));
  return current.lastModified !== undefined && ifRange.trim() === current.lastModified.trim();
}

/** The framing of a multipart/byteranges body (RFC 9110 14.6): part heads, closing, length. */
export function multipartByteranges(
  ranges: readonly ByteRange[],
  totalBytes: number,
  contentType: string | undefined,
  boundary: string,
): {
  readonly partHeads: readonly string[];
  readonly closing: string;
  readonly contentLength: number;
} {
  const partHeads = ranges.map(
    (range, i) =>
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\n` +
      (contentType === undefined ? '' : `Content-Type: ${contentType}\r\n`) +
      `Content-Range: bytes ${range.start}-${range.end - 1}/${totalBytes}\r\n\r\n`,
  );
  const closing = `\r\n--${boundary}--\r\n`;
  const contentLength =
    partHeads.reduce((n, head) => n + Buffer.byteLength(head, 'latin1'), 0) +
    ranges.reduce((n, r) => n + (r.end - r.start), 0) +
    closing.length;
  return { partHeads, closing, contentLength };
}

export type PreconditionVerdict = 'proceed' | 'not-modified' | 'precondition-failed';

/** RFC 9110 13.2.2 against the current representation. */
export function evaluatePreconditions(
  method: string,
  headers: Headers,
  current: {
    readonly etag?: string | undefined;
    readonly lastModified?: string | undefined;
    readonly exists: boolean;
  },
): PreconditionVerdict {
  const safe = method === 'GET' || method === 'HEAD';
  const etag = parseEntityTag(current.etag ?? '');
  const modified = Date.parse(current.lastModified ?? '');
  const ifMatch = text(headers['if-match']);
  if (ifMatch !== undefined) {
    if (!matchesList(ifMatch, current.exists, (tag) => strongMatch(tag, etag)))
      return 'precondition-failed';
  } else {
    const since = Date.parse(text(headers['if-unmodified-since']) ?? '');
    if (Number.isFinite(since) && Number.isFinite(modified) && modified > since)
      return 'precondition-failed';
  }
  const ifNoneMatch = text(headers['if-none-match']);
  if (ifNoneMatch !== undefined) {
    const weak = (tag: { opaqueTag: string }) =>
      etag !== undefined && tag.opaqueTag === etag.opaqueTag;
    if (matchesList(ifNoneMatch, current.exists, weak))
      return safe ? 'not-modified' : 'precondition-failed';
  } else if (safe) {
    const since = Date.parse(text(headers['if-modified-since']) ?? '');
    if (Number.isFinite(since) && Number.isFinite(modified) && modified <= since)
      return 'not-modified';
  }
  return 'proceed';
}

/** `*` or a comma-separated list of entity tags, any of which `matches`. */
function matchesList(
  value: string,
  exists: boolean,
  matches: (tag: NonNullable<ReturnType<typeof parseEntityTag>>) => boolean,
): boolean {
  if (value.trim() === '*') return exists;
  for (const member of value.split(',')) {
    const tag = parseEntityTag(member);
    if (tag !== undefined && matches(tag)) return true;
  }
  return false;
}

/** A response's Cache-Control directives (names lowercase; values unquoted). */
export function cacheControl(headers: Headers): Map<string, string> {
  const directives = new Map<string, string>();
  for (const part of (text(headers['cache-control']) ?? '').split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName!.trim().toLowerCase();
    if (name === '') continue;
    directives.set(
      name,
      rest
        .join('=')
        .trim()
        .replace(/^"(.*)"$/, '$1'),
    );
  }
  return directives;
}

/** Whether a shared cache may store this response as data (module comment). */
export function responseStorable(
  method: string,
  status: number,
  requestHeaders: Headers,
  responseHeaders: Headers,
): { readonly storable: true } | { readonly storable: false; readonly reason: string } {
  if (method !== 'GET') return { storable: false, reason: `${method} responses are not stored` };
  if (status !== 200) return { storable: false, reason: `status ${status} is not stored as data` };
  if (cacheControl(requestHeaders).has('no-store'))
    return { storable: false, reason: 'the request says no-store' };
  const response = cacheControl(responseHeaders);
  if (response.has('no-store')) return { storable: false, reason: 'the response says no-store' };
  if (response.has('private')) return { storable: false, reason: 'the response is private' };
  if (text(responseHeaders['vary'])?.trim() === '*')
    return { storable: false, reason: 'the response varies on everything (Vary: *)' };
  return { storable: true };
}

/** Why the request carries credentials (Authorization, Cookie, a presigned URL), or undefined. */
export function carriesCredentials(url: string, headers: Headers): string | undefined {
  const fields = Object.entries(headers)
    .filter((entry): entry is [string, string | string[]] => entry[1] !== undefined)
    .map(([name, value]) => ({ name, value: text(value)! }));
  return privateRequestReason(url, fields);
}

function seconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,10}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** RFC 9111 4.2.1 (and 4.2.2's heuristic), in ms; 0 when nothing makes it fresh. */
export function freshnessLifetimeMs(headers: Headers, responseDateMs: number): number {
  const directives = cacheControl(headers);
  const sMaxAge = seconds(directives.get('s-maxage'));
  if (sMaxAge !== undefined) return sMaxAge * 1000;
  const maxAge = seconds(directives.get('max-age'));
  if (maxAge !== undefined) return maxAge * 1000;
  const expiresText = text(headers['expires']);
  if (expiresText !== undefined) {
    const expires = Date.parse(expiresText);
    return Number.isFinite(expires) ? Math.max(0, expires - responseDateMs) : 0;
  }
  const modified = Date.parse(text(headers['last-modified']) ?? '');
  if (!Number.isFinite(modified)) return 0;
  return Math.min(DAY_MS, Math.max(0, (responseDateMs - modified) / 10));
}

/** Whether a stored response may be served without asking the origin. */
export function cacheDecision(input: {
  readonly requestHeaders: Headers;
  readonly storedHeaders: Headers;
  readonly storedAtMs: number;
  readonly responseDateMs: number;
  readonly ageAtStoreMs: number;
  readonly nowMs: number;
}): 'fresh' | 'revalidate' {
  const request = cacheControl(input.requestHeaders);
  const stored = cacheControl(input.storedHeaders);
  if (request.has('no-cache') || stored.has('no-cache')) return 'revalidate';
  if (/no-cache/i.test(text(input.requestHeaders['pragma']) ?? '')) return 'revalidate';
  const apparent = Math.max(0, input.storedAtMs - input.responseDateMs);
  const age = Math.max(apparent, input.ageAtStoreMs) + Math.max(0, input.nowMs - input.storedAtMs);
  const requestMaxAge = seconds(request.get('max-age'));
  if (requestMaxAge !== undefined && age > requestMaxAge * 1000) return 'revalidate';
  const lifetime = freshnessLifetimeMs(input.storedHeaders, input.responseDateMs);
  return age < lifetime ? 'fresh' : 'revalidate';
}

/** The conditional fields that revalidate a stored version. */
export function revalidationHeaders(stored: {
  readonly etag?: string | undefined;
  readonly lastModified?: string | undefined;
}): Record<string, string> {
  const headers: Record<string, string> = {};
  if (stored.etag !== undefined) headers['if-none-match'] = stored.etag;
  if (stored.lastModified !== undefined) headers['if-modified-since'] = stored.lastModified;
  return headers;
}

/** Presigned-URL query parameters (SigV4): credentials, not part of what is named. */
const PRESIGN_PARAMETER =
  /^x-amz-(algorithm|credential|date|expires|signedheaders|signature|security-token)$/i;

/**
 * `path` (`/p?q`) without its SigV4 presign parameters (and those `also` names), the rest of the
 * query as it was.
 */
export function withoutPresignQuery(path: string, also?: RegExp): string {
  const query = path.indexOf('?');
  if (query < 0) return path;
  const kept = path
    .slice(query + 1)
    .split('&')
    .filter((pair) => {
      const name = safeDecode(pair.split('=')[0]!);
      return pair !== '' && !PRESIGN_PARAMETER.test(name) && !(also?.test(name) ?? false);
    });
  return kept.length === 0 ? path.slice(0, query) : `${path.slice(0, query)}?${kept.join('&')}`;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
