/**
 * `peapod daemon`: one device's long-running PeaPod node.
 *
 * Theory of operation
 * - One `NodeHost` runs the core over TCP peer links (port 9000 by default) with the pod secret,
 *   so only pod members complete the handshake (Noise XXpsk3). Its host loop is the only place
 *   that turns core outputs into I/O; transfer outputs come to `performTransfer` here and become
 *   origin fetches (this device's own internet link), writes to a download's sink, or reads.
 * - `LanDiscovery` multicasts pod-sealed beacons; when a pod member appears, the device with the
 *   smaller Device ID dials the other (one link per pair, no races).
 * - One HTTP server on the API port (8080) is both the forward proxy (`http_proxy=...`, no key,
 *   loopback clients) and the local API the CLI talks to (`/api/...`): `peapod get` posts a job
 *   and reads its progress as NDJSON; `peapod peers` reads the peer table. Every API request
 *   must present the key from the data directory's `api.key` (loaded, or created, at start) and
 *   name this daemon's own address in `Host` and any `Origin`; anything else is refused with 403
 *   before any work (api-guard.ts, DESIGN.md decision 13).
 * - Bandwidth limits: origin traffic always counts against `--max-download`; peer links count
 *   against both limits unless the peer is on the LAN (Syncthing's rule; `--limit-lan` turns it
 *   off). See rate-limit.ts.
 * - `stop()` (SIGINT/SIGTERM) cancels jobs (part files stay for a resume), sends GOODBYE on
 *   every link, closes sockets and saves nothing else: all state worth keeping is on disk already.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  Capability,
  deriveDeviceId,
  formatDeviceId,
  STALL_TIMEOUT_DEFAULT_MS,
  toHex,
  type CoreEvent,
  type KeyPair,
  type TransferOutput,
} from '@peapod/core';
import type { Logger } from 'pino';
import type { GetRequest } from './api-client.js';
import { LanDiscovery, type DiscoveredPeer } from './discovery.js';
import { DownloadJob, type HeaderPair, type JobEvent, type JobHost } from './download-job.js';
import { ObjectVerifier, userSha256, type ExpectedDigest } from './http/digest.js';
import { OriginFetcher } from './http/origin-fetcher.js';
import { probeOrigin, type OriginDescription } from './http/origin-probe.js';
import { fetchWhole, lengthlessNote, probeStalled } from './http/origin-whole.js';
import { planFromProbe } from './http/pin-plan.js';
import { ForwardProxy, stripHopByHop, type PooledResponder, type ProxiedGet } from './proxy.js';
import { parseGetRequest, readBody, sendJson } from './api-request.js';
import { FileSink, StreamSink, type DownloadSink } from './sinks.js';
import { ApiGuard, apiRefusal, refuse } from './api-guard.js';
import { DataDir } from './data-dir.js';
import { createNodeCryptoProvider } from './node-crypto-provider.js';
import { NodeHost } from './node-host.js';
import { RefusedPeers } from './refused-peers.js';
import { deviceLabel } from './device-label.js';
import { podId } from './pod.js';
import { OutputClaims, type OutputClaim } from './output-claims.js';
import { isOutputError } from './output-errors.js';
import { OutputFile } from './output-file.js';
import { escalateIfInvariant } from './process-guard.js';
import type { BandwidthLimits } from './rate-limit.js';

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
}

import { DAEMON_RUN_FILE, type DaemonRunFile } from './daemon-run-file.js';
export { DAEMON_RUN_FILE, type DaemonRunFile };

/** A row of `peapod peers`. */
export interface PeerRow {
  readonly deviceId: string;
  readonly name: string;
  readonly address: string;
  readonly state: 'discovered' | 'connecting' | 'connected' | 'gone';
  readonly rttMs: number | undefined;
  readonly direction: 'inbound' | 'outbound' | undefined;
  readonly since: string;
}

interface PeerEntry {
  deviceIdHex: string;
  name: string;
  address: string;
  port: number;
  state: PeerRow['state'];
  rttMs: number | undefined;
  direction: 'inbound' | 'outbound' | undefined;
  linkId: number | undefined;
  sinceMs: number;
}

export class Daemon {
  readonly host: NodeHost;
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  private readonly discovery: LanDiscovery;
  private readonly peers = new Map<string, PeerEntry>();
  private readonly linkPeers = new Map<number, PeerEntry>();
  private readonly proxy: ForwardProxy;
  private readonly fetcher: OriginFetcher;
  private readonly jobs = new Map<number, DownloadJob>();
  /** Output files of running jobs: a second job on one file is refused (output-claims.ts). */
  private readonly outputClaims = new OutputClaims();
  private nextDownloadId = 1;
  private readonly jobHost: JobHost;
  private readonly refused = new RefusedPeers();
  private apiGuard: ApiGuard | undefined;

  constructor(private readonly config: DaemonConfig) {
    this.host = new NodeHost({
      identity: config.identity,
      podSecret: config.podSecret,
      deviceName: config.deviceName,
      listenPort: config.peerPort,
      // A pod member fetches origin ranges for the others: that is the pooled download.
      capabilities: Capability.fetchOrigin | Capability.rpc,
      limits: config.limits,
      transfers: (output) => this.performTransfer(output),
    });
    this.fetcher = new OriginFetcher({
      ...(config.originAddress === undefined ? {} : { localAddress: config.originAddress }),
      ...(config.limits.download === undefined ? {} : { limiter: config.limits.download }),
      ...(config.allowPrivateOrigins ? { peerDestinations: () => undefined } : {}),
    });
    this.jobHost = {
      startCoreDownload: (job, spec) => {
        const downloadId = this.nextDownloadId++;
        this.jobs.set(downloadId, job);
        this.host.input({
          type: 'start-download',
          nowMs: performance.now(),
          downloadId,
          source: { kind: 'url', pooled: true, stallTimeoutMs: this.stallTimeoutMs, ...spec },
        });
        return downloadId;
      },
      cancelCoreDownload: (downloadId) => {
        this.jobs.delete(downloadId);
        this.host.input({ type: 'cancel-download', nowMs: performance.now(), downloadId });
      },
      acknowledge: (downloadId, byteCount) =>
        this.host.input({ type: 'delivered', nowMs: performance.now(), downloadId, byteCount }),
      fetchWhole: (url, headers, offset, validator, onData, signal) =>
        fetchWhole(url, headers, offset, validator, onData, {
          stallTimeoutMs: this.stallTimeoutMs,
          localAddress: config.originAddress,
          limiter: config.limits.download,
          signal,
        }),
      replan: async (url, headers, user, strict, signal) => {
        const probe = await this.probe(url, headers, signal);
        return { plan: planFromProbe(probe, user, { pool: true, strict }), digests: probe.digests };
      },
    };
    this.host.on('download:progress', (e) => this.jobs.get(e.downloadId)?.onCoreEvent(e));
    this.host.on('download:complete', (e) => this.jobs.get(e.downloadId)?.onCoreEvent(e));
    this.host.on('download:failed', (e) => this.jobs.get(e.downloadId)?.onCoreEvent(e));
    this.host.on('peer:banned', (event) =>
      this.logger.warn(
        { peer: this.peerLabel(toHex(event.deviceId)), detail: event.detail },
        'peer banned',
      ),
    );
    this.proxy = new ForwardProxy({
      localHandler: (req, res) => this.serveApi(req, res),
      poolable: (request) => this.poolableGet(request),
      logger: config.logger,
    });
    this.deviceId = deriveDeviceId(createNodeCryptoProvider(), config.identity.publicKey);
    this.deviceIdHex = toHex(this.deviceId);
    this.discovery = new LanDiscovery({
      podSecret: config.podSecret,
      deviceId: this.deviceId,
      peerPort: config.peerPort,
      port: config.discoveryPort,
      interfaceAddress: config.multicastInterface,
    });
    this.discovery.on('peer', (peer) => this.onDiscovered(peer));
    this.discovery.on('error', (error) =>
      this.logger.warn({ error: error.message }, 'discovery socket error'),
    );
    this.host.on('peer:connect', (event) => this.onConnect(event));
    this.host.on('peer:disconnect', (event) => this.onDisconnect(event));
    this.host.on('peer:refused', (event) => {
      // A flood's refusals (the inbound guard's) are not a device of another pod: debug only.
      if (event.cause !== 'pod-secret') {
        this.logger.debug({ address: event.address, cause: event.cause }, 'handshake refused');
        return;
      }
      this.refused.record(event.address, new Date());
      this.logger.warn(
        { address: event.address, direction: event.direction, detail: event.detail },
        'a device that does not hold this pod secret tried to connect',
      );
    });
    this.host.on('peer:rtt', (event) => {
      const entry = this.linkPeers.get(event.linkId);
      if (entry !== undefined) entry.rttMs = event.rttMs;
    });
  }

  /** See `DaemonConfig.stallTimeoutMs`. */
  private get stallTimeoutMs(): number {
    return this.config.stallTimeoutMs ?? STALL_TIMEOUT_DEFAULT_MS;
  }

  get logger(): Logger {
    return this.config.logger;
  }

  async start(): Promise<{ peer: AddressInfo; api: AddressInfo }> {
    const { bindAddress, peerPort, apiPort, dataDir } = this.config;
    if (dataDir !== undefined) {
      this.apiGuard = new ApiGuard(await (await DataDir.open(dataDir)).loadApiKey(), bindAddress);
    }
    const peer = await this.host
      .listen(peerPort, bindAddress)
      .catch((error: NodeJS.ErrnoException) => portError(error, 'peer', '--peer-port'));
    const api = await this.proxy
      .listen(apiPort, bindAddress)
      .catch((error: NodeJS.ErrnoException) => portError(error, 'API/proxy', '--api-port'));
    await this.discovery.start();
    await this.writeRunFile(api);
    for (const known of await this.loadKnownPeers()) {
      this.onDiscovered({ ...known, firstSeen: true, kind: 'announce' });
    }
    this.logger.info(
      {
        device: this.peerLabel(this.deviceIdHex),
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
    await Promise.all([...this.jobs.values()].map((job) => job.cancel()));
    this.fetcher.close();
    await this.host.close();
    await this.saveKnownPeers();
    if (this.config.dataDir !== undefined) {
      await rm(join(this.config.dataDir, DAEMON_RUN_FILE), { force: true });
    }
    await this.proxy.close();
  }

  /** daemon.json: where this running daemon's API is, for the CLI (removed on stop). */
  private async writeRunFile(api: AddressInfo): Promise<void> {
    if (this.config.dataDir === undefined) return;
    const path = join(this.config.dataDir, DAEMON_RUN_FILE);
    const run: DaemonRunFile = { pid: process.pid, apiHost: api.address, apiPort: api.port };
    await writeFile(`${path}.tmp`, JSON.stringify(run));
    await rename(`${path}.tmp`, path);
  }

  /** peers.json: Device IDs with the last address and port each was reached at. */
  private async loadKnownPeers(): Promise<
    Array<{ deviceId: Uint8Array; address: string; port: number }>
  > {
    if (this.config.dataDir === undefined) return [];
    try {
      const rows = JSON.parse(
        await readFile(join(this.config.dataDir, 'peers.json'), 'utf8'),
      ) as unknown;
      if (!Array.isArray(rows)) return [];
      return rows
        .filter(
          (row): row is { deviceId: string; address: string; port: number } =>
            typeof row?.deviceId === 'string' &&
            /^[0-9a-f]{64}$/.test(row.deviceId) &&
            typeof row.address === 'string' &&
            Number.isInteger(row.port),
        )
        .filter((row) => row.deviceId !== this.deviceIdHex)
        .map((row) => ({ deviceId: fromHex(row.deviceId), address: row.address, port: row.port }));
    } catch {
      return []; // none yet, or unreadable: discovery finds the peers anyway
    }
  }

  private async saveKnownPeers(): Promise<void> {
    if (this.config.dataDir === undefined) return;
    const rows = [...this.peers.values()]
      .filter((entry) => entry.port > 0)
      .map(({ deviceIdHex, address, port }) => ({ deviceId: deviceIdHex, address, port }));
    const path = join(this.config.dataDir, 'peers.json');
    await writeFile(`${path}.tmp`, JSON.stringify(rows, null, 2));
    await rename(`${path}.tmp`, path);
  }

  peerRows(): PeerRow[] {
    return [...this.peers.values()].map((entry) => ({
      deviceId: formatDeviceId(fromHex(entry.deviceIdHex)),
      name: entry.name,
      address: `${entry.address}:${entry.port}`,
      state: entry.state,
      rttMs: entry.rttMs,
      direction: entry.direction,
      since: new Date(performance.timeOrigin + entry.sinceMs).toISOString(),
    }));
  }

  /** A device as people see it everywhere: `name (SHORTID)` (device-label.ts). */
  peerLabel(hex: string): string {
    if (hex === this.deviceIdHex) return deviceLabel(this.config.deviceName, hex);
    return deviceLabel(this.peers.get(hex)?.name ?? '', hex);
  }

  /**
   * `text` with each Device ID in hex written as `name (SHORTID)`: only this device's and the
   * peers' it knows. Any other 64 hex digits (a SHA-256 in a digest mismatch) stay as they are.
   */
  nameDevices(text: string): string {
    return text.replace(/\b[0-9a-f]{64}\b/g, (hex) =>
      hex === this.deviceIdHex || this.peers.has(hex) ? this.peerLabel(hex) : hex,
    );
  }

  /**
   * A job event for the CLI: progress and done name each source (`sourceNames`); a Device ID
   * in hex in a note or an error (the core names devices so) becomes `name (SHORTID)`.
   */
  private labelled(event: JobEvent): JobEvent {
    if (event.type === 'error') return { ...event, message: this.nameDevices(event.message) };
    if (event.type === 'start') return { ...event, note: this.nameDevices(event.note) };
    const sourceNames: Record<string, string> = {};
    for (const key of Object.keys(event.bySource)) {
      sourceNames[key] = this.peerLabel(key === 'self' ? this.deviceIdHex : key);
    }
    return { ...event, sourceNames };
  }

  /** A pod member's beacon: the device with the smaller Device ID dials (one link per pair). */
  private onDiscovered(peer: DiscoveredPeer): void {
    const hex = toHex(peer.deviceId);
    let entry = this.peers.get(hex);
    if (entry === undefined) {
      entry = {
        deviceIdHex: hex,
        name: '',
        address: peer.address,
        port: peer.port,
        state: 'discovered',
        rttMs: undefined,
        direction: undefined,
        linkId: undefined,
        sinceMs: performance.now(),
      };
      this.peers.set(hex, entry);
      this.logger.info(
        { peer: this.peerLabel(hex), address: peer.address, port: peer.port },
        'peer discovered',
      );
    }
    if (entry.state === 'connected' || entry.state === 'connecting') return;
    entry.address = peer.address;
    entry.port = peer.port;
    if (this.deviceIdHex >= hex) {
      if (entry.state === 'gone') entry.state = 'discovered';
      return; // the other side dials
    }
    entry.state = 'connecting';
    const dialed = entry;
    this.host.dial(peer.port, peer.address).catch((error: Error) => {
      if (dialed.state === 'connecting') dialed.state = 'gone';
      this.logger.warn({ peer: this.peerLabel(hex), error: error.message }, 'dial failed');
    });
  }

  private onConnect(event: Extract<CoreEvent, { type: 'peer:connect' }>): void {
    const hex = toHex(event.remote.deviceId);
    const [address = '?', port = '0'] = splitHostPort(event.remoteAddress);
    const entry = this.peers.get(hex) ?? {
      deviceIdHex: hex,
      name: '',
      address,
      port: Number(port),
      state: 'connected',
      rttMs: undefined,
      direction: undefined,
      linkId: undefined,
      sinceMs: performance.now(),
    };
    entry.name = event.remote.deviceName;
    entry.state = 'connected';
    entry.direction = event.direction;
    entry.linkId = event.linkId;
    entry.sinceMs = performance.now();
    entry.address = address;
    entry.port = event.remote.listenPort || Number(port);
    this.peers.set(hex, entry);
    this.linkPeers.set(event.linkId, entry);
    this.logger.info({ peer: this.peerLabel(hex), address: event.remoteAddress }, 'peer connected');
  }

  private onDisconnect(event: Extract<CoreEvent, { type: 'peer:disconnect' }>): void {
    const entry = this.linkPeers.get(event.linkId);
    this.linkPeers.delete(event.linkId);
    if (entry === undefined || entry.linkId !== event.linkId) return;
    entry.state = 'gone';
    entry.linkId = undefined;
    entry.sinceMs = performance.now();
    this.logger.info(
      { peer: this.peerLabel(entry.deviceIdHex), reason: event.reason, detail: event.detail },
      'peer disconnected',
    );
  }

  /** The host loop hands transfer outputs here; each becomes one piece of I/O. */
  private performTransfer(output: TransferOutput): void {
    switch (output.type) {
      case 'fetch-origin': {
        const { fetchId } = output;
        this.fetcher.start(output, {
          onData: (bytes) => {
            const data = this.config.corruptForPeers ? corrupt(bytes) : bytes;
            this.host.input({
              type: 'origin-data',
              nowMs: performance.now(),
              fetchId,
              bytes: data,
            });
          },
          onEnd: (outcome, detail) => {
            if (outcome === 'refused') this.logger.warn({ detail }, 'refused a pod peer fetch');
            this.host.input({
              type: 'origin-end',
              nowMs: performance.now(),
              fetchId,
              outcome,
              detail,
            });
          },
        });
        return;
      }
      case 'cancel-fetch':
        this.fetcher.cancel(output.fetchId);
        return;
      case 'deliver': {
        const job = this.jobs.get(output.downloadId);
        if (job === undefined) return;
        job.onDeliver(output.offset, output.bytes, output.repair === true);
        return;
      }
      case 'read-delivered': {
        const { readId } = output;
        const job = this.jobs.get(output.downloadId);
        const read = job?.readDelivered(output.offset, output.length) ?? Promise.resolve(undefined);
        void read
          .catch(() => undefined)
          .then((bytes) =>
            this.host.input({ type: 'delivered-read', nowMs: performance.now(), readId, bytes }),
          );
        return;
      }
      case 'read-chunk':
        // This daemon keeps no chunk store yet: it serves pooled URL downloads only.
        this.host.input({
          type: 'chunk-read',
          nowMs: performance.now(),
          readId: output.readId,
          bytes: undefined,
        });
        return;
      case 'store-chunk':
        return;
    }
  }

  private serveApi(req: IncomingMessage, res: ServerResponse): void {
    // The API writes files and runs downloads: only the local user's programs, holding the key,
    // may use it, and nothing is read or done before that is checked (api-guard.ts).
    const refusal =
      this.apiGuard?.refusal(req) ?? (this.apiGuard === undefined ? NO_API_KEY : undefined);
    if (refusal !== undefined) {
      refuse(res, refusal);
      return;
    }
    // The proxy leaves `Expect: 100-continue` to us: the body is invited only now.
    if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/api/peers') {
      sendJson(res, 200, {
        deviceId: formatDeviceId(this.deviceId),
        deviceName: this.config.deviceName,
        pod: podId(this.config.podSecret),
        peers: this.peerRows(),
        refused: this.refused.list(),
      });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/api/get') {
      // serveGet contains what a job meets; anything else is a bug in that one request.
      this.serveGet(req, res).catch((error: unknown) => {
        escalateIfInvariant(error);
        this.logger.error({ err: error }, 'internal error serving /api/get');
        if (!res.headersSent) sendJson(res, 500, { error: 'the daemon failed internally' });
        else res.destroy();
      });
      return;
    }
    sendJson(res, 404, { error: `no such API: ${req.method ?? ''} ${url.pathname}` });
  }

  /** `POST /api/get`: run one job; stream its events (file output) or its bytes (`-`). */
  private async serveGet(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let request: GetRequest;
    try {
      request = parseGetRequest(await readBody(req));
    } catch (error) {
      sendJson(res, 400, { error: (error as Error).message });
      return;
    }
    const toStream = request.output === '-';
    let claim: OutputClaim | undefined;
    try {
      // Before the origin is asked: a wrong -o fails at once, and no two jobs share a file.
      if (!toStream) claim = await this.outputClaims.claim(request.output);
      if (!toStream) await OutputFile.preflight(request.output, { force: request.force === true });
    } catch (error) {
      claim?.release();
      sendJson(res, 409, { error: (error as Error).message });
      return;
    }
    try {
      await this.runGet(request, res, toStream);
    } finally {
      claim?.release();
    }
  }

  private async runGet(request: GetRequest, res: ServerResponse, toStream: boolean) {
    let job: DownloadJob;
    try {
      job = await this.createJob(request, toStream ? res : undefined);
    } catch (error) {
      sendJson(res, isOutputError(error) ? 409 : 502, { error: (error as Error).message });
      return;
    }
    if (res.destroyed) {
      await job.cancel(); // the client left while the origin was probed: nobody waits for it
      return;
    }
    if (toStream) {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        trailer: 'x-peapod-result',
        // For the CLI's progress line (percent, ETA) on a terminal.
        ...(job.totalBytes === undefined ? {} : { 'x-peapod-total-bytes': String(job.totalBytes) }),
      });
      job.on('event', (event) => {
        if (event.type === 'error') {
          res.addTrailers({ 'x-peapod-result': `error: ${this.nameDevices(event.message)}` });
          res.end();
        }
      });
    } else {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      job.on('event', (event) => {
        if (!res.writableEnded) res.write(`${JSON.stringify(this.labelled(event))}\n`);
      });
    }
    res.on('close', () => {
      if (!res.writableFinished) void job.cancel();
    });
    await job.run();
    if (job.downloadId !== undefined) this.jobs.delete(job.downloadId);
    if (!res.writableEnded) res.end();
  }

  /**
   * The proxy's pooling hook: a plain GET (no Range, no conditions) of an object of at least
   * `PROXY_POOL_MIN_BYTES` at an origin that allows pooling becomes a pooled download streamed
   * to the client; anything else passes through untouched. The response carries the origin's
   * own header fields (from the probe, minus hop-by-hop and range fields) with status 200.
   */
  private async poolableGet(request: ProxiedGet): Promise<PooledResponder | undefined> {
    const conditional = request.headers.some(({ name }) =>
      /^(range|if-.*|authorization|cookie)$/i.test(name),
    );
    if (conditional) return undefined;
    const headers = request.headers.filter(
      ({ name }) => !/^(host|accept-encoding|proxy-.*|connection)$/i.test(name),
    );
    const probe = await this.probe(request.url, headers).catch(() => undefined);
    if (probe === undefined) return undefined;
    const plan = planFromProbe(probe, [], { pool: true, strict: false });
    if (plan.kind !== 'pooled') return undefined;
    if (plan.totalBytes < PROXY_POOL_MIN_BYTES || probe.url !== request.url) return undefined;
    return {
      respond: async (res) => {
        const fields = stripHopByHop(probe.rawHeaders);
        const kept: string[] = [];
        for (let i = 0; i + 1 < fields.length; i += 2) {
          if (/^(content-range|content-length|content-digest)$/i.test(fields[i]!)) continue;
          kept.push(fields[i]!, fields[i + 1]!);
        }
        kept.push('Content-Length', String(probe.totalBytes));
        // Which pinning held the pooled ranges to one version (pin-plan.ts); not the origin's.
        kept.push('X-PeaPod-Pinning', plan.pinning.level);
        // A whole (200) response's Content-Digest is its Repr-Digest when it is not
        // content-coded; the probe was a 206, whose Content-Digest (if any) covered one byte.
        const repr = headerValue(probe.rawHeaders, 'repr-digest');
        if (repr !== undefined && headerValue(probe.rawHeaders, 'content-encoding') === undefined)
          kept.push('Content-Digest', repr);
        res.sendDate = false; // the origin's own Date, if any, is among its fields
        res.writeHead(200, kept);
        const job = new DownloadJob(
          this.jobHost,
          probe.url,
          new StreamSink(res),
          new ObjectVerifier(probe.digests),
          {
            pooled: true,
            note: '',
            totalBytes: plan.totalBytes,
            validator: plan.validator,
            pinStrength: plan.pinStrength,
            pinning: plan.pinning,
            headers,
          },
        );
        let failure: string | undefined;
        job.on('event', (event) => {
          if (event.type === 'error') failure = event.message;
        });
        res.on('close', () => {
          if (!res.writableFinished) void job.cancel();
        });
        this.logger.info(
          { url: probe.url, bytes: probe.totalBytes, pinning: plan.pinning.level },
          `proxy: pooled GET, ${plan.pinning.guarantee}`,
        );
        await job.run();
        if (failure !== undefined) throw new Error(failure);
      },
    };
  }

  /** Probes the origin and plans the job: pooled, or single source and why. */
  private async createJob(request: GetRequest, stream: ServerResponse | undefined) {
    const probe = await this.probe(request.url, request.headers);
    const user: ExpectedDigest[] = request.sha256 === undefined ? [] : [userSha256(request.sha256)];
    // A wrong --sha256 or --strict without a pin it accepts fail here, before any byte is fetched.
    const plan = planFromProbe(probe, user, {
      pool: request.pool,
      strict: request.strict === true,
    });
    if (plan.kind === 'refused') throw new Error(plan.reason);
    const notPoolable =
      plan.kind === 'single'
        ? ((request.pool ? lengthlessNote(probe) : undefined) ?? plan.reason)
        : undefined;
    const expected = [...user, ...probe.digests];
    const verifier = new ObjectVerifier(expected);
    // The core checks a SHA-256 too (and audits the helpers when it fails): the first known one.
    const sha256 = expected.find((digest) => digest.algorithm === 'sha-256')?.digest;
    const sink: DownloadSink =
      stream === undefined
        ? await FileSink.open(
            request.output,
            {
              url: probe.url,
              validator: probe.validator ?? '',
              totalBytes: probe.totalBytes ?? -1,
            },
            { force: request.force === true },
          )
        : new StreamSink(
            stream,
            (sha256) => stream.addTrailers({ 'x-peapod-result': `ok sha256=${sha256}` }),
            () => undefined, // the job's error event ends the response with an error trailer
          );
    const resumeNote = sink instanceof FileSink ? sink.resumeNote : '';
    const job = new DownloadJob(this.jobHost, probe.url, sink, verifier, {
      pooled: notPoolable === undefined,
      note: [notPoolable === undefined ? '' : `not pooled: ${notPoolable}`, resumeNote]
        .filter((line) => line !== '')
        .join('; '),
      totalBytes: probe.totalBytes,
      validator: probe.validator ?? '',
      pinStrength: plan.kind === 'pooled' ? plan.pinStrength : 'weak',
      pinning: plan.pinning,
      headers: request.headers,
      sha256,
      strict: request.strict === true,
    });
    return job;
  }

  /** The origin's description, through this device's own link; a clear error if it fails. */
  private async probe(
    url: string,
    headers: readonly HeaderPair[],
    signal?: AbortSignal,
  ): Promise<OriginDescription> {
    // The probe reads only the head: the stall timeout bounds all of it.
    const stalled = AbortSignal.timeout(this.stallTimeoutMs);
    const probe = await probeOrigin(url, {
      headers,
      signal: signal === undefined ? stalled : AbortSignal.any([signal, stalled]),
      ...(this.config.originAddress === undefined
        ? {}
        : { localAddress: this.config.originAddress }),
    });
    if (probe.kind === 'failed' && stalled.aborted)
      throw new Error(probeStalled(url, this.stallTimeoutMs));
    if (probe.kind === 'failed') throw new Error(probe.detail);
    return probe;
  }
}

/** The first value of header `name` in raw header fields, or undefined. */
function headerValue(rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) return rawHeaders[i + 1];
  }
  return undefined;
}

const NO_API_KEY = apiRefusal(
  'key',
  'this daemon runs without a data directory, so it has no API key and no API',
);

/** Proxy GETs smaller than this pass through: pooling pays off on big objects only. */
const PROXY_POOL_MIN_BYTES = 16 * 1024 * 1024;

function portError(error: NodeJS.ErrnoException, what: string, flag: string): never {
  if (error.code === 'EADDRINUSE') {
    throw new Error(
      `the ${what} port is in use (${error.message.replace(/^listen EADDRINUSE: /, '')}): ` +
        `is another peapod daemon running? Pick another port with ${flag}.`,
    );
  }
  throw error;
}

/** Test-only fault injection (`corruptForPeers`): flips one byte of every block. */
function corrupt(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes);
  if (copy.length > 0) copy[copy.length >> 1]! ^= 0xff;
  return copy;
}

function splitHostPort(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return colon < 0 ? [address, '0'] : [address.slice(0, colon), address.slice(colon + 1)];
}

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
