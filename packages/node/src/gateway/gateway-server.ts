/**
 * The gateway's endpoint mode: clients point at it (an S3 SDK's `endpoint` with path-style
 * addressing, or plain HTTP) and the route table (routes.ts) says which origin each request is
 * for.
 *
 * Theory of operation
 * - One node:http server of its own (`peapod daemon --gateway HOST:PORT`), apart from the API's
 *   port, so no route can shadow the API or the dashboard. Without gateway keys only clients
 *   `allowClient` accepts (default: loopback) get an answer; others get 403. With them
 *   (`--gateway-keys FILE`, client-auth.ts) any address may ask, and every request must be
 *   signed (AWS SigV4) with one of the keys: else 403 with S3's error code, as XML. Its
 *   signature (header fields and presign query) was for the gateway, so it is not sent on,
 *   whatever the route. `/metrics` needs no signature from loopback.
 * - Every request is resolved to a route; none: 404 with a sentence listing what is routed. A
 *   path with a `.` or `..` segment never resolves (it could climb out of its bucket).
 * - The request goes upstream streamed both ways with backpressure, whatever its method and body
 *   size. Its end-to-end header fields pass as received, minus hop-by-hop ones; `Host` becomes
 *   the origin's. For an S3 route the gateway signs with its own credentials (upstream-signer.ts):
 *   the client's `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token`, `X-Amz-Content-Sha256`
 *   and presigned query parameters were for the gateway and are not sent on.
 *   An `aws-chunked` upload (the SDKs' streaming uploads, chunk-signed for the gateway or with a
 *   trailer checksum) is decoded on the way (aws-chunked.ts), its trailer checksum checked, and
 *   sent on as a plain body of `x-amz-decoded-content-length` bytes.
 * - The response (status, reason, end-to-end fields, body, trailers) comes back as the origin
 *   sent it, errors included.
 * - Failures: an origin that cannot be reached is 502 naming it and the system error; once a
 *   response started, a failure can only cut the connection. Nothing a request does can throw
 *   out of the handler.
 */
import {
  createServer,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import { AwsChunkedDecoder } from './aws-chunked.js';
import { METRICS_CONTENT_TYPE, type Metrics } from './metrics.js';
import { isLoopbackAddress, stripHopByHop } from '../proxy.js';
import { carriesCredentials } from './cache-semantics.js';
import { withoutPresignQuery } from './presign.js';
import { ClientLeft, type CachedGet, type UpstreamCall } from './cached-get.js';
import type { ResolvedRoute, RouteTable } from './routes.js';
import { signS3, type AwsCredentials } from './upstream-signer.js';
import type { ClientAuthenticator } from './client-auth.js';

export interface GatewayLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface GatewayOptions {
  readonly routes: RouteTable;
  /** The gateway's own AWS credentials (S3 routes); without them S3 requests go unsigned. */
  readonly credentials?: AwsCredentials;
  /** Default: loopback clients only; with `authenticator`, any (each request is signed). */
  readonly allowClient?: (address: string) => boolean;
  /** Clients must sign every request with a key the gateway issued (client-auth.ts). */
  readonly authenticator?: ClientAuthenticator;
  readonly logger?: GatewayLogger;
  /** GET and HEAD go through this cache (cached-get.ts); without it everything passes through. */
  readonly cache?: CachedGet;
  /** Served at `GET /metrics` (a path no route may take). */
  readonly metrics?: Metrics;
  /** Each response, when it finished (metrics). */
  readonly onResponse?: (mode: 'endpoint', method: string, status: number, seconds: number) => void;
  /** Wall clock for signatures; default `new Date()`. */
  readonly now?: () => Date;
  /** Source address of upstream requests (the daemon's `--origin-address`); default: any. */
  readonly localAddress?: string;
}

/** Fields a client sends that authenticate it to the gateway, never to be passed to S3. */
const CLIENT_SIGNATURE_FIELDS = new Set([
  'authorization',
  'x-amz-date',
  'x-amz-security-token',
  'x-amz-content-sha256',
]);

export class Gateway {
  private readonly server: Server;
  private readonly allowClient: (address: string) => boolean;

  constructor(private readonly options: GatewayOptions) {
    this.allowClient =
      options.allowClient ?? (options.authenticator === undefined ? isLoopbackAddress : () => true);
    this.server = createServer({ requestTimeout: 0 }, (req, res) => this.onRequest(req, res));
    this.server.on('checkContinue', (req, res) => this.onRequest(req, res));
    this.server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Starts listening; port 0 picks a free one. @throws the server's error (EADDRINUSE...). */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const client = req.socket.remoteAddress ?? '';
    if (!this.allowClient(client)) {
      reply(res, 403, `this gateway does not serve ${client}`);
      return;
    }
    const started = performance.now();
    res.once('finish', () =>
      this.options.onResponse?.(
        'endpoint',
        req.method ?? 'GET',
        res.statusCode,
        (performance.now() - started) / 1000,
      ),
    );
    const metrics = this.options.metrics;
    const scrape = metrics !== undefined && req.method === 'GET' && req.url === '/metrics';
    const authenticator = this.options.authenticator;
    if (authenticator !== undefined && !(scrape && isLoopbackAddress(client))) {
      const verdict = authenticator.verify(req);
      if (!verdict.ok) {
        this.options.logger?.debug(
          { client, url: loggable(req.url), code: verdict.code },
          'gateway request refused: not signed with a gateway key',
        );
        // The body is not read: the connection ends with the answer, so a stranger cannot hold
        // a socket open by trickling one.
        res.setHeader('connection', 'close');
        res.once('finish', () => {
          if (!req.complete) req.destroy();
        });
        s3Error(res, 403, verdict.code, verdict.message, withoutPresignQuery(req.url ?? '/'));
        return;
      }
    }
    if (scrape) {
      const body = metrics.render();
      res.writeHead(200, {
        'content-type': METRICS_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    const resolved = this.options.routes.resolve(req.headers.host, req.url ?? '');
    if (resolved === undefined) {
      const routed = this.options.routes.routes.map((r) => r.spec).join(', ');
      reply(res, 404, `no route for ${req.url ?? ''} (routes: ${routed === '' ? 'none' : routed})`);
      return;
    }
    void this.forward(req, res, resolved).catch((error: unknown) => {
      if (error instanceof ClientLeft)
        this.options.logger?.debug(
          { url: loggable(req.url) },
          'the client left before the response ended',
        );
      else
        this.options.logger?.warn(
          { url: loggable(req.url), error: String(error) },
          'gateway request failed',
        );
      if (!res.headersSent)
        reply(res, 500, `the gateway could not forward this request: ${String(error)}`);
      else res.destroy();
    });
  }

  /** Sends the request upstream and its response back (through the cache for GET and HEAD). */
  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    resolved: ResolvedRoute,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const s3 = resolved.route.target.kind === 's3';
    const gatewaySigned = this.signedForGateway(resolved);
    const headers = clientHeaders(req, gatewaySigned);
    if (s3 && headers['x-amz-copy-source'] !== undefined) {
      // A copy names its source bucket itself, past the route table: with the gateway's
      // credentials it could read buckets no route exposes.
      req.resume();
      s3Error(
        res,
        403,
        'AccessDenied',
        'server-side copy (x-amz-copy-source) is not served through the gateway',
        withoutPresignQuery(req.url ?? '/'),
      );
      return;
    }
    let body: Readable = req;
    if (s3 && /aws-chunked/i.test(headers['content-encoding'] ?? '')) {
      // Chunk signatures were for the gateway: the body is decoded and sent on unsigned.
      const declared = Number(headers['x-amz-decoded-content-length']);
      if (!Number.isSafeInteger(declared) || declared < 0) {
        reply(res, 400, 'an aws-chunked upload needs x-amz-decoded-content-length');
        req.resume();
        return;
      }
      const encodings = (headers['content-encoding'] ?? '')
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== '' && e.toLowerCase() !== 'aws-chunked');
      if (encodings.length === 0) delete headers['content-encoding'];
      else headers['content-encoding'] = encodings.join(', ');
      delete headers['x-amz-decoded-content-length'];
      delete headers['x-amz-trailer'];
      headers['content-length'] = String(declared);
      const decoder = new AwsChunkedDecoder(declared);
      decoder.once('error', (error) => {
        if (!res.headersSent) reply(res, 400, `the upload was refused: ${error.message}`);
      });
      body = req.pipe(decoder);
    }
    const cached = this.options.cache;
    if (cached !== undefined && (method === 'GET' || method === 'HEAD') && !hasBody(req)) {
      const { upstream } = resolved;
      // The AWS SDKs add `x-id=GetObject`, which S3 ignores: not part of the object's name.
      const sentPath = gatewaySigned ? withoutPresignQuery(upstream.path) : upstream.path;
      const key = `${upstream.origin.origin}${s3 ? withoutPresignQuery(upstream.path, /^x-id$/i) : sentPath}`;
      // The gateway's own signature, or credentials the client sends on, make it private.
      const credentialed =
        (s3 && this.options.credentials !== undefined) ||
        carriesCredentials(`${upstream.origin.origin}${sentPath}`, headers) !== undefined;
      const call: UpstreamCall = async (callMethod, extra, { wholeObject }) => {
        // No Accept-Encoding: one stored copy serves every client, so it must be the identity.
        const { 'accept-encoding': _encoding, ...identity } = headers;
        const base = wholeObject ? withoutConditionals(identity) : identity;
        const originReq = await this.upstreamRequest(
          resolved,
          callMethod,
          { ...base, ...extra },
          false,
        );
        originReq.end();
        return responseOf(originReq);
      };
      await cached.serve(req, res, key, credentialed, call);
      return;
    }
    const originReq = await this.upstreamRequest(resolved, method, headers, hasBody(req));
    originReq.on('response', (originRes) => {
      res.sendDate = false;
      try {
        res.writeHead(
          originRes.statusCode ?? 502,
          originRes.statusMessage,
          stripHopByHop(originRes.rawHeaders),
        );
      } catch (error) {
        originRes.destroy();
        reply(
          res,
          502,
          `${resolved.upstream.origin.host} sent a response head that cannot be passed on: ${String(error)}`,
        );
        return;
      }
      pipeline(originRes, res, (error) => {
        if (error)
          this.options.logger?.debug(
            { url: loggable(req.url), error: error.message },
            'gateway response cut short',
          );
      });
    });
    originReq.on('error', (error) => {
      this.options.logger?.warn(
        { url: loggable(req.url), origin: resolved.upstream.origin.host, error: error.message },
        'origin unreachable',
      );
      if (!res.headersSent)
        reply(
          res,
          502,
          `the origin ${resolved.upstream.origin.host} cannot be reached: ${error.message}`,
        );
      else if (!res.writableEnded) res.destroy();
    });
    if (hasBody(req))
      pipeline(body, originReq, (error) => {
        if (error) originReq.destroy(error);
      });
    else originReq.end();
  }

  /**
   * A GET or HEAD of cache key `key` as this gateway's own routes send it (a member's fill,
   * cluster.ts): signed with the gateway's credentials for an S3 route, with no client field.
   * Undefined when no route leads to `key`.
   */
  keyUpstream(key: string): { call: UpstreamCall; credentialed: boolean } | undefined {
    const resolved = this.options.routes.resolveKey(key);
    if (resolved === undefined) return undefined;
    const credentialed =
      resolved.route.target.kind === 's3' && this.options.credentials !== undefined;
    const call: UpstreamCall = async (method, extra) => {
      const originReq = await this.upstreamRequest(resolved, method, { ...extra }, false);
      originReq.end();
      return responseOf(originReq);
    };
    return { call, credentialed };
  }

  /**
   * Whether a client's signature fields (header or presign query) were for the gateway, so are
   * not sent on: on S3 routes (S3's own), and on every route with gateway keys.
   */
  private signedForGateway({ route }: ResolvedRoute): boolean {
    return route.target.kind === 's3' || this.options.authenticator !== undefined;
  }

  /** The upstream request for `resolved` (signed for an S3 route), not yet ended. */
  private async upstreamRequest(
    { route, upstream }: ResolvedRoute,
    method: string,
    headers: Record<string, string>,
    withBody: boolean,
  ): Promise<ClientRequest> {
    const target = route.target;
    const s3 = target.kind === 's3';
    const path = this.signedForGateway({ route, upstream })
      ? withoutPresignQuery(upstream.path)
      : upstream.path;
    let sendHeaders: OutgoingHttpHeaders = { ...headers, host: upstream.origin.host };
    if (s3 && this.options.credentials !== undefined) {
      sendHeaders = await signS3(
        { method, url: upstream.origin, path, headers },
        target.region,
        this.options.credentials,
        this.options.now?.() ?? new Date(),
      );
    }
    if (withBody && sendHeaders['content-length'] === undefined)
      sendHeaders['transfer-encoding'] = 'chunked';
    const send = upstream.origin.protocol === 'https:' ? httpsRequest : httpRequest;
    return send({
      protocol: upstream.origin.protocol,
      hostname: upstream.origin.hostname,
      port: upstream.origin.port === '' ? undefined : Number(upstream.origin.port),
      method,
      path,
      headers: sendHeaders,
      setHost: false,
      ...(this.options.localAddress === undefined
        ? {}
        : { localAddress: this.options.localAddress }),
    });
  }
}

function isBodyDigest(name: string, value: string): boolean {
  return name === 'x-amz-content-sha256' && /^[0-9a-f]{64}$/.test(value);
}

/** A request-target for the logs: a presigned URL's signature is a credential. */
function loggable(url: string | undefined): string {
  return withoutPresignQuery(url ?? '');
}

/**
 * The client's end-to-end fields as one record (repeats joined), minus Host and, when
 * `gatewaySigned`, its signature (a body's hex digest excepted).
 */
function clientHeaders(req: IncomingMessage, gatewaySigned: boolean): Record<string, string> {
  const fields = stripHopByHop(req.rawHeaders);
  const headers: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toLowerCase();
    if (name === 'host') continue;
    // A body's hex digest goes on: the gateway's signature then carries it, so S3 checks it.
    if (gatewaySigned && CLIENT_SIGNATURE_FIELDS.has(name) && !isBodyDigest(name, fields[i + 1]!))
      continue;
    headers[name] =
      headers[name] === undefined ? fields[i + 1]! : `${headers[name]}, ${fields[i + 1]}`;
  }
  return headers;
}

const CONDITIONAL_FIELDS = new Set([
  'range',
  'if-range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
]);

function withoutConditionals(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !CONDITIONAL_FIELDS.has(name)),
  );
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined
    ? req.headers['content-length'] !== '0'
    : req.headers['transfer-encoding'] !== undefined;
}

function responseOf(request: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
  });
}

/** An S3-style error document (what SDKs parse into an error's name and message). */
function s3Error(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  resource: string,
): void {
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlText(code)}</Code>` +
    `<Message>${xmlText(message)}</Message><Resource>${xmlText(resource)}</Resource></Error>\n`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function xmlText(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function reply(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
