/**
 * Origin pinning: what ties every byte range of a pooled download to one version of the object
 * (DESIGN.md decision 6). The probe's first response chooses the pin; every later range (this
 * device's own, and each helper's) sends the pin's preconditions and has its response head
 * checked against it before any byte is passed on.
 *
 * Theory of operation
 * - Levels, strongest first, chosen from the strongest validator the probe saw:
 *   - `strong-etag`: `If-Match` and `If-Range` with the ETag (RFC 9110 sections 13.1.1,
 *     13.1.5); a 206's ETag, when it sends one, must match strongly (section 8.8.3.2).
 *   - `last-modified`: `If-Unmodified-Since` with the date (section 13.1.4), and `If-Range`
 *     with it only when the date is a strong validator in the sense of section 8.8.2.2 (the
 *     probe's `Date` is at least one second after it): section 13.1.5 forbids an HTTP-date in
 *     If-Range otherwise. Every 206 must carry the same `Last-Modified`.
 *   - `weak-etag`: nothing is sent (a weak tag must never be sent in If-Match or If-Range,
 *     section 13.1.5); every 206 must carry an ETag that matches weakly (section 8.8.3.2).
 *   - `length-only`: no validator at all; only the object's total length is compared.
 *   Every weaker level compares *every* validator the first response had (weak ETag,
 *   Last-Modified), present or absent, with each 206's, and every pin that knows the object's
 *   total length compares it with each 206's Content-Range complete-length.
 * - Encoding. The core and FETCH_ASSIGN carry the pin as one string (`validator`, at most
 *   `PIN_ENCODED_MAX_BYTES` UTF-8 bytes, docs/protocol.md section 6.9). A strong ETag is carried
 *   bare (`"abc"`), exactly as before pinning had levels, so older peers interoperate; its total
 *   length does not travel with it: this device's own fetches get it from the core (the
 *   `fetch-origin` output's `totalBytes`), a helper's has the strong ETag alone, which already
 *   names one sequence of bytes (RFC 9110 section 8.8.1), and the requester's spot checks. Every
 *   other level is `peapod-pin/1 ` followed by JSON (`{"level","length","etag","lastModified",
 *   "ifRange"}`). An older helper sends that string in `If-Match`, which no current
 *   representation matches: it answers "changed" (412), never a byte of another version.
 * - Strength. Only a strong ETag makes two answers for the same range certainly the same bytes;
 *   the core learns this as `pinStrength` (a spot-check mismatch is then a certain lie).
 * - Nothing here throws on network input: `pinFromResponse`, `decodePin` and `checkPinnedHead`
 *   take arbitrary header values and answer with data.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseContentRange } from './content-range.js';
import { formatEntityTag, parseEntityTag, strongMatch } from './entity-tag.js';

/** How a pooled download's ranges are tied to one version, strongest first. */
export type PinLevel = 'strong-etag' | 'last-modified' | 'weak-etag' | 'length-only';

/** What the core is told: only a strong ETag makes a spot-check mismatch a certain lie. */
export type PinStrength = 'strong' | 'weak';

/** A pin; see the module comment. */
export interface OriginPin {
  readonly level: PinLevel;
  /** The object's total length; undefined only for a bare strong ETag (an older requester). */
  readonly totalBytes: number | undefined;
  /** The ETag as the origin sent it (`"x"` or `W/"x"`), if any. */
  readonly etag: string | undefined;
  /** The Last-Modified value as sent, if any (never with `strong-etag`). */
  readonly lastModified: string | undefined;
  /** `last-modified` only: the date is strong (RFC 9110 8.8.2.2), so If-Range may carry it. */
  readonly ifRange: boolean;
}

/** The result of checking a response head against a pin. */
export type PinCheck = { readonly ok: true } | { readonly ok: false; readonly detail: string };

/** The validator string's limit on the wire (FETCH_ASSIGN `validator`, protocol.md 6.9). */
export const PIN_ENCODED_MAX_BYTES = 256;
/** Prefix of every pin that is not a bare strong ETag. */
const PIN_PREFIX = 'peapod-pin/1 ';
const LEVELS: readonly PinLevel[] = ['strong-etag', 'last-modified', 'weak-etag', 'length-only'];

/**
 * The pin for an object from its first response (a 206 for the first byte): the strongest
 * validator it carries, plus its total length. Validators too long for the wire are left out
 * (the pin is then weaker, never wrong).
 * @example
 * pinFromResponse({ etag: '"v1"' }, 1000).level // 'strong-etag'
 */
export function pinFromResponse(headers: IncomingHttpHeaders, totalBytes: number): OriginPin {
  const etag = parseEntityTag(textValue(headers.etag));
  if (etag !== undefined && !etag.weak) {
    const pin: OriginPin = {
      level: 'strong-etag',
      totalBytes,
      etag: formatEntityTag(etag),
      lastModified: undefined,
      ifRange: false,
    };
    if (fits(pin)) return pin;
  }
  const weakEtag = etag?.weak === true ? formatEntityTag(etag) : undefined;
  const modified = textValue(headers['last-modified']);
  const lastModified = isFieldValue(modified) ? modified : undefined;
  const candidates: OriginPin[] = [];
  if (lastModified !== undefined) {
    const ifRange = isStrongDate(lastModified, textValue(headers.date));
    candidates.push(
      { level: 'last-modified', totalBytes, etag: weakEtag, lastModified, ifRange },
      { level: 'last-modified', totalBytes, etag: undefined, lastModified, ifRange },
    );
  }
  if (weakEtag !== undefined) {
    candidates.push({
      level: 'weak-etag',
      totalBytes,
      etag: weakEtag,
      lastModified: undefined,
      ifRange: false,
    });
  }
  const lengthOnly: OriginPin = {
    level: 'length-only',
    totalBytes,
    etag: undefined,
    lastModified: undefined,
    ifRange: false,
  };
  return candidates.find(fits) ?? lengthOnly;
}

/** The pin as the core and FETCH_ASSIGN carry it; `decodePin` reads it back. */
export function encodePin(pin: OriginPin): string {
  if (pin.level === 'strong-etag' && pin.etag !== undefined) return pin.etag;
  return (
    PIN_PREFIX +
    JSON.stringify({
      level: pin.level,
      length: pin.totalBytes,
      etag: pin.etag,
      lastModified: pin.lastModified,
      ifRange: pin.ifRange,
    })
  );
}

/**
 * Reads a validator string from the core or from a peer's FETCH_ASSIGN: `none` for '' (no pin:
 * an unpinned fetch), `invalid` for anything that is neither a bare ETag nor a well-formed pin.
 */
export function decodePin(
  validator: string,
):
  | { readonly kind: 'none' }
  | { readonly kind: 'pin'; readonly pin: OriginPin }
  | { readonly kind: 'invalid'; readonly detail: string } {
  if (validator === '') return { kind: 'none' };
  const invalid = {
    kind: 'invalid',
    detail: 'the download pin it was given is not one this version understands',
  } as const;
  const bare = parseEntityTag(validator);
  if (bare !== undefined) {
    const etag = formatEntityTag(bare);
    return {
      kind: 'pin',
      pin: {
        level: bare.weak ? 'weak-etag' : 'strong-etag',
        totalBytes: undefined,
        etag,
        lastModified: undefined,
        ifRange: false,
      },
    };
  }
  if (!validator.startsWith(PIN_PREFIX)) return invalid;
  let value: unknown;
  try {
    value = JSON.parse(validator.slice(PIN_PREFIX.length));
  } catch {
    return invalid;
  }
  if (typeof value !== 'object' || value === null) return invalid;
  const fields = value as Record<string, unknown>;
  const level = LEVELS.find((candidate) => candidate === fields.level);
  const length = fields.length;
  const etag = fields.etag === undefined ? undefined : parseEntityTag(asString(fields.etag));
  const lastModified = fields.lastModified;
  if (
    level === undefined ||
    level === 'strong-etag' ||
    !(Number.isSafeInteger(length) && (length as number) >= 0) ||
    (fields.etag !== undefined && (etag === undefined || !etag.weak)) ||
    // A peer wrote it: it becomes a request header only if it is a plain field value.
    (lastModified !== undefined && !isFieldValue(lastModified)) ||
    typeof fields.ifRange !== 'boolean' ||
    (level === 'last-modified') !== (lastModified !== undefined) ||
    (level === 'weak-etag' && etag === undefined)
  ) {
    return invalid;
  }
  return {
    kind: 'pin',
    pin: {
      level,
      totalBytes: length as number,
      etag: etag === undefined ? undefined : formatEntityTag(etag),
      lastModified: lastModified,
      ifRange: level === 'last-modified' && fields.ifRange,
    },
  };
}

/** The preconditions every ranged request under `pin` sends (lower-case field names). */
export function pinRequestHeaders(pin: OriginPin): Record<string, string> {
  switch (pin.level) {
    case 'strong-etag':
      return pin.etag === undefined ? {} : { 'if-match': pin.etag, 'if-range': pin.etag };
    case 'last-modified': {
      if (pin.lastModified === undefined) return {};
      const headers: Record<string, string> = { 'if-unmodified-since': pin.lastModified };
      if (pin.ifRange) headers['if-range'] = pin.lastModified;
      return headers;
    }
    default:
      return {};
  }
}

/** What the core is told about `pin` (see the module comment). */
export function pinStrength(pin: OriginPin): PinStrength {
  return pin.level === 'strong-etag' ? 'strong' : 'weak';
}

/**
 * Checks a 206's head against `pin`: every validator the pin holds must come back the same
 * (a missing one counts as changed, except a strong ETag, which If-Match already checked) and the Content-Range complete-length must be the
 * pin's total length. `ok: false` means the object is no longer the pinned version.
 */
export function checkPinnedHead(pin: OriginPin, headers: IncomingHttpHeaders): PinCheck {
  const sentEtag = textValue(headers.etag);
  if (pin.level === 'strong-etag') {
    // If-Match already held; a 206 without an ETag is accepted, a different one is not.
    if (sentEtag !== undefined && !strongMatch(parseEntityTag(sentEtag), parseEntityTag(pin.etag)))
      return changed(`it sent version ${sentEtag}, not ${pin.etag ?? '(none)'}`);
  } else {
    if (pin.etag !== undefined && !weakMatch(pin.etag, sentEtag))
      return changed(`its ETag is ${sentEtag ?? '(none)'}, it was ${pin.etag}`);
    const sentDate = textValue(headers['last-modified']);
    if (pin.lastModified !== undefined && sentDate !== pin.lastModified)
      return changed(`its Last-Modified is ${sentDate ?? '(none)'}, it was ${pin.lastModified}`);
  }
  if (pin.totalBytes !== undefined) {
    const range = parseContentRange(textValue(headers['content-range']));
    const total = range?.kind === 'satisfied' ? range.totalBytes : undefined;
    if (total !== pin.totalBytes) {
      return changed(
        `its length is ${total === undefined ? 'not stated' : `${total} bytes`}, it was ${pin.totalBytes} bytes`,
      );
    }
  }
  return { ok: true };
}

/** The version a pin names, for a person: `version "abc"`, or `the version with ...`. */
export function describePin(pin: OriginPin): string {
  if (pin.level === 'strong-etag' && pin.etag !== undefined) return `version ${pin.etag}`;
  const parts: string[] = [];
  if (pin.etag !== undefined) parts.push(`ETag ${pin.etag}`);
  if (pin.lastModified !== undefined) parts.push(`Last-Modified ${pin.lastModified}`);
  if (pin.totalBytes !== undefined) parts.push(`${pin.totalBytes} bytes`);
  return `the version with ${parts.join(', ')}`;
}

function changed(detail: string): PinCheck {
  return { ok: false, detail: `the object changed: ${detail}` };
}

/** Weak comparison (RFC 9110 8.8.3.2): the opaque tags are identical; absent never matches. */
function weakMatch(pinned: string, sent: string | undefined): boolean {
  const a = parseEntityTag(pinned);
  const b = parseEntityTag(sent);
  return a !== undefined && b !== undefined && a.opaqueTag === b.opaqueTag;
}

/**
 * RFC 9110 section 8.8.2.2: a Last-Modified date counts as strong for a client when the
 * response that carried it has a Date at least one second later (the same clock made both).
 */
function isStrongDate(lastModified: string, date: string | undefined): boolean {
  if (date === undefined) return false;
  const modifiedMs = Date.parse(lastModified);
  const dateMs = Date.parse(date);
  return Number.isFinite(modifiedMs) && Number.isFinite(dateMs) && dateMs - modifiedMs >= 1000;
}

/** Visible ASCII, spaces and obs-text: never CR, LF or another control character. */
function isFieldValue(value: unknown): value is string {
  return typeof value === 'string' && /^[\x20-\x7e\x80-\xff]*$/.test(value);
}

function fits(pin: OriginPin): boolean {
  return Buffer.byteLength(encodePin(pin), 'utf8') <= PIN_ENCODED_MAX_BYTES;
}

/** A header value as one trimmed string; undefined when absent or repeated. */
function textValue(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value.trim() : undefined;
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
