/**
 * The daemon's gateway, assembled: route table, object index, object cache over the daemon's
 * chunk store, the cached GET/HEAD logic and the endpoint-mode server (`peapod daemon --gateway
 * HOST:PORT --route MATCH=TARGET ...`).
 *
 * Theory of operation
 * - Files: `<data dir>/gateway.db` (object index, SQLite) and `<data dir>/gateway/objects/`
 *   (object files the store references chunk by chunk and verifies on every read).
 * - The gateway's AWS credentials are looked up once at start (upstream-signer.ts); the start-up
 *   log line says where they came from, never what they are.
 * - Everything a request does stays inside the gateway's handler: a failure answers that
 *   request (or cuts it) and never reaches the daemon.
 * - `stats()`, `list()` and `evict()` back `peapod cache stats|ls|evict` (the local API).
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { CryptoProvider, Manifest } from '@peapod/core';
import type { JobFactory } from '../job-factory.js';
import type { PodRpc } from '../pod-rpc.js';
import { ClusterSharing } from './cluster.js';
import { SegmentFeeds } from './segment-feed.js';
import type { Logger } from 'pino';
import type { ChunkStoreApi } from '../store/store-api.js';
import { CachedGet } from './cached-get.js';
import { ClientAuthenticator } from './client-auth.js';
import { Gateway } from './gateway-server.js';
import { MemoryCache, type MemoryCacheStats } from './memory-cache.js';
import { Metrics } from './metrics.js';
import { ObjectCache } from './object-cache.js';
import { ObjectIndex, type CachedObject } from './object-index.js';
import type { Route } from './routes.js';
import { RouteTable } from './routes.js';
import { findAwsCredentials } from './upstream-signer.js';

/** `--cache-size` when not given. */
export const GATEWAY_CACHE_DEFAULT_BYTES = 10 * 2 ** 30;
/** `--cache-memory` when not given. */
export const GATEWAY_MEMORY_DEFAULT_BYTES = 256 * 2 ** 20;

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly routes: readonly Route[];
  /** Bytes of cached objects kept on disk. */
  readonly cacheBytes: number;
  /** Bytes of verified chunks kept in memory (L1). */
  readonly memoryBytes: number;
  /**
   * Access key ID -> secret (`--gateway-keys FILE`): endpoint-mode clients from any address,
   * each request signed with one of them. Without: loopback clients, unauthenticated.
   */
  readonly clientKeys?: ReadonlyMap<string, string>;
}

export interface GatewayStats {
  readonly objects: number;
  readonly bytes: number;
  readonly budgetBytes: number;
  readonly requests: number;
  readonly hits: number;
  readonly misses: number;
  readonly bytesFromOrigin: number;
  readonly bytesFromCache: number;
  readonly bytesFromMemory: number;
  readonly bytesFromStore: number;
  readonly memory: MemoryCacheStats;
  readonly revalidations: Readonly<Record<'not_modified' | 'changed' | 'denied', number>>;
  /** Bytes fetched from members (cluster sharing), all members together. */
  readonly bytesFromPeers: number;
}

/** What cluster sharing needs of the daemon (cluster.ts). */
export interface GatewayCluster {
  readonly rpc: PodRpc;
  readonly jobs: JobFactory;
  readonly selfId: Uint8Array;
  /** Resolves once the chunks the core delivered so far are in the store. */
  readonly storeWritesSettled: () => Promise<unknown>;
  /** A fill was stored whole: the core is told, so members can fetch it. */
  readonly announce: (manifest: Manifest) => void;
}

function newCounts() {
  return {
    /** Responses by mode, method and status (`peapod_gateway_requests_total`). */
    responses: new Map<string, { labels: Record<string, string>; value: number }>(),
    storeEvictions: 0,
    requests: 0,
    hits: 0,
    misses: 0,
    bytesFromOrigin: 0,
    bytesFromCache: 0,
    /** Of bytesFromCache: read from L1, and from the store. */
    bytesFromMemory: 0,
    bytesFromStore: 0,
    revalidations: { not_modified: 0, changed: 0, denied: 0 },
    /** By member (device hex): bytes fetched from it, and its last transfer's rate. */
    peers: new Map<string, { bytes: number; bytesPerSecond: number }>(),
  };
}

export class GatewayService {
  private constructor(
    private readonly counts: ReturnType<typeof newCounts>,
    private readonly gateway: Gateway,
    private readonly index: ObjectIndex,
    private readonly cache: ObjectCache,
    /** GET and HEAD through the cache: the endpoint's, and the forward proxy's (forward-cache.ts). */
    readonly cachedGet: CachedGet,
    private readonly memory: MemoryCache,
    /** Where forward-mode responses are counted (forward-cache.ts). */
    /** Source address of upstream requests (forward mode uses it too). */
    readonly localAddress: string | undefined,
    readonly onResponse: (
      mode: 'endpoint' | 'forward',
      method: string,
      status: number,
      seconds: number,
    ) => void,
    private readonly config: GatewayConfig,
    readonly address: AddressInfo,
  ) {}

  static async start(options: {
    readonly config: GatewayConfig;
    readonly dataDir: string;
    readonly store: ChunkStoreApi;
    readonly crypto: CryptoProvider;
    readonly logger: Logger;
    /** Source address of upstream requests (`--origin-address`); default: any. */
    readonly localAddress?: string | undefined;
    /** Share the cache with the pod's other gateways; without it every miss is the origin's. */
    readonly cluster?: GatewayCluster;
  }): Promise<GatewayService> {
    const { config, dataDir, store, crypto, logger, cluster } = options;
    const index = new ObjectIndex(join(dataDir, 'gateway.db'));
    const counts = newCounts();
    const feeds = new SegmentFeeds();
    const memory = new MemoryCache({ maxBytes: config.memoryBytes });
    const cache = new ObjectCache({
      memory,
      onEvicted: () => counts.storeEvictions++,
      onChunkRead: (layer, bytes) => {
        if (layer === 'memory') counts.bytesFromMemory += bytes;
        else counts.bytesFromStore += bytes;
      },
      store,
      index,
      objectsDir: join(dataDir, 'gateway', 'objects'),
      crypto,
      budgetBytes: config.cacheBytes,
      nowMs: () => Date.now(),
      // Segments let concurrent misses (local ones, and members when clustered) read a fill
      // while it runs.
      feeds,
      ...(cluster === undefined ? {} : { onFilled: cluster.announce }),
    });
    const sharing =
      cluster === undefined
        ? undefined
        : new ClusterSharing(
            cluster.rpc,
            cluster.jobs,
            cluster.selfId,
            store,
            crypto,
            cluster.storeWritesSettled,
          );
    const found = findAwsCredentials();
    const cachedGet = new CachedGet(
      cache,
      {
        lookup: (_layer, result) => {
          counts.requests++;
          if (result === 'hit') counts.hits++;
          else counts.misses++;
        },
        revalidated: (result) => counts.revalidations[result]++,
        bytes: (source, count) => {
          if (source === 'origin') counts.bytesFromOrigin += count;
          else counts.bytesFromCache += count;
        },
        fromMembers: ({ bySource, seconds }) => {
          for (const [peer, bytes] of Object.entries(bySource)) {
            if (peer === 'self') continue;
            const entry = counts.peers.get(peer) ?? { bytes: 0, bytesPerSecond: 0 };
            entry.bytes += bytes;
            entry.bytesPerSecond = seconds > 0 ? bytes / seconds : 0;
            counts.peers.set(peer, entry);
          }
        },
        resumed: (key, offset, reason) =>
          logger.warn(
            { key, offset, reason },
            "the pod's copy stopped; the origin sends the rest (a range request)",
          ),
      },
      () => Date.now(),
      sharing,
    );
    const metrics = gatewayMetrics(counts, index, memory);
    const gateway = new Gateway({
      routes: new RouteTable(config.routes),
      cache: cachedGet,
      metrics,
      onResponse: (mode, method, status, seconds) =>
        recordResponse(counts, metrics, mode, method, status, seconds),
      logger,
      ...(found === undefined ? {} : { credentials: found.credentials }),
      ...(config.clientKeys === undefined
        ? {}
        : { authenticator: new ClientAuthenticator(config.clientKeys) }),
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    sharing?.serve({
      held: (key) => {
        const object = cache.lookup(key);
        return object !== undefined && cache.held(object) ? object : undefined;
      },
      segment: async (key, index) => {
        const whole = () => {
          const object = cache.lookup(key);
          return object !== undefined && cache.held(object) ? { whole: object } : undefined;
        };
        let feed = feeds.get(key);
        if (feed === undefined) {
          const held = whole();
          if (held !== undefined) return held;
          const upstream = gateway.keyUpstream(key);
          if (upstream === undefined) return 'not-routed';
          const filled = cachedGet.fillForMember(key, upstream.call, upstream.credentialed);
          feed = await cache.feedOf(key, filled);
          if (feed === undefined) return whole();
        }
        const manifest = await feed.segment(index);
        if (manifest === undefined) return undefined;
        return { head: feed.head, segmentBytes: feed.segmentBytes, manifest };
      },
      ageMs: (object) => cachedGet.ageMs(object),
    });
    let address: AddressInfo;
    try {
      address = await gateway.listen(config.port, config.host);
    } catch (error) {
      index.close();
      throw error;
    }
    const service = new GatewayService(
      counts,
      gateway,
      index,
      cache,
      cachedGet,
      memory,
      options.localAddress,
      (mode, method, status, seconds) =>
        recordResponse(counts, metrics, mode, method, status, seconds),
      config,
      address,
    );
    logger.info(
      {
        gateway: `${address.address}:${address.port}`,
        routes: config.routes.map((r) => r.spec),
        awsCredentials: found?.source ?? 'none (S3 requests go unsigned)',
        clients:
          config.clientKeys === undefined
            ? 'loopback, unauthenticated'
            : `any address, signed with one of ${config.clientKeys.size} gateway keys`,
      },
      'gateway started',
    );
    return service;
  }

  stats(): GatewayStats {
    const { peers: _peers, ...counts } = this.counts;
    return {
      objects: this.index.all().length,
      bytes: this.index.totalBytes(),
      budgetBytes: this.config.cacheBytes,
      ...counts,
      memory: this.memory.stats(),
      revalidations: { ...this.counts.revalidations },
      bytesFromPeers: [...this.counts.peers.values()].reduce((sum, p) => sum + p.bytes, 0),
    };
  }

  list(): CachedObject[] {
    return this.index.all();
  }

  /** The store dropped chunks of `contentId`: an object using it is no longer known whole. */
  chunksDropped(contentId: Uint8Array): void {
    this.cache.chunksDropped(contentId);
  }

  /** Evicts the objects whose key starts with `prefix` (all with ''); how many went. */
  async evict(prefix: string): Promise<number> {
    let count = 0;
    for (const object of this.index.all())
      if (object.key.startsWith(prefix) && (await this.cache.evict(object.key))) count++;
    return count;
  }

  async close(): Promise<void> {
    await this.gateway.close();
    this.index.close();
  }
}

type Counts = ReturnType<typeof newCounts>;

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function recordResponse(
  counts: Counts,
  metrics: Metrics,
  mode: 'endpoint' | 'forward',
  method: string,
  status: number,
  seconds: number,
): void {
  const labels = { mode, method, status: String(status) };
  const key = `${mode} ${method} ${status}`;
  const series = counts.responses.get(key);
  if (series === undefined) counts.responses.set(key, { labels, value: 1 });
  else series.value++;
  metrics.observe('peapod_gateway_request_duration_seconds', seconds);
}

/** The registry behind `/metrics`: every series read from the counts at scrape time. */
function gatewayMetrics(counts: Counts, index: ObjectIndex, memory: MemoryCache): Metrics {
  const metrics = new Metrics();
  metrics.counter(
    'peapod_gateway_requests_total',
    'Responses the gateway sent, by mode, method and status.',
    () => [...counts.responses.values()],
  );
  metrics.counter(
    'peapod_gateway_cache_lookups_total',
    'Cache lookups by layer and result.',
    () => {
      const m = memory.stats();
      return [
        { labels: { layer: 'memory', result: 'hit' }, value: m.hits },
        { labels: { layer: 'memory', result: 'miss' }, value: m.misses },
        { labels: { layer: 'store', result: 'hit' }, value: counts.hits },
        { labels: { layer: 'store', result: 'miss' }, value: counts.misses },
      ];
    },
  );
  metrics.counter(
    'peapod_gateway_bytes_total',
    'Body bytes served, by where they came from.',
    () => [
      { labels: { source: 'origin' }, value: counts.bytesFromOrigin },
      { labels: { source: 'memory' }, value: counts.bytesFromMemory },
      { labels: { source: 'store' }, value: counts.bytesFromStore },
    ],
  );
  metrics.gauge(
    'peapod_gateway_back_to_origin_ratio',
    'Bytes from the origin over all body bytes served (0 when nothing was served).',
    () => {
      const served = counts.bytesFromOrigin + counts.bytesFromCache;
      return [{ labels: {}, value: served === 0 ? 0 : counts.bytesFromOrigin / served }];
    },
  );
  metrics.counter(
    'peapod_gateway_peer_bytes_total',
    'Bytes fetched from each member of the pod (cluster sharing), by device ID.',
    () => [...counts.peers].map(([peer, p]) => ({ labels: { peer }, value: p.bytes })),
  );
  metrics.gauge(
    'peapod_gateway_peer_throughput_bytes_per_second',
    "Each member's share of the last object fetched from members, over that transfer's time.",
    () => [...counts.peers].map(([peer, p]) => ({ labels: { peer }, value: p.bytesPerSecond })),
  );
  metrics.counter('peapod_gateway_evictions_total', 'Evictions by layer.', () => [
    { labels: { layer: 'memory' }, value: memory.stats().evictions },
    { labels: { layer: 'store' }, value: counts.storeEvictions },
  ]);
  metrics.counter(
    'peapod_gateway_revalidations_total',
    'Revalidations with the origin, by outcome.',
    () =>
      Object.entries(counts.revalidations).map(([result, value]) => ({
        labels: { result },
        value,
      })),
  );
  metrics.gauge('peapod_gateway_memory_bytes', 'Bytes of chunks held in memory (L1).', () => [
    { labels: {}, value: memory.stats().bytes },
  ]);
  metrics.gauge('peapod_gateway_store_bytes', 'Bytes of cached objects on disk (L2).', () => [
    { labels: {}, value: index.totalBytes() },
  ]);
  metrics.histogram(
    'peapod_gateway_request_duration_seconds',
    'Time from request to the end of the response.',
    DURATION_BUCKETS,
  );
  return metrics;
}
