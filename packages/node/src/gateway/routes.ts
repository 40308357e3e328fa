/**
 * The gateway's route table (endpoint mode): which origin a request to the gateway is for.
 *
 * Theory of operation
 * - A route is written `MATCH=TARGET` (`peapod daemon --route`, repeatable):
 *   - MATCH is a path prefix (`/models`) or a host name (`cdn.local`, matched against the
 *     request's Host without its port, case-insensitively);
 *   - TARGET is an HTTP origin with an optional base path (`http://10.0.0.5:8080/base`), or an S3
 *     bucket: `s3://BUCKET@ENDPOINT` (path-style, e.g. `s3://models@http://127.0.0.1:9000`), with
 *     `?region=R` (default `us-east-1`). `s3://BUCKET` alone means AWS's regional endpoint.
 * - A prefix matches on a path-segment boundary: `/models` matches `/models`, `/models/a` and
 *   `/models?list-type=2`, never `/modelsx`. The longest matching prefix wins; host routes are
 *   tried before prefix routes. What follows the prefix is appended to the target's path: for
 *   an S3 route, a client's path-style `/models/key` becomes `/BUCKET/key` at the endpoint.
 * - A request whose path holds a `.` or `..` segment (plain or percent-encoded) matches nothing:
 *   it could otherwise climb out of its route's bucket or base path upstream.
 * - Parsing reads the operator's text and throws `RouteError` with a sentence naming the route
 *   and what to write instead; matching reads a client's request and never throws.
 */

export type RouteTarget =
  | { readonly kind: 'http'; readonly origin: URL }
  | {
      readonly kind: 's3';
      readonly bucket: string;
      /** Where the bucket's path-style requests go (`http(s)://host[:port]`). */
      readonly endpoint: URL;
      readonly region: string;
    };

export type RouteMatch =
  | { readonly kind: 'prefix'; readonly prefix: string }
  | { readonly kind: 'host'; readonly host: string };

export interface Route {
  /** As the operator wrote it. */
  readonly spec: string;
  readonly match: RouteMatch;
  readonly target: RouteTarget;
}

/** Where to send a request upstream: scheme, host and port, and the raw `/path?query`. */
export interface Upstream {
  readonly origin: URL;
  readonly path: string;
}

/** Where a request goes: its route and the upstream request. */
export interface ResolvedRoute {
  readonly route: Route;
  readonly upstream: Upstream;
}

export class RouteError extends Error {
  override readonly name = 'RouteError';
  readonly code = 'PEAPOD_ERR_INVALID_ARGUMENT';
}

/** S3 bucket names (the rules for new buckets, loosened to what path-style addressing allows). */
const BUCKET = /^[a-z0-9][a-z0-9.\-_]{1,254}$/;
const REGION = /^[a-z0-9-]{1,32}$/;
const HOST = /^[a-z0-9.-]{1,253}$/;

/**
 * Parses one `MATCH=TARGET` route.
 * @throws RouteError naming what is wrong.
 * @example parseRoute('/models=s3://models@http://127.0.0.1:9000?region=eu-west-1')
 */
export function parseRoute(spec: string): Route {
  const at = spec.indexOf('=');
  if (at <= 0) fail(spec, 'write MATCH=TARGET, e.g. /models=http://10.0.0.5:8080');
  const matchText = spec.slice(0, at).trim();
  const targetText = spec.slice(at + 1).trim();
  return { spec, match: parseMatch(spec, matchText), target: parseTarget(spec, targetText) };
}

function parseMatch(spec: string, text: string): RouteMatch {
  if (text.startsWith('/')) {
    const prefix = text.length > 1 && text.endsWith('/') ? text.slice(0, -1) : text;
    if (/[?#\s]/.test(prefix)) fail(spec, 'a path prefix holds no query, fragment or space');
    return { kind: 'prefix', prefix };
  }
  const host = text.toLowerCase();
  if (!HOST.test(host)) fail(spec, `"${text}" is neither a path prefix (/...) nor a host name`);
  return { kind: 'host', host };
}

function parseTarget(spec: string, text: string): RouteTarget {
  if (text.startsWith('s3://')) return parseS3Target(spec, text);
  let origin: URL;
  try {
    origin = new URL(text);
  } catch {
    return fail(spec, `"${text}" is not a URL (http://host[:port][/base] or s3://bucket@endpoint)`);
  }
  if (origin.protocol !== 'http:' && origin.protocol !== 'https:')
    fail(spec, 'the target must be http://, https:// or s3://');
  if (origin.search !== '' || origin.hash !== '') fail(spec, 'the target holds no query');
  if (origin.username !== '' || origin.password !== '')
    fail(spec, 'put no credentials in the URL: S3 targets sign with AWS credentials');
  return { kind: 'http', origin };
}

function parseS3Target(spec: string, text: string): RouteTarget {
  const rest = text.slice('s3://'.length);
  const query = rest.indexOf('?');
  const main = query < 0 ? rest : rest.slice(0, query);
  const params = new URLSearchParams(query < 0 ? '' : rest.slice(query + 1));
  const region = params.get('region') ?? 'us-east-1';
  if (!REGION.test(region)) fail(spec, `region "${region}" is not an AWS region name`);
  for (const key of params.keys())
    if (key !== 'region') fail(spec, `unknown option "${key}" (only region=...)`);
  const at = main.indexOf('@');
  const bucket = at < 0 ? main : main.slice(0, at);
  if (!BUCKET.test(bucket)) fail(spec, `"${bucket}" is not an S3 bucket name`);
  const endpointText = at < 0 ? `https://s3.${region}.amazonaws.com` : main.slice(at + 1);
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    return fail(spec, `endpoint "${endpointText}" is not a URL (http://host:port)`);
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')
    fail(spec, 'the S3 endpoint must be http:// or https://');
  if (endpoint.pathname !== '/' || endpoint.search !== '' || endpoint.username !== '')
    fail(spec, 'the S3 endpoint is scheme://host[:port] only');
  return { kind: 's3', bucket, endpoint, region };
}

function fail(spec: string, why: string): never {
  throw new RouteError(`route "${spec}": ${why}`);
}

export class RouteTable {
  private readonly hosts: Route[];
  private readonly prefixes: Route[];

  constructor(readonly routes: readonly Route[]) {
    this.hosts = routes.filter((r) => r.match.kind === 'host');
    // Longest prefix first.
    this.prefixes = routes
      .filter((r) => r.match.kind === 'prefix')
      .sort((a, b) => prefixOf(b).length - prefixOf(a).length);
  }

  get size(): number {
    return this.routes.length;
  }

  /**
   * The route for a request (`target` is its origin-form request-target, `/path?query`), or
   * undefined when none matches. Never throws.
   */
  resolve(hostHeader: string | undefined, target: string): ResolvedRoute | undefined {
    if (!target.startsWith('/') || hasDotSegment(target)) return undefined;
    const host = hostName(hostHeader);
    if (host !== undefined) {
      for (const route of this.hosts)
        if (route.match.kind === 'host' && route.match.host === host)
          return { route, upstream: upstreamOf(route.target, target) };
    }
    for (const route of this.prefixes) {
      const prefix = prefixOf(route);
      const rest = prefix === '/' ? target : stripPrefix(target, prefix);
      if (rest !== undefined) return { route, upstream: upstreamOf(route.target, rest) };
    }
    return undefined;
  }

  /**
   * The route whose target leads to cache key `key` (an upstream URL, `origin/path?query`, as
   * the gateway keys objects), with that upstream request; undefined when no route leads there
   * (a member's fill request for an address this table does not route, cluster.ts). Never throws.
   */
  resolveKey(key: string): ResolvedRoute | undefined {
    for (const route of this.routes) {
      const origin = route.target.kind === 'http' ? route.target.origin : route.target.endpoint;
      const { path } = upstreamOf(route.target, '');
      const base = `${origin.origin}${path === '/' ? '' : path}`;
      const rest = key.startsWith(base) ? key.slice(base.length) : undefined;
      if (rest === undefined || !(rest === '' || rest.startsWith('/') || rest.startsWith('?')))
        continue;
      const upstreamPath = key.slice(origin.origin.length);
      if (!upstreamPath.startsWith('/') || hasDotSegment(upstreamPath)) continue;
      return { route, upstream: { origin: new URL(origin.origin), path: upstreamPath } };
    }
    return undefined;
  }
}

function prefixOf(route: Route): string {
  return route.match.kind === 'prefix' ? route.match.prefix : '';
}

/** `target` without `prefix` when it starts with it on a segment boundary ('' or '/...' or '?...'). */
function stripPrefix(target: string, prefix: string): string | undefined {
  if (!target.startsWith(prefix)) return undefined;
  const rest = target.slice(prefix.length);
  if (rest === '' || rest.startsWith('/') || rest.startsWith('?')) return rest;
  return undefined;
}

function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const text = header.trim().toLowerCase();
  if (text.startsWith('[')) return undefined; // IPv6 literals are never route names
  const colon = text.indexOf(':');
  return colon < 0 ? text : text.slice(0, colon);
}

/** The upstream request: the target's base path, then what followed the match, kept raw. */
function upstreamOf(target: RouteTarget, rest: string): Upstream {
  const origin = target.kind === 'http' ? target.origin : target.endpoint;
  const base =
    target.kind === 'http' ? target.origin.pathname.replace(/\/$/, '') : `/${target.bucket}`;
  const path = `${base}${rest}`;
  return { origin: new URL(origin.origin), path: path.startsWith('/') ? path : `/${path}` };
}

/**
 * True when a path holds a `.` or `..` segment, plain or percent-encoded: a client could climb
 * out of a route's base (another bucket, another directory), so such requests are refused.
 */
export function hasDotSegment(target: string): boolean {
  const query = target.indexOf('?');
  const path = (query < 0 ? target : target.slice(0, query)).replace(/%2e/gi, '.');
  return path.split(/\/|%2f|%5c|\\/i).some((segment) => segment === '.' || segment === '..');
}
