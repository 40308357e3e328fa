/**
 * Errors for API misuse (STYLE.md section 5, kind 2). Peers that misbehave never cause an
 * exception: they produce data (a reason code). Internal invariants use `assert()`.
 *
 * Callers compare `error.code`, never `instanceof`: a bundle may hold two copies of this package.
 */

/** Stable error codes. Append only; never rename (callers and logs match on them). */
export type PeapodErrorCode =
  | 'PEAPOD_ERR_INVALID_ARGUMENT'
  | 'PEAPOD_ERR_INVALID_STATE'
  | 'PEAPOD_ERR_INVALID_DEVICE_ID'
  | 'PEAPOD_ERR_ASSERTION';

/** The one error base class every PeaPod package throws. */
export class PeapodError extends Error {
  readonly code: PeapodErrorCode;

  constructor(code: PeapodErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PeapodError';
    this.code = code;
  }
}

/**
 * Checks an internal invariant. Left on in production (TigerBeetle, str0m): a broken invariant
 * means a bug in PeaPod, and continuing would risk delivering unverified bytes.
 * @throws PeapodError with code PEAPOD_ERR_ASSERTION when `condition` is false.
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new PeapodError('PEAPOD_ERR_ASSERTION', `invariant broken: ${message}`);
}

/** Throws a PEAPOD_ERR_INVALID_ARGUMENT error naming the argument. */
export function invalidArgument(name: string, problem: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `${name}: ${problem}`);
}
