/**
 * The daemon's HTTP forward proxy (`http_proxy=http://127.0.0.1:8080`, `https_proxy=` the same).
 *
 * Theory of operation
 * - One node:http server. Every request is one of three kinds, told apart by its request-target
 *   (RFC 9112 section 3.2):
 *   1. absolute-form (`GET http://host/path`): a proxy request. Only clients that `allowClient`
 *      accepts (default: loopback) may make one; others get 403. A GET without a body is first
 *      offered to the `poolable` hook: if it returns a `PooledResponder`, that responder writes
 *      the whole response (PeaPod's pooled download); otherwise, and for every other method, the
 *      request passes through to the origin with node:http(s), streamed both ways with
 *      backpressure (`pipe`/`pipeline`), so memory stays bounded whatever the body size.
 *   2. authority-form `CONNECT host:port`: a raw TCP tunnel (HTTPS through the proxy). The proxy
 *      answers `200 Connection Established` once the TCP connection to the target is up and then
 *      copies bytes both ways without looking at them. It cannot see inside, so tunnels are never
 *      pooled.
 *   3. origin-form (`GET /path`, or `*`): not a proxy request; the daemon's own API and dashboard
 *      share the port, so these go to `localHandler` (404 without one). An absolute-form request
 *      whose target is this proxy itself is served the same way, which both stops a request loop
 *      and lets a shell with `http_proxy` exported reach the API.
 * - Byte-identical forwarding: status code, reason phrase, body bytes and end-to-end header
 *   fields are passed on as received. Fields are copied from `rawHeaders`, so their case, order
 *   and repeats (several `Set-Cookie`) survive. The hop-by-hop fields of RFC 9110 section 7.6.1
 *   (`Connection` and every field it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
 *   `Transfer-Encoding`, `Upgrade`) and `Proxy-Authorization` (addressed to this proxy) are
 *   dropped in both directions; each hop frames its own message. `Host` is replaced by the
 *   target's authority (RFC 9112 section 3.2.2). Trailer fields of a chunked response are
 *   passed on. No `Date` is added to a passed-through response.
 * - No `Via`. RFC 9110 section 7.6.3 asks proxies to add one, but common proxies (nginx,
 *   HAProxy, Apache's default `ProxyVia Off`) do not, and origins react to it: nginx's default
 *   `gzip_proxied off` stops compressing for requests that carry `Via`, so a response through
 *   PeaPod would differ from a direct one. Loops, which `Via` would detect, are caught by the
 *   self-target rule above.
 * - 1xx: `Expect: 100-continue` is forwarded, and the origin's `100 Continue` is relayed, so a
 *   client does not upload a body that the origin is about to refuse. `102` and `103` are
 *   relayed through Node's `writeProcessing`/`writeEarlyHints`; Node offers no way to send other
 *   1xx codes, which are dropped (they are informational).
 * - Errors a person sees are one line of text: 502 when the origin or tunnel target cannot be
 *   reached (naming it and the system error), 400 for a request line or target the proxy cannot
 *   parse, 403 for a client outside the allow-list. Once a response has started, a failure can
 *   only cut the connection, which clients report as a truncated transfer.
 * - State: the proxy owns its server, the open tunnels (closed by `close()`), and nothing else.
 *   Each request's state lives in its closures. Logging goes to an injected `ProxyLogger`
 *   (pino fits): one `debug` line per finished request or tunnel, `warn` for failures.
 * - `requestTimeout` is off: an upload through the proxy may take longer than Node's default
 *   five minutes. `headersTimeout` (60 s) still bounds a client that never finishes its head.
 */
import {
  STATUS_CODES,
  createServer,
  request as httpRequest,
  type Agent as HttpAgent,
  type ClientRequest,
  type IncomingMessage,
  type InformationEvent,
  type Server,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { connect, isIPv4, isIPv6, type AddressInfo } from 'node:net';
import { pipeline, type Duplex } from 'node:stream';

/** Default port of the proxy (shared with the daemon's API and dashboard; DESIGN.md "Defaults"). */
export const PROXY_PORT = 8080;

/** The logger the proxy writes to; a pino `Logger` fits. */
export interface ProxyLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** A proxied GET without a request body, offered to the `poolable` hook. */
export interface ProxiedGet {
  /** The absolute target, exactly as the client sent it: `http://host[:port]/path?query`. */
  readonly url: string;
  /** The client's end-to-end header fields in order and case, without hop-by-hop ones or Host. */
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** The client's IP address. */
  readonly clientAddress: string;
}

/** Serves one proxied GET from PeaPod's pooled download. */
export interface PooledResponder {
  /**
   * Writes the whole response to `res`: status, headers (`stripHopByHop` the origin's), body;
   * resolves when it ended. A rejection before `res.headersSent` makes the proxy pass the request
   * through to the origin instead; after it, the client connection is cut.
   */
  respond(res: ServerResponse): Promise<void>;
}

/**
 * Decides whether a proxied GET is pooled; the daemon's rule (size, Range support) lives there.
 * Returns `undefined` to pass the request through. A throw or rejection also passes it through.
 */
export type PoolableHook = (
  request: ProxiedGet,
) => PooledResponder | undefined | Promise<PooledResponder | undefined>;

/** Options of a `ForwardProxy`. */
export interface ForwardProxyOptions {
  /**
   * Serves origin-form requests (the daemon's API), and absolute-form ones that target this
   * proxy itself; it decides who may (api-guard.ts) and sends any `100 Continue` itself.
   * Default: 404 for all of them.
   */
  readonly localHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Offered every proxied GET without a body; default: nothing is pooled. */
  readonly poolable?: PoolableHook;
  /** Which client IP addresses may use the proxy (403 otherwise); default `isLoopbackAddress`. */
  readonly allowClient?: (address: string) => boolean;
  /** Default: no logging. */
  readonly logger?: ProxyLogger;
  /** Agents for connections to origins (source address, keep-alive, extra CAs); default global. */
  readonly agents?: { readonly http?: HttpAgent; readonly https?: HttpsAgent };
}

/** A parsed `host:port`. `host` is a name, an IPv4 address or an IPv6 address without brackets. */
export interface Authority {
  readonly host: string;
  readonly port: number;
}

/** What a request-target asks for (RFC 9112 section 3.2). */
export type RequestTarget =
  | { readonly form: 'origin' }
  | {
      readonly form: 'absolute';
      readonly scheme: 'http' | 'https';
      /** The authority as sent (the new `Host`), validated. */
      readonly authority: string;
      readonly host: string;
      readonly port: number;
      /** The origin-form to send the origin: path and query, as sent (never normalised). */
      readonly path: string;
    }
  | { readonly form: 'invalid'; readonly reason: string };

/**
 * RFC 9110 section 7.6.1's hop-by-hop fields, plus `Proxy-Connection` (a pre-standard alias
 * clients still send), `Trailer` (the trailer fields themselves are passed on) and
 * `Proxy-Authorization` (credentials for this proxy, never for the origin).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Longest authority accepted: a 253-byte DNS name, `:`, five digits; IPv6 fits too. */
const AUTHORITY_CHARS_MAX = 260;
/** DNS-style labels; `_` occurs in real host names. Percent-encoded reg-names are refused. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?$/;
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s;

/**
 * Whether `address` is a loopback address: 127.0.0.0/8, `::1`, or 127.x as IPv4-mapped IPv6.
 * @example isLoopbackAddress('::ffff:127.0.0.1') === true; isLoopbackAddress('10.0.0.1') === false
 */
export function isLoopbackAddress(address: string): boolean {
  const lower = address.toLowerCase();
  if (lower === '::1') return true;
  const v4 = lower.startsWith('::ffff:') ? lower.slice('::ffff:'.length) : lower;
  return isIPv4(v4) && v4.startsWith('127.');
}

/**
 * Parses an authority `host:port` (RFC 9112 section 3.2.3), as a CONNECT target or the
 * authority of an absolute-form target. IPv6 addresses must be bracketed; user info, empty or
 * out-of-range ports and characters outside DNS names are refused. Never throws.
 * @param defaultPort used when the port is absent; without it a port is required.
 * @returns the host and port, or `undefined` if `text` is not a usable authority.
 * @example parseAuthority('[::1]:443') → { host: '::1', port: 443 }
 */
export function parseAuthority(text: string, defaultPort?: number): Authority | undefined {
  if (text.length > AUTHORITY_CHARS_MAX) return undefined;
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return undefined;
    host = text.slice(1, close);
    if (!isIPv6(host)) return undefined;
    const rest = text.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (!HOST_NAME.test(host)) return undefined;
  }
  if (portText === undefined) {
    return defaultPort === undefined ? undefined : { host, port: defaultPort };
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port >= 1 && port <= 65_535 ? { host, port } : undefined;
}

/**
 * Classifies a request-target of a non-CONNECT request. Never throws.
 * @example parseRequestTarget('http://example.com/a?b').form === 'absolute'
 */
export function parseRequestTarget(target: string): RequestTarget {
  if (target.startsWith('/') || target === '*') return { form: 'origin' };
  const match = ABSOLUTE_FORM.exec(target);
  if (match === null) {
    return { form: 'invalid', reason: 'the request-target is neither a path nor an absolute URL' };
  }
  const [, schemeText = '', authority = '', rest = ''] = match;
  const scheme = schemeText.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    return {
      form: 'invalid',
      reason: `only http:// and https:// URLs can be proxied, not ${scheme}://`,
    };
  }
  if (authority.includes('@')) {
    return {
      form: 'invalid',
      reason: 'user names and passwords in proxied URLs are not supported',
    };
  }
  const parsed = parseAuthority(authority, scheme === 'http' ? 80 : 443);
  if (parsed === undefined) {
    return { form: 'invalid', reason: `the URL's host and port are not valid` };
  }
  // Node's parser already refuses control characters and spaces; '#' never belongs in a target.
  if (!/^[\x21-\x7e]*$/.test(rest) || rest.includes('#')) {
    return {
      form: 'invalid',
      reason: `the URL's path has characters that must be percent-encoded`,
    };
  }
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { form: 'absolute', scheme, authority, host: parsed.host, port: parsed.port, path };
}

/**
 * Drops the hop-by-hop fields (RFC 9110 section 7.6.1: `Connection` and the fields it names,
 * `Keep-Alive`, `Proxy-Connection`, `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding`,
 * `Upgrade`) from a flat `rawHeaders` list, keeping every other field's case, order and repeats.
 * @example stripHopByHop(['Connection', 'x-a', 'X-A', '1', 'ETag', '"v"']) → ['ETag', '"v"']
 */
export function stripHopByHop(rawHeaders: readonly string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) named.add(token.trim().toLowerCase());
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (!HOP_BY_HOP.has(lower) && !named.has(lower)) kept.push(name, rawHeaders[i + 1]!);
  }
  return kept;
}

type Mode = 'pass-through' | 'pooled' | 'local' | 'refused';

/** One proxied request: what the access log line reports when its response closes. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly target: Extract<RequestTarget, { form: 'absolute' }>;
  mode: Mode;
}

/**
 * The forward proxy. See the module comment for what it does with each kind of request.
 * @example
 * const proxy = new ForwardProxy({ localHandler: (req, res) => api(req, res), logger });
 * const address = await proxy.listen(8080, '127.0.0.1');
 */
export class ForwardProxy {
  private readonly server: Server;
  private readonly tunnels = new Set<Duplex>();
  private readonly allowClient: (address: string) => boolean;
  private listening: AddressInfo | undefined;

  constructor(private readonly options: ForwardProxyOptions = {}) {
    this.allowClient = options.allowClient ?? isLoopbackAddress;
    this.server = createServer({ requestTimeout: 0 }, (req, res) => this.onRequest(req, res));
    // With a listener, Node leaves `Expect: 100-continue` to us: the origin decides, not the proxy.
    this.server.on('checkContinue', (req, res) => this.onRequest(req, res));
    this.server.on('connect', (req, socket, head) => this.onConnect(req, socket, head));
    this.server.on('clientError', (error, socket) => this.onClientError(error, socket));
  }

  /**
   * Starts listening (default 127.0.0.1:8080; port 0 picks a free one).
   * @throws the server's error (e.g. `EADDRINUSE`) if it cannot listen.
   */
  async listen(port: number = PROXY_PORT, host = '127.0.0.1'): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.listening = this.server.address() as AddressInfo;
    return this.listening;
  }

  /** Stops listening and closes every connection, tunnels included. */
  async close(): Promise<void> {
    for (const socket of this.tunnels) socket.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private get logger(): ProxyLogger | undefined {
    return this.options.logger;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const target = parseRequestTarget(req.url ?? '');
    if (target.form === 'origin' || (target.form === 'absolute' && this.targetsSelf(target))) {
      if (target.form === 'absolute') req.url = target.path;
      this.logWhenDone(req, res, () => 'local');
      // A local handler answers `Expect: 100-continue` itself, once it has checked the caller.
      if (this.options.localHandler === undefined) {
        reply(res, 404, 'this is the PeaPod proxy; it has no page here');
      } else {
        this.options.localHandler(req, res);
      }
      return;
    }
    // Errors on a client's streams show in its request's outcome; they must never crash the daemon.
    req.on('error', (error) => this.logger?.debug({ error: error.message }, 'proxy client error'));
    res.on('error', (error) => this.logger?.debug({ error: error.message }, 'proxy client error'));
    const clientAddress = req.socket.remoteAddress ?? '';
    if (!this.allowClient(clientAddress)) {
      this.logWhenDone(req, res, () => 'refused');
      reply(res, 403, `clients at ${clientAddress} may not use this proxy`);
      return;
    }
    if (target.form === 'invalid') {
      this.logWhenDone(req, res, () => 'refused');
      reply(res, 400, `bad request: ${target.reason}`);
      return;
    }
    const exchange: Exchange = { req, res, target, mode: 'pass-through' };
    this.logWhenDone(req, res, () => exchange.mode);
    const poolable = this.options.poolable;
    if (req.method === 'GET' && !hasRequestBody(req) && poolable !== undefined) {
      void this.tryPooled(exchange, clientAddress, poolable);
    } else {
      this.passThrough(exchange);
    }
  }

  /** Offers a GET to the pooling hook; passes it through if the hook or its responder declines. */
  private async tryPooled(
    exchange: Exchange,
    clientAddress: string,
    poolable: PoolableHook,
  ): Promise<void> {
    const { req, res } = exchange;
    const url = req.url ?? '';
    const fields = stripHopByHop(req.rawHeaders);
    const headers: { name: string; value: string }[] = [];
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (fields[i]!.toLowerCase() !== 'host') {
        headers.push({ name: fields[i]!, value: fields[i + 1]! });
      }
    }
    let responder: PooledResponder | undefined;
    try {
      responder = await poolable({ url, headers, clientAddress });
    } catch (error) {
      this.logger?.warn(
        { url, error: (error as Error).message },
        'pooling hook failed; passing through',
      );
    }
    if (req.socket.destroyed) return;
    if (responder === undefined) {
      this.passThrough(exchange);
      return;
    }
    exchange.mode = 'pooled';
    try {
      await responder.respond(res);
    } catch (error) {
      const message = (error as Error).message;
      if (res.headersSent || req.socket.destroyed) {
        // The client leaving is its own choice, not a failure to warn about.
        if (!res.destroyed)
          this.logger?.warn({ url, error: message }, 'pooled response failed after it started');
        res.destroy();
        return;
      }
      this.logger?.warn({ url, error: message }, 'pooled response failed; passing through');
      exchange.mode = 'pass-through';
      this.passThrough(exchange);
    }
  }

  /** Forwards one request to its origin and the response back, streaming both bodies. */
  private passThrough({ req, res, target }: Exchange): void {
    const headers = ['Host', target.authority];
    const fields = stripHopByHop(req.rawHeaders);
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (fields[i]!.toLowerCase() !== 'host') headers.push(fields[i]!, fields[i + 1]!);
    }
    // The client's framing was hop-by-hop; a body without Content-Length is re-sent chunked
    // (also when `Connection` named Content-Length, so a body can never lose its framing).
    const keepsLength = headers.some(
      (field, i) => i % 2 === 0 && field.toLowerCase() === 'content-length',
    );
    if (hasRequestBody(req) && !keepsLength) headers.push('Transfer-Encoding', 'chunked');
    const agents = this.options.agents;
    const agent = target.scheme === 'https' ? agents?.https : agents?.http;
    let originReq: ClientRequest;
    try {
      originReq = (target.scheme === 'https' ? httpsRequest : httpRequest)({
        host: target.host,
        port: target.port,
        method: req.method ?? 'GET',
        path: target.path,
        headers,
        setHost: false,
        ...(agent === undefined ? {} : { agent }),
      });
    } catch (error) {
      // The client's head was parsed and checked already; what is left is the proxy's own
      // configuration (e.g. an https agent given for http).
      const message = (error as Error).message;
      this.logger?.warn({ url: req.url, error: message }, 'request could not be forwarded');
      reply(res, 500, `the proxy could not forward this request: ${message}`);
      return;
    }
    originReq.on('information', (info) => this.relayInformational(info, res));
    originReq.on('response', (originRes) => {
      res.sendDate = false;
      try {
        res.writeHead(
          originRes.statusCode ?? 502,
          originRes.statusMessage,
          stripHopByHop(originRes.rawHeaders),
        );
      } catch (error) {
        // Node's client accepts a little more than its server sends (e.g. DEL in a value).
        originRes.destroy();
        const message = (error as Error).message;
        this.logger?.warn({ url: req.url, error: message }, 'origin response cannot be passed on');
        reply(
          res,
          502,
          `${target.authority} sent a response head that cannot be passed on: ${message}`,
        );
        return;
      }
      // Registered before `pipeline`, so the trailers are added before it ends `res`.
      originRes.on('end', () => {
        const trailers = stripHopByHop(originRes.rawTrailers);
        if (trailers.length > 0) res.addTrailers(pairs(trailers));
      });
      pipeline(originRes, res, (error) => {
        if (error !== undefined && error !== null) {
          this.logger?.debug({ url: req.url, error: error.message }, 'proxied response cut short');
        }
      });
    });
    originReq.on('error', (error: Error & { code?: string }) => {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // Node's HTTP parser reports a malformed response with an `HPE_*` code.
      const text = error.code?.startsWith('HPE_')
        ? `${target.authority} sent a response that is not valid HTTP: ${error.message}`
        : `could not reach ${target.authority}: ${error.message}`;
      this.logger?.warn({ url: req.url, error: error.message }, 'origin failed');
      reply(res, 502, text);
    });
    res.on('close', () => {
      if (!res.writableFinished) originReq.destroy();
    });
    req.pipe(originReq);
  }

  private relayInformational(info: InformationEvent, res: ServerResponse): void {
    switch (info.statusCode) {
      case 100:
        res.writeContinue();
        return;
      case 102:
        res.writeProcessing();
        return;
      case 103: {
        const hints: Record<string, string[]> = {};
        const fields = stripHopByHop(info.rawHeaders);
        for (let i = 0; i + 1 < fields.length; i += 2) {
          (hints[fields[i]!.toLowerCase()] ??= []).push(fields[i + 1]!);
        }
        try {
          res.writeEarlyHints(hints);
        } catch (error) {
          // Node validates Link values; an origin's malformed hint is dropped, not fatal.
          this.logger?.debug({ error: (error as Error).message }, 'dropped 103 Early Hints');
        }
        return;
      }
      default:
        this.logger?.debug({ status: info.statusCode }, 'dropped a 1xx Node cannot relay');
    }
  }

  /** `CONNECT host:port`: a raw TCP tunnel. */
  private onConnect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const startedMs = performance.now();
    const target = req.url ?? '';
    client.on('error', (error) =>
      this.logger?.debug({ target, error: error.message }, 'tunnel client error'),
    );
    const clientAddress = req.socket.remoteAddress ?? '';
    if (!this.allowClient(clientAddress)) {
      rawReply(client, 403, `clients at ${clientAddress} may not use this proxy`);
      return;
    }
    const authority = parseAuthority(target);
    if (authority === undefined) {
      rawReply(client, 400, 'bad request: CONNECT needs host:port (IPv6 in brackets)');
      return;
    }
    const upstream = connect({ host: authority.host, port: authority.port });
    this.tunnels.add(client);
    this.tunnels.add(upstream);
    let established = false;
    upstream.once('connect', () => {
      established = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      pipeline(client, upstream, () => undefined);
      pipeline(upstream, client, () => undefined);
    });
    upstream.on('error', (error) => {
      if (established) return; // `pipeline` destroys both sides
      this.logger?.warn({ target, error: error.message }, 'tunnel target unreachable');
      rawReply(client, 502, `could not connect to ${target}: ${error.message}`);
    });
    client.once('close', () => {
      upstream.destroy();
      this.tunnels.delete(client);
      this.tunnels.delete(upstream);
      this.logger?.debug(
        {
          mode: 'tunnel',
          target,
          client: clientAddress,
          established,
          bytesUp: upstream.bytesWritten,
          bytesDown: upstream.bytesRead,
          durationMs: Math.round(performance.now() - startedMs),
        },
        'proxy tunnel closed',
      );
    });
  }

  /** A request Node could not parse (bad request line, oversized head). */
  private onClientError(error: Error & { code?: string }, socket: Duplex): void {
    this.logger?.debug({ error: error.message, code: error.code }, 'unparsable request');
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      rawReply(socket, 431, 'the request head is too large');
    } else {
      rawReply(socket, 400, `bad request: ${error.code ?? error.message}`);
    }
  }

  /** Whether an absolute-form target is this very proxy (a loop, or a request for the API). */
  private targetsSelf(target: Extract<RequestTarget, { form: 'absolute' }>): boolean {
    const local = this.listening;
    if (local === undefined || target.scheme !== 'http' || target.port !== local.port) return false;
    const host = target.host.toLowerCase();
    if (host === local.address) return true;
    const wildcard = local.address === '0.0.0.0' || local.address === '::';
    if (host === 'localhost') return wildcard || isLoopbackAddress(local.address);
    return wildcard && isLoopbackAddress(host);
  }

  private logWhenDone(req: IncomingMessage, res: ServerResponse, mode: () => Mode): void {
    const logger = this.logger;
    if (logger === undefined) return;
    const target = req.url;
    const startedMs = performance.now();
    res.once('close', () =>
      logger.debug(
        {
          mode: mode(),
          method: req.method,
          target,
          client: req.socket.remoteAddress,
          status: res.statusCode,
          complete: res.writableFinished,
          durationMs: Math.round(performance.now() - startedMs),
        },
        'proxy request done',
      ),
    );
  }
}

/** A one-line plain-text answer from the proxy itself. */
function reply(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  // The reason is explicit: a failed `writeHead` may have left the origin's on `res`.
  res.writeHead(status, STATUS_CODES[status] ?? '', {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** The same on a socket the HTTP server has let go of (CONNECT, parse errors). */
function rawReply(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

/** Whether a request carries a body (RFC 9112 section 6.3: Transfer-Encoding or a length). */
function hasRequestBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** A flat `[name, value, ...]` list as `[name, value]` pairs (what `addTrailers` takes). */
function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
