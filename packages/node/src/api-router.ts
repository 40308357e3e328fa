/**
 * The local API the CLI talks to (`/api/...` on the daemon's API port, behind the proxy's
 * `localHandler`).
 *
 * Theory of operation
 * - Every request must present the key from the data directory's `api.key` and name this
 *   daemon's own address in `Host` and any `Origin`; anything else is refused with 403 before any
 *   work (api-guard.ts, DESIGN.md decision 13). Without a data directory there is no key and
 *   no API.
 * - `GET /api/peers`: this device, the pod, the core's peer table (peer-book.ts), the devices
 *   of other pods that tried to connect (refused-peers.ts) and, when gossip is on, the peers
 *   beyond the pod and the trackers (gossip-service.ts): a stranger's address only when its own
 *   signed record broadcasts it.
 * - `POST /api/get`: one job (job-factory.ts). The output file is claimed first (no two jobs on
 *   one file, output-claims.ts) and preflighted before the origin is asked; the job's events
 *   stream as NDJSON (file output) or its bytes as the body with an `x-peapod-result` trailer
 *   (`-o -`). Device IDs in notes and errors are written `name (SHORTID)`. A client that goes
 *   away cancels its job. Whatever a job meets is contained in it; anything else is a bug in that
 *   one request (500), unless it broke an invariant (process-guard.ts).
 * - `POST /api/share`, `POST /api/fetch`, `GET /api/contents`, `PATCH` and
 *   `DELETE /api/contents/<hex>`: the content routes (content-api.ts), under the same guard and the same containment. The
 *   output claims are shared with `/api/get`, so a get and a fetch cannot write one file.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatDeviceId, toHex } from '@peapod/core';
import type { Logger } from 'pino';
import type { GetRequest } from './api-client.js';
import { apiRefusal, refuse, type ApiGuard } from './api-guard.js';
import { contentIdOfPath, parseGetRequest, readBody, sendJson } from './api-request.js';
import { ContentApi, type ContentApiOptions } from './content-api.js';
import type { DownloadJob, JobEvent } from './download-job.js';
import type { GatewayService } from './gateway/gateway-service.js';
import type { GossipService } from './gossip-service.js';
import type { JobFactory } from './job-factory.js';
import { OutputClaims, type OutputClaim } from './output-claims.js';
import { isOutputError } from './output-errors.js';
import { OutputFile } from './output-file.js';
import type { PeerBook } from './peer-book.js';
import { podId } from './pod.js';
import { escalateIfInvariant } from './process-guard.js';
import type { RefusedPeers } from './refused-peers.js';

export interface ApiRouterOptions {
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  readonly deviceName: string;
  readonly podSecret: Uint8Array;
  readonly jobs: JobFactory;
  readonly peers: PeerBook;
  readonly refused: RefusedPeers;
  /** Gossip beyond the pod, when it is on: `GET /api/peers` shows its peers and trackers. */
  readonly gossip: GossipService | undefined;
  readonly logger: Logger;
  /** The gateway, when it runs (`GET /api/cache`, `POST /api/cache/evict`). */
  readonly gatewayCache?: () => GatewayService | undefined;
  /** The content routes' parts (content-api.ts); the router adds the shared ones. */
  readonly content: Omit<
    ContentApiOptions,
    'jobs' | 'peers' | 'deviceIdHex' | 'outputClaims' | 'logger'
  >;
}

const NO_API_KEY = apiRefusal(
  'key',
  'this daemon runs without a data directory, so it has no API key and no API',
);

export class ApiRouter {
  /** Output files of running jobs: a second job on one file is refused (output-claims.ts). */
  private readonly outputClaims = new OutputClaims();
  /** Set once the API key is loaded (`Daemon.start`); until then every request is refused. */
  guard: ApiGuard | undefined;
  /** The content routes (content-api.ts). */
  readonly content: ContentApi;

  constructor(private readonly options: ApiRouterOptions) {
    const { jobs, peers, deviceIdHex, logger } = options;
    this.content = new ContentApi({
      ...options.content,
      jobs,
      peers,
      deviceIdHex,
      outputClaims: this.outputClaims,
      logger,
    });
  }

  /** The proxy's `localHandler`. */
  serve(req: IncomingMessage, res: ServerResponse): void {
    // The API writes files and runs downloads: only the local user's programs, holding the key,
    // may use it, and nothing is read or done before that is checked (api-guard.ts).
    const refusal = this.guard?.refusal(req) ?? (this.guard === undefined ? NO_API_KEY : undefined);
    if (refusal !== undefined) {
      refuse(res, refusal);
      return;
    }
    // The proxy leaves `Expect: 100-continue` to us: the body is invited only now.
    if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/api/peers') {
      const { deviceId, deviceName, podSecret, peers, refused, gossip } = this.options;
      sendJson(res, 200, {
        deviceId: formatDeviceId(deviceId),
        deviceName,
        pod: podId(podSecret),
        peers: peers.rows(),
        refused: refused.list(),
        // Addresses here come only from records their devices signed with the broadcast flag.
        ...(gossip === undefined ? {} : { gossip: gossip.answer() }),
      });
      return;
    }
    const route = this.route(req, res, url.pathname);
    if (route === undefined) {
      sendJson(res, 404, { error: `no such API: ${req.method ?? ''} ${url.pathname}` });
      return;
    }
    // Each route contains what its job meets; anything else is a bug in that one request.
    route().catch((error: unknown) => {
      escalateIfInvariant(error);
      this.options.logger.error({ err: error }, `internal error serving ${url.pathname}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'the daemon failed internally' });
      else res.destroy();
    });
  }

  /** The handler of a job route, or undefined when there is none. */
  private route(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
  ): (() => Promise<void>) | undefined {
    const { content } = this;
    if (req.method === 'POST' && pathname === '/api/get') return () => this.serveGet(req, res);
    if (req.method === 'POST' && pathname === '/api/share') return () => content.share(req, res);
    if (req.method === 'POST' && pathname === '/api/fetch') return () => content.fetch(req, res);
    if (req.method === 'GET' && pathname === '/api/contents') {
      return () => Promise.resolve(content.contents(res));
    }
    if (req.method === 'GET' && pathname === '/api/cache') return () => this.cacheAnswer(res);
    if (req.method === 'POST' && pathname === '/api/cache/evict')
      return () => this.cacheEvict(req, res);
    const contentId = contentIdOfPath(pathname);
    if (req.method === 'DELETE' && contentId !== undefined) {
      return () => content.remove(res, contentId);
    }
    if (req.method === 'PATCH' && contentId !== undefined) {
      return () => content.update(req, res, contentId);
    }
    if (pathname.startsWith('/api/contents/') && contentId === undefined) {
      return () => {
        sendJson(res, 400, {
          error: 'name a content by its ID: 64 lower-case hex digits (`peapod ls` lists them)',
        });
        return Promise.resolve();
      };
    }
    return undefined;
  }

  /** `GET /api/cache`: the gateway cache's figures and objects (`peapod cache stats|ls`). */
  private cacheAnswer(res: ServerResponse): Promise<void> {
    const gateway = this.options.gatewayCache?.();
    if (gateway === undefined) {
      sendJson(res, 200, { running: false });
      return Promise.resolve();
    }
    sendJson(res, 200, {
      running: true,
      stats: gateway.stats(),
      objects: gateway.list().map((o) => ({
        key: o.key,
        contentId: toHex(o.contentId),
        bytes: o.totalBytes,
        hits: o.hits,
        private: o.private,
        etag: o.etag ?? null,
        storedAt: new Date(o.storedAtMs).toISOString(),
        lastUsedAt: new Date(o.lastUsedMs).toISOString(),
      })),
    });
    return Promise.resolve();
  }

  /** `POST /api/cache/evict {prefix}`: evicts the objects whose key starts with it. */
  private async cacheEvict(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const gateway = this.options.gatewayCache?.();
    if (gateway === undefined) {
      sendJson(res, 409, {
        error: 'this daemon runs no gateway (start it with --gateway HOST:PORT)',
      });
      return;
    }
    let prefix: unknown;
    try {
      prefix = (JSON.parse(await readBody(req)) as { prefix?: unknown }).prefix;
    } catch {
      prefix = undefined;
    }
    if (typeof prefix !== 'string') {
      sendJson(res, 400, { error: 'send {"prefix": "..."} ("" evicts everything)' });
      return;
    }
    sendJson(res, 200, { evicted: await gateway.evict(prefix) });
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
    const { jobs, peers } = this.options;
    let job: DownloadJob;
    try {
      job = await jobs.create(request, toStream ? res : undefined);
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
          res.addTrailers({ 'x-peapod-result': `error: ${peers.nameDevices(event.message)}` });
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
    jobs.forget(job);
    if (!res.writableEnded) res.end();
  }

  /**
   * A job event for the CLI: progress and done name each source (`sourceNames`); a Device ID
   * in hex in a note or an error (the core names devices so) becomes `name (SHORTID)`.
   */
  private labelled(event: JobEvent): JobEvent {
    const { peers, deviceIdHex } = this.options;
    if (event.type === 'error') return { ...event, message: peers.nameDevices(event.message) };
    if (event.type === 'start') return { ...event, note: peers.nameDevices(event.note) };
    const sourceNames: Record<string, string> = {};
    for (const key of Object.keys(event.bySource)) {
      sourceNames[key] = peers.label(key === 'self' ? deviceIdHex : key);
    }
    return { ...event, sourceNames };
  }
}
