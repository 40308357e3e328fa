/**
 * The crypto provider: every cryptographic primitive the core uses, injected by the host
 * (DESIGN.md decision 2). The core itself never touches `node:crypto` or `globalThis.crypto`.
 *
 * All operations are synchronous, so the core stays a plain state machine. Two providers exist:
 * - Node: `createNodeCryptoProvider()` in `@peapod/node`, on `node:crypto` (OpenSSL, fastest).
 * - Portable: `createNobleCryptoProvider()` in this package, on `@noble/*` (pure JS, runs in
 *   browsers and in the simulator). It takes `randomBytes` from its host.
 * A test feeds both the same inputs and requires identical outputs.
 *
 * Sizes: SHA-256 digests are 32 bytes; AEAD keys 32 bytes, nonces 12 bytes, tags 16 bytes;
 * X25519 keys 32 bytes; Ed25519 secret keys are the 32-byte seed, public keys 32 bytes,
 * signatures 64 bytes.
 */

/** The two AEAD ciphers Noise defines, named as in Noise protocol names. */
export type AeadCipher = 'ChaChaPoly' | 'AESGCM';

/** An incremental SHA-256: `update` any number of times, then `digest` once. */
export interface Sha256Hasher {
  update(data: Uint8Array): void;
  /** Returns the 32-byte digest. The hasher must not be used afterwards. */
  digest(): Uint8Array;
}

/** A key pair; for Ed25519 `secretKey` is the 32-byte seed. */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

export interface CryptoProvider {
  /** Short name for logs and benchmarks, e.g. "node:crypto" or "noble". */
  readonly name: string;
  /** One-shot SHA-256. */
  sha256(data: Uint8Array): Uint8Array;
  /** A new incremental SHA-256 hasher. */
  createSha256(): Sha256Hasher;
  /**
   * AEAD encryption. Returns ciphertext followed by the 16-byte tag.
   * `nonce` is 12 bytes; the caller guarantees it is never reused with `key`.
   */
  aeadSeal(
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    associatedData: Uint8Array,
    plaintext: Uint8Array,
  ): Uint8Array;
  /**
   * AEAD encryption of the concatenation of `plaintextParts`, without joining them first and
   * without joining ciphertext and tag: returns pieces whose concatenation is exactly
   * `aeadSeal(cipher, key, nonce, associatedData, concat(plaintextParts))`. How many pieces and
   * where they split is the provider's choice (node:crypto returns one piece per non-empty part
   * plus the tag; noble one piece). This is the transport's hot path: a DATA frame is sealed
   * from its 13-byte header and a view of the payload, and the pieces go to the socket as one
   * `writev`, so no byte is copied in JavaScript (see bench/session-aead.ts).
   */
  aeadSealParts(
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    associatedData: Uint8Array,
    plaintextParts: readonly Uint8Array[],
  ): readonly Uint8Array[];
  /**
   * AEAD decryption of ciphertext-plus-tag. Returns `undefined` when authentication fails
   * (never throws for bad input bytes).
   */
  aeadOpen(
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    associatedData: Uint8Array,
    sealed: Uint8Array,
  ): Uint8Array | undefined;
  /** A new X25519 key pair from `randomBytes`. */
  x25519GenerateKeyPair(): KeyPair;
  /** The X25519 public key of a 32-byte secret key. */
  x25519PublicKey(secretKey: Uint8Array): Uint8Array;
  /**
   * X25519 Diffie-Hellman. Returns `undefined` when the result is all zeros (a low-order
   * remote point), which the Noise layer treats as a failed handshake.
   */
  x25519(secretKey: Uint8Array, remotePublicKey: Uint8Array): Uint8Array | undefined;
  /** A new Ed25519 key pair; `secretKey` is the 32-byte seed. */
  ed25519GenerateKeyPair(): KeyPair;
  /** The Ed25519 public key of a 32-byte seed. */
  ed25519PublicKey(secretKey: Uint8Array): Uint8Array;
  /** A 64-byte Ed25519 signature (RFC 8032, deterministic). */
  ed25519Sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array;
  /** Verifies an Ed25519 signature; `false` for any malformed key or signature, never throws. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** Cryptographically secure random bytes. */
  randomBytes(length: number): Uint8Array;
}
