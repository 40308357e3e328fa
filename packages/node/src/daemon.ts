/**
 * `peapod daemon`: one device's long-running PeaPod node, and the composition root of its parts.
 *
 * Theory of operation
 * - One `NodeHost` (node-host.ts) runs the core over TCP peer links (port 9000 by default) with
 *   the pod secret, so only pod members complete the handshake (Noise XXpsk3). Its one output
 *   switch hands transfer work to the I/O adapters (io-adapters.ts): origin fetches through this
 *   device's own internet link, writes and read-backs of the download jobs, the chunk store.
 * - Who dials whom is the core's peer table: `LanDiscovery` beacons (pod-sealed multicast) and
 *   the peers cache of the last run (peer-book.ts) are fed to it as `peer-discovered`; the host
 *   carries out its `connect` orders. `peapod peers` reads the same table.
 * - One HTTP server on the API port (8080) is both the forward proxy (`http_proxy=...`, no key,
 *   loopback clients; its pooling policy in proxy-policy.ts) and the local API the CLI talks to
 *   (api-router.ts, behind the API key of the data directory, DESIGN.md decision 13). Jobs are
 *   made by the job factory (job-factory.ts), which also routes the core's download events.
 * - Bandwidth limits: origin traffic always counts against `--max-download`; peer links count
 *   against both limits unless the peer is on the LAN (Syncthing's rule; `--limit-lan` turns it
 *   off). See rate-limit.ts.
 * - The chunk store (store/chunk-store.ts) is `<data dir>/store`, bounded by `storeBudgetBytes`.
 *   At start the core is told what it holds: `content-available` for every stored content with
 *   its held chunks (with `published` for those the store records published, so strangers are
 *   served them and a broadcasting device announces them), `url-content` for every URL
 *   mapping; chunks the store drops later (a copy that failed its check, eviction) become
 *   `content-removed`. This device serves chunks to its pod (`Capability.serveChunks`).
 *   `peapod share`, `fetch`, `ls`, `rm`, `publish` and `unpublish` are API routes
 *   (content-api.ts).
 * - Beyond the pod (gossip-service.ts), when `--tracker`, `--peer` or `--broadcast` asks for it:
 *   the core runs with `gossip: { self }` and accepts stranger links too; the gossip service
 *   feeds it the trackers' and peers.db's signed records and the `--peer` dials, keeps peers.db
 *   from its `gossip:peer` events, and registers a broadcasting device with each tracker.
 * - `stop()` (SIGINT/SIGTERM) cancels jobs (part files stay for a resume), unregisters from the
 *   trackers and writes peers.db's last view, sends GOODBYE on every link, closes sockets, saves
 *   the peers cache and closes the store: all other state worth keeping is on disk already.
 * - With `--gateway`, the pod is a cluster: a miss asks the other members' gateways by RPC
 *   (pod-rpc.ts) and fetches their copy by content ID; fills are announced to the core
 *   (gateway/cluster.ts).
 * Inputs reach the core only through the host's driver (`host.input`), queued while it drains.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  Capability,
  deriveDeviceId,
  formatDeviceId,
  STALL_TIMEOUT_DEFAULT_MS,
  toHex,
  type KeyPair,
} from '@peapod/core';
import type { Logger } from 'pino';
import { ApiGuard } from './api-guard.js';
import { ApiRouter } from './api-router.js';
import { manifestFromPod } from './manifest-probe.js';
import { ChunkStore, storeOpenError } from './store/chunk-store.js';
import { DataDir, STORE_BUDGET_DEFAULT_BYTES } from './data-dir.js';
import { DAEMON_RUN_FILE, type DaemonRunFile } from './daemon-run-file.js';
import { LanDiscovery, type DiscoveredPeer } from './discovery.js';
import { OriginFetcher } from './http/origin-fetcher.js';
import { ioAdapters } from './io-adapters.js';
import { JobFactory } from './job-factory.js';
import { createNodeCryptoProvider } from './node-crypto-provider.js';
import { NodeHost } from './node-host.js';
import { loadPeersCache, PeerBook, savePeersCache } from './peer-book.js';
import { gossipEnabled, GossipService, type GossipSettingsOfDaemon } from './gossip-service.js';
import { ForwardProxy } from './proxy.js';
import { forwardCacheResponder } from './gateway/forward-cache.js';
import { GatewayService, type GatewayConfig } from './gateway/gateway-service.js';
import { poolableGet } from './proxy-policy.js';
import type { BandwidthLimits } from './rate-limit.js';
import { PodRpc } from './pod-rpc.js';
import { RefusedPeers } from './refused-peers.js';

export interface DaemonConfig {
  readonly identity: KeyPair;
  readonly podSecret: Uint8Array;
  readonly deviceName: string;
  readonly bindAddress: string;
  readonly peerPort: number;
  readonly apiPort: number;
  readonly discoveryPort: number;
  readonly multicastInterface: string;
  /** Source address of this device's origin requests (its "internet link"); default: any. */
  readonly originAddress: string | undefined;
  /** Fetch for pod peers from any address, not only public ones (DESIGN.md decision 14). */
  readonly allowPrivateOrigins: boolean;
  readonly limits: BandwidthLimits;
  readonly logger: Logger;
  /**
   * Where `peers.json` (the peers seen, for a faster reconnect after a restart) and `api.key`
   * (the local API key) are kept; without it the API is closed.
   */
  readonly dataDir: string | undefined;
  /** Test-only fault injection: this daemon flips bytes of what it fetches for peers. */
  readonly corruptForPeers: boolean;
  /**
   * A download with no progress for this long fails, naming the origin or peer that stalled
   * (`--stall-timeout`, `PEAPOD_STALL_TIMEOUT`, config `stallTimeout`). Default 60 000.
   */
  readonly stallTimeoutMs?: number;
  /** Bytes of chunk files the store may keep (`--store-budget`); default 20 GiB. */
  readonly storeBudgetBytes?: number;
  /** TEST ONLY: the chunk server flips a byte of every chunk it serves (CoreOptions.testFaults). */
  readonly corruptServedChunks?: boolean;
  /**
   * Gossip beyond the pod (gossip-service.ts): trackers, broadcast or silent, the public address,
   * `--peer` strangers. Off unless a tracker, a peer or broadcast is given.
   */
  readonly gossip?: GossipSettingsOfDaemon;
  /** The caching gateway (`--gateway HOST:PORT --route ...`); needs a data directory. */
  readonly gateway?: GatewayConfig;
}

export { DAEMON_RUN_FILE, type DaemonRunFile };
export type { PeerRow } from './peer-book.js';

export class Daemon {
  readonly host: NodeHost;
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  private readonly discovery: LanDiscovery;
  private readonly proxy: ForwardProxy;
  private readonly fetcher: OriginFetcher;
  private readonly jobs: JobFactory;
  private readonly peers: PeerBook;
  /** RPC with pod members (the gateways' cache sharing). */
  private readonly rpc: PodRpc;
  private readonly api: ApiRouter;
  private readonly refused = new RefusedPeers();
  /** Present when gossip is on. */
  private readonly gossip: GossipService | undefined;
  /** Open from `start` to `stop` (with a data directory). */
  private store: ChunkStore | undefined;
  /** Chunk writes in flight: they settle before the store closes. */
  private readonly storeWrites = new Set<Promise<unknown>>();
  /** Running from `start` to `stop` with `--gateway`. */
  private gatewayService: GatewayService | undefined;

  constructor(private readonly config: DaemonConfig) {
    const { logger } = config;
    this.deviceId = deriveDeviceId(createNodeCryptoProvider(), config.identity.publicKey);
    this.deviceIdHex = toHex(this.deviceId);
    this.fetcher = new OriginFetcher({
      ...(config.originAddress === undefined ? {} : { localAddress: config.originAddress }),
      ...(config.limits.download === undefined ? {} : { limiter: config.limits.download }),
      ...(config.allowPrivateOrigins ? { peerDestinations: () => undefined } : {}),
    });
    const crypto = createNodeCryptoProvider();
    this.gossip =
      config.gossip !== undefined && gossipEnabled(config.gossip)
        ? new GossipService({
            settings: config.gossip,
            identity: config.identity,
            crypto,
            deviceName: config.deviceName,
            bindAddress: config.bindAddress,
            listenPort: config.peerPort,
            dataDir: config.dataDir,
            logger,
            feed: (input) => this.host.input(input),
            snapshot: () => this.host.core.gossipEngine?.snapshot() ?? [],
            isPodMember: (hex) => this.peers.isPodMember(hex),
          })
        : undefined;
    this.host = new NodeHost({
      identity: config.identity,
      podSecret: config.podSecret,
      deviceName: config.deviceName,
      listenPort: config.peerPort,
      // A pod member fetches origin ranges for the others (the pooled download) and serves the
      // chunks of its store.
      capabilities: Capability.fetchOrigin | Capability.rpc | Capability.serveChunks,
      limits: config.limits,
      ...(config.corruptServedChunks === true ? { testFaults: { corruptServedChunks: true } } : {}),
      ...(this.gossip === undefined ? {} : { gossip: { self: this.gossip.self() } }),
      ...(this.gossip === undefined ? {} : { dialPolicy: (dial) => this.gossip!.dialPolicy(dial) }),
      transfers: ioAdapters({
        fetcher: this.fetcher,
        jobOf: (downloadId) => this.jobs.jobOf(downloadId),
        logger,
        corruptForPeers: config.corruptForPeers,
        store: () => this.store,
        onStoreFailed: (contentId, message) => this.api.content.failContent(contentId, message),
        storeWrites: this.storeWrites,
      }),
    });
    this.jobs = new JobFactory({
      feed: (input) => this.host.input(input),
      stallTimeoutMs: config.stallTimeoutMs ?? STALL_TIMEOUT_DEFAULT_MS,
      originAddress: config.originAddress,
      limits: config.limits,
    });
    this.peers = new PeerBook(this.host.core, this.deviceIdHex, config.deviceName);
    this.rpc = new PodRpc(this.host);
    this.api = new ApiRouter({
      deviceId: this.deviceId,
      deviceIdHex: this.deviceIdHex,
      deviceName: config.deviceName,
      podSecret: config.podSecret,
      jobs: this.jobs,
      peers: this.peers,
      refused: this.refused,
      gossip: this.gossip,
      logger,
      gatewayCache: () => this.gatewayService,
      content: {
        store: () => this.store,
        crypto,
        feed: (input) => this.host.input(input),
        manifestFromPod: (contentId) => manifestFromPod(this.jobs, contentId),
        dataDir: config.dataDir,
        storeWritesSettled: () => Promise.all(this.storeWrites),
      },
    });
    this.proxy = new ForwardProxy({
      localHandler: (req, res) => this.api.serve(req, res),
      // With the gateway running, proxied GETs go through its cache (forward mode).
      poolable: (request) =>
        this.gatewayService === undefined
          ? poolableGet(request, this.jobs, logger)
          : forwardCacheResponder(
              this.gatewayService.cachedGet,
              request,
              this.gatewayService.onResponse,
              this.gatewayService.localAddress,
            ),
      logger,
    });
    this.discovery = new LanDiscovery({
      podSecret: config.podSecret,
      deviceId: this.deviceId,
      peerPort: config.peerPort,
      port: config.discoveryPort,
      interfaceAddress: config.multicastInterface,
    });
    this.discovery.on('peer', (peer) => this.discovered(peer, 'lan'));
    this.discovery.on('error', (error) =>
      logger.warn({ error: error.message }, 'discovery socket error'),
    );
    this.logEvents();
  }

  get logger(): Logger {
    return this.config.logger;
  }

  async start(): Promise<{ peer: AddressInfo; api: AddressInfo }> {
    const { bindAddress, peerPort, apiPort, dataDir } = this.config;
    if (dataDir !== undefined) {
      this.api.guard = new ApiGuard(await (await DataDir.open(dataDir)).loadApiKey(), bindAddress);
      await this.openStore(dataDir);
    }
    const peer = await this.host
      .listen(peerPort, bindAddress)
      .catch((error: NodeJS.ErrnoException) => portError(error, 'peer', '--peer-port'));
    const api = await this.proxy
      .listen(apiPort, bindAddress)
      .catch((error: NodeJS.ErrnoException) => portError(error, 'API/proxy', '--api-port'));
    await this.discovery.start();
    await this.gossip?.start(peer.port);
    await this.startGateway();
    await this.writeRunFile(api);
    if (dataDir !== undefined) {
      for (const known of await loadPeersCache(dataDir, this.deviceIdHex)) {
        this.discovered(known, 'cache');
      }
    }
    this.logger.info(
      {
        device: this.peers.label(this.deviceIdHex),
        deviceId: formatDeviceId(this.deviceId),
        peerPort: peer.port,
        apiPort: api.port,
      },
      'daemon started',
    );
    return { peer, api };
  }

  async stop(): Promise<void> {
    this.logger.info('daemon stopping');
    await this.discovery.close();
    await this.jobs.cancelAll();
    this.fetcher.close();
    await this.gossip?.stop(); // unregisters while the links are still up
    await this.host.close();
    if (this.config.dataDir !== undefined) {
      await savePeersCache(this.config.dataDir, this.peers.cacheRows());
      await rm(join(this.config.dataDir, DAEMON_RUN_FILE), { force: true });
    }
    await this.proxy.close();
    await this.gatewayService?.close();
    this.gatewayService = undefined;
    await Promise.all(this.storeWrites);
    this.store?.close();
    this.store = undefined;
  }

  /** Starts the gateway when configured (it caches into the store, so it needs one). */
  private async startGateway(): Promise<void> {
    const { gateway, dataDir } = this.config;
    if (gateway === undefined) return;
    if (dataDir === undefined || this.store === undefined)
      throw new Error('the gateway caches into the chunk store: it needs a data directory');
    this.gatewayService = await GatewayService.start({
      config: gateway,
      dataDir,
      store: this.store,
      crypto: createNodeCryptoProvider(),
      logger: this.logger,
      localAddress: this.config.originAddress,
      // The pod is the cluster: misses ask the other members' gateways first (cluster.ts).
      cluster: {
        rpc: this.rpc,
        jobs: this.jobs,
        selfId: this.deviceId,
        storeWritesSettled: () => Promise.all(this.storeWrites),
        announce: (manifest) =>
          this.host.input({ type: 'content-available', nowMs: performance.now(), manifest }),
      },
    }).catch((error: NodeJS.ErrnoException) => portError(error, 'gateway', '--gateway'));
  }

  /** The gateway, when running (the local API's `cache` routes). */
  get gatewayCache(): GatewayService | undefined {
    return this.gatewayService;
  }

  /**
   * Opens the store (recovery runs there) and tells the core what it holds. Any failure, in
   * the open or in the first reads, is one sentence naming the store (`storeOpenError`).
   */
  private async openStore(dataDir: string): Promise<void> {
    const dir = join(dataDir, 'store');
    try {
      await this.loadStore(dir);
    } catch (error) {
      this.store?.close();
      this.store = undefined;
      throw storeOpenError(dir, error);
    }
  }

  /** `openStore`'s work: open, then announce every held chunk and URL mapping. */
  private async loadStore(dir: string): Promise<void> {
    const store = await ChunkStore.open({
      dir,
      budgetBytes: this.config.storeBudgetBytes ?? STORE_BUDGET_DEFAULT_BYTES,
      onChunksDropped: (contentId, indices) => {
        this.gatewayService?.chunksDropped(contentId);
        this.host.input({
          type: 'content-removed',
          nowMs: performance.now(),
          contentId,
          chunkIndices: indices,
        });
      },
    });
    this.store = store;
    const { recovery } = store;
    if (recovery.temporaryFilesRemoved + recovery.orphanFilesRemoved + recovery.rowsDropped > 0) {
      this.logger.info({ ...recovery }, 'chunk store recovered from an unclean stop');
    }
    for (const row of store.list()) {
      const chunkIndices = store.heldIndices(row.manifest.contentId);
      // A published one goes over even with no chunk held, so the core's published set is the
      // store's (its chunks may come back).
      if (chunkIndices.length === 0 && !row.published) continue;
      this.host.input({
        type: 'content-available',
        nowMs: performance.now(),
        manifest: row.manifest,
        ...(row.complete ? {} : { chunkIndices }),
        ...(row.published ? { published: true } : {}),
      });
    }
    for (const { url, validator, contentId } of store.urlMappings()) {
      this.host.input({ type: 'url-content', nowMs: performance.now(), url, validator, contentId });
    }
    this.jobs.useStore(store, this.logger); // gets look for pod copies first, and are kept
  }

  /** daemon.json: where this running daemon's API is, for the CLI (removed on stop). */
  private async writeRunFile(api: AddressInfo): Promise<void> {
    if (this.config.dataDir === undefined) return;
    const path = join(this.config.dataDir, DAEMON_RUN_FILE);
    const run: DaemonRunFile = { pid: process.pid, apiHost: api.address, apiPort: api.port };
    await writeFile(`${path}.tmp`, JSON.stringify(run));
    await rename(`${path}.tmp`, path);
  }

  /** A pod member's beacon, or a device of the peers cache: the core's table decides. */
  private discovered(
    peer: Pick<DiscoveredPeer, 'deviceId' | 'address' | 'port'>,
    source: 'lan' | 'cache',
  ): void {
    const hex = toHex(peer.deviceId);
    if (hex !== this.deviceIdHex && this.peers.find(hex) === undefined) {
      this.logger.info(
        { peer: this.peers.label(hex), address: peer.address, port: peer.port, source },
        'peer discovered',
      );
    }
    const { deviceId, address, port } = peer;
    this.host.input({
      type: 'peer-discovered',
      nowMs: performance.now(),
      deviceId,
      address,
      port,
      source,
    });
  }

  /** The core's download events go to their jobs; the rest is logged. */
  private logEvents(): void {
    const { host, peers, logger } = this;
    host.on('download:progress', (event) => this.jobs.onCoreEvent(event));
    host.on('download:complete', (event) => this.jobs.onCoreEvent(event));
    host.on('download:failed', (event) => this.jobs.onCoreEvent(event));
    host.on('url:lookup', (event) => this.jobs.onUrlLookup(event)); // pod copies of URLs
    // A content download's manifest from a peer, before any of its chunks: the store indexes
    // chunks by it, so it is recorded first (whatever job runs the download), then the job
    // learns it (manifest-probe.ts: a tree's layout, the --only selection).
    host.on('download:manifest', (event) => {
      const { manifest } = event;
      if (this.store?.manifest(manifest.contentId) === undefined) {
        this.store?.addContent(manifest, { kind: 'fetched' }, { pinned: false });
      }
      this.jobs.onCoreEvent(event);
    });
    host.on('peer:banned', (event) =>
      logger.warn(
        { peer: peers.label(toHex(event.deviceId)), detail: event.detail },
        'peer banned',
      ),
    );
    host.on('peer:connect', (event) => {
      this.gossip?.onLinkUp(event.remoteAddress, event.direction);
      // A stranger's address stays out of the log too: it may be a silent device's.
      const pod = event.remote.trust === 'pod';
      logger.info(
        {
          peer: peers.label(toHex(event.remote.deviceId)),
          ...(pod ? { address: event.remoteAddress } : { trust: 'stranger' }),
        },
        pod ? 'peer connected' : 'stranger linked',
      );
    });
    host.on('gossip:peer', (event) => this.gossip?.onEvent(event));
    host.on('gossip:rejected', (event) => this.gossip?.onEvent(event));
    host.on('peer:disconnect', (event) => {
      if (event.deviceId === undefined) return; // it never finished its handshake
      logger.info(
        { peer: peers.label(toHex(event.deviceId)), reason: event.reason, detail: event.detail },
        'peer disconnected',
      );
    });
    host.on('dial:failed', (event) => {
      if (event.deviceId === undefined) {
        this.gossip?.onDialFailed(event.address, event.port, event.detail);
      }
      logger.warn(
        {
          peer:
            event.deviceId === undefined
              ? `${event.address}:${event.port}`
              : peers.label(toHex(event.deviceId)),
          error: event.detail,
        },
        'dial failed',
      );
    });
    host.on('peer:refused', (event) => {
      // A flood's refusals (the inbound guard's) are not a device of another pod: debug only.
      if (event.cause !== 'pod-secret') {
        logger.debug({ address: event.address, cause: event.cause }, 'handshake refused');
        return;
      }
      this.refused.record(event.address, new Date());
      logger.warn(
        { address: event.address, direction: event.direction, detail: event.detail },
        'a device that does not hold this pod secret tried to connect',
      );
    });
  }
}

function portError(error: NodeJS.ErrnoException, what: string, flag: string): never {
  if (error.code === 'EADDRINUSE') {
    throw new Error(
      `the ${what} port is in use (${error.message.replace(/^listen EADDRINUSE: /, '')}): ` +
        `is another peapod daemon running? Pick another port with ${flag}.`,
    );
  }
  throw error;
}
