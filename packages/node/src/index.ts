/**
 * @peapod/node: the Node host: the node:crypto provider, the host loop over TCP (`NodeHost`),
 * the daemon and its parts (discovery, pods, data directory, origin client, proxy). The `peapod`
 * CLI is `dist/src/cli.js`. An embeddable library API comes with a later issue.
 */
export { NodeHost, type NodeHostOptions } from './node-host.js';
export { Daemon, type DaemonConfig } from './daemon.js';
export { type PeerRow } from './peer-book.js';
export {
  createNodeCryptoProvider,
  type NodeCryptoProvider,
  type NodeCryptoProviderOptions,
} from './node-crypto-provider.js';
export {
  LanDiscovery,
  DISCOVERY_GROUP,
  DISCOVERY_PORT,
  DISCOVERY_ANNOUNCE_INTERVAL_MS,
  DISCOVERY_REPLY_JITTER_MS_MAX,
  type LanDiscoveryOptions,
  type LanDiscoveryEvents,
  type DiscoveredPeer,
  type RejectedBeacon,
} from './discovery.js';
export {
  createPod,
  podId,
  formatJoinCode,
  parseJoinCode,
  JOIN_CODE_PREFIX,
  JOIN_CODE_VERSION,
} from './pod.js';
export {
  DataDir,
  DataDirFiles,
  SETTINGS,
  configDefaults,
  resolveConfig,
  resolveDataDir,
  type PeapodConfig,
  type ConfigSource,
  type ConfigFlags,
  type ResolvedConfig,
  type ResolveConfigOptions,
  type DeviceIdentity,
} from './data-dir.js';
export {
  ForwardProxy,
  PROXY_PORT,
  isLoopbackAddress,
  parseAuthority,
  parseRequestTarget,
  stripHopByHop,
  type ForwardProxyOptions,
  type PoolableHook,
  type PooledResponder,
  type ProxiedGet,
  type ProxyLogger,
  type Authority,
  type RequestTarget,
} from './proxy.js';
export {
  probeOrigin,
  REDIRECTS_MAX,
  type OriginProbe,
  type OriginDescription,
  type ProbeOptions,
} from './http/origin-probe.js';
export {
  OriginFetcher,
  type FetchOriginOutput,
  type FetchOutcome,
  type FetchCallbacks,
  type ByteLimiter,
  type OriginFetcherOptions,
} from './http/origin-fetcher.js';
export {
  DigestVerifier,
  userSha256,
  type DigestAlgorithm,
  type ExpectedDigest,
  type DigestCheck,
  type DigestReport,
} from './http/digest.js';
