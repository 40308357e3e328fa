/**
 * Node-only behaviour of the node:crypto provider: what it returns (plain Uint8Array views, never
 * Buffers, never aliasing each other or the inputs), the private-key cache, and caller misuse.
 * Known answers and equivalence with the noble provider live in
 * packages/conformance/test/crypto-providers.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex, utf8Decode, utf8Encode, type AeadCipher } from '@peapod/core';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';

const CIPHERS: readonly AeadCipher[] = ['ChaChaPoly', 'AESGCM'];

/** A plain Uint8Array (not a Buffer) whose view into its ArrayBuffer is consistent. */
function assertPlainView(bytes: Uint8Array, length: number, what: string): void {
  assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype, `${what} is a plain Uint8Array`);
  assert.equal(bytes.length, length, `${what} length`);
  assert.equal(bytes.byteLength, length, `${what} byteLength`);
  assert.ok(bytes.byteOffset + bytes.byteLength <= bytes.buffer.byteLength, `${what} in bounds`);
  const again = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(toHex(again), toHex(bytes), `${what} re-viewed through its buffer`);
}

test('TSDoc example of createNodeCryptoProvider', () => {
  const crypto = createNodeCryptoProvider();
  const key = crypto.randomBytes(32);
  const nonce = new Uint8Array(12);
  const sealed = crypto.aeadSeal('ChaChaPoly', key, nonce, new Uint8Array(), utf8Encode('hi'));
  assert.equal(sealed.length, 18);
  assert.equal(
    utf8Decode(crypto.aeadOpen('ChaChaPoly', key, nonce, new Uint8Array(), sealed)!),
    'hi',
  );
});

test('every output is a plain Uint8Array with a correct view', () => {
  const crypto = createNodeCryptoProvider();
  const key = crypto.randomBytes(32);
  assertPlainView(key, 32, 'randomBytes');
  assertPlainView(crypto.sha256(utf8Encode('x')), 32, 'sha256');
  const hasher = crypto.createSha256();
  hasher.update(utf8Encode('x'));
  assertPlainView(hasher.digest(), 32, 'createSha256().digest()');
  for (const cipher of CIPHERS) {
    for (const length of [0, 1, 100, 5_000, 70_000]) {
      const plaintext = crypto.randomBytes(length);
      const sealed = crypto.aeadSeal(cipher, key, new Uint8Array(12), new Uint8Array(3), plaintext);
      assertPlainView(sealed, length + 16, `aeadSeal(${cipher}, ${length} bytes)`);
      const opened = crypto.aeadOpen(cipher, key, new Uint8Array(12), new Uint8Array(3), sealed);
      assert.ok(opened !== undefined);
      assertPlainView(opened, length, `aeadOpen(${cipher}, ${length} bytes)`);
      assert.equal(toHex(opened), toHex(plaintext));
    }
  }
  const x = crypto.x25519GenerateKeyPair();
  assertPlainView(x.publicKey, 32, 'x25519 public key');
  assertPlainView(
    crypto.x25519(x.secretKey, crypto.x25519GenerateKeyPair().publicKey)!,
    32,
    'x25519',
  );
  const ed = crypto.ed25519GenerateKeyPair();
  assertPlainView(ed.publicKey, 32, 'ed25519 public key');
  assertPlainView(crypto.ed25519Sign(ed.secretKey, utf8Encode('m')), 64, 'ed25519Sign');
});

test('slice() copies and outputs never alias each other (Buffer semantics do not leak)', () => {
  const crypto = createNodeCryptoProvider();
  // Small outputs may share Node's 8 KiB allocation pool; they must still be independent.
  const first = crypto.sha256(utf8Encode('first'));
  const second = crypto.sha256(utf8Encode('second'));
  const firstHex = toHex(first);
  second.fill(0);
  assert.equal(toHex(first), firstHex);
  const copy = first.slice(0, 4); // Buffer#slice would return a view here
  copy.fill(0xff);
  assert.equal(toHex(first), firstHex);

  const key = crypto.randomBytes(32);
  const a = crypto.aeadSeal(
    'AESGCM',
    key,
    new Uint8Array(12),
    new Uint8Array(0),
    new Uint8Array(10),
  );
  const aHex = toHex(a);
  const b = crypto.aeadSeal(
    'AESGCM',
    key,
    new Uint8Array(12).fill(1),
    new Uint8Array(0),
    new Uint8Array(10),
  );
  b.fill(0);
  assert.equal(toHex(a), aHex);
});

test('inputs may be subarrays at any offset, and are never modified', () => {
  const crypto = createNodeCryptoProvider();
  fc.assert(
    fc.property(
      fc.constantFrom(...CIPHERS),
      fc.uint8Array({ minLength: 120, maxLength: 400 }),
      fc.nat({ max: 50 }),
      (cipher, backing, offset) => {
        const before = toHex(backing);
        const key = backing.subarray(offset, offset + 32);
        const nonce = backing.subarray(offset + 32, offset + 44);
        const associatedData = backing.subarray(offset + 44, offset + 51);
        const plaintext = backing.subarray(offset + 51);
        const sealed = crypto.aeadSeal(cipher, key, nonce, associatedData, plaintext);
        const copies = [key, nonce, associatedData, plaintext].map((part) => part.slice());
        const reference = crypto.aeadSeal(cipher, copies[0]!, copies[1]!, copies[2]!, copies[3]!);
        assert.equal(toHex(sealed), toHex(reference));
        // Open a sealed record that itself sits at an odd offset inside a larger buffer.
        const framed = new Uint8Array(sealed.length + 7);
        framed.set(sealed, 3);
        const view = framed.subarray(3, 3 + sealed.length);
        assert.equal(
          toHex(crypto.aeadOpen(cipher, key, nonce, associatedData, view)!),
          toHex(plaintext),
        );
        assert.equal(toHex(backing), before, 'inputs unchanged');
        assert.equal(toHex(crypto.sha256(plaintext)), toHex(crypto.sha256(plaintext.slice())));
      },
    ),
    { numRuns: 300 },
  );
});

test('aeadOpen never throws on arbitrary bytes', () => {
  const crypto = createNodeCryptoProvider();
  const key = crypto.randomBytes(32);
  fc.assert(
    fc.property(
      fc.constantFrom(...CIPHERS),
      fc.uint8Array({ maxLength: 100 }),
      (cipher, sealed) => {
        assert.equal(
          crypto.aeadOpen(cipher, key, new Uint8Array(12), new Uint8Array(0), sealed),
          undefined,
        );
      },
    ),
    { numRuns: 1_000 },
  );
});

test('caller misuse throws PEAPOD_ERR_INVALID_ARGUMENT naming the argument', () => {
  const crypto = createNodeCryptoProvider();
  const ok = new Uint8Array(32);
  const misuse = (name: string) => (error: { code: string; message: string }) =>
    error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' && error.message.startsWith(`${name}: `);
  for (const cipher of CIPHERS) {
    for (const fn of [crypto.aeadSeal, crypto.aeadOpen]) {
      assert.throws(
        () => fn(cipher, new Uint8Array(16), new Uint8Array(12), ok, ok),
        misuse('key'),
      );
      assert.throws(() => fn(cipher, ok, new Uint8Array(8), ok, ok), misuse('nonce'));
      assert.throws(() => fn(cipher, ok, new Uint8Array(16), ok, ok), misuse('nonce'));
    }
  }
  assert.throws(() => crypto.x25519PublicKey(new Uint8Array(31)), misuse('secretKey'));
  assert.throws(() => crypto.x25519(new Uint8Array(33), ok), misuse('secretKey'));
  assert.throws(() => crypto.ed25519PublicKey(new Uint8Array(64)), misuse('secretKey'));
  assert.throws(() => crypto.ed25519Sign(new Uint8Array(0), ok), misuse('secretKey'));
  // What a peer sends is data, never a reason to throw.
  assert.equal(crypto.x25519(ok, new Uint8Array(31)), undefined);
  assert.equal(crypto.ed25519Verify(new Uint8Array(31), ok, new Uint8Array(64)), false);
  assert.equal(crypto.ed25519Verify(ok, ok, new Uint8Array(63)), false);
});

test('private-key cache: one import per key array, refreshed when the bytes change', () => {
  const crypto = createNodeCryptoProvider();
  const message = utf8Encode('gossip');
  const { secretKey, publicKey } = crypto.ed25519GenerateKeyPair();
  assert.equal(crypto.privateKeyImports().ed25519, 1);
  for (let i = 0; i < 5; i++) {
    assert.ok(crypto.ed25519Verify(publicKey, message, crypto.ed25519Sign(secretKey, message)));
  }
  assert.equal(crypto.privateKeyImports().ed25519, 1, 'signing reuses the imported key');

  // The caller rewrites its key in place: the cache must notice, never sign with the old key.
  secretKey.set(crypto.randomBytes(32));
  const newPublicKey = crypto.ed25519PublicKey(secretKey);
  assert.notEqual(toHex(newPublicKey), toHex(publicKey));
  const signature = crypto.ed25519Sign(secretKey, message);
  assert.ok(crypto.ed25519Verify(newPublicKey, message, signature));
  assert.ok(!crypto.ed25519Verify(publicKey, message, signature));
  assert.equal(crypto.privateKeyImports().ed25519, 2);

  // Same bytes in a different array: a separate entry (the cache is keyed by the array).
  crypto.ed25519Sign(secretKey.slice(), message);
  assert.equal(crypto.privateKeyImports().ed25519, 3);

  // X25519 keys are cached the same way: a handshake uses each secret twice.
  const local = crypto.x25519GenerateKeyPair();
  const remote = crypto.x25519GenerateKeyPair();
  const shared = crypto.x25519(local.secretKey, remote.publicKey);
  assert.equal(toHex(crypto.x25519(local.secretKey, remote.publicKey)!), toHex(shared!));
  assert.equal(toHex(crypto.x25519(remote.secretKey, local.publicKey)!), toHex(shared!));
  assert.equal(crypto.privateKeyImports().x25519, 2);
});

test('private-key cache off: every call imports, results identical', () => {
  const cached = createNodeCryptoProvider();
  const uncached = createNodeCryptoProvider({ cachePrivateKeys: false });
  const seed = cached.randomBytes(32);
  const message = utf8Encode('m');
  for (let i = 0; i < 3; i++) {
    assert.equal(
      toHex(uncached.ed25519Sign(seed, message)),
      toHex(cached.ed25519Sign(seed, message)),
    );
  }
  assert.equal(uncached.privateKeyImports().ed25519, 3);
  assert.equal(cached.privateKeyImports().ed25519, 1);
});
