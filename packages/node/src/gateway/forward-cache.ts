/**
 * The gateway's forward-proxy mode: proxied GETs (`http_proxy=http://127.0.0.1:8080`, an S3
 * SDK's proxy setting over plain HTTP) answered through the gateway's cache (cached-get.ts).
 *
 * Theory of operation
 * - The forward proxy (proxy.ts) offers every GET without a body to its `poolable` hook; with
 *   the gateway running, this hook answers it from the cache. The client signed for the real
 *   endpoint, so its request goes upstream as it came: the same URL, the same end-to-end fields
 *   (an `Authorization` signature stays valid: the Host is the origin's).
 * - The cache key is the URL without presign parameters, so two presigned URLs of one object
 *   share one cached copy; each use is still revalidated with the origin using the client's own
 *   URL and fields (a credentialed request, DESIGN.md decision 17), so an expired or forged
 *   signature gets the origin's 403, never a cached byte.
 * - HTTPS through `CONNECT` is a tunnel the proxy cannot see into, so it is never cached.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { PooledResponder, ProxiedGet } from '../proxy.js';
import type { CachedGet, UpstreamCall } from './cached-get.js';
import { carriesCredentials } from './cache-semantics.js';
import { withoutPresignQuery } from './presign.js';

const CONDITIONAL =
  /^(range|if-range|if-match|if-none-match|if-modified-since|if-unmodified-since)$/i;

/** The responder for one proxied GET, through `cache`. */
export function forwardCacheResponder(
  cache: CachedGet,
  request: ProxiedGet,
  onResponse?: (mode: 'forward', method: string, status: number, seconds: number) => void,
  /** Source address of upstream requests (the daemon's `--origin-address`); default: any. */
  localAddress?: string,
): PooledResponder | undefined {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:') return undefined;
  const headers: Record<string, string> = {};
  for (const { name, value } of request.headers) {
    const lower = name.toLowerCase();
    // No Accept-Encoding: one stored copy serves every client, so it must be the identity.
    if (lower === 'host' || lower === 'accept-encoding' || lower.startsWith('proxy-')) continue;
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  const path = `${url.pathname}${url.search}`;
  const key = `${url.origin}${withoutPresignQuery(path)}`;
  const credentialed = carriesCredentials(request.url, headers) !== undefined;
  const upstream: UpstreamCall = (method, extra, { wholeObject }) => {
    const sent: Record<string, string> = { host: url.host };
    for (const [name, value] of Object.entries(headers))
      if (!(wholeObject && CONDITIONAL.test(name))) sent[name] = value;
    Object.assign(sent, extra);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send({
        hostname: url.hostname,
        port: url.port === '' ? undefined : Number(url.port),
        method,
        path,
        headers: sent,
        setHost: false,
        ...(localAddress === undefined ? {} : { localAddress }),
      });
      req.once('response', resolve);
      req.once('error', reject);
      req.end();
    });
  };
  return {
    respond: (res) => {
      const started = performance.now();
      res.once('finish', () =>
        onResponse?.('forward', 'GET', res.statusCode, (performance.now() - started) / 1000),
      );
      return cache.serve({ method: 'GET', headers }, res, key, credentialed, upstream);
    },
  };
}
