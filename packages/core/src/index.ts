/**
 * @peapod/core: the public surface of pea-core. Only what this file exports is public.
 */
export { PeapodError, assert, type PeapodErrorCode } from './errors.js';
export { toHex, fromHex, utf8Encode, utf8Decode, concatBytes, equalBytes } from './bytes.js';
export type { CryptoProvider, Sha256Hasher, KeyPair, AeadCipher } from './crypto-provider.js';
export { ReasonCode, reasonName } from './wire/reason-codes.js';
export { deriveDeviceId, DEVICE_ID_BYTES } from './identity.js';
export { createNobleCryptoProvider, type NobleCryptoProviderOptions } from './crypto/noble-crypto-provider.js';
export {
  Core,
  CoreDefaults,
  type CoreOptions,
  type CoreInput,
  type CoreOutput,
  type CoreEvent,
} from './core.js';
export type { RemotePeer } from './peer-link.js';
export { Prng } from './prng.js';
export { TimerTable } from './timer-table.js';
export * from './wire/messages.js';
export {
  encodeMessage,
  decodeMessage,
  encodeDataFrame,
  MAX_DATA_BYTES,
  DATA_HEADER_BYTES,
  HASH_BYTES,
  type DecodeResult,
} from './wire/codec.js';
export {
  frameRecord,
  RecordStreamDecoder,
  MAX_RECORD_BYTES,
  RECORD_HEADER_BYTES,
  type RecordStreamEvent,
  type RecordStreamDecoderOptions,
} from './wire/record-framer.js';
