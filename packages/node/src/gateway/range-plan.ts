/**
 * Range requests for the gateway (RFC 9110 sections 13.1.5, 14.1, 14.2 and 14.6): what to
 * answer a GET that carries `Range` (and maybe `If-Range`) for an object of known length, and
 * the framing of a `multipart/byteranges` body.
 *
 * Theory of operation: `planRange` reads the client's text and never throws on it; it returns a
 * plan, and the gateway streams bytes accordingly. It does not check the method: range handling
 * is defined for GET only (section 14.2), so the caller passes `undefined` for anything else.
 * Ranges in a plan are half-open, `[start, end)`, like the rest of PeaPod (content-range.ts).
 *
 * Choices the RFC leaves to the server, and ours:
 * - A `Range` outside the grammar, in another unit, or with `last-pos < first-pos` in any
 *   range-spec is ignored as a whole (section 14.2: MAY ignore an invalid ranges-specifier):
 *   the answer is the whole object. So is any `If-Range` that does not match (section 13.1.5:
 *   MUST ignore Range), including one that is neither an entity tag nor an HTTP-date.
 * - A request with one range-spec gets that range, even when it covers the whole object
 *   (`bytes=0-`, a suffix longer than the object): nginx and S3 both answer 206 there.
 * - Several range-specs: the unsatisfiable ones are dropped, the rest sorted and coalesced
 *   where they overlap or touch (section 14.2 allows coalescing "regardless of the order"). We
 *   send parts in ascending order, not request order (section 14.6's SHOULD): once ranges
 *   merge, request order is not defined, and every part carries its own Content-Range. If the
 *   result is one range it is a single-part 206; if it covers the whole object, or has more
 *   than `RANGE_PARTS_MAX` parts, the answer is the whole object (200), which section 14.2
 *   allows for "many small ranges" and which bounds the multipart framing a client can ask for.
 * - `multi: 'whole'` mimics S3, which ignores a Range with more than one range-spec and sends
 *   the whole object (200); with one range-spec it behaves as above.
 * - A zero-length object has no satisfiable int-range; a non-zero suffix-range is satisfiable
 *   (section 14.1.1) but a 206 cannot state an empty range (Content-Range needs
 *   first-pos <= last-pos), so that case is answered whole (200, empty), as nginx does.
 */
import { formatContentRange } from '../http/content-range.js';
import { parseEntityTag, strongMatch } from '../http/entity-tag.js';
import { parseHttpDate } from './header-fields.js';

/** A half-open byte range, `[start, end)`. */
export interface ByteRange {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

/** What to answer a request that may carry `Range`. */
export type RangePlan =
  /** 200 with the whole object. */
  | { readonly kind: 'whole' }
  /** 206 with `Content-Range: bytes start-(end-1)/total`. */
  | { readonly kind: 'single'; readonly start: number; readonly end: number }
  /** 206 `multipart/byteranges` (multipartByteranges), parts sorted and disjoint. */
  | { readonly kind: 'multi'; readonly ranges: readonly ByteRange[] }
  /** 416 with `Content-Range: bytes *\/total`. */
  | { readonly kind: 'unsatisfiable' };

export interface RangePlanOptions {
  /** 'multipart' (default): serve several ranges as multipart/byteranges; 'whole': as S3 does. */
  readonly multi?: 'multipart' | 'whole';
}

/** The most parts a multipart answer has; more are answered with the whole object. */
export const RANGE_PARTS_MAX = 16;

/** A range-spec as digit strings (any length: a huge last-pos is valid and clamps). */
type RangeSpec =
  | { readonly kind: 'int'; readonly first: string; readonly last: string | undefined }
  | { readonly kind: 'suffix'; readonly length: string };

const WHOLE: RangePlan = { kind: 'whole' };
const UNSATISFIABLE: RangePlan = { kind: 'unsatisfiable' };

/**
 * Plans the answer to `Range: rangeHeader` (and `If-Range: ifRange`) for an object of
 * `totalBytes` whose current validators are `current`.
 * @throws RangeError if totalBytes is not a safe non-negative integer.
 * @example planRange('bytes=-500', 10000, undefined, {}) // { kind: 'single', start: 9500, end: 10000 }
 */
export function planRange(
  rangeHeader: string | undefined,
  totalBytes: number,
  ifRange: string | undefined,
  current: { readonly etag?: string | undefined; readonly lastModified?: string | undefined },
  options: RangePlanOptions = {},
): RangePlan {
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
    throw new RangeError(`totalBytes: must be a safe non-negative integer, got ${totalBytes}`);
  }
  if (rangeHeader === undefined) return WHOLE;
  if (ifRange !== undefined && !ifRangeMatches(ifRange, current)) return WHOLE;
  const specs = parseRangeSet(rangeHeader);
  if (specs === undefined) return WHOLE;
  if (specs.length > 1 && options.multi === 'whole') return WHOLE;
  const ranges: ByteRange[] = [];
  let emptySatisfiable = false;
  for (const spec of specs) {
    const range = resolveSpec(spec, totalBytes);
    if (range === 'empty') emptySatisfiable = true;
    else if (range !== undefined) ranges.push(range);
  }
  if (ranges.length === 0) return emptySatisfiable ? WHOLE : UNSATISFIABLE;
  if (specs.length === 1 && ranges[0] !== undefined) {
    return { kind: 'single', start: ranges[0].start, end: ranges[0].end };
  }
  const parts = coalesce(ranges);
  const [first] = parts;
  if (first === undefined || parts.length > RANGE_PARTS_MAX) return WHOLE;
  if (parts.length === 1) {
    if (first.start === 0 && first.end === totalBytes) return WHOLE;
    return { kind: 'single', start: first.start, end: first.end };
  }
  return { kind: 'multi', ranges: parts };
}

/**
 * The `If-Range` condition (RFC 9110 section 13.1.5): an entity tag matches by the strong
 * comparison; an HTTP-date only a Last-Modified naming the same instant. The caller passes a
 * Last-Modified only when it is a strong validator (section 8.8.2.2), which this function
 * cannot judge. Anything else is false.
 */
export function ifRangeMatches(
  ifRange: string,
  current: { readonly etag?: string | undefined; readonly lastModified?: string | undefined },
): boolean {
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) {
    return strongMatch(parseEntityTag(value), parseEntityTag(current.etag));
  }
  const dateMs = parseHttpDate(value);
  return dateMs !== undefined && dateMs === parseHttpDate(current.lastModified);
}

const BYTES_RANGES = /^bytes=[ \t]*(.*)$/is;
const INT_RANGE = /^(\d+)-(\d*)$/;
const SUFFIX_RANGE = /^-(\d+)$/;

/**
 * `ranges-specifier = range-unit "=" range-set` with `range-set = 1#range-spec`, the unit
 * case-insensitive, empty list elements allowed (RFC 9110 section 5.6.1). Undefined when the
 * unit is not bytes or any element is invalid.
 */
function parseRangeSet(value: string): RangeSpec[] | undefined {
  const match = BYTES_RANGES.exec(value.trim());
  if (match === null) return undefined;
  const specs: RangeSpec[] = [];
  for (const element of (match[1] ?? '').split(',')) {
    const text = element.trim();
    if (text === '') continue;
    const int = INT_RANGE.exec(text);
    const suffix = SUFFIX_RANGE.exec(text);
    if (int !== null) {
      const first = int[1] ?? '0';
      const last = int[2] === '' ? undefined : int[2];
      if (last !== undefined && compareDigits(last, first) < 0) return undefined;
      specs.push({ kind: 'int', first, last });
    } else if (suffix !== null) {
      specs.push({ kind: 'suffix', length: suffix[1] ?? '0' });
    } else {
      return undefined;
    }
  }
  return specs.length === 0 ? undefined : specs;
}

/** Compares two digit strings as integers of any length. */
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A range-spec against the object (section 14.1.2): the bytes it selects, 'empty' for a
 * satisfiable suffix of a zero-length object, undefined when unsatisfiable. `Number` of a digit
 * string above 2^53 rounds, but never down to a safe integer, so comparisons with totalBytes
 * (a safe integer) stay exact.
 */
function resolveSpec(spec: RangeSpec, totalBytes: number): ByteRange | 'empty' | undefined {
  if (spec.kind === 'suffix') {
    const length = Number(spec.length);
    if (length === 0) return undefined;
    if (totalBytes === 0) return 'empty';
    return { start: Math.max(0, totalBytes - length), end: totalBytes };
  }
  const first = Number(spec.first);
  if (first >= totalBytes) return undefined;
  const end = spec.last === undefined ? totalBytes : Math.min(Number(spec.last) + 1, totalBytes);
  return { start: first, end };
}

/** Sorts ranges and merges those that overlap or touch. */
function coalesce(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: { start: number; end: number }[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ start: range.start, end: range.end });
  }
  return merged;
}

/** One part of a multipart/byteranges body: its header block, then bytes [start, end). */
export interface MultipartPart {
  readonly start: number;
  readonly end: number;
  /** The delimiter and part header fields, through the blank line, as text. */
  readonly headerText: string;
  /** `headerText` as bytes, latin1 (node:http decodes header values as latin1, so an origin's Content-Type round-trips). */
  readonly header: Uint8Array;
}

/** The framing of a multipart/byteranges body (RFC 9110 section 14.6). */
export interface MultipartByteranges {
  /** The response's `Content-Type`: `multipart/byteranges; boundary=...`. */
  readonly contentType: string;
  readonly parts: readonly MultipartPart[];
  /** The close delimiter, sent after the last part's bytes. */
  readonly closeText: string;
  readonly close: Uint8Array;
  /** The body's exact length: every header, every range's bytes, and the close delimiter. */
  readonly contentLength: number;
}

/** bchars (RFC 2046 section 5.1.1): 1 to 70 characters, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value that can go into a part header as is: no controls, nothing above latin1. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Frames `ranges` of an object of `totalBytes` as a multipart/byteranges body. The caller
 * writes, for each part, `header` then the bytes `[start, end)`, and finally `close`. Each part
 * repeats the object's Content-Type (section 14.6 SHOULD); a `contentType` from the origin that
 * could not go into a header block as is (a control character, a code unit above 0xFF) is left
 * out rather than thrown on. The first delimiter has no leading CRLF (the body has no preamble);
 * later ones start with the CRLF that ends the previous part's bytes (RFC 2046 section 5.1.1).
 * `boundary` must not occur in the bytes: pick it at random (e.g. 24 hex digits).
 * @throws RangeError if a range is empty or outside [0, totalBytes), or the boundary is not
 * 1-70 bchars.
 * @example multipartByteranges([{ start: 0, end: 2 }, { start: 5, end: 10 }], 10, 'text/plain', 'B').contentLength // 142
 */
export function multipartByteranges(
  ranges: readonly ByteRange[],
  totalBytes: number,
  contentType: string | undefined,
  boundary: string,
): MultipartByteranges {
  if (!BOUNDARY.test(boundary)) {
    throw new RangeError(`boundary: must be 1-70 RFC 2046 bchars, got ${JSON.stringify(boundary)}`);
  }
  const typeLine =
    contentType !== undefined && FIELD_VALUE.test(contentType) && contentType.trim() !== ''
      ? `Content-Type: ${contentType.trim()}\r\n`
      : '';
  const parts = ranges.map((range, index): MultipartPart => {
    if (!(range.start < range.end) || range.end > totalBytes) {
      throw new RangeError(`ranges[${index}]: must be non-empty and within [0, ${totalBytes})`);
    }
    const contentRange = formatContentRange({ kind: 'satisfied', ...range, totalBytes });
    const headerText = `${index === 0 ? '' : '\r\n'}--${boundary}\r\n${typeLine}Content-Range: ${contentRange}\r\n\r\n`;
    return { start: range.start, end: range.end, headerText, header: latin1Bytes(headerText) };
  });
  const closeText = `\r\n--${boundary}--\r\n`;
  const contentLength = parts.reduce(
    (sum, part) => sum + part.header.length + (part.end - part.start),
    closeText.length,
  );
  const parameter = TOKEN.test(boundary) ? boundary : `"${boundary}"`;
  return {
    contentType: `multipart/byteranges; boundary=${parameter}`,
    parts,
    closeText,
    close: latin1Bytes(closeText),
    contentLength,
  };
}

function latin1Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}
