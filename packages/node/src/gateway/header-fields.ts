/**
 * Field-value readers the gateway's caching semantics share (range-plan.ts, preconditions.ts,
 * freshness.ts): HTTP-dates, Cache-Control directives, entity-tag lists and delta-seconds.
 *
 * Theory of operation: every reader takes text straight off the network, in the shape
 * node:http gives it (`req.headers` / `res.headers`: lowercase names, a string, or an array
 * for a repeated field), and never throws. Anything outside the grammar is `undefined`; each
 * caller decides what "invalid" means for its field, in the direction RFC 9111 asks (an invalid
 * Expires is "in the past", an invalid If-Modified-Since is ignored). A repeated singleton
 * field (Date, Expires, Age, Last-Modified...) whose copies differ is read as the list it is,
 * which no singleton grammar accepts, so it is invalid too (RFC 9110 section 5.5; RFC 9111
 * section 4.2.1: "either the first occurrence should be used or the response should be
 * considered stale": we take the stale side).
 */
import { parseEntityTag, type EntityTag } from '../http/entity-tag.js';

/** Header fields as node:http gives them: lowercase names, repeated fields as arrays. */
export type HeaderFields = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The largest delta-seconds a cache must represent (RFC 9111 section 1.2.2). */
export const DELTA_SECONDS_MAX = 2 ** 31;

/**
 * A list-based field's value, the copies of a repeated field joined with ", " (RFC 9110
 * section 5.3); undefined when absent. Non-string values (a caller's mistake) are skipped.
 */
export function fieldValue(headers: HeaderFields, name: string): string | undefined {
  const value: unknown = Object.prototype.hasOwnProperty.call(headers, name)
    ? headers[name]
    : undefined;
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return undefined;
  const copies = value.filter((copy): copy is string => typeof copy === 'string');
  return copies.length === 0 ? undefined : copies.join(', ');
}

/**
 * A singleton field's value, trimmed: repeated identical copies count as one, differing copies
 * come back joined (a list, which the field's own grammar then refuses).
 */
export function singletonValue(headers: HeaderFields, name: string): string | undefined {
  const value: unknown = Object.prototype.hasOwnProperty.call(headers, name)
    ? headers[name]
    : undefined;
  if (typeof value === 'string') return value.trim();
  if (!Array.isArray(value)) return undefined;
  const copies = [
    ...new Set(
      value.filter((copy): copy is string => typeof copy === 'string').map((c) => c.trim()),
    ),
  ];
  return copies.length === 0 ? undefined : copies.join(', ');
}

/** delta-seconds (RFC 9111 section 1.2.2): 1*DIGIT, saturated at 2^31; else undefined. */
export function parseDeltaSeconds(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Math.min(Number(text), DELTA_SECONDS_MAX);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(
  `^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`,
);
/** rfc850-date (obsolete): `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`,
);
/** asctime-date (obsolete): `Sun Nov  6 08:49:37 1994`. */
const ASCTIME_DATE = new RegExp(
  `^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} (\\d{2}| \\d) ${TIME} (\\d{4})$`,
);

/**
 * Parses an HTTP-date (RFC 9110 section 5.6.7) in any of its three formats, surrounding
 * whitespace ignored, to milliseconds since the epoch; undefined for anything else (including
 * a list of dates, or an impossible day such as 30 Feb). Day and month names are
 * case-sensitive, as the grammar says. A two-digit rfc850 year is 20YY below 70 and 19YY from
 * 70: the RFC's "more than 50 years in the future" rule needs a clock this pure reader does
 * not have, and the fixed pivot gives the same answer for every date until 2050.
 * @example parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT') // 784111777000
 */
export function parseHttpDate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  let match = IMF_FIXDATE.exec(value);
  if (match !== null) {
    const [, day, month, year, hour, minute, second] = match;
    return utcMs(year, month, day, hour, minute, second);
  }
  match = RFC850_DATE.exec(value);
  if (match !== null) {
    const [, day, month, year2, hour, minute, second] = match;
    const yy = Number(year2);
    return utcMs(String(yy < 70 ? 2000 + yy : 1900 + yy), month, day, hour, minute, second);
  }
  match = ASCTIME_DATE.exec(value);
  if (match !== null) {
    const [, month, day, hour, minute, second, year] = match;
    return utcMs(year, month, day, hour, minute, second);
  }
  return undefined;
}

function utcMs(
  yearText: string | undefined,
  monthText: string | undefined,
  dayText: string | undefined,
  hourText: string | undefined,
  minuteText: string | undefined,
  secondText: string | undefined,
): number | undefined {
  const year = Number(yearText);
  const month = MONTHS.indexOf(monthText ?? '');
  const day = Number(dayText?.trim());
  const hour = Number(hourText);
  const minute = Number(minuteText);
  const second = Number(secondText); // 60 is a leap second (section 5.6.7): it rolls over.
  if (month < 0 || hour > 23 || minute > 59 || second > 60 || day < 1) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month, day); // setUTCFullYear, not Date.UTC: years below 100 stay.
  if (date.getUTCDate() !== day) return undefined; // 31 Apr, 29 Feb of a common year
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

/** One Cache-Control directive: its argument (unquoted), and whether it was repeated unequal. */
export interface Directive {
  readonly argument: string | undefined;
  readonly conflicting: boolean;
}

/** Parsed Cache-Control directives, by lowercase name. */
export type Directives = ReadonlyMap<string, Directive>;

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const QUOTED_STRING = /"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"/y;
const OWS = /[ \t]*/y;

/**
 * Parses Cache-Control (RFC 9111 section 5.2): `#( token [ "=" ( token / quoted-string ) ] )`,
 * names case-insensitive, arguments in either form (section 5.2: recipients accept both), OWS
 * tolerated around "=". Absent is an empty map; a value outside the grammar is undefined (the
 * callers then take the restrictive reading: not storable, stale).
 * @example parseCacheControl('max-age=60, no-cache="set-cookie"').get('no-cache')?.argument // 'set-cookie'
 */
export function parseCacheControl(text: string | undefined): Directives | undefined {
  const directives = new Map<string, Directive>();
  if (text === undefined) return directives;
  let at = 0;
  const skip = (pattern: RegExp): string | undefined => {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (match === null) return undefined;
    at = pattern.lastIndex;
    return match[1] ?? match[0];
  };
  for (;;) {
    while (skip(OWS) !== undefined && text[at] === ',') at += 1; // empty list elements
    if (at >= text.length) return directives;
    const name = skip(TOKEN)?.toLowerCase();
    if (name === undefined) return undefined;
    skip(OWS);
    let argument: string | undefined;
    if (text[at] === '=') {
      at += 1;
      skip(OWS);
      const quoted = skip(QUOTED_STRING);
      argument = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : skip(TOKEN);
      if (argument === undefined) return undefined;
      skip(OWS);
    }
    if (at < text.length && text[at] !== ',') return undefined;
    const earlier = directives.get(name);
    const conflicting =
      earlier !== undefined && (earlier.conflicting || earlier.argument !== argument);
    directives.set(name, { argument: earlier?.argument ?? argument, conflicting });
  }
}

const LIST_TAG = /(W\/)?"[\x21\x23-\x7e\x80-\xff]*"/y;

/**
 * Parses `If-Match` / `If-None-Match` (RFC 9110 sections 13.1.1 and 13.1.2): `"*"` or a list of
 * entity tags (commas may sit inside a tag, so the list is scanned, not split). Undefined when
 * absent or outside the grammar.
 * @example parseEntityTagList('"a", W/"b"')?.length // 2
 */
export function parseEntityTagList(text: string | undefined): '*' | EntityTag[] | undefined {
  if (text === undefined) return undefined;
  if (text.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  let at = 0;
  for (;;) {
    while (at < text.length && /[ \t,]/.test(text[at] ?? '')) at += 1;
    if (at >= text.length) return tags.length === 0 ? undefined : tags;
    LIST_TAG.lastIndex = at;
    const match = LIST_TAG.exec(text);
    if (match === null) return undefined;
    at = LIST_TAG.lastIndex;
    const tag = parseEntityTag(match[0]);
    if (tag === undefined) return undefined;
    tags.push(tag);
    while (at < text.length && /[ \t]/.test(text[at] ?? '')) at += 1;
    if (at < text.length && text[at] !== ',') return undefined;
  }
}
