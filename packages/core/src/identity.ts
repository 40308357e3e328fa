/**
 * Device identity (DESIGN.md decision 3). Each device has an Ed25519 key pair; its Device ID is
 * the SHA-256 of the Ed25519 public key. People see the ID in a check-digit form (see
 * `formatDeviceId`), and the Noise handshake proves possession of the key (secure-session.ts).
 */
import type { CryptoProvider } from './crypto-provider.js';

/** Length of a raw Device ID in bytes. */
export const DEVICE_ID_BYTES = 32;

/** The raw 32-byte Device ID of an Ed25519 public key. */
export function deriveDeviceId(crypto: CryptoProvider, ed25519PublicKey: Uint8Array): Uint8Array {
  return crypto.sha256(ed25519PublicKey);
}
