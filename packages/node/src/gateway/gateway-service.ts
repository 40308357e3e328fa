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
import type { CryptoProvider } from '@peapod/core';
import type { Logger } from 'pino';
import type { ChunkStoreApi } from '../store/store-api.js';
import { CachedGet } from './cached-get.js';
import { Gateway } from './gateway-server.js';
import { MemoryCache, type MemoryCacheStats } from './memory-cache.js';
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
}

function newCounts() {
  return {
    requests: 0,
    hits: 0,
    misses: 0,
    bytesFromOrigin: 0,
    bytesFromCache: 0,
    /** Of bytesFromCache: read from L1, and from the store. */
    bytesFromMemory: 0,
    bytesFromStore: 0,
    revalidations: { not_modified: 0, changed: 0, denied: 0 },
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
    private readonly config: GatewayConfig,
    readonly address: AddressInfo,
  ) {}

  static async start(options: {
    readonly config: GatewayConfig;
    readonly dataDir: string;
    readonly store: ChunkStoreApi;
    readonly crypto: CryptoProvider;
    readonly logger: Logger;
  }): Promise<GatewayService> {
    const { config, dataDir, store, crypto, logger } = options;
    const index = new ObjectIndex(join(dataDir, 'gateway.db'));
    const counts = newCounts();
    const memory = new MemoryCache({ maxBytes: config.memoryBytes });
    const cache = new ObjectCache({
      memory,
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
    });
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
      },
      () => Date.now(),
    );
    const gateway = new Gateway({
      routes: new RouteTable(config.routes),
      cache: cachedGet,
      logger,
      ...(found === undefined ? {} : { credentials: found.credentials }),
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
      config,
      address,
    );
    logger.info(
      {
        gateway: `${address.address}:${address.port}`,
        routes: config.routes.map((r) => r.spec),
        awsCredentials: found?.source ?? 'none (S3 requests go unsigned)',
      },
      'gateway started',
    );
    return service;
  }

  stats(): GatewayStats {
    return {
      objects: this.index.all().length,
      bytes: this.index.totalBytes(),
      budgetBytes: this.config.cacheBytes,
      ...this.counts,
      memory: this.memory.stats(),
      revalidations: { ...this.counts.revalidations },
    };
  }

  list(): CachedObject[] {
    return this.index.all();
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
