/**
 * Conditional requests for the gateway (RFC 9110 section 13): evaluating a client's
 * preconditions against the object the gateway would serve, and writing the ones the gateway
 * sends upstream to revalidate what it stored.
 *
 * Theory of operation: `evaluatePreconditions` follows section 13.2.2's order exactly
 * (If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since; If-Range is range-plan.ts's
 * job, step 5) and reads the client's text without throwing: an If-Match it cannot parse
 * matches nothing (412), an If-None-Match it cannot parse matches nothing (proceed), an invalid
 * date is ignored (sections 13.1.3 and 13.1.4 say so). `current` describes the selected
 * representation; with `exists: false` its validators are not looked at.
 *
 * Section 13.2.1: a server ignores every precondition when, without them, its answer would not
 * be 2xx or 412. For GET and HEAD of an object that does not exist the answer is 404, so the
 * verdict is 'proceed' and the caller sends its 404. For other methods (a PUT through the
 * gateway) `exists: false` still evaluates, so `If-None-Match: *` guards a create.
 */
import {
  formatEntityTag,
  parseEntityTag,
  strongMatch,
  type EntityTag,
} from '../http/entity-tag.js';
import {
  fieldValue,
  parseEntityTagList,
  parseHttpDate,
  singletonValue,
  type HeaderFields,
} from './header-fields.js';

/** The outcome of section 13.2.2: perform the method, answer 304, or answer 412. */
export type PreconditionVerdict = 'proceed' | 'not-modified' | 'precondition-failed';

/** The representation the request would act on. */
export interface CurrentRepresentation {
  readonly etag?: string | undefined;
  readonly lastModified?: string | undefined;
  readonly exists: boolean;
}

/**
 * Evaluates the request's preconditions in RFC 9110 section 13.2.2 order.
 * @example evaluatePreconditions('GET', { 'if-none-match': '"v1"' }, { etag: '"v1"', exists: true }) // 'not-modified'
 */
export function evaluatePreconditions(
  method: string,
  requestHeaders: HeaderFields,
  current: CurrentRepresentation,
): PreconditionVerdict {
  const safe = method === 'GET' || method === 'HEAD';
  if (safe && !current.exists) return 'proceed'; // section 13.2.1: the answer is a 404
  const etag = current.exists ? parseEntityTag(current.etag) : undefined;
  const modifiedMs = current.exists ? parseHttpDate(current.lastModified) : undefined;
  const ifMatch = fieldValue(requestHeaders, 'if-match');
  if (ifMatch !== undefined) {
    if (!ifMatchHolds(ifMatch, etag, current.exists)) return 'precondition-failed';
  } else {
    const sinceMs = parseHttpDate(singletonValue(requestHeaders, 'if-unmodified-since'));
    if (sinceMs !== undefined && modifiedMs !== undefined && modifiedMs > sinceMs) {
      return 'precondition-failed';
    }
  }
  const ifNoneMatch = fieldValue(requestHeaders, 'if-none-match');
  if (ifNoneMatch !== undefined) {
    if (!ifNoneMatchHolds(ifNoneMatch, etag, current.exists)) {
      return safe ? 'not-modified' : 'precondition-failed';
    }
  } else if (safe) {
    const sinceMs = parseHttpDate(singletonValue(requestHeaders, 'if-modified-since'));
    if (sinceMs !== undefined && modifiedMs !== undefined && modifiedMs <= sinceMs) {
      return 'not-modified';
    }
  }
  return 'proceed';
}

/** Section 13.1.1: `*` holds when a representation exists; a list when one tag matches strongly. */
function ifMatchHolds(value: string, etag: EntityTag | undefined, exists: boolean): boolean {
  const list = parseEntityTagList(value);
  if (list === '*') return exists;
  return list !== undefined && list.some((tag) => strongMatch(tag, etag));
}

/** Section 13.1.2: `*` fails when a representation exists; a list when one tag matches weakly. */
function ifNoneMatchHolds(value: string, etag: EntityTag | undefined, exists: boolean): boolean {
  const list = parseEntityTagList(value);
  if (list === '*') return !exists;
  return list === undefined || !list.some((tag) => weakMatch(tag, etag));
}

/** Weak comparison (section 8.8.3.2): the opaque tags are identical, weak or not. */
function weakMatch(a: EntityTag, b: EntityTag | undefined): boolean {
  return b !== undefined && a.opaqueTag === b.opaqueTag;
}

/**
 * The conditional header fields that revalidate a stored response upstream (RFC 9111 section
 * 4.3.1): If-None-Match with its entity tag (weak ones included: If-None-Match compares weakly)
 * and If-Modified-Since with its Last-Modified, verbatim (RFC 9110 section 13.1.3: a cache
 * uses the stored Last-Modified, so the origin compares its own clock's value). Both are sent
 * when both exist: an origin reads If-None-Match first and ignores the date then. A validator
 * that does not parse is left out; an empty object means "no validator, refetch".
 * @example revalidationHeaders({ etag: '"v1"' }) // { 'if-none-match': '"v1"' }
 */
export function revalidationHeaders(stored: {
  readonly etag?: string | undefined;
  readonly lastModified?: string | undefined;
}): Record<string, string> {
  const headers: Record<string, string> = {};
  const etag = parseEntityTag(stored.etag);
  if (etag !== undefined) headers['if-none-match'] = formatEntityTag(etag);
  const lastModified = stored.lastModified?.trim();
  if (parseHttpDate(lastModified) !== undefined && lastModified !== undefined) {
    headers['if-modified-since'] = lastModified;
  }
  return headers;
}
