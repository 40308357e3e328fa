/**
 * From a probe to a job's plan: whether to pool, how the ranges are pinned, and what that
 * guarantees (the `pinning` that `peapod get`, `--json` and the proxy report).
 *
 * Theory of operation
 * - `planFromProbe` decides, in this order: a `--sha256` that disagrees with a SHA-256 the
 *   origin states refuses the job before any byte is fetched (naming both digests and their
 *   sources); an origin that cannot be pooled (no Range, no size, empty) goes single source;
 *   `--strict` refuses to pool without a strong ETag or a known digest; otherwise the download
 *   is pooled with the probe's pin (origin-pin.ts).
 * - `describePinning` is the report: the level, and one sentence of what it guarantees. A known
 *   digest of the whole object (the user's `--sha256`, or one the origin states) is the strongest
 *   end-to-end guarantee whatever the level, and the sentence says so.
 * - Pure functions of their arguments: the daemon calls them when it plans a job (createJob,
 *   the proxy) and when a job re-plans after the object changed.
 */
import type { ExpectedDigest } from './digest.js';
import { pinStrength, type OriginPin, type PinLevel, type PinStrength } from './origin-pin.js';
import type { OriginDescription } from './origin-probe.js';

/** What `get`, `--json` and the proxy report about how the bytes are tied to one version. */
export interface Pinning {
  /** The pin's level, or `single-source` for one response from the origin (nothing to pin). */
  readonly level: PinLevel | 'single-source';
  /** One sentence: what this level (and a known digest) guarantees about the file. */
  readonly guarantee: string;
}

/** A pooled plan's pin, for the core and the job. */
export interface PooledPlan {
  readonly totalBytes: number;
  /** The encoded pin (origin-pin.ts), the core's `validator`. */
  readonly validator: string;
  readonly pinStrength: PinStrength;
  readonly pinning: Pinning;
}

export type JobPlan =
  | ({ readonly kind: 'pooled' } & PooledPlan)
  | { readonly kind: 'single'; readonly reason: string; readonly pinning: Pinning }
  | { readonly kind: 'refused'; readonly reason: string };

const GUARANTEES: Record<Pinning['level'], string> = {
  'strong-etag':
    "every range was fetched with If-Match on the origin's strong ETag, so all bytes come from one version of the object",
  'last-modified':
    "every range was fetched with If-Unmodified-Since and checked against the origin's Last-Modified date and the object's length; a change within the same second that keeps the length would go unnoticed",
  'weak-etag':
    "every range was checked against the origin's weak ETag and the object's length; a weak ETag promises equivalent, not identical, bytes",
  'length-only':
    "the origin gives no validator, so every range was checked only for the object's total length; a change that keeps the length would go unnoticed",
  'single-source': 'the file is one response from the origin, so it is one version of the object',
};

/** The report for a pin (undefined: single source) and the digests the file is checked against. */
export function describePinning(
  pin: OriginPin | undefined,
  digests: readonly ExpectedDigest[],
): Pinning {
  return pinningOf(
    pin?.level ?? 'single-source',
    digests.map((digest) => digest.source),
  );
}

/** The report for a level and the sources of the digests the file is checked against. */
export function pinningOf(level: Pinning['level'], digestSources: readonly string[]): Pinning {
  const sources = [...new Set(digestSources)];
  const guarantee =
    sources.length === 0
      ? `${GUARANTEES[level]}; no digest of the object is known (pass --sha256 for an end-to-end check)`
      : `${GUARANTEES[level]}; the whole file is also checked against ${sources.join(', ')}, the strongest guarantee that it is exactly that object`;
  return { level, guarantee };
}

/**
 * Plans a job from its probe; see the module comment. `user` holds the user's own digests
 * (`--sha256`); `pool` false is `--no-pool`.
 */
export function planFromProbe(
  probe: OriginDescription,
  user: readonly ExpectedDigest[],
  options: { readonly pool: boolean; readonly strict: boolean },
): JobPlan {
  const conflict = digestConflict(user, probe.digests);
  if (conflict !== undefined) return { kind: 'refused', reason: conflict };
  const digests = [...user, ...probe.digests];
  const reason = options.pool ? probe.reasonNotPoolable : 'pooling turned off (--no-pool)';
  if (reason !== undefined || probe.pin === undefined || probe.totalBytes === undefined) {
    return {
      kind: 'single',
      reason: reason ?? 'the origin cannot be pooled',
      pinning: describePinning(undefined, digests),
    };
  }
  const pin = probe.pin;
  if (options.strict && pin.level !== 'strong-etag' && digests.length === 0) {
    return {
      kind: 'refused',
      reason:
        `--strict: the origin gives no strong ETag (its best validator: ${pin.level}) and no digest of the object (Repr-Digest or x-amz-checksum-sha256), ` +
        'so a pooled download cannot be proven to be one version; pass --sha256 with the expected digest, or drop --strict',
    };
  }
  return {
    kind: 'pooled',
    totalBytes: probe.totalBytes,
    validator: probe.validator ?? '',
    pinStrength: pinStrength(pin),
    pinning: describePinning(pin, digests),
  };
}

/**
 * A sentence when one of the user's SHA-256 digests disagrees with a SHA-256 the origin
 * states (Repr-Digest, x-amz-checksum-sha256); undefined when they agree or one side is silent.
 */
export function digestConflict(
  user: readonly ExpectedDigest[],
  stated: readonly ExpectedDigest[],
): string | undefined {
  for (const mine of user) {
    for (const theirs of stated) {
      if (mine.algorithm !== theirs.algorithm) continue;
      if (Buffer.from(mine.digest).equals(Buffer.from(theirs.digest))) continue;
      return (
        `${mine.source} ${hex(mine.digest)} disagrees with the ${theirs.algorithm} the origin states ` +
        `in ${theirs.source} (${hex(theirs.digest)}), so nothing was downloaded; check the digest you were given, ` +
        "or drop --sha256 to verify against the origin's"
      );
    }
  }
  return undefined;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
