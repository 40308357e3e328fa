/**
 * The tracker's HTTP server: node:http, JSON in and out, no framework (docs/tracker.md).
 *
 * One request's path through here: source-address rate limit -> route (404/405) -> for a body,
 * Content-Type and the size limit -> the endpoint (endpoints.ts) -> JSON answer. Every refusal
 * is a 4xx with `{error, code}`, a sentence that says what to do; a database failure is a 503;
 * anything else unexpected a 500, logged, and the process goes on (nothing a client sends can
 * throw out of `handle`). The server's state is the store plus in-memory rate-limit buckets;
 * the clock is `now` (injectable, so tests drive expiry without sleeping), read once per
 * request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { sourceAddress } from './address-match.js';
import {
  chunkLocations,
  discover,
  healthz,
  heartbeat,
  listNodes,
  registerBootstrap,
  registerNode,
  unregisterBootstrap,
  type Answer,
  type Endpoint,
  type EndpointDeps,
  type RequestContext,
} from './endpoints.js';
import { TrackerDefaults, TrackerLimits } from './limits.js';
import { REFUSAL_STATUS, type Refusal } from './refusal.js';
import { rateLimitKey } from './client-address.js';
import { checkContentType, readBody } from './request-body.js';
import { SIGNATURE_HEADER } from './signed-request.js';
import { openStore, type TrackerStore } from './store.js';
import { TokenBuckets } from './token-bucket.js';
import { createTrackerCrypto } from './tracker-crypto.js';

/** The subset of a pino logger the tracker uses. */
export interface TrackerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export interface TrackerRateLimits {
  /** Requests per second per source address (0: no limit). */
  readonly addressRatePerSecond: number;
  readonly addressBurst: number;
  /** Requests per second per device key on the endpoints that name one (0: no limit). */
  readonly keyRatePerSecond: number;
  readonly keyBurst: number;
}

export interface TrackerOptions {
  /** A SQLite path, ":memory:" (the default), or a postgres:// URL. Ignored when `store` is set. */
  readonly db?: string;
  /** A store to use instead of opening `db` (closed by `close()`). */
  readonly store?: TrackerStore;
  /** Bootstrap registrations live this long (default 1 hour). */
  readonly ttlMs?: number;
  /** Cluster nodes live this long after a registration or heartbeat (default 2 minutes). */
  readonly nodeTtlMs?: number;
  /** Wall clock, Unix ms (default Date.now). */
  readonly now?: () => number;
  readonly rateLimits?: Partial<TrackerRateLimits>;
  /** How often expired rows are deleted (default 60 s; 0: never, call `purge()`). */
  readonly purgeIntervalMs?: number;
  readonly logger?: TrackerLogger;
  /**
   * Take the source address from the rightmost X-Forwarded-For entry (behind the operator's
   * own load balancer, which appends it); default false: the socket's address. It decides the
   * per-address rate limit, `observedAddress`, and which address a registration may carry.
   */
  readonly trustProxy?: boolean;
  /**
   * When set, the control-plane endpoints (nodes, heartbeat, chunk locations) require
   * `Authorization: Bearer <token>`; the bootstrap endpoints stay open.
   */
  readonly clusterToken?: string;
  /** Most open connections at once (`server.maxConnections`; default 10,000; 0: no cap). */
  readonly maxConnections?: number;
}

export interface Tracker {
  /** Starts listening; resolves with `url`. */
  listen(port: number, host?: string): Promise<string>;
  /** Stops accepting, ends open connections, closes the store. */
  close(): Promise<void>;
  /** http://host:port once listening. */
  readonly url: string;
  /** Deletes expired entries now; returns how many rows went. */
  purge(): Promise<number>;
}

interface Route {
  readonly pattern: RegExp;
  readonly methods: Readonly<Record<string, Endpoint>>;
  /** A control-plane route: needs the cluster token when the tracker has one. */
  readonly control?: true;
}

const ROUTES: readonly Route[] = [
  { pattern: /^\/healthz$/, methods: { GET: healthz } },
  { pattern: /^\/api\/v1\/bootstrap\/register$/, methods: { POST: registerBootstrap } },
  { pattern: /^\/api\/v1\/bootstrap\/unregister$/, methods: { POST: unregisterBootstrap } },
  { pattern: /^\/api\/v1\/bootstrap\/discover$/, methods: { GET: discover } },
  {
    pattern: /^\/api\/v1\/nodes$/,
    methods: { GET: listNodes, POST: registerNode },
    control: true,
  },
  {
    pattern: /^\/api\/v1\/nodes\/([0-9a-f]{64})\/heartbeat$/,
    methods: { PUT: heartbeat },
    control: true,
  },
  { pattern: /^\/api\/v1\/chunks\/locations$/, methods: { POST: chunkLocations }, control: true },
];

const NO_LOG: TrackerLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

/** Whether `header` is `Bearer <token>` (compared in constant time, as SHA-256 digests). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}

function send(
  response: ServerResponse,
  status: number,
  json: unknown,
  headers: Record<string, string> = {},
): void {
  if (response.headersSent || response.destroyed) return;
  const body = JSON.stringify(json);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  response.end(body);
}

function sendRefusal(
  response: ServerResponse,
  refusal: Refusal,
  headers: Record<string, string> = {},
): void {
  const extra: Record<string, string> = { ...headers };
  if (refusal.retryAfterSeconds !== undefined)
    extra['retry-after'] = String(refusal.retryAfterSeconds);
  // A body left unread (too large) is not drained: the connection closes after the answer.
  if (refusal.code === 'too-large') extra['connection'] = 'close';
  send(response, REFUSAL_STATUS[refusal.code], { error: refusal.error, code: refusal.code }, extra);
}

/** A store call failed: the database is unreachable or failing (a 503, not a bug here). */
class StoreFailure extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/** `store` with every failure turned into a StoreFailure. */
function guarded(store: TrackerStore): TrackerStore {
  const wrap =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await call(...args);
      } catch (error) {
        throw new StoreFailure(error);
      }
    };
  return {
    open: wrap(() => store.open()),
    putBootstrap: wrap((entry) => store.putBootstrap(entry)),
    removeBootstrap: wrap((claim, until) => store.removeBootstrap(claim, until)),
    sampleBootstrap: wrap((nowMs, limit, startKey) =>
      store.sampleBootstrap(nowMs, limit, startKey),
    ),
    putNode: wrap((entry) => store.putNode(entry)),
    heartbeat: wrap((claim, ids, expiresAtMs) => store.heartbeat(claim, ids, expiresAtMs)),
    liveNodes: wrap((nowMs, limit) => store.liveNodes(nowMs, limit)),
    locations: wrap((ids, nowMs, max) => store.locations(ids, nowMs, max)),
    issuedAt: wrap((table, deviceIdHex) => store.issuedAt(table, deviceIdHex)),
    purge: wrap((nowMs) => store.purge(nowMs)),
    close: wrap(() => store.close()),
  };
}

/**
 * Creates a tracker. Nothing listens until `listen`.
 * @example
 * const tracker = createTracker({ db: ':memory:' });
 * const url = await tracker.listen(0, '127.0.0.1');
 * await fetch(`${url}/healthz`); // => 200 {"status":"ok"}
 * await tracker.close();
 */
export function createTracker(options: TrackerOptions = {}): Tracker {
  const now = options.now ?? Date.now;
  const logger = options.logger ?? NO_LOG;
  const limits = { ...TrackerDefaults, ...options.rateLimits };
  const addressBuckets = new TokenBuckets({
    ratePerSecond: limits.addressRatePerSecond,
    burst: limits.addressBurst,
    bucketsMax: TrackerDefaults.bucketsMax,
  });
  const keyBuckets = new TokenBuckets({
    ratePerSecond: limits.keyRatePerSecond,
    burst: limits.keyBurst,
    bucketsMax: TrackerDefaults.bucketsMax,
  });
  let store: TrackerStore | undefined = options.store;
  let server: Server | undefined;
  let purgeTimer: NodeJS.Timeout | undefined;
  let url = '';
  const crypto = createTrackerCrypto();

  const depsOf = (opened: TrackerStore): EndpointDeps => ({
    store: opened,
    crypto,
    ttlMs: options.ttlMs ?? TrackerDefaults.ttlMs,
    nodeTtlMs: options.nodeTtlMs ?? TrackerDefaults.nodeTtlMs,
    takeKeyToken: (deviceIdHex, nowMs) => keyBuckets.take(deviceIdHex, nowMs),
  });
  let deps: EndpointDeps | undefined;

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const nowMs = now();
    const target = request.url ?? '/';
    const queryAt = target.indexOf('?');
    const path = queryAt === -1 ? target : target.slice(0, queryAt);
    const method = request.method ?? 'GET';
    const match = ROUTES.find((candidate) => candidate.pattern.test(path));
    if (match === undefined || !path.startsWith('/'))
      return sendRefusal(response, {
        code: 'not-found',
        error: `No endpoint at ${JSON.stringify(path.slice(0, 80))}: see docs/tracker.md for the API (prefix /api/v1).`,
      });
    const endpoint = match.methods[method];
    if (endpoint === undefined)
      return sendRefusal(
        response,
        {
          code: 'method-not-allowed',
          error: `${path} takes ${Object.keys(match.methods).join(', ')}, not ${method.slice(0, 16)}.`,
        },
        { allow: Object.keys(match.methods).join(', ') },
      );
    const source = sourceAddress(
      request.socket.remoteAddress ?? '',
      request.headers['x-forwarded-for'],
      options.trustProxy === true,
    );
    if (endpoint !== healthz) {
      const wait = addressBuckets.take(rateLimitKey(source), nowMs);
      if (wait > 0)
        return sendRefusal(response, {
          code: 'rate-limited',
          error: `Too many requests from this address: retry in ${wait} s.`,
          retryAfterSeconds: wait,
        });
    }
    if (
      match.control === true &&
      options.clusterToken !== undefined &&
      !bearerMatches(request.headers.authorization, options.clusterToken)
    )
      return sendRefusal(
        response,
        {
          code: 'cluster-token',
          error:
            "This tracker's control plane is for its cluster: send Authorization: Bearer and the " +
            "cluster's token (the file the tracker was started with, --cluster-token-file).",
        },
        { 'www-authenticate': 'Bearer realm="peapod-cluster"' },
      );
    let body: Uint8Array = new Uint8Array(0);
    if (method === 'POST' || method === 'PUT') {
      const type = checkContentType(request);
      if (!type.ok) return sendRefusal(response, type.refusal);
      const read = await readBody(request, TrackerLimits.bodyBytesMax);
      if (read === undefined) return; // the client went away
      if (!read.ok) return sendRefusal(response, read.refusal);
      body = read.value;
    }
    const context: RequestContext = {
      method,
      path,
      query: new URLSearchParams(queryAt === -1 ? '' : target.slice(queryAt + 1)),
      body,
      signatureHeader: request.headers[SIGNATURE_HEADER],
      observedAddress: source,
      nowMs,
      ...(match.pattern.exec(path)?.[1] === undefined
        ? {}
        : { deviceIdHex: match.pattern.exec(path)![1]! }),
    };
    if (deps === undefined) throw new Error('tracker: not listening');
    const answer: Answer = await endpoint(context, deps);
    if (answer.status === 200) {
      logger.debug({ method, path }, 'answered');
      return send(response, 200, answer.json);
    }
    logger.debug({ method, path, code: answer.refusal.code }, 'refused');
    return sendRefusal(response, answer.refusal);
  }

  function handle(request: IncomingMessage, response: ServerResponse): void {
    route(request, response).catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      if (error instanceof StoreFailure) {
        logger.error({ error: message }, 'database error');
        send(
          response,
          503,
          {
            error: "The tracker's database is unavailable: retry in a few seconds.",
            code: 'unavailable',
          },
          { 'retry-after': '5' },
        );
      } else {
        logger.error(
          { error: message, stack: error instanceof Error ? error.stack : undefined },
          'internal error',
        );
        send(response, 500, {
          error: 'The tracker failed on this request: retry, and report it if it persists.',
          code: 'internal',
        });
      }
    });
  }

  async function purge(): Promise<number> {
    if (store === undefined) return 0;
    const nowMs = now();
    addressBuckets.sweep(nowMs);
    keyBuckets.sweep(nowMs);
    return store.purge(nowMs);
  }

  return {
    get url() {
      return url;
    },
    async listen(port, host = '127.0.0.1') {
      if (store === undefined)
        store = await openStore(options.db ?? ':memory:', (error) =>
          logger.warn({ error: error.message }, 'database connection error'),
        );
      else await store.open();
      deps = depsOf(guarded(store));
      const created = createServer(handle);
      created.headersTimeout = 10_000;
      created.requestTimeout = 15_000;
      created.keepAliveTimeout = 5_000;
      const connectionsMax = options.maxConnections ?? TrackerDefaults.maxConnections;
      if (connectionsMax > 0) created.maxConnections = connectionsMax;
      created.on('clientError', (_error, socket) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
        else socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        created.once('error', reject);
        created.listen(port, host, () => {
          created.off('error', reject);
          resolve();
        });
      });
      server = created;
      const address = created.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      url = `http://${shown}:${address.port}`;
      const interval = options.purgeIntervalMs ?? TrackerDefaults.purgeIntervalMs;
      if (interval > 0) {
        purgeTimer = setInterval(() => {
          purge().then(
            (removed) => removed > 0 && logger.debug({ removed }, 'purged expired entries'),
            (error: unknown) =>
              logger.warn(
                { error: error instanceof Error ? error.message : String(error) },
                'purge failed',
              ),
          );
        }, interval);
        purgeTimer.unref();
      }
      logger.debug({ url }, 'tracker listening');
      return url;
    },
    async close() {
      if (purgeTimer !== undefined) clearInterval(purgeTimer);
      if (server !== undefined) {
        const closing = new Promise<void>((resolve) => server!.close(() => resolve()));
        server.closeAllConnections();
        await closing;
        server = undefined;
      }
      await store?.close();
    },
    purge,
  };
}
