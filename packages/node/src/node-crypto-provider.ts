/**
 * The Node crypto provider: pea-core's `CryptoProvider` (DESIGN.md decision 2) on `node:crypto`,
 * that is on OpenSSL with its assembly (SHA-NI, AES-NI, AVX2). It is the provider on the hot path
 * of every Node peer link, so it is written for low per-call overhead; the portable `@noble/*`
 * provider in pea-core is the reference it must match byte for byte
 * (packages/conformance/test/crypto-providers.test.ts proves that).
 *
 * Theory of operation
 * - Inputs are `Uint8Array`s owned by the caller; the provider never keeps or mutates them.
 *   Outputs are fresh plain `Uint8Array`s over memory nobody else holds. Node returns `Buffer`s,
 *   and a `Buffer` is a `Uint8Array` with different semantics (`slice()` makes a view, not a copy;
 *   `deepStrictEqual` treats it as a different type), so every output is re-wrapped as a plain
 *   `Uint8Array` view of the same memory: one small object, no copy. A small output may sit in
 *   Node's shared 8 KiB allocation pool, so readers must honour `byteOffset`/`byteLength` (as
 *   every correct `Uint8Array` consumer already does) and must not transfer its `.buffer`.
 * - SHA-256: `crypto.hash()` for one-shot digests (no `Hash` object: measured 1.15 us vs 1.8 us
 *   for 64-byte inputs, and Merkle trees hash many small inputs), `createHash()` for incremental
 *   hashing.
 * - AEAD: `createCipheriv`/`createDecipheriv` with a 16-byte tag. Node cannot encrypt into a
 *   caller-supplied buffer, so `aeadSeal` costs Node's own output buffer plus exactly one copy
 *   into an unzeroed buffer of the final length, to append the tag (`appendTag`, which also
 *   dodges a memmove cliff). `aeadSealParts`, the transport's path, copies nothing: it feeds each
 *   plaintext part to one `update` and returns Node's outputs and the tag as they are (measured
 *   with bench/session-aead.ts: the copy cost 15% of ChaCha20-Poly1305 and 20% of AES-256-GCM
 *   throughput at 64 KiB). Opening never copies. `aeadOpen` returns `undefined` for too-short input or a
 *   failed tag check; it never throws on bad bytes (a peer's bytes are data, STYLE.md section 5).
 * - Malloc note: at 64 KiB per record, throughput also depends on glibc handing freed memory
 *   back to the kernel and faulting it in again (page faults and page clearing were ~20% of a
 *   sealing profile). Sealing 64 KiB varied between ~500 and ~1100 MB/s from run to run by heap
 *   layout alone; with `GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:
 *   glibc.malloc.top_pad=67108864:glibc.malloc.mmap_threshold=33554432` in the daemon's
 *   environment it held at 1100-1450 MB/s. That is the host launcher's business, not this file's.
 * - X25519 and Ed25519: OpenSSL wants `KeyObject`s, the core has raw 32-byte keys. Keys are
 *   imported as JWK (`{ kty: 'OKP', crv, d | x }`): Node builds those straight from the raw bytes,
 *   measured 10x faster than the DER (PKCS8/SPKI) route, which goes through OpenSSL 3's generic
 *   decoder (~50 us vs ~650 us per Ed25519 private key on this machine). Raw public keys come back
 *   out through a JWK export.
 * - Secret-key cache: importing a private key computes its public key (a scalar multiplication),
 *   which doubles the cost of `ed25519Sign` (measured 43 us signed with a cached key, 87 us
 *   without). The device key signs every gossip message, and a Noise handshake uses each X25519
 *   secret twice, so private `KeyObject`s are cached in a `WeakMap` keyed by the caller's
 *   `Uint8Array` object, together with a copy of the bytes they were built from. A hit is used
 *   only if the array still holds those bytes, so a caller that rewrites a key in place gets a
 *   fresh import, never a stale key; an entry lives as long as the caller's array. Public keys
 *   are not cached: their import is cheap (~10 us) and they usually arrive as fresh subarrays of
 *   a received message, which an identity-keyed cache could never hit. AEAD keys are not cached
 *   either: passing a `KeyObject` instead of raw bytes to `createCipheriv` made no measurable
 *   difference.
 * - Low-order X25519 points: OpenSSL fails the exchange when the shared secret is all zeros
 *   (RFC 7748 section 6.1), Node throws, and the provider returns `undefined`, as the contract
 *   asks. The output is also checked for zeros here, so the contract holds on any OpenSSL.
 * - Caller misuse (a key or nonce of the wrong length) throws `PeapodError`
 *   `PEAPOD_ERR_INVALID_ARGUMENT` naming the argument (STYLE.md section 5, kind 2); anything
 *   that came from a peer (a remote public key, a signature, sealed bytes) never throws.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hash,
  randomBytes as nodeRandomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  type CipherChaCha20Poly1305,
  type CipherGCM,
  type DecipherChaCha20Poly1305,
  type DecipherGCM,
  type KeyObject,
} from 'node:crypto';
import {
  PeapodError,
  type AeadCipher,
  type CryptoProvider,
  type KeyPair,
  type Sha256Hasher,
} from '@peapod/core';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SIGNATURE_BYTES = 64;
const AEAD_OPTIONS = { authTagLength: TAG_BYTES } as const;

type Curve = 'X25519' | 'Ed25519';

// One branch per cipher rather than a name table: node's typings give the AEAD-specific methods
// (setAAD, getAuthTag) only to calls with a literal cipher name.
function createSealer(
  cipher: AeadCipher,
  key: Uint8Array,
  nonce: Uint8Array,
): CipherGCM | CipherChaCha20Poly1305 {
  return cipher === 'AESGCM'
    ? createCipheriv('aes-256-gcm', key, nonce, AEAD_OPTIONS)
    : createCipheriv('chacha20-poly1305', key, nonce, AEAD_OPTIONS);
}

function createOpener(
  cipher: AeadCipher,
  key: Uint8Array,
  nonce: Uint8Array,
): DecipherGCM | DecipherChaCha20Poly1305 {
  return cipher === 'AESGCM'
    ? createDecipheriv('aes-256-gcm', key, nonce, AEAD_OPTIONS)
    : createDecipheriv('chacha20-poly1305', key, nonce, AEAD_OPTIONS);
}

/** A plain `Uint8Array` over the same memory as `buffer` (see the header: no copy). */
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/**
 * Copies are made in pieces of this many bytes. glibc's memmove switches to `rep movsb` at 4 KiB
 * (AVX2), and on AMD Zen `rep movsb` collapses when destination and source sit 1-63 bytes apart
 * modulo the 4 KiB page (glibc bug 30994, fixed in 2.39; Debian 12 ships 2.36). Two malloc'd
 * 64 KiB buffers often sit exactly 16 bytes apart that way. Measured on this machine kind: one
 * 64 KiB `set()` at such offsets runs at 1.6-3 GB/s, in 2 KiB pieces at 20 GB/s; sealing 64 KiB
 * went from ~930 to ~1130 MB/s (ChaCha20-Poly1305) and from ~1140 to ~1400 MB/s (AES-256-GCM),
 * A/B over 5 runs each with a stable heap (see the malloc note in the header). Where memmove has
 * no such cliff the pieces cost about 1.5 us per 64 KiB.
 */
const COPY_PIECE_BYTES = 2048;

/**
 * `ciphertext || tag` as one new plain `Uint8Array`: one allocation, one copy (Node cannot
 * encrypt into a caller-supplied buffer, so this copy is the least sealing can cost).
 */
function appendTag(ciphertext: Buffer, tag: Buffer): Uint8Array {
  const length = ciphertext.length;
  // allocUnsafe: no zero fill, and small outputs come from Node's pool (see the header).
  const out = plain(Buffer.allocUnsafe(length + TAG_BYTES));
  if (length <= COPY_PIECE_BYTES) {
    out.set(ciphertext);
  } else {
    const source = plain(ciphertext);
    for (let offset = 0; offset < length; offset += COPY_PIECE_BYTES) {
      out.set(source.subarray(offset, offset + COPY_PIECE_BYTES), offset);
    }
  }
  out.set(tag, length);
  return out;
}

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

function requireLength(name: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array)) {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `${name}: must be a Uint8Array`);
  }
  if (bytes.length !== length) {
    throw new PeapodError(
      'PEAPOD_ERR_INVALID_ARGUMENT',
      `${name}: must be ${length} bytes, got ${bytes.length}`,
    );
  }
}

function importPublicKey(curve: Curve, publicKey: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: curve, x: toBase64Url(publicKey) },
    format: 'jwk',
  });
}

function exportRawPublicKey(privateKey: KeyObject): Uint8Array {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  // `x` is always present for an OKP public key; a missing one is a Node bug worth a loud error.
  if (typeof jwk.x !== 'string') throw new Error('node:crypto exported an OKP key without x');
  return plain(Buffer.from(jwk.x, 'base64url'));
}

interface CachedPrivateKey {
  readonly bytes: Uint8Array;
  readonly key: KeyObject;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Imports private keys of one curve, through the cache described in the header when enabled. */
class PrivateKeys {
  private readonly cache: WeakMap<Uint8Array, CachedPrivateKey> | undefined;
  /** Imports so far (cache misses, or every call without the cache). */
  imports = 0;

  constructor(
    private readonly curve: Curve,
    cached: boolean,
  ) {
    this.cache = cached ? new WeakMap() : undefined;
  }

  /** The `KeyObject` of a 32-byte secret key. */
  get(secretKey: Uint8Array): KeyObject {
    requireLength('secretKey', secretKey, KEY_BYTES);
    const cached = this.cache?.get(secretKey);
    if (cached !== undefined && sameBytes(cached.bytes, secretKey)) return cached.key;
    // Node requires `x` in an OKP JWK but ignores it for private keys: it derives the public key
    // from `d` itself. The empty string satisfies the check without a second scalar multiplication.
    const key = createPrivateKey({
      key: { kty: 'OKP', crv: this.curve, d: toBase64Url(secretKey), x: '' },
      format: 'jwk',
    });
    this.imports++;
    this.cache?.set(secretKey, { bytes: secretKey.slice(), key });
    return key;
  }
}

/** Options for {@link createNodeCryptoProvider}; every field is optional. */
export interface NodeCryptoProviderOptions {
  /**
   * Cache private `KeyObject`s per secret-key array (default `true`, see the module header). Turn
   * it off to measure the cache, or where no copy of a secret key may outlive the caller's array.
   */
  readonly cachePrivateKeys?: boolean;
}

/** The node:crypto provider, plus a counter its tests and benchmarks read. */
export interface NodeCryptoProvider extends CryptoProvider {
  /** How many private keys were imported into OpenSSL so far, per curve (cache misses). */
  privateKeyImports(): { readonly x25519: number; readonly ed25519: number };
}

/**
 * Creates the `node:crypto` provider, the fastest provider on Node (DESIGN.md decision 2 measured
 * SHA-256 at ~1.7 GB/s and AEAD at ~1.0 GB/s on this machine kind).
 *
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT from `aeadSeal`/`aeadOpen` for a key that is
 *   not 32 bytes or a nonce that is not 12, and from the X25519/Ed25519 functions for a secret key
 *   that is not 32 bytes. Bytes that come from a peer never make it throw: `aeadOpen` returns
 *   `undefined`, `x25519` returns `undefined`, `ed25519Verify` returns `false`.
 * @example
 * const crypto = createNodeCryptoProvider();
 * const key = crypto.randomBytes(32);
 * const nonce = new Uint8Array(12);
 * const sealed = crypto.aeadSeal('ChaChaPoly', key, nonce, new Uint8Array(), utf8Encode('hi'));
 * sealed.length; // => 18 (2 bytes of ciphertext, then the 16-byte tag)
 * utf8Decode(crypto.aeadOpen('ChaChaPoly', key, nonce, new Uint8Array(), sealed)!); // => 'hi'
 */
export function createNodeCryptoProvider(
  options: NodeCryptoProviderOptions = {},
): NodeCryptoProvider {
  const cached = options.cachePrivateKeys ?? true;
  const x25519Keys = new PrivateKeys('X25519', cached);
  const ed25519Keys = new PrivateKeys('Ed25519', cached);
  const randomBytes = (length: number): Uint8Array => plain(nodeRandomBytes(length));

  return {
    name: 'node:crypto',

    sha256: (data) => plain(hash('sha256', data, 'buffer')),

    createSha256(): Sha256Hasher {
      const hasher = createHash('sha256');
      return {
        update(data) {
          hasher.update(data);
        },
        digest: () => plain(hasher.digest()),
      };
    },

    aeadSeal(cipher, key, nonce, associatedData, plaintext) {
      requireLength('key', key, KEY_BYTES);
      requireLength('nonce', nonce, NONCE_BYTES);
      const sealer = createSealer(cipher, key, nonce);
      sealer.setAAD(associatedData, { plaintextLength: plaintext.length });
      const ciphertext = sealer.update(plaintext);
      sealer.final(); // both ciphers are stream modes: final() emits no bytes, it makes the tag
      return appendTag(ciphertext, sealer.getAuthTag());
    },

    aeadSealParts(cipher, key, nonce, associatedData, plaintextParts) {
      requireLength('key', key, KEY_BYTES);
      requireLength('nonce', nonce, NONCE_BYTES);
      let plaintextLength = 0;
      for (const part of plaintextParts) plaintextLength += part.length;
      const sealer = createSealer(cipher, key, nonce);
      sealer.setAAD(associatedData, { plaintextLength });
      const pieces: Uint8Array[] = [];
      // One update per part: OpenSSL carries a partial block (and the Poly1305/GHASH state) from
      // one call to the next, so the output is the same as one update over the joined parts.
      for (const part of plaintextParts)
        if (part.length > 0) pieces.push(plain(sealer.update(part)));
      sealer.final(); // stream modes: no bytes, only the tag
      pieces.push(plain(sealer.getAuthTag()));
      return pieces;
    },

    aeadOpen(cipher, key, nonce, associatedData, sealed) {
      requireLength('key', key, KEY_BYTES);
      requireLength('nonce', nonce, NONCE_BYTES);
      if (!(sealed instanceof Uint8Array) || sealed.length < TAG_BYTES) return undefined;
      const ciphertextLength = sealed.length - TAG_BYTES;
      const opener = createOpener(cipher, key, nonce);
      opener.setAuthTag(sealed.subarray(ciphertextLength));
      opener.setAAD(associatedData, { plaintextLength: ciphertextLength });
      const plaintext = opener.update(sealed.subarray(0, ciphertextLength));
      try {
        opener.final(); // throws when the tag does not verify
      } catch {
        return undefined;
      }
      return plain(plaintext);
    },

    x25519GenerateKeyPair(): KeyPair {
      const secretKey = randomBytes(KEY_BYTES);
      return { secretKey, publicKey: exportRawPublicKey(x25519Keys.get(secretKey)) };
    },

    x25519PublicKey: (secretKey) => exportRawPublicKey(x25519Keys.get(secretKey)),

    x25519(secretKey, remotePublicKey) {
      const privateKey = x25519Keys.get(secretKey);
      if (!(remotePublicKey instanceof Uint8Array) || remotePublicKey.length !== KEY_BYTES) {
        return undefined;
      }
      let shared: Buffer;
      try {
        const publicKey = importPublicKey('X25519', remotePublicKey);
        shared = diffieHellman({ privateKey, publicKey });
      } catch {
        return undefined; // OpenSSL refuses an all-zero result: a low-order remote point
      }
      let bits = 0;
      for (const byte of shared) bits |= byte;
      return bits === 0 ? undefined : plain(shared);
    },

    ed25519GenerateKeyPair(): KeyPair {
      const secretKey = randomBytes(KEY_BYTES);
      return { secretKey, publicKey: exportRawPublicKey(ed25519Keys.get(secretKey)) };
    },

    ed25519PublicKey: (secretKey) => exportRawPublicKey(ed25519Keys.get(secretKey)),

    ed25519Sign: (secretKey, message) => plain(nodeSign(null, message, ed25519Keys.get(secretKey))),

    ed25519Verify(publicKey, message, signature) {
      if (
        !(publicKey instanceof Uint8Array) ||
        !(signature instanceof Uint8Array) ||
        publicKey.length !== KEY_BYTES ||
        signature.length !== SIGNATURE_BYTES
      ) {
        return false;
      }
      try {
        return nodeVerify(null, message, importPublicKey('Ed25519', publicKey), signature);
      } catch {
        return false;
      }
    },

    randomBytes,

    privateKeyImports: () => ({ x25519: x25519Keys.imports, ed25519: ed25519Keys.imports }),
  };
}
