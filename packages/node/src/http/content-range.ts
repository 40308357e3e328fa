/**
 * `Content-Range` (RFC 9110 section 14.4) and single-range `Range` (section 14.1.2) headers: the
 * byte positions a client asks for and a server says it sent.
 *
 * Theory of operation: both parsers read untrusted text from the network, so they never throw;
 * anything outside the grammar is `undefined`, and the caller treats it as "the other side does
 * not do ranges right". Positions are JavaScript numbers, so every number must be a safe integer
 * (at most 2^53 - 1, 15 digits are always safe; longer digit runs are refused rather than
 * rounded). Ranges here are half-open, `[start, end)`, the way the core's `fetch-origin` states
 * them; the header's inclusive `last` position is `end - 1`.
 *
 * Grammar (RFC 9110, ABNF; `range-unit` is case-insensitive, section 14.1):
 *   Content-Range     = range-unit SP ( range-resp / unsatisfied-range )
 *   range-resp        = incl-range "/" ( complete-length / "*" )
 *   incl-range        = first-pos "-" last-pos
 *   unsatisfied-range = "*" "/" complete-length
 * A `range-resp` is valid only when first-pos <= last-pos and, with a known complete-length,
 * last-pos < complete-length (section 14.4).
 */

/** A parsed `Content-Range`: a satisfied range (206) or an unsatisfied one (416). */
export type ContentRange =
  | {
      readonly kind: 'satisfied';
      readonly start: number;
      /** Exclusive. */
      readonly end: number;
      /** The object's complete length; undefined for `/*` (unknown). */
      readonly totalBytes: number | undefined;
    }
  | { readonly kind: 'unsatisfied'; readonly totalBytes: number };

/** A single byte range a client asks for (`Range: bytes=...`). */
export type RangeRequest =
  | { readonly kind: 'from-to'; readonly first: number; readonly last: number }
  | { readonly kind: 'from'; readonly first: number }
  | { readonly kind: 'suffix'; readonly length: number };

/** 1 to 15 digits: always a safe integer (10^15 < 2^53). */
const POSITION = '(\\d{1,15})';
const CONTENT_RANGE = new RegExp(
  `^bytes (?:${POSITION}-${POSITION}/(?:${POSITION}|\\*)|\\*/${POSITION})$`,
  'i',
);
const RANGE = new RegExp(`^bytes=[ \\t]*(?:${POSITION}-${POSITION}?|-${POSITION})[ \\t]*$`, 'i');

/**
 * Parses a `Content-Range` value; undefined when it is absent, malformed or inconsistent.
 * Surrounding whitespace is ignored (field values are trimmed, RFC 9110 section 5.5).
 * @example parseContentRange('bytes 0-499/1234') // { kind: 'satisfied', start: 0, end: 500, totalBytes: 1234 }
 */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  if (value === undefined) return undefined;
  const match = CONTENT_RANGE.exec(value.trim());
  if (match === null) return undefined;
  const [, first, last, complete, unsatisfiedComplete] = match;
  if (unsatisfiedComplete !== undefined) {
    return { kind: 'unsatisfied', totalBytes: Number(unsatisfiedComplete) };
  }
  const start = Number(first);
  const lastPosition = Number(last);
  const totalBytes = complete === undefined ? undefined : Number(complete);
  if (lastPosition < start) return undefined;
  if (totalBytes !== undefined && lastPosition >= totalBytes) return undefined;
  return { kind: 'satisfied', start, end: lastPosition + 1, totalBytes };
}

/**
 * Formats a `Content-Range` value; `parseContentRange` reads it back unchanged.
 * @throws RangeError if the positions are not safe non-negative integers or are inconsistent.
 * @example formatContentRange({ kind: 'satisfied', start: 0, end: 500, totalBytes: 1234 }) // 'bytes 0-499/1234'
 */
export function formatContentRange(range: ContentRange): string {
  const check = (name: string, n: number) => {
    if (!Number.isSafeInteger(n) || n < 0 || n >= 1e15) {
      throw new RangeError(`${name}: must be an integer in [0, 10^15), got ${n}`);
    }
  };
  if (range.kind === 'unsatisfied') {
    check('totalBytes', range.totalBytes);
    return `bytes */${range.totalBytes}`;
  }
  check('start', range.start);
  check('end', range.end - 1);
  if (range.end <= range.start) throw new RangeError('end: must be greater than start');
  if (range.totalBytes !== undefined) {
    check('totalBytes', range.totalBytes);
    if (range.end > range.totalBytes) throw new RangeError('end: must not exceed totalBytes');
  }
  return `bytes ${range.start}-${range.end - 1}/${range.totalBytes ?? '*'}`;
}

/**
 * Parses a `Range` value holding exactly one byte range; undefined for anything else (several
 * ranges, other units, bad syntax), which a server may answer with the whole object (RFC 9110
 * section 14.2: a server MAY ignore Range).
 * @example parseRangeRequest('bytes=10-') // { kind: 'from', first: 10 }
 */
export function parseRangeRequest(value: string | undefined): RangeRequest | undefined {
  if (value === undefined) return undefined;
  const match = RANGE.exec(value.trim());
  if (match === null) return undefined;
  const [, first, last, suffix] = match;
  if (suffix !== undefined) return { kind: 'suffix', length: Number(suffix) };
  if (last === undefined) return { kind: 'from', first: Number(first) };
  if (Number(last) < Number(first)) return undefined;
  return { kind: 'from-to', first: Number(first), last: Number(last) };
}

/** Formats a `Range` value; `parseRangeRequest` reads it back unchanged. */
export function formatRangeRequest(range: RangeRequest): string {
  switch (range.kind) {
    case 'from-to':
      return `bytes=${range.first}-${range.last}`;
    case 'from':
      return `bytes=${range.first}-`;
    case 'suffix':
      return `bytes=-${range.length}`;
  }
}

/**
 * Resolves a range request against an object of `totalBytes`: the half-open range to send, or
 * 'unsatisfiable' (answer 416), per RFC 9110 section 14.1.2. A suffix of 0 is unsatisfiable; a
 * last position past the end is clamped.
 */
export function resolveRange(
  range: RangeRequest,
  totalBytes: number,
): { readonly start: number; readonly end: number } | 'unsatisfiable' {
  switch (range.kind) {
    case 'from-to':
      if (range.first >= totalBytes) return 'unsatisfiable';
      return { start: range.first, end: Math.min(range.last + 1, totalBytes) };
    case 'from':
      if (range.first >= totalBytes) return 'unsatisfiable';
      return { start: range.first, end: totalBytes };
    case 'suffix':
      if (range.length === 0 || totalBytes === 0) return 'unsatisfiable';
      return { start: Math.max(0, totalBytes - range.length), end: totalBytes };
  }
}
