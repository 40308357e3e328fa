/**
 * The published cacophony Noise vectors (test/vectors/noise.json, a byte-for-byte copy of
 * ../shared/vectors/noise.json) through NoiseHandshake with the noble provider: every message of
 * every vector is written and read, and must match byte for byte, as must the handshake hash.
 *
 * Cacophony's convention: message i is sent by the initiator when i is even and by the responder
 * when i is odd, through the handshake and on into transport messages (after Split the initiator
 * sends with c1 and the responder with c2). The conformance package runs the same vectors with
 * every provider.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '../src/bytes.js';
import type { CryptoProvider, KeyPair } from '../src/crypto-provider.js';
import { NoiseHandshake, type NoiseHandshakeOptions } from '../src/noise/handshake-state.js';
import type { NoiseTransport } from '../src/noise/handshake-state.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

interface NoiseVector {
  readonly protocol_name: string;
  readonly init_prologue: string;
  readonly init_ephemeral: string;
  readonly init_static?: string;
  readonly init_remote_static?: string;
  readonly init_psks?: readonly string[];
  readonly resp_prologue: string;
  readonly resp_ephemeral: string;
  readonly resp_static?: string;
  readonly resp_remote_static?: string;
  readonly resp_psks?: readonly string[];
  readonly handshake_hash: string;
  readonly messages: readonly { readonly payload: string; readonly ciphertext: string }[];
}

/** Finds test/vectors/noise.json both from test/ (tsx) and from dist/test/ (compiled). */
function loadVectors(): readonly NoiseVector[] {
  for (const candidate of ['./vectors/noise.json', '../../test/vectors/noise.json']) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) {
      return (JSON.parse(readFileSync(path, 'utf8')) as { vectors: NoiseVector[] }).vectors;
    }
  }
  throw new Error('test/vectors/noise.json not found');
}

const vectors = loadVectors();
const EMPTY = new Uint8Array(0);

function bytes(hex: string): Uint8Array {
  const out = fromHex(hex);
  assert.ok(out !== undefined, `bad hex in vector: ${hex}`);
  return out;
}

/** Both sides of a vector, built from its keys. */
function handshakesFor(
  crypto: CryptoProvider,
  vector: NoiseVector,
): [NoiseHandshake, NoiseHandshake] {
  const keyPair = (hex: string): KeyPair => {
    const secretKey = bytes(hex);
    return { secretKey, publicKey: crypto.x25519PublicKey(secretKey) };
  };
  const side = (role: 'initiator' | 'responder'): NoiseHandshake => {
    const prefix = role === 'initiator' ? 'init' : 'resp';
    const staticHex = vector[`${prefix}_static`];
    const remoteStaticHex = vector[`${prefix}_remote_static`];
    const psks = vector[`${prefix}_psks`];
    const options: NoiseHandshakeOptions = {
      protocolName: vector.protocol_name,
      role,
      prologue: bytes(vector[`${prefix}_prologue`]),
      ephemeralKeyPair: keyPair(vector[`${prefix}_ephemeral`]),
      ...(staticHex === undefined ? {} : { staticKeyPair: keyPair(staticHex) }),
      ...(remoteStaticHex === undefined ? {} : { remoteStaticPublicKey: bytes(remoteStaticHex) }),
      ...(psks === undefined ? {} : { psks: psks.map(bytes) }),
    };
    return new NoiseHandshake(crypto, options);
  };
  return [side('initiator'), side('responder')];
}

/** Runs every message of `vector` both ways; fails the test on the first mismatch. */
function runVector(crypto: CryptoProvider, vector: NoiseVector): void {
  const [initiator, responder] = handshakesFor(crypto, vector);
  let transports: { initiator: NoiseTransport; responder: NoiseTransport } | undefined;
  vector.messages.forEach((message, index) => {
    const initiatorSends = index % 2 === 0;
    const label = `${vector.protocol_name} message ${index}`;
    const payload = bytes(message.payload);
    if (transports === undefined) {
      const [writer, reader] = initiatorSends ? [initiator, responder] : [responder, initiator];
      assert.equal(writer.status, 'write', `${label}: writer's turn`);
      const written = writer.writeMessage(payload);
      assert.ok(written.ok, `${label}: write`);
      assert.equal(toHex(written.message), message.ciphertext, `${label}: ciphertext`);
      const read = reader.readMessage(bytes(message.ciphertext));
      assert.ok(read.ok, `${label}: read`);
      assert.equal(toHex(read.payload), message.payload, `${label}: payload`);
      if (initiator.status === 'complete') {
        assert.equal(responder.status, 'complete');
        transports = { initiator: initiator.split(), responder: responder.split() };
      }
    } else {
      const [sender, receiver] = initiatorSends
        ? [transports.initiator.send, transports.responder.receive]
        : [transports.responder.send, transports.initiator.receive];
      assert.equal(toHex(sender.encryptWithAd(EMPTY, payload)), message.ciphertext, label);
      const opened = receiver.decryptWithAd(EMPTY, bytes(message.ciphertext));
      assert.ok(opened !== undefined, `${label}: transport decrypt`);
      assert.equal(toHex(opened), message.payload, `${label}: transport payload`);
    }
  });
  assert.ok(transports !== undefined, `${vector.protocol_name}: handshake completed`);
  assert.equal(toHex(initiator.handshakeHash), vector.handshake_hash, 'initiator handshake hash');
  assert.equal(toHex(responder.handshakeHash), vector.handshake_hash, 'responder handshake hash');
}

test('the vector file holds the 8 expected protocols', () => {
  assert.deepEqual(vectors.map((vector) => vector.protocol_name).sort(), [
    'Noise_IK_25519_AESGCM_SHA256',
    'Noise_IK_25519_ChaChaPoly_SHA256',
    'Noise_NN_25519_AESGCM_SHA256',
    'Noise_NN_25519_ChaChaPoly_SHA256',
    'Noise_XX_25519_AESGCM_SHA256',
    'Noise_XX_25519_ChaChaPoly_SHA256',
    'Noise_XXpsk3_25519_AESGCM_SHA256',
    'Noise_XXpsk3_25519_ChaChaPoly_SHA256',
  ]);
});

for (const vector of vectors) {
  test(`cacophony vector ${vector.protocol_name} (noble)`, () => {
    runVector(deterministicCrypto(1), vector);
  });
}

test('a vector handshake message with one byte more, one byte less or one bit flipped is rejected', () => {
  const crypto = deterministicCrypto(1);
  for (const vector of vectors) {
    // The first message the responder reads that is authenticated: message 0 in IK and in psk
    // patterns (psk makes `e` key the cipher), message 2 in XX (message 1 goes the other way).
    const index = vector.protocol_name.includes('XX_') ? 2 : 0;
    const original = bytes(vector.messages[index]!.ciphertext);
    if (vector.protocol_name.includes('NN_')) continue; // NN's first message is unauthenticated
    const variants = [
      Uint8Array.from([...original, 0]),
      original.slice(0, -1),
      Uint8Array.from(original, (byte, i) => (i === original.length - 1 ? byte ^ 1 : byte)),
    ];
    for (const variant of variants) {
      const [initiator, responder] = handshakesFor(crypto, vector);
      for (let i = 0; i < index; i++) {
        const [writer, reader] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
        const written = writer.writeMessage(bytes(vector.messages[i]!.payload));
        assert.ok(written.ok);
        assert.ok(reader.readMessage(written.message).ok);
      }
      assert.ok(initiator.writeMessage(bytes(vector.messages[index]!.payload)).ok);
      const read = responder.readMessage(variant);
      assert.deepEqual(read, { ok: false, failure: 'decrypt' }, vector.protocol_name);
      assert.equal(responder.status, 'failed');
    }
  }
});
