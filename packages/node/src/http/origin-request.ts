/**
 * One origin GET with redirects followed: the plumbing the probe and the range fetcher share.
 *
 * Theory of operation: `openOrigin` sends the request with `node:http` or `node:https` (picked
 * per hop from the URL's scheme), follows up to `redirectsMax` redirects (301, 302, 303, 307,
 * 308 with a Location; every one is a GET again, with the same headers), and resolves with the
 * first non-redirect response, unread, for the caller to stream or discard. Every failure
 * (unreachable, TLS, aborted, too many redirects, a Location that is not http(s)) resolves as
 * `{ kind: 'failed', detail }` with one line for a person; it never rejects or throws.
 *
 * Credentials do not follow a redirect to another origin: `authorization`, `cookie` and
 * `proxy-authorization` are dropped when scheme, host or port change, as browsers (Fetch
 * standard, "HTTP-redirect fetch") and curl do. A presigned URL's signature lives in its query,
 * so S3-style redirects still work.
 *
 * Destinations (DESIGN.md decision 14): with a `destinationPolicy` (fetches on behalf of a pod
 * peer) every hop is checked before any byte of it is sent. An IP literal in the URL is judged
 * at once (`node:net` skips `lookup` for literals); a name is resolved by a `lookup` hook that
 * hands the socket only the addresses the policy allows (a DNS answer mixing public and private
 * addresses connects to a public one), and refuses the name when none is left. Then the socket's
 * `remoteAddress` is checked once more before anything is sent on it: first thing on connect
 * (before the request or a TLS ClientHello), or at once for a pooled keep-alive socket (it may
 * have been opened by a fetch without the policy, to an address the policy refuses). A refusal resolves as
 * `{ kind: 'failed', refused: true }`; one of a literal or a name is made before connecting.
 *
 * The caller owns the returned response and must consume or destroy it. `localAddress` binds the
 * socket's source address (a device's own internet link); `agents` give keep-alive pools (the
 * source address is part of a pooled socket's key, so links never share sockets); without
 * them each request has its own connection, closed after it.
 */
import {
  request as httpRequest,
  type Agent as HttpAgent,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import type { TransferOutput } from '@peapod/core';
import type { DestinationPolicy } from './destination-policy.js';

/** A request header, as the core's `fetch-origin` output carries them. */
export type HttpHeader = Extract<TransferOutput, { type: 'fetch-origin' }>['headers'][number];

export interface OriginRequest {
  readonly url: string;
  /** The caller's headers (e.g. authorization). */
  readonly headers: readonly HttpHeader[];
  /** Headers this module's callers set (Range, If-Range...); they replace same-named ones. */
  readonly protocolHeaders: Readonly<Record<string, string>>;
  readonly redirectsMax: number;
  readonly localAddress?: string | undefined;
  readonly agents?: { readonly http: HttpAgent; readonly https: HttpsAgent } | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Fail when the socket is idle this long (before or during the response). */
  readonly idleTimeoutMs: number;
  /** Checks every address connected to (fetches for a peer); none: any address. */
  readonly destinationPolicy?: DestinationPolicy | undefined;
}

export type OpenedOrigin =
  | {
      readonly kind: 'response';
      readonly response: IncomingMessage;
      readonly request: ClientRequest;
      /** The URL that answered, after redirects. */
      readonly url: string;
      readonly redirects: number;
    }
  | {
      readonly kind: 'failed';
      readonly detail: string;
      /** The destination policy refused an address (see the module comment). */
      readonly refused?: true;
    };

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** Sends the GET, following redirects; see the module comment. Never rejects. */
export async function openOrigin(spec: OriginRequest): Promise<OpenedOrigin> {
  let url = spec.url;
  let headers = spec.headers;
  for (let redirects = 0; ; redirects++) {
    const hop = await sendOnce(spec, url, headers);
    if (hop.kind === 'failed') return hop;
    const { response } = hop;
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (!REDIRECT_STATUSES.has(status) || location === undefined) {
      return { kind: 'response', response, request: hop.request, url, redirects };
    }
    response.resume(); // drain the redirect's body so its socket can be reused
    if (redirects === spec.redirectsMax) {
      return {
        kind: 'failed',
        detail: `more than ${spec.redirectsMax} redirects, starting from ${spec.url}`,
      };
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      return {
        kind: 'failed',
        detail: `${url} redirected to an invalid URL: ${oneLine(location)}`,
      };
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      return { kind: 'failed', detail: `${url} redirected to a non-HTTP URL: ${next.protocol}` };
    }
    if (next.origin !== new URL(url).origin) {
      headers = headers.filter(({ name }) => !CREDENTIAL_HEADERS.has(name.toLowerCase()));
    }
    url = next.toString();
  }
}

type Hop =
  | { kind: 'response'; response: IncomingMessage; request: ClientRequest }
  | { kind: 'failed'; detail: string; refused?: true };

/** Thrown into a socket the destination policy refused; `sendOnce` reports it as `refused`. */
class DestinationRefused extends Error {}

function sendOnce(spec: OriginRequest, url: string, headers: readonly HttpHeader[]): Promise<Hop> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ kind: 'failed', detail: `not a valid URL: ${oneLine(url)}` });
      return;
    }
    const https = target.protocol === 'https:';
    if (!https && target.protocol !== 'http:') {
      resolve({ kind: 'failed', detail: `not an http(s) URL: ${oneLine(url)}` });
      return;
    }
    const all: OutgoingHttpHeaders = {};
    for (const { name, value } of headers) {
      const key = name.toLowerCase();
      const earlier = all[key];
      all[key] = earlier === undefined ? value : `${String(earlier)}, ${value}`;
    }
    for (const [name, value] of Object.entries(spec.protocolHeaders)) {
      all[name.toLowerCase()] = value;
    }
    const policy = spec.destinationPolicy;
    const literal = target.hostname.replace(/^\[(.*)\]$/, '$1');
    if (policy !== undefined && isIP(literal) !== 0) {
      const refusal = policy(literal);
      if (refusal !== undefined) {
        resolve({ kind: 'failed', detail: refused(target, refusal), refused: true });
        return;
      }
    }
    const agent = spec.agents === undefined ? false : https ? spec.agents.https : spec.agents.http;
    let request: ClientRequest;
    try {
      request = (https ? httpsRequest : httpRequest)(target, {
        method: 'GET',
        headers: all,
        agent,
        ...(policy === undefined ? {} : { lookup: guardedLookup(policy) }),
        ...(spec.localAddress === undefined ? {} : { localAddress: spec.localAddress }),
        ...(spec.signal === undefined ? {} : { signal: spec.signal }),
      });
    } catch (error) {
      // Invalid header names or values throw synchronously.
      resolve({ kind: 'failed', detail: `cannot send the request: ${describeError(error)}` });
      return;
    }
    request.setTimeout(spec.idleTimeoutMs, () => {
      request.destroy(new Error(`no bytes from ${target.host} for ${spec.idleTimeoutMs} ms`));
    });
    if (policy !== undefined) request.once('socket', (socket) => guardSocket(socket, policy));
    request.once('response', (response) => resolve({ kind: 'response', response, request }));
    // `on`, not `once`: the request may fail again after the response arrived (a reset while
    // the body streams); the caller sees that on the response, and this keeps it handled.
    request.on('error', (error) =>
      resolve(
        error instanceof DestinationRefused
          ? { kind: 'failed', detail: refused(target, error.message), refused: true }
          : { kind: 'failed', detail: `${target.host}: ${describeError(error)}` },
      ),
    );
    request.end();
  });
}

/** How `guardedLookup` resolves a name: `dns.lookup` with `all: true`. */
export type Resolver = (
  hostname: string,
  options: LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/**
 * A `lookup` for `node:net` that passes on only the addresses `policy` allows, and fails with
 * an error whose message says why when it allows none of the name's addresses.
 */
export function guardedLookup(
  policy: DestinationPolicy,
  resolve: Resolver = (hostname, options, callback) => dnsLookup(hostname, options, callback),
): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error !== null) {
        callback(error, '', 0);
        return;
      }
      const allowed = addresses.filter(({ address }) => policy(address) === undefined);
      const first = allowed[0];
      if (first === undefined) {
        const reason = addresses[0] === undefined ? 'none' : policy(addresses[0].address)!;
        const others = addresses.length > 1 ? ` (and ${addresses.length - 1} more)` : '';
        const message = `${hostname} resolves only to refused addresses: ${reason}${others}`;
        callback(new DestinationRefused(message), '', 0);
      } else if (options.all === true) {
        (callback as unknown as (error: null, addresses: LookupAddress[]) => void)(null, allowed);
      } else {
        callback(null, first.address, first.family);
      }
    });
  };
}

/**
 * Checks the address a socket is connected to before anything is sent on it: a pooled socket
 * at once, a new one first thing on connect. The listener is prepended, so it runs before the
 * socket flushes the request written while it was connecting and, for https, before the TLS
 * handshake starts (a socket destroyed by then sends no ClientHello).
 */
function guardSocket(socket: Socket, policy: DestinationPolicy): void {
  const check = (): void => {
    const refusal = policy(socket.remoteAddress ?? '');
    if (refusal !== undefined) socket.destroy(new DestinationRefused(refusal));
  };
  if (socket.connecting) socket.prependOnceListener('connect', check);
  else check();
}

function refused(target: URL, reason: string): string {
  return `refused to fetch ${target.host} for a pod peer: ${reason}; this device fetches only public addresses for others (--allow-private-origins lifts that)`;
}

/** One line from any thrown value: its code and message. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return oneLine(String(error));
  const code = (error as { code?: unknown }).code;
  const message = oneLine(error.message);
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').slice(0, 300);
}
