/**
 * Shared-cache storage and freshness for the gateway (RFC 9111 sections 3, 4.2 and 5.2): may a
 * response be stored, how long it stays fresh, how old a stored one is, and whether a request
 * can be answered from it or needs the origin first.
 *
 * Theory of operation: pure functions over header fields (header-fields.ts `HeaderFields`) and
 * wall-clock milliseconds the caller passes in; nothing here reads a clock. Header text never
 * makes a function throw; every duration comes back as a finite, non-negative integer of
 * milliseconds. Where a field is invalid or contradicts itself, the reading is the restrictive
 * one (RFC 9111 section 4.2.1: "the most restrictive directive should be honored"): an invalid
 * or repeated-unequal max-age, s-maxage or Expires makes the response stale (section 4.2.1
 * encourages that for invalid freshness information; section 5.3 requires it for an invalid
 * Expires), and a Cache-Control we cannot parse makes a response unstorable and a request
 * revalidate. The one exception is Age, which section 5.1 says to ignore when invalid.
 *
 * Choices, beyond the RFC's MUSTs:
 * - Only a 200 answer to GET is stored as data (206s are assembled from stored data; errors
 *   such as 403, 404 and 5xx are never data).
 * - Any `private`, qualified or not, keeps a response out (a qualified private only forbids
 *   the listed fields, section 5.2.2.7; dropping whole responses is the simple safe side). So
 *   do `Vary: *` (it never matches a later request, section 4.1) and `Set-Cookie` (another
 *   client would receive this client's cookie).
 * - Any `no-cache`, qualified or not, revalidates on every use (section 5.2.2.4 lets a cache
 *   reuse a response without the listed fields; we do not).
 * - A stale response is always revalidated: request `max-stale` is not honoured. A request
 *   `max-age=0` always revalidates (what browsers send on reload), even at age 0.
 * - The heuristic lifetime is 10% of (Date - Last-Modified) (section 4.2.2's "typical
 *   setting"), capped at 24 hours, and only without an explicit expiry.
 * - Credentialed requests (Authorization, Cookie, presigned URLs) always go to the origin
 *   first: the stored copy stands in only after the origin accepted those credentials. That is
 *   stricter than section 3.5, which `responseStorable` implements for Authorization.
 */
import { privateRequestReason } from '../url-content.js';
import {
  fieldValue,
  parseCacheControl,
  parseDeltaSeconds,
  parseHttpDate,
  singletonValue,
  type Directives,
  type HeaderFields,
} from './header-fields.js';

/** The heuristic freshness lifetime's cap. */
export const HEURISTIC_LIFETIME_MAX_MS = 24 * 60 * 60 * 1000;
/** The fraction of (Date - Last-Modified) the heuristic lifetime is (10%, as a ratio). */
const HEURISTIC_FRACTION = { numerator: 1, denominator: 10 } as const;

/** Status codes heuristically cacheable by default (RFC 9110 section 15.1). */
const HEURISTICALLY_CACHEABLE = new Set([
  200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501,
]);

/** Whether a response may be stored, and if not why (a clause for a log line). */
export type Storability =
  { readonly storable: true } | { readonly storable: false; readonly reason: string };

/**
 * Whether a shared cache may store the response to this request as data (RFC 9111 section 3,
 * with section 3.5 for Authorization).
 * @example responseStorable('GET', 200, {}, { 'cache-control': 'private' }) // { storable: false, reason: 'the response is private' }
 */
export function responseStorable(
  method: string,
  status: number,
  requestHeaders: HeaderFields,
  responseHeaders: HeaderFields,
): Storability {
  const no = (reason: string): Storability => ({ storable: false, reason });
  if (method !== 'GET') return no(`the method is ${method}, and only GET responses are stored`);
  if (status !== 200) return no(`the status is ${status}, and only 200 responses are stored`);
  const request = parseCacheControl(fieldValue(requestHeaders, 'cache-control'));
  if (request?.has('no-store')) return no('the request says no-store');
  const response = parseCacheControl(fieldValue(responseHeaders, 'cache-control'));
  if (response === undefined) return no('its Cache-Control cannot be parsed');
  if (response.has('no-store')) return no('the response says no-store');
  if (response.has('private')) return no('the response is private');
  const authorized = fieldValue(requestHeaders, 'authorization') !== undefined;
  const allowed = ['public', 's-maxage', 'must-revalidate'].some((name) => response.has(name));
  if (authorized && !allowed) {
    return no(
      'the request carries Authorization and the response is not public, s-maxage or must-revalidate',
    );
  }
  if (varyFieldNames(responseHeaders) === '*') return no('the response varies on *');
  if (fieldValue(responseHeaders, 'set-cookie') !== undefined)
    return no('the response sets a cookie');
  return { storable: true };
}

/**
 * Why a request is private to its client (credentials in its header fields or its URL), as a
 * clause; undefined when it carries none. url-content.ts `privateRequestReason` decides.
 * @example carriesCredentials('https://b.test/k?X-Amz-Signature=ab', {}) // 'its URL is presigned (X-Amz-Signature)'
 */
export function carriesCredentials(url: string, requestHeaders: HeaderFields): string | undefined {
  const headers: { name: string; value: string }[] = [];
  for (const name of Object.keys(requestHeaders)) {
    const value = fieldValue(requestHeaders, name);
    if (value !== undefined) headers.push({ name, value });
  }
  return privateRequestReason(url, headers);
}

/**
 * The request header fields a stored response's `Vary` names (lowercase), or '*'.
 * @example varyFieldNames({ vary: 'Accept-Encoding, Origin' }) // ['accept-encoding', 'origin']
 */
export function varyFieldNames(responseHeaders: HeaderFields): readonly string[] | '*' {
  const names = (fieldValue(responseHeaders, 'vary') ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
  return names.includes('*') ? '*' : [...new Set(names)];
}

/**
 * The freshness lifetime of a response (RFC 9111 section 4.2.1) for a shared cache:
 * s-maxage, else max-age, else Expires - Date, else the heuristic (section 4.2.2) when the
 * status is heuristically cacheable or the response is public. `responseTimeMs` (wall clock,
 * when the response arrived) stands in for a missing or invalid Date.
 * @example freshnessLifetimeMs({ 'cache-control': 'max-age=60, s-maxage=5' }, 0) // 5000
 */
export function freshnessLifetimeMs(
  responseHeaders: HeaderFields,
  responseTimeMs: number,
  status = 200,
): number {
  checkTime('responseTimeMs', responseTimeMs);
  const directives = parseCacheControl(fieldValue(responseHeaders, 'cache-control'));
  if (directives === undefined) return 0;
  for (const name of ['s-maxage', 'max-age']) {
    const directive = directives.get(name);
    if (directive === undefined) continue;
    const seconds = directive.conflicting ? undefined : parseDeltaSeconds(directive.argument);
    return seconds === undefined ? 0 : seconds * 1000;
  }
  const dateMs = parseHttpDate(singletonValue(responseHeaders, 'date')) ?? responseTimeMs;
  const expires = singletonValue(responseHeaders, 'expires');
  if (expires !== undefined) {
    const expiresMs = parseHttpDate(expires); // invalid (e.g. "0") means already expired
    return expiresMs === undefined ? 0 : Math.max(0, Math.round(expiresMs - dateMs));
  }
  if (!HEURISTICALLY_CACHEABLE.has(status) && !directives.has('public')) return 0;
  const modifiedMs = parseHttpDate(singletonValue(responseHeaders, 'last-modified'));
  if (modifiedMs === undefined || modifiedMs >= dateMs) return 0;
  const heuristic = Math.floor(
    ((dateMs - modifiedMs) * HEURISTIC_FRACTION.numerator) / HEURISTIC_FRACTION.denominator,
  );
  return Math.min(heuristic, HEURISTIC_LIFETIME_MAX_MS);
}

/** When a stored response was fetched, in wall-clock milliseconds. */
export interface ResponseTiming {
  /** When the request that fetched it was sent. */
  readonly requestTimeMs: number;
  /** When its response arrived. */
  readonly responseTimeMs: number;
}

/**
 * The current age of a stored response (RFC 9111 section 4.2.3), each term clamped at 0 so a
 * clock step backwards cannot make it negative. A list-based Age counts by its first member and
 * an invalid one is ignored (section 5.1, both SHOULDs); Date still bounds the age from below.
 * @example currentAgeMs({ age: '10' }, { requestTimeMs: 0, responseTimeMs: 0 }, 5000) // 15000
 */
export function currentAgeMs(
  responseHeaders: HeaderFields,
  timing: ResponseTiming,
  nowMs: number,
): number {
  checkTime('nowMs', nowMs);
  return ageAt(correctedInitialAgeMs(responseHeaders, timing), timing.responseTimeMs, nowMs);
}

/** The corrected initial age (RFC 9111 section 4.2.3), unrounded. */
function correctedInitialAgeMs(responseHeaders: HeaderFields, timing: ResponseTiming): number {
  checkTime('timing.requestTimeMs', timing.requestTimeMs);
  checkTime('timing.responseTimeMs', timing.responseTimeMs);
  const ageValueMs = (parseDeltaSeconds(firstMember(responseHeaders, 'age')) ?? 0) * 1000;
  const dateMs = parseHttpDate(singletonValue(responseHeaders, 'date')) ?? timing.responseTimeMs;
  const apparentAgeMs = Math.max(0, timing.responseTimeMs - dateMs);
  const responseDelayMs = Math.max(0, timing.responseTimeMs - timing.requestTimeMs);
  return Math.max(apparentAgeMs, ageValueMs + responseDelayMs);
}

/** The current age from the corrected initial age and the resident time. */
function ageAt(initialAgeMs: number, responseTimeMs: number, nowMs: number): number {
  return Math.round(initialAgeMs + Math.max(0, nowMs - responseTimeMs));
}

/**
 * Why a stored response must be revalidated before it answers this request, as a clause;
 * undefined when it may be served as is. Request directives (RFC 9111 section 5.2.1): no-cache,
 * max-age, min-fresh, and `Pragma: no-cache` when there is no Cache-Control (section 5.4);
 * response directives (section 5.2.2): no-cache; and staleness, which must-revalidate and
 * proxy-revalidate (section 5.2.2.2, 5.2.2.8) also forbid ignoring.
 * @example mustRevalidate({ 'cache-control': 'no-cache' }, {}, 0, 60000) // 'the request says no-cache'
 */
export function mustRevalidate(
  requestHeaders: HeaderFields,
  responseHeaders: HeaderFields,
  ageMs: number,
  lifetimeMs: number,
): string | undefined {
  const response = parseCacheControl(fieldValue(responseHeaders, 'cache-control'));
  return revalidationReason(requestHeaders, response, ageMs, lifetimeMs);
}

/** mustRevalidate over the stored response's parsed Cache-Control (undefined: unparsable). */
function revalidationReason(
  requestHeaders: HeaderFields,
  response: Directives | undefined,
  ageMs: number,
  lifetimeMs: number,
): string | undefined {
  const requestText = fieldValue(requestHeaders, 'cache-control');
  const request = parseCacheControl(requestText);
  if (request === undefined) return 'the request Cache-Control cannot be parsed';
  if (response === undefined) return 'the response Cache-Control cannot be parsed';
  if (request.has('no-cache')) return 'the request says no-cache';
  if (
    requestText === undefined &&
    /(^|,)\s*no-cache\s*(,|$)/i.test(fieldValue(requestHeaders, 'pragma') ?? '')
  ) {
    return 'the request says Pragma: no-cache';
  }
  const maxAgeMs = secondsMs(request, 'max-age');
  if (maxAgeMs === 0) return 'the request says max-age=0 (or an invalid max-age)';
  if (maxAgeMs !== undefined && ageMs > maxAgeMs) return 'it is older than the request max-age';
  const minFreshMs = secondsMs(request, 'min-fresh');
  if (minFreshMs !== undefined && lifetimeMs - ageMs < minFreshMs) {
    return 'it is not fresh for the request min-fresh';
  }
  if (response.has('no-cache')) return 'the response says no-cache';
  if (ageMs >= lifetimeMs) {
    const directive = ['must-revalidate', 'proxy-revalidate'].find((name) => response.has(name));
    return directive === undefined ? 'it is stale' : `it is stale and says ${directive}`;
  }
  return undefined;
}

/**
 * Whether the gateway may serve this stored response stale when the origin cannot be reached
 * (RFC 9111 section 4.2.4: never against no-cache, must-revalidate, proxy-revalidate or
 * s-maxage; section 5.2.2.2 then calls for a 504).
 */
export function mayServeStale(responseHeaders: HeaderFields): boolean {
  const response = parseCacheControl(fieldValue(responseHeaders, 'cache-control'));
  if (response === undefined) return false;
  return !['no-cache', 'must-revalidate', 'proxy-revalidate', 's-maxage'].some((name) =>
    response.has(name),
  );
}

/** A stored response, as `cacheDecision` needs it. */
export interface StoredResponse extends ResponseTiming {
  readonly headers: HeaderFields;
  /** 200 when left out (the only status stored as data). */
  readonly status?: number;
}

/**
 * Whether a request may be answered from a stored response ('fresh') or needs the origin first
 * ('revalidate'): credentials first (carriesCredentials), then mustRevalidate over the stored
 * response's current age and freshness lifetime. `nowMs` is the wall clock.
 * @example cacheDecision({ url: 'https://b.test/k', headers: {} }, { headers: { 'cache-control': 'max-age=60' }, requestTimeMs: 0, responseTimeMs: 0 }, 1000) // 'fresh'
 */
export function cacheDecision(
  request: { readonly url: string; readonly headers: HeaderFields },
  stored: StoredResponse,
  nowMs: number,
): 'fresh' | 'revalidate' {
  if (carriesCredentials(request.url, request.headers) !== undefined) return 'revalidate';
  return freshFor(request.headers, storedFreshness(stored), nowMs);
}

/** What deciding freshness needs of a stored response: the same for every request. */
export interface StoredFreshness {
  readonly varyStar: boolean;
  readonly lifetimeMs: number;
  /** The corrected initial age (RFC 9111 section 4.2.3), ms, unrounded. */
  readonly initialAgeMs: number;
  readonly responseTimeMs: number;
  /** Its Cache-Control; undefined when it cannot be parsed. */
  readonly directives: Directives | undefined;
}

/** `stored`'s freshness facts, to compute once per stored version (a cache hit reuses them). */
export function storedFreshness(stored: StoredResponse): StoredFreshness {
  return {
    varyStar: varyFieldNames(stored.headers) === '*',
    lifetimeMs: freshnessLifetimeMs(stored.headers, stored.responseTimeMs, stored.status),
    initialAgeMs: correctedInitialAgeMs(stored.headers, stored),
    responseTimeMs: stored.responseTimeMs,
    directives: parseCacheControl(fieldValue(stored.headers, 'cache-control')),
  };
}

/**
 * cacheDecision without the credentials check, for a caller that made it (the gateway decides
 * `credentialed` once per request): may a request with `requestHeaders` be answered from the
 * stored response `facts` describes?
 */
export function freshFor(
  requestHeaders: HeaderFields,
  facts: StoredFreshness,
  nowMs: number,
): 'fresh' | 'revalidate' {
  checkTime('nowMs', nowMs);
  if (facts.varyStar) return 'revalidate';
  const ageMs = ageAt(facts.initialAgeMs, facts.responseTimeMs, nowMs);
  return revalidationReason(requestHeaders, facts.directives, ageMs, facts.lifetimeMs) === undefined
    ? 'fresh'
    : 'revalidate';
}

/** The first member of a field that should be a singleton (RFC 9111 section 5.1 for Age). */
function firstMember(headers: HeaderFields, name: string): string | undefined {
  return fieldValue(headers, name)?.split(',')[0]?.trim();
}

/** A directive's delta-seconds in ms; 0 when present but invalid or repeated unequal. */
function secondsMs(directives: Directives, name: string): number | undefined {
  const directive = directives.get(name);
  if (directive === undefined) return undefined;
  const seconds = directive.conflicting ? undefined : parseDeltaSeconds(directive.argument);
  return (seconds ?? 0) * 1000;
}

function checkTime(name: string, ms: number): void {
  if (!Number.isFinite(ms))
    throw new RangeError(`${name}: must be a finite number of ms, got ${ms}`);
}
