/**
 * Who may drive the daemon's local API (DESIGN.md decision 13: the local API belongs to the
 * local user).
 *
 * Theory of operation
 * - The API (`/api/...` on the proxy port, 8080) starts downloads of any URL and writes files
 *   wherever the user can write, so it must never act for a web page the user happens to visit.
 *   A page can send a "simple" cross-origin POST (`text/plain` body, no CORS preflight) to
 *   `http://127.0.0.1:8080/api/get`, and through DNS rebinding (its own name re-pointed at
 *   127.0.0.1) it can even read the answers. A loopback check does not stop either: the browser
 *   is on this machine.
 * - `ApiGuard.refusal(req)` runs on every request the proxy hands to the local handler (every
 *   origin-form request, and an absolute-form one that targets the proxy itself), before any
 *   body byte is read, any file opened or any origin probed. It returns why the request is
 *   refused (`ApiRefusal`), or `undefined` to let it through. In order:
 *   1. The client must be on this machine (a loopback address, or the daemon's bind address).
 *   2. `OPTIONS` is refused: the API answers no CORS preflight, and sends no `Access-Control-*`
 *      field ever, so no page can be granted access.
 *   3. `Host` (exactly one) must name the address the client connected to (or the configured
 *      bind address, which differs for a wildcard bind) and its port; when the connected
 *      address is loopback, `localhost`, `127.0.0.1` and `[::1]` are accepted as well. A
 *      DNS-rebinding page's requests carry the attacker's own name (`evil.example:8080`), which
 *      is never accepted; the accepted names cannot be re-pointed by anybody's DNS (`localhost`
 *      is resolved on this machine, RFC 6761 section 6.3; `localhost.` and other spellings are
 *      refused). Comparing with the connected address (the socket's local address) rather
 *      than the configured bind address is the same rule for a specific bind, and the right
 *      one for a wildcard bind (0.0.0.0).
 *   4. An `Origin` field, if present (at most one), must be this daemon's own origin,
 *      `http://HOST:PORT` for an accepted HOST; `Origin: null` is refused.
 *   5. `Sec-Fetch-Site`, if present, must be `same-origin` or `none` (a user's own navigation):
 *      `cross-site` and `same-site` (another port of this host is another origin) are refused.
 *   6. The API key: exactly one of `X-API-Key: KEY` (Syncthing's field, what the CLI sends) or
 *      `Authorization: Bearer KEY` (Syncthing accepts it too), equal to the key in the data
 *      directory's `api.key` (data-dir.ts). Both sides are hashed with SHA-256 and compared
 *      with `timingSafeEqual`, so the time taken says nothing about the key, not even its
 *      length. Both fields are outside the CORS safelist, so a page cannot even send them
 *      without a preflight, which step 2 refuses.
 *   Steps 3 to 5 stop pages even if the key leaked into one; step 6 stops every other program
 *   on the machine that cannot read the user's files.
 * - `refuse(res, refusal)` answers 403 with a JSON `{ error, code }` whose sentence says what
 *   to do next (`code`: `ApiRefusalCodes`), with `Connection: close` (an unread request body is
 *   never parsed as a next request) and `Cache-Control: no-store`.
 * - The forward proxy (absolute-form targets and `CONNECT`, proxy.ts) is not guarded here: it
 *   serves local applications that set `http_proxy` and carry no key, as before. A browser
 *   cannot send either kind to the proxy unless it is configured to use the proxy, and then the
 *   proxy fetches for it only what the browser would have fetched anyway.
 * - State: the SHA-256 of the key, fixed for the daemon's life (rotate: delete `api.key` and
 *   restart the daemon).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import { isLoopbackAddress, parseAuthority } from './proxy.js';

/** The request field that carries the API key (Syncthing's name). */
export const API_KEY_HEADER = 'X-API-Key';

/**
 * Why a request was refused, by kind; the 403 body's `code` (api-client.ts words its error by
 * it). `origin` covers `Origin` and `Sec-Fetch-Site`.
 */
export const ApiRefusalCodes = {
  client: 'PEAPOD_ERR_API_CLIENT',
  preflight: 'PEAPOD_ERR_API_PREFLIGHT',
  host: 'PEAPOD_ERR_API_HOST',
  origin: 'PEAPOD_ERR_API_ORIGIN',
  key: 'PEAPOD_ERR_API_KEY',
} as const;

/** A refusal: its stable code and the sentence the caller sees. */
export interface ApiRefusal {
  readonly code: (typeof ApiRefusalCodes)[keyof typeof ApiRefusalCodes];
  readonly message: string;
}

/** A refusal of kind `kind` (see `ApiRefusalCodes`). */
export function apiRefusal(kind: keyof typeof ApiRefusalCodes, message: string): ApiRefusal {
  return { code: ApiRefusalCodes[kind], message };
}

/** What the next step is, in every refusal about identity: the CLI knows where the key is. */
const USE_THE_CLI =
  'use the peapod CLI, which sends the key kept in api.key in the daemon data directory ' +
  `(~/.peapod, or $PEAPOD_HOME), or send that key yourself in an ${API_KEY_HEADER} header`;

/** Checks API requests against the key and this daemon's own address; see the module comment. */
export class ApiGuard {
  private readonly keyDigest: Buffer;

  /**
   * @param apiKey the key from `DataDir.loadApiKey`.
   * @param bindAddress the daemon's configured bind address (a client there counts as local).
   * @throws RangeError if `apiKey` is empty.
   */
  constructor(
    apiKey: string,
    private readonly bindAddress: string,
  ) {
    if (apiKey === '') throw new RangeError('apiKey must not be empty');
    this.keyDigest = sha256(apiKey);
  }

  /**
   * Why `req` may not use the API (a stable code and a sentence for the caller); `undefined`
   * when it may. Reads only the request head; never throws.
   * @example
   * const refusal = guard.refusal(req);
   * if (refusal !== undefined) return refuse(res, refusal);
   */
  refusal(req: IncomingMessage): ApiRefusal | undefined {
    const client = req.socket.remoteAddress ?? '';
    if (!isLoopbackAddress(client) && unmapped(client) !== unmapped(this.bindAddress)) {
      return apiRefusal(
        'client',
        'the PeaPod API answers programs on this machine only; run the peapod CLI there',
      );
    }
    if (req.method === 'OPTIONS') {
      return apiRefusal(
        'preflight',
        `the PeaPod API answers no CORS preflight: web pages may not use it; ${USE_THE_CLI}`,
      );
    }
    const fields = headFields(req.rawHeaders);
    const local = localAuthorities(req, this.bindAddress);
    const hosts = fields.get('host') ?? [];
    if (hosts.length !== 1 || !isOwnHost(hosts[0]!, local)) {
      return apiRefusal(
        'host',
        'the PeaPod API refuses a Host other than its own address and port (a web page using ' +
          `DNS rebinding sends its own name); connect to http://${bracketed(local.names[0]!)}:` +
          `${local.port}`,
      );
    }
    const origins = fields.get('origin') ?? [];
    if (origins.length > 1 || (origins.length === 1 && !isOwnOrigin(origins[0]!, local))) {
      return apiRefusal(
        'origin',
        `the PeaPod API refuses requests from web pages (a foreign Origin); ${USE_THE_CLI}`,
      );
    }
    const sites = fields.get('sec-fetch-site') ?? [];
    if (sites.length > 1 || (sites.length === 1 && !/^(same-origin|none)$/i.test(sites[0]!))) {
      return apiRefusal(
        'origin',
        `the PeaPod API refuses requests from other sites (Sec-Fetch-Site); ${USE_THE_CLI}`,
      );
    }
    const keys = [
      ...(fields.get('x-api-key') ?? []),
      ...(fields.get('authorization') ?? []).flatMap((value) => {
        const bearer = /^Bearer +(\S+) *$/i.exec(value);
        return bearer === null ? [] : [bearer[1]!];
      }),
    ];
    if (keys.length !== 1 || !timingSafeEqual(sha256(keys[0]!), this.keyDigest)) {
      return apiRefusal('key', `this request carries no valid API key; ${USE_THE_CLI}`);
    }
    return undefined;
  }
}

/**
 * Answers a refused API request: 403, `{ "error": message, "code": code }`, the connection
 * closed after it. No CORS field is ever sent.
 */
export function refuse(res: ServerResponse, refusal: ApiRefusal): void {
  const body = JSON.stringify({ error: refusal.message, code: refusal.code });
  res.writeHead(403, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(body);
}

interface LocalAuthorities {
  /** Host names accepted in `Host` and `Origin` (lower case, IPv6 without brackets). */
  readonly names: readonly string[];
  readonly port: number;
}

/**
 * The address and port the client connected to, the configured bind address (`0.0.0.0` is what
 * a client of a wildcard bind finds in daemon.json), and the loopback names when the connected
 * address is loopback. All are literals or `localhost`: no DNS answer can stand for them.
 */
function localAuthorities(req: IncomingMessage, bindAddress: string): LocalAuthorities {
  const address = unmapped(req.socket.localAddress ?? '');
  const loopback = isLoopbackAddress(address) ? ['localhost', '127.0.0.1', '::1'] : [];
  const names = [address, unmapped(bindAddress), ...loopback];
  return { names: [...new Set(names)], port: req.socket.localPort ?? 0 };
}

function isOwnHost(value: string, local: LocalAuthorities): boolean {
  const authority = parseAuthority(value.trim().toLowerCase(), 80);
  if (authority === undefined || authority.port !== local.port) return false;
  return local.names.includes(authority.host);
}

/** `http://HOST[:PORT]` exactly (an origin has no path; port 80 may be left out). */
function isOwnOrigin(value: string, local: LocalAuthorities): boolean {
  const match = /^http:\/\/([^/?#]+)$/.exec(value.trim().toLowerCase());
  return match !== null && !match[1]!.endsWith(':') && isOwnHost(match[1]!, local);
}

/** An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, from a dual-stack socket) as IPv4. */
function unmapped(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
}

/** The request head's fields by lower-case name, every value kept (repeats are refused). */
function headFields(rawHeaders: readonly string[]): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const values = fields.get(name);
    if (values === undefined) fields.set(name, [rawHeaders[i + 1]!]);
    else values.push(rawHeaders[i + 1]!);
  }
  return fields;
}

function bracketed(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
