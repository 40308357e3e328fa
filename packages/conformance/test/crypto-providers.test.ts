/**
 * Crypto provider conformance (DESIGN.md decision 2: "a test proves both providers give
 * identical bytes").
 *
 * Part 1 runs one known-answer suite against every provider: published vectors from FIPS 180,
 * RFC 8439, the GCM specification, RFC 7748 and RFC 8032, plus the contract's edge cases
 * (low-order X25519 points, malformed input never throwing, caller misuse throwing).
 *
 * Part 2 feeds both providers the same arbitrary inputs (fast-check, which prints the seed and
 * the shrunk counterexample on failure) and requires identical outputs, including for the
 * failure paths: tampered ciphertexts, low-order points, malformed keys and signatures.
 *
 * Part 3 records where the two Ed25519 verifiers are known to disagree: only on signatures
 * crafted with small-order components (the "Taming the many EdDSAs" cases), never on a signature
 * made by an honest signer.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  createNobleCryptoProvider,
  concatBytes,
  fromHex,
  toHex,
  utf8Encode,
  type AeadCipher,
  type CryptoProvider,
} from '@peapod/core';
import { createNodeCryptoProvider } from '@peapod/node';

const noble = createNobleCryptoProvider({
  randomBytes: (length) => {
    const bytes = nodeRandomBytes(length);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  },
});
const node = createNodeCryptoProvider();
const PROVIDERS: readonly CryptoProvider[] = [noble, node];
const CIPHERS: readonly AeadCipher[] = ['ChaChaPoly', 'AESGCM'];

const CRYPTO_RUNS = 1_000;
const HASH_RUNS = 10_000;

function hex(text: string): Uint8Array {
  const bytes = fromHex(text.replace(/\s+/g, ''));
  assert.ok(bytes !== undefined, `bad hex in a test vector: ${text}`);
  return bytes;
}

/** Hex of a result, or "undefined", so that assertion messages show the bytes. */
function show(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? 'undefined' : toHex(bytes);
}

/** A copy of `bytes` with one bit flipped. */
function flipBit(bytes: Uint8Array, bitIndex: number): Uint8Array {
  const copy = bytes.slice();
  copy[bitIndex >> 3]! ^= 1 << (bitIndex & 7);
  return copy;
}

/** Deterministic bytes from a seed (xorshift32), for inputs too big to draw byte by byte. */
function seededBytes(seed: number, length: number): Uint8Array {
  let state = seed | 0 || 0x9e3779b9;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

// ---- Published vectors ----

/** FIPS 180-2 appendix B.1 and B.3, and the empty string. */
const SHA256_VECTORS: readonly { input: Uint8Array; digest: string }[] = [
  {
    input: utf8Encode('abc'),
    digest: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  },
  {
    input: new Uint8Array(0),
    digest: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  },
];
const SHA256_MILLION_A = 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0';

interface AeadVector {
  readonly name: string;
  readonly cipher: AeadCipher;
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly associatedData: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

const AEAD_VECTORS: readonly AeadVector[] = [
  {
    name: 'RFC 8439 section 2.8.2 (AEAD_CHACHA20_POLY1305)',
    cipher: 'ChaChaPoly',
    key: hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
    nonce: hex('070000004041424344454647'),
    associatedData: hex('50515253c0c1c2c3c4c5c6c7'),
    plaintext: utf8Encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
        'future, sunscreen would be it.',
    ),
    ciphertext: hex(`
      d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
      3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
      92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
      3ff4def08e4b7a9de576d26586cec64b6116`),
    tag: hex('1ae10b594f09e26a7e902ecbd0600691'),
  },
  {
    // McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)", test case 16: AES-256,
    // 96-bit IV, 20 bytes of additional data, 60 bytes of plaintext.
    name: 'GCM specification test case 16 (AES-256-GCM with AAD)',
    cipher: 'AESGCM',
    key: hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308'),
    nonce: hex('cafebabefacedbaddecaf888'),
    associatedData: hex('feedfacedeadbeeffeedfacedeadbeefabaddad2'),
    plaintext: hex(`
      d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
      1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39`),
    ciphertext: hex(`
      522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
      8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662`),
    tag: hex('76fc6ece0f4e1768cddf8853bb2d551b'),
  },
];

/** RFC 7748 section 6.1. */
const X25519_ALICE = {
  secretKey: hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  publicKey: hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'),
};
const X25519_BOB = {
  secretKey: hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  publicKey: hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'),
};
const X25519_SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

/** RFC 7748 section 5.2; the second u has its top bit set, which X25519 must ignore. */
const X25519_SCALAR_MULT: readonly { scalar: string; u: string; output: string }[] = [
  {
    scalar: 'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
    u: 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
    output: 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
  },
  {
    scalar: '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
    u: 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
    output: '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
  },
];

/** RFC 8032 section 7.1, TEST 1, 2 and 3. */
const ED25519_VECTORS: readonly {
  name: string;
  seed: string;
  publicKey: string;
  message: string;
  signature: string;
}[] = [
  {
    name: 'TEST 1',
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2',
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3',
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

/**
 * X25519 u-coordinates of small order, on the curve and on its twist: the list libsodium
 * (`has_small_order`) and RFC 7748 section 6.1 implementations reject. Every one of them
 * drives a clamped scalar to the all-zero shared secret. Written as numbers and encoded
 * little-endian here, together with the same values with the ignored top bit set.
 */
const P = 2n ** 255n - 19n;
const LOW_ORDER_U: readonly bigint[] = [
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n, // order 8
  39382357235489614581723060781553021112529911719440698176882885853963445705823n, // order 8
  P - 1n,
  P, // non-canonical 0
  P + 1n, // non-canonical 1
];
function littleEndian32(value: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return out;
}
const LOW_ORDER_POINTS: readonly Uint8Array[] = LOW_ORDER_U.flatMap((u) => [
  littleEndian32(u),
  littleEndian32(u + 2n ** 255n),
]);

// ---- Part 1: known answers, once per provider ----

for (const provider of PROVIDERS) {
  describe(`known answers: ${provider.name}`, () => {
    test('SHA-256: FIPS 180 "abc" and the empty string, one-shot and incremental', () => {
      for (const { input, digest } of SHA256_VECTORS) {
        assert.equal(toHex(provider.sha256(input)), digest);
        const hasher = provider.createSha256();
        hasher.update(input);
        assert.equal(toHex(hasher.digest()), digest);
        const empty = provider.createSha256(); // a hasher that never saw update()
        if (input.length === 0) assert.equal(toHex(empty.digest()), digest);
      }
    });

    test('SHA-256: one million "a" (FIPS 180-2 B.3), incremental in uneven pieces', () => {
      const million = new Uint8Array(1_000_000).fill(0x61);
      const hasher = provider.createSha256();
      let offset = 0;
      for (let piece = 1; offset < million.length; piece = (piece * 7 + 3) % 10_007) {
        hasher.update(million.subarray(offset, offset + piece));
        offset += piece;
      }
      assert.equal(toHex(hasher.digest()), SHA256_MILLION_A);
      assert.equal(toHex(provider.sha256(million)), SHA256_MILLION_A);
    });

    for (const vector of AEAD_VECTORS) {
      test(`AEAD: ${vector.name}`, () => {
        const { cipher, key, nonce, associatedData, plaintext } = vector;
        const sealed = provider.aeadSeal(cipher, key, nonce, associatedData, plaintext);
        assert.equal(toHex(sealed), toHex(vector.ciphertext) + toHex(vector.tag));
        const opened = provider.aeadOpen(cipher, key, nonce, associatedData, sealed);
        assert.equal(show(opened), toHex(plaintext));
        // Any change to ciphertext, tag, nonce or associated data fails authentication.
        for (const bit of [0, 8 * vector.ciphertext.length, 8 * sealed.length - 1]) {
          const tampered = flipBit(sealed, bit);
          assert.equal(provider.aeadOpen(cipher, key, nonce, associatedData, tampered), undefined);
        }
        assert.equal(
          provider.aeadOpen(cipher, key, flipBit(nonce, 0), associatedData, sealed),
          undefined,
        );
        assert.equal(
          provider.aeadOpen(cipher, key, nonce, flipBit(associatedData, 5), sealed),
          undefined,
        );
        const otherCipher: AeadCipher = cipher === 'AESGCM' ? 'ChaChaPoly' : 'AESGCM';
        assert.equal(provider.aeadOpen(otherCipher, key, nonce, associatedData, sealed), undefined);
      });
    }

    test('AEAD: too-short input opens to undefined, an empty plaintext seals to a bare tag', () => {
      const key = new Uint8Array(32).fill(1);
      const nonce = new Uint8Array(12);
      for (const cipher of CIPHERS) {
        for (let length = 0; length < 16; length++) {
          const short = new Uint8Array(length);
          assert.equal(provider.aeadOpen(cipher, key, nonce, new Uint8Array(0), short), undefined);
        }
        const bare = provider.aeadSeal(cipher, key, nonce, new Uint8Array(0), new Uint8Array(0));
        assert.equal(bare.length, 16);
        const opened = provider.aeadOpen(cipher, key, nonce, new Uint8Array(0), bare);
        assert.equal(show(opened), '');
      }
    });

    test('AEAD: a key of the wrong length is caller misuse and throws', () => {
      for (const cipher of CIPHERS) {
        const ok = new Uint8Array(32);
        for (const length of [0, 31, 33]) {
          assert.throws(() =>
            provider.aeadSeal(cipher, new Uint8Array(length), new Uint8Array(12), ok, ok),
          );
        }
      }
    });

    // The contract fixes AEAD keys at 32 bytes and nonces at 12. @noble/ciphers' gcm() alone
    // would accept AES-128/192 keys and other nonce lengths; the noble provider checks them.
    test('AEAD: AES-128/192 keys and nonces that are not 12 bytes are refused too', () => {
      const ok = new Uint8Array(32);
      for (const cipher of CIPHERS) {
        for (const length of [16, 24]) {
          assert.throws(() =>
            provider.aeadSeal(cipher, new Uint8Array(length), new Uint8Array(12), ok, ok),
          );
        }
        for (const length of [0, 8, 11, 13, 16]) {
          assert.throws(() => provider.aeadSeal(cipher, ok, new Uint8Array(length), ok, ok));
        }
      }
    });

    test('X25519: RFC 7748 section 6.1 (Alice and Bob)', () => {
      assert.equal(
        toHex(provider.x25519PublicKey(X25519_ALICE.secretKey)),
        toHex(X25519_ALICE.publicKey),
      );
      assert.equal(
        toHex(provider.x25519PublicKey(X25519_BOB.secretKey)),
        toHex(X25519_BOB.publicKey),
      );
      assert.equal(
        show(provider.x25519(X25519_ALICE.secretKey, X25519_BOB.publicKey)),
        X25519_SHARED,
      );
      assert.equal(
        show(provider.x25519(X25519_BOB.secretKey, X25519_ALICE.publicKey)),
        X25519_SHARED,
      );
    });

    test('X25519: RFC 7748 section 5.2 scalar multiplications (top bit of u ignored)', () => {
      for (const { scalar, u, output } of X25519_SCALAR_MULT) {
        assert.equal(show(provider.x25519(hex(scalar), hex(u))), output);
      }
    });

    test('X25519: every low-order point gives undefined, never an all-zero secret', () => {
      assert.equal(LOW_ORDER_POINTS.length, 14);
      for (const secretKey of [
        X25519_ALICE.secretKey,
        X25519_BOB.secretKey,
        provider.randomBytes(32),
      ]) {
        for (const point of LOW_ORDER_POINTS) {
          assert.equal(provider.x25519(secretKey, point), undefined, toHex(point));
        }
      }
    });

    test('X25519: a remote public key of the wrong length gives undefined', () => {
      for (const length of [0, 31, 33]) {
        assert.equal(
          provider.x25519(X25519_ALICE.secretKey, new Uint8Array(length).fill(9)),
          undefined,
        );
      }
    });

    for (const vector of ED25519_VECTORS) {
      test(`Ed25519: RFC 8032 section 7.1 ${vector.name}`, () => {
        const seed = hex(vector.seed);
        const publicKey = hex(vector.publicKey);
        const message = hex(vector.message);
        assert.equal(toHex(provider.ed25519PublicKey(seed)), vector.publicKey);
        const signature = provider.ed25519Sign(seed, message);
        assert.equal(toHex(signature), vector.signature);
        assert.equal(provider.ed25519Verify(publicKey, message, signature), true);
        // A flipped bit anywhere (R, S, the key or the message) fails verification.
        for (const bit of [0, 255, 256, 511]) {
          assert.equal(provider.ed25519Verify(publicKey, message, flipBit(signature, bit)), false);
        }
        assert.equal(provider.ed25519Verify(flipBit(publicKey, 3), message, signature), false);
        const longer = new Uint8Array([...message, 0]);
        assert.equal(provider.ed25519Verify(publicKey, longer, signature), false);
      });
    }

    test('Ed25519: malformed keys and signatures verify false and never throw', () => {
      const vector = ED25519_VECTORS[1]!;
      const publicKey = hex(vector.publicKey);
      const message = hex(vector.message);
      const signature = hex(vector.signature);
      const cases: [Uint8Array, Uint8Array][] = [
        [publicKey, signature.subarray(0, 63)],
        [publicKey, new Uint8Array([...signature, 0])],
        [publicKey.subarray(0, 31), signature],
        [new Uint8Array(0), new Uint8Array(0)],
        [new Uint8Array(32).fill(0xff), signature], // not a point encoding
        // S + L (non-canonical S) in place of S:
        [
          publicKey,
          new Uint8Array([...signature.subarray(0, 32), ...addOrder(signature.subarray(32))]),
        ],
      ];
      for (const [key, sig] of cases)
        assert.equal(provider.ed25519Verify(key, message, sig), false);
    });

    test('generated key pairs match their public-key functions; randomBytes has the length asked', () => {
      const x = provider.x25519GenerateKeyPair();
      assert.equal(toHex(provider.x25519PublicKey(x.secretKey)), toHex(x.publicKey));
      const ed = provider.ed25519GenerateKeyPair();
      assert.equal(toHex(provider.ed25519PublicKey(ed.secretKey)), toHex(ed.publicKey));
      const message = utf8Encode('generated');
      assert.equal(
        provider.ed25519Verify(ed.publicKey, message, provider.ed25519Sign(ed.secretKey, message)),
        true,
      );
      for (const length of [0, 1, 12, 32, 100])
        assert.equal(provider.randomBytes(length).length, length);
      assert.notEqual(toHex(provider.randomBytes(32)), toHex(provider.randomBytes(32)));
    });
  });
}

/** `s + L` as 32 little-endian bytes: the same scalar, non-canonically encoded. */
function addOrder(s: Uint8Array): Uint8Array {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let value = 0n;
  for (let i = 31; i >= 0; i--) value = (value << 8n) | BigInt(s[i]!);
  return littleEndian32(value + L);
}

// ---- Part 2: the same inputs give the same bytes ----

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const smallBytes = fc.uint8Array({ maxLength: 300 });

describe('equivalence: noble and node:crypto give identical bytes', () => {
  test(`sha256 one-shot (${HASH_RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1_000 }), (data) => {
        assert.equal(toHex(node.sha256(data)), toHex(noble.sha256(data)));
      }),
      { numRuns: HASH_RUNS },
    );
  });

  test(`sha256 incremental with arbitrary splits equals one-shot (${CRYPTO_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2_000 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (data, cuts) => {
          const points = [...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort(
            (a, b) => a - b,
          );
          const digests = PROVIDERS.map((provider) => {
            const hasher = provider.createSha256();
            let previous = 0;
            for (const point of [...points, data.length]) {
              hasher.update(data.subarray(previous, point));
              previous = point;
            }
            return toHex(hasher.digest());
          });
          assert.equal(digests[0], toHex(noble.sha256(data)));
          assert.equal(digests[1], digests[0]);
        },
      ),
      { numRuns: CRYPTO_RUNS },
    );
  });

  for (const cipher of CIPHERS) {
    test(`aeadSeal ${cipher}: identical output, each opens the other's (${CRYPTO_RUNS} runs)`, () => {
      fc.assert(
        fc.property(
          bytes32,
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          fc.uint8Array({ maxLength: 64 }),
          smallBytes,
          (key, nonce, associatedData, plaintext) => {
            const fromNode = node.aeadSeal(cipher, key, nonce, associatedData, plaintext);
            const fromNoble = noble.aeadSeal(cipher, key, nonce, associatedData, plaintext);
            assert.equal(toHex(fromNode), toHex(fromNoble));
            assert.equal(
              show(node.aeadOpen(cipher, key, nonce, associatedData, fromNoble)),
              toHex(plaintext),
            );
            assert.equal(
              show(noble.aeadOpen(cipher, key, nonce, associatedData, fromNode)),
              toHex(plaintext),
            );
          },
        ),
        { numRuns: CRYPTO_RUNS },
      );
    });

    test(`aeadSeal ${cipher}: large plaintexts, up to 70,000 bytes (100 runs)`, () => {
      fc.assert(
        fc.property(bytes32, fc.integer(), fc.nat({ max: 70_000 }), (key, seed, length) => {
          const plaintext = seededBytes(seed, length);
          const nonce = seededBytes(seed + 1, 12);
          const fromNode = node.aeadSeal(cipher, key, nonce, new Uint8Array(0), plaintext);
          const fromNoble = noble.aeadSeal(cipher, key, nonce, new Uint8Array(0), plaintext);
          assert.equal(toHex(fromNode), toHex(fromNoble));
          assert.equal(
            show(noble.aeadOpen(cipher, key, nonce, new Uint8Array(0), fromNode)),
            toHex(plaintext),
          );
        }),
        { numRuns: 100 },
      );
    });

    test(`aeadSealParts ${cipher}: pieces join to aeadSeal of the joined parts, in both providers (${CRYPTO_RUNS} runs)`, () => {
      fc.assert(
        fc.property(
          bytes32,
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          fc.uint8Array({ maxLength: 64 }),
          fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 4 }),
          fc.integer(),
          fc.nat({ max: 65_519 }),
          (key, nonce, associatedData, smallParts, seed, bigLength) => {
            // Small parts of any length (partial blocks, empty parts), then one large part, as a
            // DATA frame is sealed: 13-byte header, then up to 65,506 bytes of payload.
            const parts = [...smallParts, seededBytes(seed, bigLength)];
            const joined = concatBytes(...parts);
            const reference = toHex(noble.aeadSeal(cipher, key, nonce, associatedData, joined));
            for (const provider of PROVIDERS) {
              const pieces = provider.aeadSealParts(cipher, key, nonce, associatedData, parts);
              assert.equal(toHex(concatBytes(...pieces)), reference, provider.name);
            }
          },
        ),
        { numRuns: CRYPTO_RUNS },
      );
    });

    test(`aeadOpen ${cipher}: tampered or truncated bytes open to undefined in both (${CRYPTO_RUNS} runs)`, () => {
      fc.assert(
        fc.property(
          bytes32,
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          fc.uint8Array({ maxLength: 32 }),
          smallBytes,
          fc.nat(),
          fc.nat(),
          (key, nonce, associatedData, plaintext, bitSeed, cutSeed) => {
            const sealed = node.aeadSeal(cipher, key, nonce, associatedData, plaintext);
            const tampered = flipBit(sealed, bitSeed % (sealed.length * 8));
            const truncated = sealed.subarray(0, cutSeed % sealed.length);
            for (const provider of PROVIDERS) {
              assert.equal(
                provider.aeadOpen(cipher, key, nonce, associatedData, tampered),
                undefined,
              );
              assert.equal(
                provider.aeadOpen(cipher, key, nonce, associatedData, truncated),
                undefined,
              );
            }
          },
        ),
        { numRuns: CRYPTO_RUNS },
      );
    });
  }

  test(`x25519PublicKey and x25519 on arbitrary bytes (${CRYPTO_RUNS} runs)`, () => {
    fc.assert(
      fc.property(bytes32, bytes32, bytes32, (secretA, secretB, arbitraryU) => {
        const publicA = node.x25519PublicKey(secretA);
        assert.equal(toHex(publicA), toHex(noble.x25519PublicKey(secretA)));
        const publicB = noble.x25519PublicKey(secretB);
        const shared = node.x25519(secretA, publicB);
        assert.equal(show(shared), show(noble.x25519(secretA, publicB)));
        assert.equal(show(shared), show(noble.x25519(secretB, publicA)), 'Diffie-Hellman agrees');
        // An arbitrary u: on the curve or its twist, possibly non-canonical, possibly with the
        // top bit set. Both reduce it the same way, or both refuse it.
        const fromNode = node.x25519(secretA, arbitraryU);
        assert.equal(show(fromNode), show(noble.x25519(secretA, arbitraryU)));
        const topBitFlipped = flipBit(arbitraryU, 255);
        assert.equal(show(node.x25519(secretA, topBitFlipped)), show(fromNode), 'top bit ignored');
        assert.equal(show(noble.x25519(secretA, topBitFlipped)), show(fromNode), 'top bit ignored');
      }),
      { numRuns: CRYPTO_RUNS },
    );
  });

  test('x25519: low-order points give undefined in both, for many secret keys', () => {
    fc.assert(
      fc.property(bytes32, fc.constantFrom(...LOW_ORDER_POINTS), (secretKey, point) => {
        assert.equal(node.x25519(secretKey, point), undefined);
        assert.equal(noble.x25519(secretKey, point), undefined);
      }),
      { numRuns: 200 },
    );
  });

  test(`ed25519PublicKey, ed25519Sign, ed25519Verify (${CRYPTO_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        bytes32,
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(),
        (seed, message, bitSeed) => {
          const publicKey = node.ed25519PublicKey(seed);
          assert.equal(toHex(publicKey), toHex(noble.ed25519PublicKey(seed)));
          const signature = node.ed25519Sign(seed, message);
          assert.equal(toHex(signature), toHex(noble.ed25519Sign(seed, message)));
          assert.equal(node.ed25519Verify(publicKey, message, signature), true);
          assert.equal(noble.ed25519Verify(publicKey, message, signature), true);
          const forged = flipBit(signature, bitSeed % 512);
          assert.equal(node.ed25519Verify(publicKey, message, forged), false);
          assert.equal(noble.ed25519Verify(publicKey, message, forged), false);
        },
      ),
      { numRuns: CRYPTO_RUNS },
    );
  });

  test(`ed25519Verify on arbitrary keys and signatures: the same verdict (${CRYPTO_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 30, maxLength: 34 }),
        fc.uint8Array({ maxLength: 16 }),
        fc.uint8Array({ minLength: 62, maxLength: 66 }),
        (publicKey, message, signature) => {
          const verdict = node.ed25519Verify(publicKey, message, signature);
          assert.equal(verdict, noble.ed25519Verify(publicKey, message, signature));
        },
      ),
      { numRuns: CRYPTO_RUNS },
    );
  });
});

// ---- Part 3: where Ed25519 verifiers may disagree ----

/**
 * The edge cases of Chalkias, Garillot and Nikolaenko, "Taming the many EdDSAs" (2020), from
 * github.com/novifinancial/ed25519-speccheck cases.json (cases 0-9). Every case is crafted with
 * a small-order point or a non-canonical encoding; no honest signer produces one.
 *
 * OpenSSL (node:crypto) verifies RFC 8032's cofactorless equation and rejects non-canonical
 * encodings; noble defaults to ZIP 215 (cofactored equation, non-canonical encodings accepted).
 * They disagree on cases 4 and 5 (mixed-order key, only the cofactored equation holds) and
 * 9 (non-canonical R). noble's `zip215: false` would not close the gap: it fixes case 9 and opens
 * cases 0 and 1 (small-order keys, which OpenSSL accepts). A peer must therefore not be
 * penalised for forwarding a third party's message that fails verification here but passed on
 * a browser: only the originator's own misbehaviour is evidence (see the report to the lead).
 * The table pins today's behaviour so that any change in either library shows up here.
 */
const SPECCHECK: readonly {
  message: string;
  publicKey: string;
  signature: string;
  node: boolean;
  noble: boolean;
}[] = [
  {
    message: '8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6',
    publicKey: 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    signature:
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000',
    node: true,
    noble: true,
  },
  {
    message: '9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79',
    publicKey: 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    signature:
      'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04',
    node: true,
    noble: true,
  },
  {
    message: 'aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab',
    publicKey: 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43',
    signature:
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e',
    node: true,
    noble: true,
  },
  {
    message: '9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79',
    publicKey: 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d',
    signature:
      '9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009',
    node: true,
    noble: true,
  },
  {
    message: 'e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c',
    publicKey: 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d',
    signature:
      '160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09',
    node: false,
    noble: true,
  },
  {
    message: 'e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c',
    publicKey: 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d',
    signature:
      '21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405',
    node: false,
    noble: true,
  },
  {
    message: '85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40',
    publicKey: '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623',
    signature:
      'e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514',
    node: false,
    noble: false,
  },
  {
    message: '85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40',
    publicKey: '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623',
    signature:
      '8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22',
    node: false,
    noble: false,
  },
  {
    message: 'fdaebc429f4a735932a160da1301080c13280eea8bc280d1b392c6b9e6ba3a5a',
    publicKey: 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43',
    signature:
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f454d370c8d9fc323a41450f8d513eafeb5b0697390c1e505a0d4ddc71f566607',
    node: false,
    noble: false,
  },
  {
    message: '84b698d39be126ff55fe45079e6c8bf64a0d7db6994560b4e96b7021eb39c1a1',
    publicKey: 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43',
    signature:
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f084d5b99c2a9463d9c8bd5026916996984eeec87ddf1d3be329006ace1b37b09',
    node: false,
    noble: true,
  },
];

test('Ed25519 edge cases (ed25519-speccheck 0-9): known verdicts, disagreements pinned', () => {
  SPECCHECK.forEach((vector, index) => {
    const args = [hex(vector.publicKey), hex(vector.message), hex(vector.signature)] as const;
    assert.equal(node.ed25519Verify(...args), vector.node, `case ${index}, node:crypto`);
    assert.equal(noble.ed25519Verify(...args), vector.noble, `case ${index}, noble`);
  });
  const disagreements = SPECCHECK.flatMap((vector, index) =>
    vector.node === vector.noble ? [] : [index],
  );
  assert.deepEqual(disagreements, [4, 5, 9]);
});
