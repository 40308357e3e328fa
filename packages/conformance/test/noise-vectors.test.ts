/**
 * The published cacophony Noise vectors through `NoiseHandshake` with every crypto provider
 * (noble and node:crypto), so both give byte-identical handshakes and transport records
 * (DESIGN.md decisions 2 and 4). Then a SecureSession between two different providers, each
 * suite, to show they interoperate end to end.
 *
 * The vectors are the core package's copy, `packages/core/test/vectors/noise.json`. Cacophony's
 * convention: message i is sent by the initiator when i is even, by the responder when odd,
 * through the handshake and on into transport messages (initiator sends with c1, responder c2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  NoiseHandshake,
  NoiseSuite,
  SecureSession,
  createNobleCryptoProvider,
  fromHex,
  toHex,
  utf8Encode,
  type CryptoProvider,
  type KeyPair,
  type NoiseHandshakeOptions,
  type NoiseTransport,
  type SessionEvent,
} from '@peapod/core';
import { createNodeCryptoProvider } from '@peapod/node';

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

/** Walks up from this file (test/ under tsx, dist/test/ compiled) to the core's vector file. */
function loadVectors(): readonly NoiseVector[] {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'packages', 'core', 'test', 'vectors', 'noise.json');
    if (existsSync(candidate)) {
      return (JSON.parse(readFileSync(candidate, 'utf8')) as { vectors: NoiseVector[] }).vectors;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('packages/core/test/vectors/noise.json not found');
    dir = parent;
  }
}

const vectors = loadVectors();
const EMPTY = new Uint8Array(0);

const providers: readonly { readonly name: string; readonly create: () => CryptoProvider }[] = [
  {
    name: 'noble',
    create: () => createNobleCryptoProvider({ randomBytes: (n) => new Uint8Array(randomBytes(n)) }),
  },
  { name: 'node:crypto', create: () => createNodeCryptoProvider() },
];

function bytes(hex: string): Uint8Array {
  const out = fromHex(hex);
  assert.ok(out !== undefined, `bad hex in vector: ${hex}`);
  return out;
}

function runVector(crypto: CryptoProvider, vector: NoiseVector): void {
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
  const initiator = side('initiator');
  const responder = side('responder');
  let transports: { initiator: NoiseTransport; responder: NoiseTransport } | undefined;
  vector.messages.forEach((message, index) => {
    const initiatorSends = index % 2 === 0;
    const label = `${vector.protocol_name} message ${index}`;
    const payload = bytes(message.payload);
    if (transports === undefined) {
      const [writer, reader] = initiatorSends ? [initiator, responder] : [responder, initiator];
      const written = writer.writeMessage(payload);
      assert.ok(written.ok, `${label}: write`);
      assert.equal(toHex(written.message), message.ciphertext, `${label}: ciphertext`);
      const read = reader.readMessage(bytes(message.ciphertext));
      assert.ok(read.ok, `${label}: read`);
      assert.equal(toHex(read.payload), message.payload, `${label}: payload`);
      if (initiator.status === 'complete') {
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
  assert.equal(toHex(initiator.handshakeHash), vector.handshake_hash);
  assert.equal(toHex(responder.handshakeHash), vector.handshake_hash);
}

test('all 8 vectors are present', () => {
  assert.equal(vectors.length, 8);
});

for (const provider of providers) {
  for (const vector of vectors) {
    test(`cacophony vector ${vector.protocol_name} (${provider.name})`, () => {
      runVector(provider.create(), vector);
    });
  }
}

/** Moves transmits between two sessions until both are quiet; returns every other event. */
function drive(a: SecureSession, b: SecureSession): Record<'a' | 'b', SessionEvent[]> {
  const seen: Record<'a' | 'b', SessionEvent[]> = { a: [], b: [] };
  for (let moved = true; moved;) {
    moved = false;
    for (const [from, to, key] of [[a, b, 'a'] as const, [b, a, 'b'] as const]) {
      for (let event = from.poll(); event !== undefined; event = from.poll()) {
        if (event.type === 'transmit') {
          to.receiveRecord(event.record);
          moved = true;
        } else {
          seen[key].push(event);
        }
      }
    }
  }
  return seen;
}

for (const suite of Object.values(NoiseSuite)) {
  test(`SecureSession ${suite}: noble and node:crypto interoperate both ways`, () => {
    const psk = suite.includes('psk') ? { psk: new Uint8Array(32).fill(5) } : {};
    const [noble, node] = providers;
    assert.ok(noble !== undefined && node !== undefined);
    for (const [initiatorProvider, responderProvider] of [
      [noble, node],
      [node, noble],
    ] as const) {
      const ci = initiatorProvider.create();
      const cr = responderProvider.create();
      const initiator = new SecureSession({
        role: 'initiator',
        crypto: ci,
        identity: ci.ed25519GenerateKeyPair(),
        suite,
        ...psk,
      });
      const responder = new SecureSession({
        role: 'responder',
        crypto: cr,
        identity: cr.ed25519GenerateKeyPair(),
        allowedSuites: [suite],
        ...psk,
      });
      initiator.start();
      drive(initiator, responder);
      assert.equal(initiator.state, 'open');
      assert.equal(responder.state, 'open');
      assert.deepEqual(initiator.handshakeHash, responder.handshakeHash);
      const big = new Uint8Array(65_519).map((_, i) => i);
      initiator.send(big);
      responder.send(utf8Encode('ack'));
      const seen = drive(initiator, responder);
      assert.deepEqual(seen.b, [{ type: 'message', plaintext: big }]);
      assert.deepEqual(seen.a, [{ type: 'message', plaintext: utf8Encode('ack') }]);
    }
  });
}
