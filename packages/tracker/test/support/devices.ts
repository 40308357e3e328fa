/**
 * Test devices: Ed25519 keys on node:crypto, their signed peer records (pea-core's
 * buildPeerRecord, the same code the daemon uses) and hand-built signed requests, so tests can
 * make correct requests and then break exactly one thing about them.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import {
  buildPeerRecord,
  toHex,
  type CryptoProvider,
  type KeyPair,
  type PeerRecordFields,
} from '@peapod/core';
import { createTrackerCrypto } from '../../src/tracker-crypto.js';
import { signedRequestMessage } from '../../src/signed-request.js';
import type { TrackerSigner } from '../../src/client.js';

function privateKeyOf(seed: Uint8Array) {
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(seed).toString('base64url'), x: '' },
    format: 'jwk',
  });
}

/** The tracker's provider with a node:crypto signer (tests sign many records). */
export const testCrypto: CryptoProvider = {
  ...createTrackerCrypto(),
  ed25519Sign: (secretKey, message) => new Uint8Array(sign(null, message, privateKeyOf(secretKey))),
  ed25519PublicKey: (secretKey) => {
    const jwk = createPublicKey(privateKeyOf(secretKey)).export({ format: 'jwk' });
    return new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
  },
};

export interface TestDevice {
  readonly keyPair: KeyPair;
  readonly signer: TrackerSigner;
  readonly publicKeyHex: string;
  readonly deviceIdHex: string;
}

export function newDevice(): TestDevice {
  const secretKey = new Uint8Array(randomBytes(32));
  const publicKey = testCrypto.ed25519PublicKey(secretKey);
  const keyPair = { secretKey, publicKey };
  return {
    keyPair,
    signer: { publicKey, sign: (message) => testCrypto.ed25519Sign(secretKey, message) },
    publicKeyHex: toHex(publicKey),
    deviceIdHex: toHex(testCrypto.sha256(publicKey)),
  };
}

/** A broadcasting bootstrap record issued at `issuedAtMs`, with `overrides`. */
export function recordOf(
  device: TestDevice,
  issuedAtMs: number,
  overrides: Partial<PeerRecordFields> = {},
): Uint8Array {
  return buildPeerRecord(testCrypto, device.keyPair, {
    issuedAtMs,
    broadcast: true,
    bootstrap: true,
    leaving: false,
    capabilities: 0,
    listenPort: 9000,
    deviceName: 'test device',
    // The tests' requests come from 127.0.0.1: a registration carries its source address.
    addresses: ['127.0.0.1'],
    ...overrides,
  });
}

/** A silent cluster node's record: no broadcast, so no address. */
export function silentRecordOf(device: TestDevice, issuedAtMs: number): Uint8Array {
  return recordOf(device, issuedAtMs, { broadcast: false, bootstrap: false, addresses: [] });
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

export interface SignedBody {
  readonly body: string;
  readonly signature: string;
}

/** A signed request body (fields + publicKey + timestampMs) and its PeaPod-Signature. */
export function signedBody(
  device: TestDevice,
  method: string,
  path: string,
  timestampMs: number,
  fields: Record<string, unknown> = {},
  signer: TestDevice = device,
): SignedBody {
  const body = JSON.stringify({ publicKey: device.publicKeyHex, timestampMs, ...fields });
  const message = signedRequestMessage(method, path, timestampMs, Buffer.from(body));
  return { body, signature: toHex(signer.signer.sign(message)) };
}
