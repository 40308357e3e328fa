/**
 * The gateway's HTTP caching semantics, in one import: pure functions, no I/O, no clock.
 *
 * Theory of operation: the gateway (the daemon's HTTP/S3 caching front) asks these functions
 * every protocol question and carries out the answers. A request arrives: `carriesCredentials`
 * and `cacheDecision` say whether a stored copy may answer it or the origin must be asked first
 * (`revalidationHeaders` writes the conditional request); `responseStorable` and
 * `freshnessLifetimeMs` judge what the origin sends back; `evaluatePreconditions` answers the
 * client's conditionals (304/412) against the copy being served; `planRange` and
 * `multipartByteranges` shape a 200, 206 or 416. Each concern lives in its own file:
 * - range-plan.ts: Range, If-Range, multipart/byteranges (RFC 9110 sections 13.1.5, 14);
 * - preconditions.ts: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since
 *   (RFC 9110 section 13), and the revalidation request's conditionals (RFC 9111 section 4.3.1);
 * - freshness.ts: storage, freshness lifetime, age, reuse (RFC 9111 sections 3, 4.2, 5.2);
 * - header-fields.ts: the field grammars they share (HTTP-date, Cache-Control, entity-tag lists).
 * Header inputs are what node:http gives (`req.headers`, `res.headers`): lowercase names,
 * repeated fields as arrays. Nothing here throws on header text; the caller's own mistakes (a
 * negative length, a non-finite clock reading, a bad boundary) throw RangeError.
 */
export {
  planRange,
  ifRangeMatches,
  multipartByteranges,
  RANGE_PARTS_MAX,
  type ByteRange,
  type RangePlan,
  type RangePlanOptions,
  type MultipartPart,
  type MultipartByteranges,
} from './range-plan.js';
export {
  evaluatePreconditions,
  revalidationHeaders,
  type CurrentRepresentation,
  type PreconditionVerdict,
} from './preconditions.js';
export {
  responseStorable,
  carriesCredentials,
  varyFieldNames,
  freshnessLifetimeMs,
  currentAgeMs,
  mustRevalidate,
  mayServeStale,
  cacheDecision,
  storedFreshness,
  freshFor,
  HEURISTIC_LIFETIME_MAX_MS,
  type StoredFreshness,
  type Storability,
  type ResponseTiming,
  type StoredResponse,
} from './freshness.js';
export { parseHttpDate, parseCacheControl, type HeaderFields } from './header-fields.js';
