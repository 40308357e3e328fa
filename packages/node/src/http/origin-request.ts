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
import type { TransferOutput } from '@peapod/core';

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
  | { readonly kind: 'failed'; readonly detail: string };

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
  | { kind: 'failed'; detail: string };

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
    const agent = spec.agents === undefined ? false : https ? spec.agents.https : spec.agents.http;
    let request: ClientRequest;
    try {
      request = (https ? httpsRequest : httpRequest)(target, {
        method: 'GET',
        headers: all,
        agent,
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
    request.once('response', (response) => resolve({ kind: 'response', response, request }));
    // `on`, not `once`: the request may fail again after the response arrived (a reset while
    // the body streams); the caller sees that on the response, and this keeps it handled.
    request.on('error', (error) =>
      resolve({ kind: 'failed', detail: `${target.host}: ${describeError(error)}` }),
    );
    request.end();
  });
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
