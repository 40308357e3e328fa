/**
 * Chunk verification as DATA frames arrive (DESIGN.md decision 6: no byte reaches an
 * application, a cache or another peer before its chunk verifies; docs/content.md,
 * "Verifying chunks").
 *
 * A `ChunkVerifier` is made per requested chunk with the hash and length the manifest states.
 * The transfer layer passes each DATA payload to `write(offset, bytes)`; the verifier copies
 * the payload into its own buffer and feeds the same bytes to an incremental SHA-256, so the
 * hashing cost is spread over the transfer and `finish` only completes the digest.
 *
 * Safety by shape: the buffer is a private field (`#buffer`, private at run time, not only in
 * TypeScript). The only way out is the `ok: true` branch of `finish()`, reached only when the
 * length and the hash match; a failure result has no `bytes` field at all. Because `write`
 * copies, a caller (or a network stack) that reuses its frame buffer cannot change bytes
 * after they were hashed. After the first failure the verifier drops its buffer and every
 * later call reports that failure. Peer behaviour never causes an exception: wrong offsets,
 * too much data, too little data and wrong bytes are all failure results.
 *
 * Memory: the buffer (exactly the expected length) is allocated at the first non-empty write,
 * so requests queued in a pipeline cost nothing until their data flows.
 */
import { equalBytes } from '../bytes.js';
import type { CryptoProvider, Sha256Hasher } from '../crypto-provider.js';
import { assert, invalidArgument, PeapodError } from '../errors.js';
import { CHUNK_HASH_BYTES, CHUNK_SIZE_BYTES_MAX } from './layout.js';

/** Why a chunk failed verification. */
export type ChunkFailureReason =
  /** All bytes arrived, but their SHA-256 is not the expected hash. */
  | 'checksum-mismatch'
  /** More bytes than expected were written, or fewer had arrived at `finish`. */
  | 'length-mismatch'
  /** A write's offset was not the number of bytes received so far (a gap or an overlap). */
  | 'out-of-order';

/** A verification failure: the chunk is discarded and its sender penalised. */
export interface ChunkFailure {
  readonly ok: false;
  readonly reason: ChunkFailureReason;
  /** A sentence for logs, e.g. "expected 65536 bytes, received 1000". */
  readonly detail: string;
}

/** Result of `ChunkVerifier.write`. `complete` means every expected byte has arrived. */
export type ChunkWriteResult = { readonly ok: true; readonly complete: boolean } | ChunkFailure;

/** Result of `ChunkVerifier.finish`: the verified bytes, or why there are none. */
export type ChunkVerifyResult = { readonly ok: true; readonly bytes: Uint8Array } | ChunkFailure;

/**
 * Verifies one chunk from in-order pieces and releases its bytes only once they match.
 * @example
 * const data = new Uint8Array(100_000).fill(9);
 * const verifier = new ChunkVerifier(crypto, crypto.sha256(data), data.length);
 * verifier.write(0, data.subarray(0, 65_000)).ok; // => true
 * verifier.write(65_000, data.subarray(65_000)).complete; // => true
 * const result = verifier.finish();
 * result.ok && result.bytes.length; // => 100000
 */
export class ChunkVerifier {
  /** The number of bytes the chunk must have. */
  readonly expectedLength: number;
  readonly #crypto: CryptoProvider;
  readonly #expectedHash: Uint8Array;
  #hasher: Sha256Hasher | undefined;
  #buffer: Uint8Array | undefined;
  #receivedBytes = 0;
  #failure: ChunkFailure | undefined;
  #finished = false;

  /**
   * @param expectedHash The chunk's SHA-256 from the manifest (or a verified proof).
   * @param expectedLength The chunk's length, `chunkLength(manifest, index)`.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `expectedHash` is not 32 bytes or
   * `expectedLength` is not an integer in [1, CHUNK_SIZE_BYTES_MAX].
   */
  constructor(crypto: CryptoProvider, expectedHash: Uint8Array, expectedLength: number) {
    if (!(expectedHash instanceof Uint8Array) || expectedHash.length !== CHUNK_HASH_BYTES) {
      invalidArgument('expectedHash', 'must be a 32-byte Uint8Array');
    }
    if (
      !Number.isInteger(expectedLength) ||
      expectedLength < 1 ||
      expectedLength > CHUNK_SIZE_BYTES_MAX
    ) {
      invalidArgument('expectedLength', `${expectedLength} is not in [1, ${CHUNK_SIZE_BYTES_MAX}]`);
    }
    this.#crypto = crypto;
    this.#expectedHash = expectedHash.slice(); // a copy: the caller cannot move the target
    this.expectedLength = expectedLength;
  }

  /** The hash the bytes must have (a copy). */
  get expectedHash(): Uint8Array {
    return this.#expectedHash.slice();
  }

  /** Bytes accepted so far (the offset the next write must have). */
  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  /**
   * Accepts the next piece of the chunk, which must start at `offset === receivedBytes`. The
   * bytes are copied; the caller may reuse its buffer. A failure is final: the buffer is
   * dropped and `finish` will report it.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE after `finish` (a bug in the caller, which
   * must route DATA for a finished request elsewhere).
   */
  write(offset: number, bytes: Uint8Array): ChunkWriteResult {
    this.#assertOpen('write');
    if (this.#failure !== undefined) return this.#failure;
    if (offset !== this.#receivedBytes) {
      return this.#fail(
        'out-of-order',
        `write at offset ${offset}; expected ${this.#receivedBytes}`,
      );
    }
    if (bytes.length > this.expectedLength - this.#receivedBytes) {
      return this.#fail(
        'length-mismatch',
        `${bytes.length} bytes at offset ${offset} pass the chunk length ${this.expectedLength}`,
      );
    }
    if (bytes.length > 0) {
      this.#buffer ??= new Uint8Array(this.expectedLength);
      this.#hasher ??= this.#crypto.createSha256();
      // Copy first, then hash the copy: what is hashed is exactly what `finish` releases.
      const piece = this.#buffer.subarray(offset, offset + bytes.length);
      piece.set(bytes);
      this.#hasher.update(piece);
      this.#receivedBytes += bytes.length;
    }
    return { ok: true, complete: this.#receivedBytes === this.expectedLength };
  }

  /**
   * Ends the chunk. Returns the bytes only when exactly `expectedLength` bytes arrived and
   * their SHA-256 is `expectedHash`; the caller then owns them. The verifier cannot be used
   * afterwards.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE when called twice.
   */
  finish(): ChunkVerifyResult {
    this.#assertOpen('finish');
    this.#finished = true;
    const failure = this.#failure ?? this.#check();
    const buffer = this.#buffer;
    this.#buffer = undefined;
    this.#hasher = undefined;
    if (failure !== undefined) return failure;
    assert(buffer !== undefined, 'ChunkVerifier: verified a chunk without a buffer');
    return { ok: true, bytes: buffer };
  }

  #check(): ChunkFailure | undefined {
    if (this.#receivedBytes !== this.expectedLength) {
      return this.#fail(
        'length-mismatch',
        `expected ${this.expectedLength} bytes, received ${this.#receivedBytes}`,
      );
    }
    const digest = this.#hasher?.digest();
    if (digest === undefined || !equalBytes(digest, this.#expectedHash)) {
      return this.#fail('checksum-mismatch', 'SHA-256 of the received bytes is not the chunk hash');
    }
    return undefined;
  }

  #fail(reason: ChunkFailureReason, detail: string): ChunkFailure {
    this.#failure = { ok: false, reason, detail };
    this.#buffer = undefined;
    this.#hasher = undefined;
    return this.#failure;
  }

  #assertOpen(method: string): void {
    if (this.#finished) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        `ChunkVerifier.${method}: already finished`,
      );
    }
  }
}

/**
 * One-shot check that `bytes` are the chunk with SHA-256 `expectedHash`, e.g. when reading a
 * chunk back from a cache. Never throws; a wrong-length `expectedHash` is simply `false`. The
 * caller must not change `bytes` between this check and their use.
 * @example
 * const chunk = new Uint8Array([1, 2, 3]);
 * verifyChunk(crypto, crypto.sha256(chunk), chunk); // => true
 * verifyChunk(crypto, crypto.sha256(chunk), chunk.subarray(1)); // => false
 */
export function verifyChunk(
  crypto: CryptoProvider,
  expectedHash: Uint8Array,
  bytes: Uint8Array,
): boolean {
  return expectedHash.length === CHUNK_HASH_BYTES && equalBytes(crypto.sha256(bytes), expectedHash);
}
