/**
 * Refusals: every way the tracker says no, as data. A handler returns a `Refusal` (code and a
 * sentence that says what to do); the server turns it into `status` and `{error, code}`. The
 * table is the one place statuses are chosen, and docs/tracker-openapi.yaml lists the same codes.
 */
export const REFUSAL_STATUS = {
  'bad-request': 400,
  'bad-json': 400,
  'bad-record': 400,
  unsigned: 401,
  'cluster-token': 401,
  'bad-signature': 401,
  'wrong-key': 403,
  'wrong-address': 403,
  'not-found': 404,
  'not-registered': 404,
  'method-not-allowed': 405,
  replayed: 409,
  'not-newer': 409,
  'too-large': 413,
  'unsupported-media-type': 415,
  'stale-timestamp': 422,
  'future-timestamp': 422,
  'record-refused': 422,
  'rate-limited': 429,
  unavailable: 503,
} as const;

export type RefusalCode = keyof typeof REFUSAL_STATUS;

export interface Refusal {
  readonly code: RefusalCode;
  readonly error: string;
  /** Seconds, for 429. */
  readonly retryAfterSeconds?: number;
}

export function refuse(code: RefusalCode, error: string): Refusal {
  return { code, error };
}

/** A checked value, or why it was refused. */
export type Checked<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly refusal: Refusal };

export function accepted<T>(value: T): Checked<T> {
  return { ok: true, value };
}

export function refused<T>(code: RefusalCode, error: string): Checked<T> {
  return { ok: false, refusal: { code, error } };
}
