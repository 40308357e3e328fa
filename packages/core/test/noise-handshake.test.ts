/**
 * The Noise layer beyond the published vectors: HMAC and HKDF against independent references,
 * CipherState nonce layout, limit and Rekey() against node:crypto, every pattern in the table
 * (with psk modifiers), failure results for hostile messages, and API misuse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { concatBytes, fromHex, toHex, utf8Encode } from '../src/bytes.js';
import type { AeadCipher, CryptoProvider, KeyPair } from '../src/crypto-provider.js';
import { CipherState, NOISE_NONCE_LIMIT } from '../src/noise/cipher-state.js';
import { hkdf2, hkdf3, hmacSha256 } from '../src/noise/hkdf.js';
import {
  NoiseHandshake,
  type NoiseHandshakeOptions,
  type NoiseRole,
} from '../src/noise/handshake-state.js';
import { parseNoiseProtocolName, resolveNoisePattern } from '../src/noise/patterns.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

const crypto = deterministicCrypto(4242);
const EMPTY = new Uint8Array(0);
const hex = (value: string): Uint8Array => fromHex(value)!;

/** node:crypto AEAD as an independent reference: ciphertext || tag. */
function referenceSeal(
  cipher: AeadCipher,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array = EMPTY,
): Uint8Array {
  const options = { authTagLength: 16 } as const;
  const sealer =
    cipher === 'ChaChaPoly'
      ? createCipheriv('chacha20-poly1305', key, nonce, options)
      : createCipheriv('aes-256-gcm', key, nonce, options);
  sealer.setAAD(ad, { plaintextLength: plaintext.length });
  return concatBytes(sealer.update(plaintext), sealer.final(), sealer.getAuthTag());
}

test('HMAC-SHA256 matches RFC 4231 and node:crypto', () => {
  const rfc4231: [Uint8Array, string, string][] = [
    [
      new Uint8Array(20).fill(0x0b),
      'Hi There',
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    ],
    [
      utf8Encode('Jefe'),
      'what do ya want for nothing?',
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    ],
    [
      new Uint8Array(131).fill(0xaa),
      'Test Using Larger Than Block-Size Key - Hash Key First',
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    ],
  ];
  for (const [key, data, expected] of rfc4231) {
    assert.equal(toHex(hmacSha256(crypto, key, utf8Encode(data))), expected);
  }
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 4 }),
      (key, parts) => {
        const expected = createHmac('sha256', key)
          .update(concatBytes(...parts))
          .digest('hex');
        assert.equal(toHex(hmacSha256(crypto, key, ...parts)), expected);
      },
    ),
    { numRuns: 300 },
  );
});

test('the Noise HKDF is RFC 5869 with salt = chaining key and empty info', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ maxLength: 64 }),
      (chainingKey, ikm) => {
        const reference = new Uint8Array(hkdfSync('sha256', ikm, chainingKey, EMPTY, 96));
        assert.deepEqual(
          concatBytes(...hkdf2(crypto, chainingKey, ikm)),
          reference.subarray(0, 64),
        );
        assert.deepEqual(concatBytes(...hkdf3(crypto, chainingKey, ikm)), reference);
      },
    ),
    { numRuns: 200 },
  );
});

test('CipherState nonces: 4 zero bytes, then the counter LE (ChaChaPoly) or BE (AESGCM)', () => {
  const seen: string[] = [];
  const recording: CryptoProvider = {
    ...crypto,
    aeadSeal(cipher, key, nonce, ad, plaintext) {
      seen.push(toHex(nonce));
      return crypto.aeadSeal(cipher, key, nonce, ad, plaintext);
    },
  };
  const key = new Uint8Array(32).fill(3);
  const counter = 2 ** 40 + 2 ** 32 * 0x1234 + 0x0a0b0c0d;
  for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
    const state = new CipherState(recording, cipher, key);
    state.encryptWithAd(EMPTY, EMPTY);
    state.setNonce(counter);
    const sealed = state.encryptWithAd(utf8Encode('ad'), utf8Encode('plaintext'));
    assert.equal(state.nonce, counter + 1);
    const nonce = seen.at(-1)!;
    const expected =
      cipher === 'ChaChaPoly'
        ? '00000000' + '0d0c0b0a' + '34130000'
        : '00000000' + '00001334' + '0a0b0c0d';
    assert.equal(seen.at(-2), '000000000000000000000000');
    assert.equal(nonce, expected, cipher);
    // And the bytes equal node:crypto's AEAD under that nonce (AD "ad").
    const reference = referenceSeal(
      cipher,
      key,
      hex(expected),
      utf8Encode('plaintext'),
      utf8Encode('ad'),
    );
    assert.deepEqual(sealed, reference);
  }
});

test('CipherState refuses nonce 2^53 and never advances on a failed decrypt', () => {
  const key = new Uint8Array(32).fill(9);
  const sender = new CipherState(crypto, 'ChaChaPoly', key);
  const receiver = new CipherState(crypto, 'ChaChaPoly', key);
  sender.setNonce(NOISE_NONCE_LIMIT - 1);
  receiver.setNonce(NOISE_NONCE_LIMIT - 1);
  const last = sender.encryptWithAd(EMPTY, utf8Encode('last'));
  assert.throws(() => sender.encryptWithAd(EMPTY, EMPTY), { code: 'PEAPOD_ERR_INVALID_STATE' });
  const tampered = Uint8Array.from(last);
  tampered[0]! ^= 1;
  assert.equal(receiver.decryptWithAd(EMPTY, tampered), undefined);
  assert.equal(receiver.nonce, NOISE_NONCE_LIMIT - 1, 'nonce unchanged after a failure');
  assert.equal(receiver.decryptWithAd(EMPTY, EMPTY.subarray(0)), undefined, 'shorter than a tag');
  assert.deepEqual(receiver.decryptWithAd(EMPTY, last), utf8Encode('last'));
  assert.equal(receiver.decryptWithAd(EMPTY, last), undefined, 'limit reached');
  assert.throws(() => sender.setNonce(NOISE_NONCE_LIMIT + 2), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  assert.throws(() => new CipherState(crypto, 'AESGCM', new Uint8Array(16)), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  const empty = new CipherState(crypto, 'AESGCM');
  assert.equal(empty.hasKey(), false);
  const plaintext = utf8Encode('pass-through');
  assert.equal(empty.encryptWithAd(EMPTY, plaintext), plaintext, 'no key: plaintext as is');
  assert.throws(() => empty.rekey(), { code: 'PEAPOD_ERR_ASSERTION' });
});

test('Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros), checked with node:crypto', () => {
  for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
    const maxNonce = hex('00000000ffffffffffffffff');
    const newKey = referenceSeal(cipher, key, maxNonce, new Uint8Array(32)).subarray(0, 32);
    const state = new CipherState(crypto, cipher, key);
    state.setNonce(5);
    state.rekey();
    assert.equal(state.nonce, 5, 'Rekey() keeps the nonce');
    const nonce5 =
      cipher === 'ChaChaPoly' ? hex('000000000500000000000000') : hex('000000000000000000000005');
    const expected = referenceSeal(cipher, newKey, nonce5, utf8Encode('after rekey'));
    assert.deepEqual(state.encryptWithAd(EMPTY, utf8Encode('after rekey')), expected, cipher);
  }
});

test('patterns: names resolve with psk modifiers; anything else is refused', () => {
  const xxpsk3 = resolveNoisePattern('XXpsk3');
  assert.deepEqual(xxpsk3?.messages, [['e'], ['e', 'ee', 's', 'es'], ['s', 'se', 'psk']]);
  assert.equal(xxpsk3?.pskCount, 1);
  assert.deepEqual(resolveNoisePattern('NNpsk0+psk2')?.messages, [
    ['psk', 'e'],
    ['e', 'ee', 'psk'],
  ]);
  for (const name of ['XXfallback', 'XXpsk4', 'XXpsk3+psk3', 'YY', 'toString', 'XXpsk01', 'xx']) {
    assert.equal(resolveNoisePattern(name), undefined, name);
  }
  assert.equal(parseNoiseProtocolName('Noise_XX_25519_AESGCM_SHA256')?.cipher, 'AESGCM');
  for (const name of [
    'Noise_XX_448_AESGCM_SHA256',
    'Noise_XX_25519_AESGCM_BLAKE2s',
    'Noise_XX_25519_ChaChaPoly_SHA512',
    'Noise_XX_25519_AESGCM_SHA256 ',
  ]) {
    assert.equal(parseNoiseProtocolName(name), undefined, name);
  }
});

/** Builds both sides of `protocolName` with whatever keys its pattern needs. */
function handshakePair(
  protocolName: string,
  provider: CryptoProvider = crypto,
): [NoiseHandshake, NoiseHandshake] {
  const protocol = parseNoiseProtocolName(protocolName);
  assert.ok(protocol !== undefined, protocolName);
  const statics: Record<NoiseRole, KeyPair> = {
    initiator: provider.x25519GenerateKeyPair(),
    responder: provider.x25519GenerateKeyPair(),
  };
  const psks = Array.from({ length: protocol.pattern.pskCount }, (_, i) =>
    new Uint8Array(32).fill(i + 1),
  );
  const make = (role: NoiseRole): NoiseHandshake => {
    const remote: NoiseRole = role === 'initiator' ? 'responder' : 'initiator';
    const options: NoiseHandshakeOptions = {
      protocolName,
      role,
      prologue: utf8Encode('test prologue'),
      staticKeyPair: statics[role],
      remoteStaticPublicKey: statics[remote].publicKey,
      psks,
    };
    return new NoiseHandshake(provider, options);
  };
  return [make('initiator'), make('responder')];
}

/** Runs the whole handshake with payloads, checking each payload and its binding hash. */
function complete(initiator: NoiseHandshake, responder: NoiseHandshake): void {
  for (let index = 0; initiator.status !== 'complete'; index++) {
    const [writer, reader] = index % 2 === 0 ? [initiator, responder] : [responder, initiator];
    const payload = utf8Encode(`payload ${index}`);
    let hashSeenByWriter: Uint8Array | undefined;
    const written = writer.writeMessage((hash) => {
      hashSeenByWriter = hash;
      return payload;
    });
    assert.ok(written.ok);
    const read = reader.readMessage(written.message);
    assert.ok(read.ok, `message ${index}`);
    assert.deepEqual(read.payload, payload);
    assert.deepEqual(read.handshakeHashBeforePayload, hashSeenByWriter);
  }
  assert.equal(responder.status, 'complete');
}

test('every pattern in the table completes, with and without psk modifiers', () => {
  const names = [
    'N',
    'K',
    'X',
    'NN',
    'NK',
    'NX',
    'XN',
    'XK',
    'XX',
    'KN',
    'KK',
    'KX',
    'IN',
    'IK',
    'IX',
  ];
  const withPsk = ['NNpsk0', 'NNpsk2', 'NKpsk0+psk2', 'IKpsk2', 'XXpsk3', 'Npsk0', 'Kpsk0+psk1'];
  for (const pattern of [...names, ...withPsk]) {
    for (const cipher of ['ChaChaPoly', 'AESGCM']) {
      const protocolName = `Noise_${pattern}_25519_${cipher}_SHA256`;
      const [initiator, responder] = handshakePair(protocolName);
      complete(initiator, responder);
      assert.deepEqual(initiator.handshakeHash, responder.handshakeHash, protocolName);
      const i = initiator.split();
      const r = responder.split();
      const record = i.send.encryptWithAd(EMPTY, utf8Encode('to responder'));
      assert.deepEqual(r.receive.decryptWithAd(EMPTY, record), utf8Encode('to responder'));
      const oneWay = /^[NKX](psk|$)/.test(pattern); // only the initiator sends (section 7.4)
      if (!oneWay) {
        const back = r.send.encryptWithAd(EMPTY, utf8Encode('to initiator'));
        assert.deepEqual(i.receive.decryptWithAd(EMPTY, back), utf8Encode('to initiator'));
      }
    }
  }
});

test('a wrong psk or prologue fails with decrypt; the failed state is spent', () => {
  const protocolName = 'Noise_XXpsk3_25519_ChaChaPoly_SHA256';
  const s = { i: crypto.x25519GenerateKeyPair(), r: crypto.x25519GenerateKeyPair() };
  const initiator = new NoiseHandshake(crypto, {
    protocolName,
    role: 'initiator',
    staticKeyPair: s.i,
    psks: [new Uint8Array(32).fill(1)],
  });
  const responder = new NoiseHandshake(crypto, {
    protocolName,
    role: 'responder',
    staticKeyPair: s.r,
    psks: [new Uint8Array(32).fill(2)],
  });
  for (let index = 0; index < 2; index++) {
    const [writer, reader] = index === 0 ? [initiator, responder] : [responder, initiator];
    const written = writer.writeMessage(EMPTY);
    assert.ok(written.ok && reader.readMessage(written.message).ok);
  }
  const third = initiator.writeMessage(EMPTY);
  assert.ok(third.ok);
  assert.deepEqual(responder.readMessage(third.message), { ok: false, failure: 'decrypt' });
  assert.equal(responder.status, 'failed');
  assert.throws(() => responder.readMessage(third.message), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => responder.split(), { code: 'PEAPOD_ERR_INVALID_STATE' });

  const a = new NoiseHandshake(crypto, {
    protocolName: 'Noise_NN_25519_AESGCM_SHA256',
    role: 'initiator',
    prologue: utf8Encode('one'),
  });
  const b = new NoiseHandshake(crypto, {
    protocolName: 'Noise_NN_25519_AESGCM_SHA256',
    role: 'responder',
    prologue: utf8Encode('two'),
  });
  const first = a.writeMessage(EMPTY);
  assert.ok(first.ok && b.readMessage(first.message).ok, 'NN message 1 is not authenticated');
  const second = b.writeMessage(EMPTY);
  assert.ok(second.ok);
  assert.deepEqual(a.readMessage(second.message), { ok: false, failure: 'decrypt' });
});

test('low-order public keys fail: on read (IK) and on the next write (XX)', () => {
  const lowOrder = new Uint8Array(32); // the all-zero point
  const [, ikResponder] = handshakePair('Noise_IK_25519_ChaChaPoly_SHA256');
  const ikMessage = new Uint8Array(32 + 48 + 16);
  assert.deepEqual(ikResponder.readMessage(ikMessage), { ok: false, failure: 'low-order-key' });
  assert.equal(ikResponder.status, 'failed');

  const [, xxResponder] = handshakePair('Noise_XX_25519_ChaChaPoly_SHA256');
  assert.ok(xxResponder.readMessage(lowOrder).ok, 'XX message 1 is only `e`');
  assert.deepEqual(xxResponder.writeMessage(EMPTY), { ok: false, failure: 'low-order-key' });
  assert.equal(xxResponder.status, 'failed');
});

test('short and oversized messages are malformed, never exceptions', () => {
  for (const length of [0, 31, 65_536]) {
    const [, responder] = handshakePair('Noise_XX_25519_AESGCM_SHA256');
    assert.deepEqual(responder.readMessage(new Uint8Array(length)), {
      ok: false,
      failure: 'malformed',
    });
  }
  // Message 2 cut inside e, inside the encrypted s, and inside the payload's tag.
  for (const keep of [31, 32 + 47, 32 + 48 + 15]) {
    const [i2, r2] = handshakePair('Noise_XX_25519_AESGCM_SHA256');
    const m1 = i2.writeMessage(EMPTY);
    assert.ok(m1.ok && r2.readMessage(m1.message).ok);
    const m2 = r2.writeMessage(EMPTY);
    assert.ok(m2.ok);
    assert.deepEqual(i2.readMessage(m2.message.subarray(0, keep)), {
      ok: false,
      failure: 'malformed',
    });
  }
});

test('property: arbitrary bytes read at any step never throw', () => {
  fc.assert(
    fc.property(fc.nat(2), fc.uint8Array({ maxLength: 200 }), (step, garbage) => {
      const [initiator, responder] = handshakePair('Noise_XXpsk3_25519_ChaChaPoly_SHA256');
      const order = [initiator, responder, initiator];
      for (let index = 0; index < step; index++) {
        const written = order[index]!.writeMessage(EMPTY);
        assert.ok(written.ok && order[index + 1]!.readMessage(written.message).ok);
      }
      const reader = order[step + 1] ?? responder;
      const result = reader.readMessage(garbage);
      assert.equal(result.ok, false);
      assert.equal(reader.status, 'failed');
    }),
    { numRuns: 300 },
  );
});

test('API misuse throws stable codes', () => {
  const [initiator, responder] = handshakePair('Noise_XX_25519_ChaChaPoly_SHA256');
  assert.throws(() => initiator.readMessage(EMPTY), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => responder.writeMessage(EMPTY), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => initiator.split(), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => initiator.writeMessage(new Uint8Array(65_535 - 31)), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  const argument = { code: 'PEAPOD_ERR_INVALID_ARGUMENT' };
  const make = (options: Partial<NoiseHandshakeOptions>) => () =>
    new NoiseHandshake(crypto, {
      protocolName: 'Noise_XX_25519_ChaChaPoly_SHA256',
      role: 'initiator',
      ...options,
    });
  assert.throws(make({}), argument); // XX initiator sends s: needs a static key
  assert.throws(make({ protocolName: 'Noise_IK_25519_ChaChaPoly_SHA256' }), argument);
  assert.throws(make({ protocolName: 'Noise_NN_25519_ChaChaPoly_SHA512' }), argument);
  assert.throws(
    make({ protocolName: 'Noise_NNpsk0_25519_ChaChaPoly_SHA256', psks: [new Uint8Array(31)] }),
    argument,
  );
  assert.throws(make({ protocolName: 'Noise_NNpsk0_25519_ChaChaPoly_SHA256' }), argument);
  assert.throws(
    make({ staticKeyPair: { publicKey: new Uint8Array(31), secretKey: new Uint8Array(32) } }),
    argument,
  );
  assert.throws(make({ role: 'server' as NoiseRole }), argument);

  const [a, b] = handshakePair('Noise_NN_25519_ChaChaPoly_SHA256');
  complete(a, b);
  a.split();
  assert.throws(() => a.split(), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => a.writeMessage(EMPTY), { code: 'PEAPOD_ERR_INVALID_STATE' });
});

test('the TSDoc example of NoiseHandshake runs as written', () => {
  let counter = 0;
  const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => counter++);
  const crypto = createNobleCryptoProvider({ randomBytes });
  const protocolName = 'Noise_NN_25519_ChaChaPoly_SHA256';
  const initiator = new NoiseHandshake(crypto, { protocolName, role: 'initiator' });
  const responder = new NoiseHandshake(crypto, { protocolName, role: 'responder' });
  const first = initiator.writeMessage(new Uint8Array(0));
  if (first.ok) responder.readMessage(first.message);
  const second = responder.writeMessage(new Uint8Array(0));
  if (second.ok) initiator.readMessage(second.message);
  const { send } = initiator.split();
  const record = send.encryptWithAd(new Uint8Array(0), utf8Encode('hello'));
  assert.equal(initiator.status, 'complete');
  assert.deepEqual(responder.split().receive.decryptWithAd(EMPTY, record), utf8Encode('hello'));
});
