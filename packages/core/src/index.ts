/**
 * @peapod/core: the public surface of pea-core. Only what this file exports is public.
 */
export { PeapodError, assert, type PeapodErrorCode } from './errors.js';
export { toHex, fromHex, utf8Encode, utf8Decode, concatBytes, equalBytes } from './bytes.js';
export type { CryptoProvider, Sha256Hasher, KeyPair, AeadCipher } from './crypto-provider.js';
export { ReasonCode, reasonName } from './wire/reason-codes.js';
export { deriveDeviceId, DEVICE_ID_BYTES } from './identity.js';
export { createNobleCryptoProvider, type NobleCryptoProviderOptions } from './crypto/noble-crypto-provider.js';
