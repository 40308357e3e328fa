/**
 * @peapod/core: the public surface of pea-core. Only what this file exports is public.
 */
export { PeapodError, assert, type PeapodErrorCode } from './errors.js';
export {
  toHex,
  fromHex,
  utf8Encode,
  utf8Decode,
  concatBytes,
  equalBytes,
  base32Encode,
  BASE32_ALPHABET,
} from './bytes.js';
export type { CryptoProvider, Sha256Hasher, KeyPair, AeadCipher } from './crypto-provider.js';
export { ReasonCode, reasonName } from './wire/reason-codes.js';
export {
  deriveDeviceId,
  formatDeviceId,
  parseDeviceId,
  shortDeviceId,
  DEVICE_ID_BYTES,
} from './identity.js';
export {
  SecureSession,
  NoiseSuite,
  SESSION_WIRE_VERSION,
  SESSION_MAX_RECORD_BYTES,
  SESSION_MAX_PLAINTEXT_BYTES,
  SESSION_DEFAULT_REKEY_INTERVAL_RECORDS,
  type NoiseSuiteId,
  type NoiseSuiteName,
  type SessionEvent,
  type SessionState,
  type SessionRole,
  type RemoteIdentity,
  type SecureSessionOptions,
  type InitiatorSessionOptions,
  type ResponderSessionOptions,
} from './secure-session.js';
export {
  NoiseHandshake,
  type NoiseHandshakeOptions,
  type NoiseTransport,
  type NoiseRole,
  type NoiseHandshakeStatus,
  type NoiseFailure,
  type NoiseReadResult,
  type NoiseWriteResult,
  type NoisePayload,
} from './noise/handshake-state.js';
export {
  createNobleCryptoProvider,
  type NobleCryptoProviderOptions,
} from './crypto/noble-crypto-provider.js';
export {
  Core,
  CoreDefaults,
  type CoreOptions,
  type CoreInput,
  type CoreOutput,
  type CoreEvent,
} from './core.js';
export type { LinkFraming, RemotePeer } from './peer-link.js';
export { HostDriver, unreachableOutput, type HostAdapter } from './host-driver.js';
export {
  PeerTable,
  PeerTableDefaults,
  type PeerSnapshot,
  type PeerSource,
  type PeerState,
} from './peer-table.js';
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
export {
  CHUNK_SIZE_BYTES_MIN,
  CHUNK_SIZE_BYTES_MAX,
  CHUNK_SIZE_BYTES_DEFAULT,
  CHUNK_COUNT_MAX,
  CHUNK_HASH_BYTES,
  isValidChunkSize,
  chunkCount,
  chunkLength,
  chunkRange,
  type ChunkLayout,
  type ByteRange,
} from './content/layout.js';
export { Chunker, type ChunkInfo, type ChunkerOptions } from './content/chunker.js';
export {
  ChunkVerifier,
  verifyChunk,
  type ChunkFailure,
  type ChunkFailureReason,
  type ChunkWriteResult,
  type ChunkVerifyResult,
} from './content/chunk-verifier.js';
export {
  CONTENT_ID_BYTES,
  computeContentId,
  contentIdFromTreeRoot,
  verifyChunkProof,
  type ChunkProofClaim,
} from './content/content-id.js';
export {
  MANIFEST_MAGIC,
  MANIFEST_VERSION,
  MANIFEST_HEADER_BYTES,
  MANIFEST_VERSION_TREE,
  MANIFEST_BYTES_MAX,
  createManifest,
  encodeManifest,
  decodeManifest,
  type Manifest,
  type ManifestFile,
  type ManifestFields,
  type ManifestDecodeResult,
  type ManifestDecodeFailureReason,
} from './content/manifest.js';
export {
  FILE_COUNT_MAX,
  FILE_TABLE_BYTES_MAX,
  TREE_PATH_BYTES_MAX,
  TREE_SEGMENT_BYTES_MAX,
  treePathProblem,
  fileRanges,
  chunksOfFiles,
  type FileRange,
} from './content/file-table.js';
export {
  MERKLE_HASH_BYTES,
  buildMerkleTree,
  merkleRoot,
  merkleProof,
  verifyMerkleProof,
  merkleRootFromProof,
  merkleLeafHash,
  merkleNodeHash,
  type MerkleTree,
  type MerkleProofClaim,
} from './content/merkle.js';
export {
  PieceScheduler,
  SELF_SOURCE,
  SchedulerDefaults,
  type SourceId,
  type SchedulerOptions,
  type Assignment,
  type AssignContext,
  type FailureKind,
} from './transfer/scheduler.js';
export { ReorderBuffer } from './transfer/reorder-buffer.js';
export { STALL_TIMEOUT_DEFAULT_MS } from './transfer/stall-watch.js';
export type {
  DownloadSource,
  DownloadFallback,
  TransferInput,
  TransferOutput,
  TransferEvent,
  UrlHolder,
} from './transfer/transfer-api.js';
export { URL_LOOKUP_TIMEOUT_MS } from './transfer/transfer-api.js';
export { URL_INDEX_URLS_MAX, URL_VERSIONS_MAX } from './transfer/url-index.js';
export { fallbackFor, type FallbackCase } from './transfer/fallback-policy.js';
export {
  BeaconCodec,
  BeaconReplayCache,
  deriveBeaconKey,
  BEACON_MAGIC,
  BEACON_VERSION,
  BEACON_BYTES,
  BEACON_ID_BYTES,
  BEACON_WINDOW_MS,
  BEACON_REPLAY_ENTRIES_MAX,
  POD_SECRET_BYTES,
  type Beacon,
  type BeaconFields,
  type BeaconKind,
  type BeaconCodecOptions,
  type BeaconDecodeResult,
  type BeaconRejectReason,
} from './discovery/beacon.js';
export { luhnCheckCharacter } from './identity.js';
export * from './gossip/messages.js';
export * from './gossip/peer-record.js';
export * from './gossip/gossip-codec.js';
export * from './gossip/record-cache.js';
export * from './gossip/gossip-engine.js';
export type { LinkTrust } from './peer-link.js';
