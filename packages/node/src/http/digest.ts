/**
 * End-to-end verification of a downloaded object against the digests known for it
 * (DESIGN.md decision 6): those the origin states (`Repr-Digest`, `Content-Digest`,
 * `x-amz-checksum-sha256`, a single-part S3 ETag) and one the user gives (`--sha256`).
 *
 * Theory of operation: a `DigestVerifier` is built from a list of `ExpectedDigest`s, fed every
 * delivered byte in order with `update`, and asked once for a `DigestReport` with `finish`. It
 * runs one hash per algorithm that some expectation needs (two sources stating sha-256 share
 * one), so with nothing expected it hashes nothing. Each expectation is then checked on its
 * own: the report lists every check with its source, expected and actual hex, and a sentence
 * for a person. `ok` is true only when every check matched; with no expectation it is true and
 * the message says the object could not be verified end to end. The verifier owns its hash
 * state; the caller owns the bytes (they are hashed, not kept).
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
  private readonly hashes = new Map<DigestAlgorithm, Hash>();
  private bytesHashed = 0;
  private report: DigestReport | undefined;

  /**
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if a digest's length does not fit its
   *   algorithm.
   */
  /** `alsoCompute`: algorithms to hash even when nothing of theirs is expected. */
  constructor(
    private readonly expected: readonly ExpectedDigest[],
    alsoCompute: readonly DigestAlgorithm[] = [],
  ) {
    for (const algorithm of alsoCompute) {
      if (!this.hashes.has(algorithm)) {
        this.hashes.set(algorithm, createHash(NODE_ALGORITHMS[algorithm]));
      }
    }
    for (const { algorithm, digest, source } of expected) {
      if (digest.length !== DIGEST_LENGTHS[algorithm]) {
        throw new PeapodError(
          'PEAPOD_ERR_INVALID_ARGUMENT',
          `expected: the ${algorithm} digest from ${source} must be ${DIGEST_LENGTHS[algorithm]} bytes, got ${digest.length}`,
        );
      }
      if (!this.hashes.has(algorithm)) {
        this.hashes.set(algorithm, createHash(NODE_ALGORITHMS[algorithm]));
      }
    }
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

  /** Checks every expectation; later calls return the same report. */
  finish(): DigestReport {
    if (this.report !== undefined) return this.report;
    const actuals = new Map<DigestAlgorithm, Uint8Array>();
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
      message = `no digest is known for this object, so its ${this.bytesHashed} bytes were not verified end to end (pass --sha256 to check one)`;
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
 * What a download job needs: a `DigestVerifier` over the expected digests, plus the object's
 * SHA-256 always (the summary reports it even when nothing was expected). `restart` gives a
 * fresh one for the same expectations (a repaired file is hashed again from its start).
 */
export class ObjectVerifier {
  private readonly verifier: DigestVerifier;

  constructor(private readonly expected: readonly ExpectedDigest[]) {
    // One SHA-256 pass serves both the summary and any expected sha-256 digests.
    this.verifier = new DigestVerifier(expected, ['sha-256']);
  }

  update(bytes: Uint8Array): void {
    this.verifier.update(bytes);
  }

  restart(): ObjectVerifier {
    return new ObjectVerifier(this.expected);
  }

  /** The report, and the object's SHA-256 in hex. */
  finish(): DigestReport & { readonly sha256Hex: string; readonly verified: readonly string[] } {
    const report = this.verifier.finish();
    return {
      ...report,
      sha256Hex: hex(report.actual.get('sha-256')!),
      verified: report.checks.filter((check) => check.matched).map(describe),
    };
  }
}
