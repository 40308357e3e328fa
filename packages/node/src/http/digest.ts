/**
 * End-to-end verification of a downloaded object against the digests known for it
 * (DESIGN.md decision 6): those the origin states (`Repr-Digest`, `Content-Digest`,
 * `x-amz-checksum-sha256`, a single-part S3 ETag) and one the user gives (`--sha256`).
 *
 * Theory of operation: a `DigestVerifier` is built from a list of `ExpectedDigest`s, fed every
 * delivered byte in order with `update`, and asked once for a `DigestReport` with `finish`. It
 * runs one hash per algorithm that some expectation needs (two sources stating sha-256 share
 * one), so with nothing expected it hashes nothing. An algorithm listed as `given` is not hashed
 * here at all: its value is passed to `finish` by whoever computed it (the core's SHA-256 of
 * what it delivered, BRIEF interface 2). Each expectation is then checked on its own: the
 * report lists every check with its source, expected and actual hex, and a sentence for a
 * person. `ok` is true only when every check matched; with no expectation it is true and the
 * message says the object could not be verified end to end. The verifier owns its hash state
 * (`copy` forks it: a resumed prefix hashed once serves a later read-back); the caller owns the
 * bytes (they are hashed, not kept).
 */
import { createHash, type Hash } from 'node:crypto';
import { PeapodError } from '@peapod/core';

/** Hash algorithms the verifier runs (names as in RFC 9530's registry). */
export type DigestAlgorithm = 'sha-256' | 'sha-512' | 'md5';

/** One digest the object must have, and who said so. */
export interface ExpectedDigest {
  readonly algorithm: DigestAlgorithm;
  readonly digest: Uint8Array;
  /** Where it came from, for a person: 'Repr-Digest', 'S3 ETag', '--sha256', ... */
  readonly source: string;
}

/** The outcome of one expectation. */
export interface DigestCheck extends ExpectedDigest {
  readonly actual: Uint8Array;
  readonly matched: boolean;
}

/** What `finish` reports. */
export interface DigestReport {
  /** True when every check matched (also when there was nothing to check). */
  readonly ok: boolean;
  readonly checks: readonly DigestCheck[];
  readonly bytesHashed: number;
  /** One line for a person: what matched, or what failed and what to do. */
  readonly message: string;
  /** Every digest computed, by algorithm (the expected ones and `alsoCompute`). */
  readonly actual: ReadonlyMap<DigestAlgorithm, Uint8Array>;
}

const NODE_ALGORITHMS: Record<DigestAlgorithm, string> = {
  'sha-256': 'sha256',
  'sha-512': 'sha512',
  md5: 'md5',
};
const DIGEST_LENGTHS: Record<DigestAlgorithm, number> = { 'sha-256': 32, 'sha-512': 64, md5: 16 };

/** Verifies a whole object, fed in order; see the module comment. */
export class DigestVerifier {
  private hashes = new Map<DigestAlgorithm, Hash>();
  private bytesHashed = 0;
  private report: DigestReport | undefined;

  /**
   * `alsoCompute`: algorithms to hash even when nothing of theirs is expected. `given`:
   * algorithms never hashed here; their values come with `finish`.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if a digest's length does not fit its
   *   algorithm.
   */
  constructor(
    private readonly expected: readonly ExpectedDigest[],
    alsoCompute: readonly DigestAlgorithm[] = [],
    private readonly given: readonly DigestAlgorithm[] = [],
  ) {
    for (const { algorithm, digest, source } of expected) {
      if (digest.length !== DIGEST_LENGTHS[algorithm]) {
        throw new PeapodError(
          'PEAPOD_ERR_INVALID_ARGUMENT',
          `expected: the ${algorithm} digest from ${source} must be ${DIGEST_LENGTHS[algorithm]} bytes, got ${digest.length}`,
        );
      }
    }
    for (const algorithm of [...alsoCompute, ...expected.map((digest) => digest.algorithm)]) {
      if (!this.hashes.has(algorithm) && !given.includes(algorithm)) {
        this.hashes.set(algorithm, createHash(NODE_ALGORITHMS[algorithm]));
      }
    }
  }

  /** True when `update` hashes anything (some algorithm is neither given nor unneeded). */
  get hashing(): boolean {
    return this.hashes.size > 0;
  }

  /** A verifier in the same state, fed independently from here on. */
  copy(): DigestVerifier {
    const twin = new DigestVerifier(this.expected, [], this.given);
    twin.hashes = new Map([...this.hashes].map(([algorithm, hash]) => [algorithm, hash.copy()]));
    twin.bytesHashed = this.bytesHashed;
    return twin;
  }

  /**
   * The next delivered bytes, in order.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE after `finish`.
   */
  update(bytes: Uint8Array): void {
    if (this.report !== undefined) {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', 'update: the verifier has finished');
    }
    for (const hash of this.hashes.values()) hash.update(bytes);
    this.bytesHashed += bytes.length;
  }

  /**
   * Checks every expectation; later calls return the same report. `given`: the values of the
   * `given` algorithms, and `byteCount` the object's length when this verifier did not see every
   * byte (default: the bytes hashed).
   */
  finish(
    given: ReadonlyMap<DigestAlgorithm, Uint8Array> = new Map(),
    byteCount = this.bytesHashed,
  ): DigestReport {
    if (this.report !== undefined) return this.report;
    const actuals = new Map<DigestAlgorithm, Uint8Array>();
    for (const algorithm of this.given) {
      const value = given.get(algorithm);
      if (value !== undefined) actuals.set(algorithm, value);
    }
    for (const [algorithm, hash] of this.hashes) {
      actuals.set(algorithm, new Uint8Array(hash.digest()));
    }
    const checks = this.expected.map((expected): DigestCheck => {
      const actual = actuals.get(expected.algorithm) ?? new Uint8Array(0);
      return { ...expected, actual, matched: Buffer.from(actual).equals(expected.digest) };
    });
    const failed = checks.filter((check) => !check.matched);
    let message: string;
    if (checks.length === 0) {
      message = `no digest is known for this object, so its ${byteCount} bytes were not verified end to end (pass --sha256 to check one)`;
    } else if (failed.length === 0) {
      message = `verified end to end: ${checks.map(describe).join(', ')}`;
    } else {
      const details = failed.map(
        (check) => `${describe(check)} expected ${hex(check.digest)}, got ${hex(check.actual)}`,
      );
      message = `digest mismatch: ${details.join('; ')}. The downloaded bytes are not the object the origin describes: discard them and download again`;
    }
    this.report = {
      ok: failed.length === 0,
      checks,
      bytesHashed: this.bytesHashed,
      message,
      actual: actuals,
    };
    return this.report;
  }
}

/**
 * Reads a user-given SHA-256 (`--sha256`): 64 hex digits, case-insensitive, with an optional
 * `sha256:` prefix as in OCI digests.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT with a sentence naming the problem.
 * @example userSha256('sha256:' + 'ab'.repeat(32)).source // '--sha256'
 */
export function userSha256(text: string): ExpectedDigest {
  const hexText = text.trim().replace(/^sha256:/i, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hexText)) {
    throw new PeapodError(
      'PEAPOD_ERR_INVALID_ARGUMENT',
      `--sha256: expected 64 hex digits, got ${JSON.stringify(text)}`,
    );
  }
  return {
    algorithm: 'sha-256',
    digest: new Uint8Array(Buffer.from(hexText, 'hex')),
    source: '--sha256',
  };
}

function describe(check: ExpectedDigest): string {
  return `${check.algorithm} (${check.source})`;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/**
 * Who computes an object's SHA-256: `core` when the core delivered every byte from offset 0 and
 * reports it in `download:complete.sha256` (it is then never hashed again here), `host` for what
 * the core did not see whole (a single-source download, a resume: its prefix came from disk).
 */
export type Sha256By = 'core' | 'host';

/**
 * What a download job needs: a `DigestVerifier` over the expected digests, plus the object's
 * SHA-256 always (the summary reports it even when nothing was expected), hashed here or given
 * by the core (`sha256By`). `copy` forks one (the state after a resumed prefix serves a
 * read-back after a repair).
 */
export class ObjectVerifier {
  private constructor(
    readonly expected: readonly ExpectedDigest[],
    readonly sha256By: Sha256By,
    private readonly verifier: DigestVerifier,
  ) {}

  static create(expected: readonly ExpectedDigest[], sha256By: Sha256By): ObjectVerifier {
    const verifier =
      sha256By === 'host'
        ? new DigestVerifier(expected, ['sha-256']) // one pass: the summary and any expected
        : new DigestVerifier(expected, [], ['sha-256']);
    return new ObjectVerifier(expected, sha256By, verifier);
  }

  /** True when `update` hashes anything (a core-hashed object with only SHA-256 expected: no). */
  get hashing(): boolean {
    return this.verifier.hashing;
  }

  update(bytes: Uint8Array): void {
    this.verifier.update(bytes);
  }

  /** The same state, fed independently from here on. */
  copy(): ObjectVerifier {
    return new ObjectVerifier(this.expected, this.sha256By, this.verifier.copy());
  }

  /**
   * The report, and the object's SHA-256 in hex. `sha256`: the core's (required when
   * `sha256By` is `core`); `byteCount`: the object's length.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE when the core's SHA-256 is missing.
   */
  finish(
    sha256?: Uint8Array,
    byteCount?: number,
  ): DigestReport & { readonly sha256Hex: string; readonly verified: readonly string[] } {
    if (this.sha256By === 'core' && sha256 === undefined) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        'the core reported no SHA-256 for a download it delivered whole',
      );
    }
    const given = new Map<DigestAlgorithm, Uint8Array>(
      this.sha256By === 'core' ? [['sha-256', sha256!]] : [],
    );
    const report = this.verifier.finish(given, byteCount);
    return {
      ...report,
      sha256Hex: hex(report.actual.get('sha-256')!),
      verified: report.checks.filter((check) => check.matched).map(describe),
    };
  }
}
