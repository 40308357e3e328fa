/**
 * The tracker's crypto provider: node:crypto for what the tracker does per request (SHA-256 and
 * Ed25519 verification of records and signed requests), pea-core's portable provider for the
 * rest of the interface, which the tracker never calls. It cannot use `@peapod/node`'s provider:
 * that package depends on this one.
 */
import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createNobleCryptoProvider, type CryptoProvider } from '@peapod/core';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The KeyObject of a raw Ed25519 public key, or undefined when it is not one. */
export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject | undefined {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return undefined;
  try {
    return createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]),
      format: 'der',
      type: 'spki',
    });
  } catch {
    return undefined;
  }
}

/** Ed25519 verification that never throws: false for any malformed key or signature. */
export function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  const key = ed25519PublicKeyObject(publicKey);
  if (key === undefined) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** A CryptoProvider whose SHA-256 and Ed25519 verification run on node:crypto. */
export function createTrackerCrypto(): CryptoProvider {
  const noble = createNobleCryptoProvider({
    randomBytes: (length) => new Uint8Array(randomBytes(length)),
  });
  return {
    ...noble,
    name: 'tracker (node:crypto verify)',
    sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
    ed25519Verify,
  };
}
