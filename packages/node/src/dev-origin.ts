/**
 * The dev origin: a real HTTP server for tests, the demo and benchmarks (DESIGN.md, "Real parts
 * in tests": origins are real HTTP servers with Range, ETag and digests).
 *
 * Theory of operation
 * - Objects. Synthesized objects are named `(name, sizeBytes, seed)` and never stored: their
 *   bytes are the ChaCha20 keystream (node:crypto `chacha20` over zeros) under a key derived
 *   from name, size, seed and version, so any range is generated on demand at about 1 GB/s by
 *   starting the cipher at the range's 64-byte block, and 256 MiB costs no memory. Sizes are
 *   below 256 GiB (a 32-bit block counter). With `directory`, files under it are served too
 *   (`/relative/path`, never outside it), with an nginx-style strong ETag from size and mtime.
 * - Digests. Each object version's SHA-256 (sent as `Repr-Digest: sha-256=:...:` on every
 *   response, and as `Content-Digest` on full 200 responses, where content and representation
 *   are the same bytes, RFC 9530) and MD5 (the ETag in `s3` mode) are computed once, in one
 *   pass, and cached. Objects given to `startDevOrigin` are hashed before it resolves, so
 *   `sha256(name)` is synchronous.
 * - HTTP. GET and HEAD. One byte range per request (`bytes=a-b`, `a-`, `-n`): 206 with
 *   Content-Range, or 416 with `bytes *\/SIZE`; a multi-range or malformed Range is ignored (200),
 *   as RFC 9110 section 14.2 allows. `If-Match` (strong comparison, `*`) failing answers 412
 *   before anything else; `If-Range` with an ETag (strong comparison) or the exact Last-Modified
 *   date keeps the Range, otherwise the whole object is sent (200), per RFC 9110 section 13.1.5.
 * - Rate limiting. Each client *source address* has its own token bucket of `rateBytesPerSec`
 *   (rate-limit.ts, burst max(64 KiB, rate / 20)), shared by all its connections. On loopback
 *   every daemon binds its origin traffic to its own 127.0.0.x address, so four daemons behave
 *   like four devices behind four separate internet links. The body goes out in chunks of at
 *   most 64 KiB (rate / 50 for slow rates); after each chunk the sender waits for socket drain
 *   and for the bucket.
 * - Test switches (`faults`, changeable at run time with `setFaults`): `ranges: false` (ignore
 *   Range and If-Range, `Accept-Ranges: none`), `etag: 'strong' | 'weak' | 'none' | 's3'` (`s3`:
 *   the ETag is the MD5 of the object, plus `x-amz-request-id` and `x-amz-checksum-sha256`, as S3
 *   sends for a single-part object), `lastModified: false` (no Last-Modified, so an If-Range date
 *   never matches), `digest: false` (no Repr-Digest or Content-Digest, as most static servers),
 *   `changeAfterBytes` (a synthesized object becomes a new
 *   version, new bytes and ETag, once that many body bytes of it were sent; responses already
 *   running finish with the old version), `failEveryNth` (every Nth request, counted across the
 *   server, answers 500), `truncateEveryNth` (every Nth request's body stops at half and the
 *   connection is closed). A request that is both fails.
 * - `clients()` reports requests and body bytes per source address.
 *
 * CLI: `node packages/node/dist/src/dev-origin.js --size 256MiB --rate 50Mbit --port 8088`
 * serves one synthesized object and prints its URL; `--help` lists the switches.
 */
import { PeapodError } from '@peapod/core';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatContentRange, parseRangeRequest, resolveRange } from './http/content-range.js';
import { formatDigestField } from './http/digest-field.js';
import { parseEntityTag, strongMatch, type EntityTag } from './http/entity-tag.js';
import { formatBytes, parseRate, parseSize, TokenBucket } from './rate-limit.js';

/** A synthesized object. */
export interface DevObjectSpec {
  /** Its path under the origin's URL, without the leading slash. */
  readonly name: string;
  readonly sizeBytes: number;
  readonly seed: number;
}

/** Test switches; see the module comment. */
export interface OriginFaults {
  readonly ranges?: boolean;
  readonly etag?: 'strong' | 'weak' | 'none' | 's3';
  readonly lastModified?: boolean;
  readonly digest?: boolean;
  readonly changeAfterBytes?: number;
  readonly failEveryNth?: number;
  readonly truncateEveryNth?: number;
}

export interface DevOriginOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /** Bytes per second per client source address; unlimited when absent. */
  readonly rateBytesPerSec?: number | undefined;
  readonly objects?: readonly DevObjectSpec[];
  /** Also serve the files under this directory. */
  readonly directory?: string;
  readonly faults?: OriginFaults;
}

/** What one client source address asked for and got. */
export interface ClientStats {
  readonly requests: number;
  readonly bodyBytes: number;
}

/** Synthesized sizes stay below 2^32 ChaCha20 blocks of 64 bytes. */
const SIZE_LIMIT_BYTES = 2 ** 38;
const CHUNK_BYTES_MAX = 64 * 1024;
const ZEROS = Buffer.alloc(1024 * 1024);
const LAST_MODIFIED_BASE_MS = Date.UTC(2024, 0, 1);

/** One version's digests. */
interface Digests {
  readonly sha256: Buffer;
  readonly md5: Buffer;
}

/** A synthesized object and its version state. */
interface Synthetic {
  readonly spec: DevObjectSpec;
  version: number;
  sentBytes: number;
  readonly digests: Map<number, Promise<Digests>>;
}

/** What one request is about: a version of an object, ready to describe and to read. */
interface Resolved {
  readonly sizeBytes: number;
  readonly opaqueTag: string;
  readonly lastModified: string;
  readonly digests: Digests;
  read(start: number, end: number, chunkBytes: number): AsyncIterable<Buffer> | Iterable<Buffer>;
  /** Called with each body chunk's length as it is sent. */
  sent(byteCount: number): void;
}

/**
 * A running dev origin. Create with `startDevOrigin`.
 */
export class DevOrigin {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  private readonly synthetics = new Map<string, Synthetic>();
  private readonly fileDigests = new Map<string, Promise<Digests>>();
  /** Digests already computed, by `name\0version`, for the synchronous `sha256()`. */
  private readonly readyDigests = new Map<string, Digests>();
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly clientStats = new Map<string, { requests: number; bodyBytes: number }>();
  private faults: OriginFaults;
  private requestCount = 0;
  /** Responses started and not yet closed (finished or cut off), and who waits for none. */
  private openResponses = 0;
  private readonly idleWaiters: (() => void)[] = [];

  /** @internal Use `startDevOrigin`. */
  constructor(
    private readonly server: Server,
    private readonly options: DevOriginOptions,
  ) {
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.url = `http://${host}:${address.port}`;
    this.faults = options.faults ?? {};
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.openResponses++;
      res.once('close', () => {
        if (--this.openResponses === 0) for (const idle of this.idleWaiters.splice(0)) idle();
      });
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(`dev origin: ${String(error)}\n`);
        else res.destroy();
      });
    });
  }

  /**
   * Adds a synthesized object and hashes it.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a bad name or size, or a name in use.
   */
  async addObject(spec: DevObjectSpec): Promise<void> {
    if (spec.name === '' || spec.name.startsWith('/') || this.synthetics.has(spec.name)) {
      throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `name: unusable or taken: ${spec.name}`);
    }
    if (!Number.isSafeInteger(spec.sizeBytes) || spec.sizeBytes < 0) {
      throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', 'sizeBytes: must be an integer >= 0');
    }
    if (spec.sizeBytes >= SIZE_LIMIT_BYTES) {
      throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', 'sizeBytes: must be below 256 GiB');
    }
    const object: Synthetic = { spec, version: 0, sentBytes: 0, digests: new Map() };
    this.synthetics.set(spec.name, object);
    await this.syntheticDigests(object, 0);
  }

  /**
   * The SHA-256 (hex) of a synthesized object's current version.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for an unknown name;
   *   PEAPOD_ERR_INVALID_STATE while a new version is still being hashed.
   */
  sha256(name: string): string {
    const object = this.synthetics.get(name);
    if (object === undefined) {
      throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `name: no object ${name}`);
    }
    const ready = this.readyDigests.get(`${name}\0${object.version}`);
    if (ready === undefined) {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `${name}: the new version is being hashed`);
    }
    return ready.sha256.toString('hex');
  }

  /** Replaces the test switches. */
  setFaults(faults: OriginFaults): void {
    this.faults = faults;
  }

  /** Requests and body bytes per client source address. */
  clients(): ReadonlyMap<string, ClientStats> {
    return new Map([...this.clientStats].map(([address, stats]) => [address, { ...stats }]));
  }

  /**
   * Resolves once no response is open: every request so far was answered in full or cut off
   * (the client went away). Tests wait on this before they count what the origin sent.
   */
  untilIdle(): Promise<void> {
    if (this.openResponses === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  private syntheticDigests(object: Synthetic, version: number): Promise<Digests> {
    let digests = object.digests.get(version);
    if (digests === undefined) {
      const { name, sizeBytes } = object.spec;
      digests = hashChunks(syntheticChunks(object, version, 0, sizeBytes, ZEROS.length));
      object.digests.set(version, digests);
      void digests.then((ready) => this.readyDigests.set(`${name}\0${version}`, ready));
    }
    return digests;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sequence = ++this.requestCount;
    const client = normalizeAddress(req.socket.remoteAddress ?? 'unknown');
    const stats = this.clientStats.get(client) ?? { requests: 0, bodyBytes: 0 };
    this.clientStats.set(client, stats);
    stats.requests++;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const target = await this.resolveTarget(req.url ?? '/');
    if (target === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const faults = this.faults;
    if (faults.failEveryNth !== undefined && sequence % faults.failEveryNth === 0) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('injected failure\n');
      return;
    }
    const etagMode = faults.etag ?? 'strong';
    const etag: EntityTag | undefined =
      etagMode === 'none'
        ? undefined
        : etagMode === 's3'
          ? { weak: false, opaqueTag: `"${target.digests.md5.toString('hex')}"` }
          : { weak: etagMode === 'weak', opaqueTag: target.opaqueTag };
    const lastModified = faults.lastModified === false ? undefined : target.lastModified;
    const reprDigest =
      faults.digest === false ? undefined : formatDigestField({ 'sha-256': target.digests.sha256 });
    const headers: OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'accept-ranges': faults.ranges === false ? 'none' : 'bytes',
    };
    if (lastModified !== undefined) headers['last-modified'] = lastModified;
    if (reprDigest !== undefined) headers['repr-digest'] = reprDigest;
    if (etag !== undefined) headers.etag = `${etag.weak ? 'W/' : ''}${etag.opaqueTag}`;
    if (etagMode === 's3') {
      headers['x-amz-request-id'] = randomBytes(8).toString('hex').toUpperCase();
      headers['x-amz-checksum-sha256'] = target.digests.sha256.toString('base64');
    }
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && !matchesAny(ifMatch, etag)) {
      res.writeHead(412, headers).end();
      return;
    }
    let range = req.method === 'GET' && faults.ranges !== false ? req.headers.range : undefined;
    const ifRange = req.headers['if-range'];
    if (range !== undefined && typeof ifRange === 'string') {
      const tag = parseEntityTag(ifRange);
      const fresh = tag === undefined ? ifRange.trim() === lastModified : strongMatch(tag, etag);
      if (!fresh) range = undefined;
    }
    const request = parseRangeRequest(range);
    const size = target.sizeBytes;
    let start = 0;
    let end = size;
    if (request !== undefined) {
      const resolved = resolveRange(request, size);
      if (resolved === 'unsatisfiable') {
        headers['content-range'] = formatContentRange({ kind: 'unsatisfied', totalBytes: size });
        res.writeHead(416, headers).end();
        return;
      }
      ({ start, end } = resolved);
      headers['content-range'] = formatContentRange({
        kind: 'satisfied',
        start,
        end,
        totalBytes: size,
      });
    } else if (req.method === 'GET' && reprDigest !== undefined) {
      headers['content-digest'] = reprDigest;
    }
    headers['content-length'] = end - start;
    res.writeHead(request === undefined ? 200 : 206, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const truncate =
      faults.truncateEveryNth !== undefined && sequence % faults.truncateEveryNth === 0;
    await this.sendBody(res, client, stats, target, start, end, truncate);
  }

  /** Writes `[start, end)` of the object, rate limited per client; see the module comment. */
  private async sendBody(
    res: ServerResponse,
    client: string,
    stats: { bodyBytes: number },
    target: Resolved,
    start: number,
    end: number,
    truncate: boolean,
  ): Promise<void> {
    const rate = this.options.rateBytesPerSec;
    let bucket: TokenBucket | undefined;
    if (rate !== undefined) {
      bucket = this.buckets.get(client) ?? new TokenBucket(rate);
      this.buckets.set(client, bucket);
    }
    const chunkBytes =
      rate === undefined ? CHUNK_BYTES_MAX : Math.max(1024, Math.min(CHUNK_BYTES_MAX, rate / 50));
    const stopAt = truncate ? start + Math.floor((end - start) / 2) : end;
    let position = start;
    for await (const chunk of target.read(start, end, Math.floor(chunkBytes))) {
      if (res.destroyed) return;
      const piece = chunk.subarray(0, stopAt - position);
      position += piece.length;
      stats.bodyBytes += piece.length;
      target.sent(piece.length);
      if (position >= stopAt && truncate) {
        await new Promise<void>((done) => res.write(piece, () => done()));
        res.destroy();
        return;
      }
      if (!res.write(piece)) await drainOrClose(res);
      const waitMs = bucket?.take(piece.length) ?? 0;
      if (waitMs > 0) await new Promise((done) => setTimeout(done, waitMs));
    }
    if (truncate)
      res.destroy(); // an empty half: close without a body
    else res.end();
  }

  /** The object a request path names, at its current version; undefined if none. */
  private async resolveTarget(rawUrl: string): Promise<Resolved | undefined> {
    let name: string;
    try {
      name = decodeURIComponent(new URL(rawUrl, 'http://origin').pathname.slice(1));
    } catch {
      return undefined;
    }
    const object = this.synthetics.get(name);
    if (object !== undefined) return this.resolveSynthetic(object);
    if (this.options.directory === undefined) return undefined;
    return this.resolveFile(this.options.directory, name);
  }

  private async resolveSynthetic(object: Synthetic): Promise<Resolved> {
    const version = object.version;
    const digests = await this.syntheticDigests(object, version);
    const key = syntheticKey(object.spec, version);
    return {
      sizeBytes: object.spec.sizeBytes,
      opaqueTag: `"${key.subarray(0, 12).toString('hex')}"`,
      lastModified: new Date(LAST_MODIFIED_BASE_MS + version * 1000).toUTCString(),
      digests,
      read: (start, end, chunkBytes) => syntheticChunks(object, version, start, end, chunkBytes),
      sent: (byteCount) => {
        object.sentBytes += byteCount;
        const changeAfter = this.faults.changeAfterBytes;
        if (changeAfter !== undefined && object.version === 0 && object.sentBytes >= changeAfter) {
          object.version = 1;
          void this.syntheticDigests(object, 1);
        }
      },
    };
  }

  private async resolveFile(directory: string, name: string): Promise<Resolved | undefined> {
    const root = resolve(directory);
    const path = resolve(root, name);
    if (!path.startsWith(root + sep)) return undefined;
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !info.isFile()) return undefined;
    const cacheKey = `${path}\0${info.size}\0${info.mtimeMs}`;
    let digests = this.fileDigests.get(cacheKey);
    if (digests === undefined) {
      digests = hashChunks(createReadStream(path));
      this.fileDigests.set(cacheKey, digests);
    }
    return {
      sizeBytes: info.size,
      opaqueTag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`,
      lastModified: info.mtime.toUTCString(),
      digests: await digests,
      read: (start, end, chunkBytes) =>
        end > start
          ? (createReadStream(path, {
              start,
              end: end - 1,
              highWaterMark: chunkBytes,
            }) as AsyncIterable<Buffer>)
          : [],
      sent: () => undefined,
    };
  }
}

/**
 * Starts a dev origin and hashes its objects.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a bad object; the listen error if the
 *   port is taken.
 * @example
 * const origin = await startDevOrigin({ objects: [{ name: 'a.bin', sizeBytes: 1 << 20, seed: 1 }] });
 * // GET `${origin.url}/a.bin`; origin.sha256('a.bin') is its SHA-256 in hex
 * await origin.close();
 */
export async function startDevOrigin(options: DevOriginOptions = {}): Promise<DevOrigin> {
  const rate = options.rateBytesPerSec;
  if (rate !== undefined && !(rate > 0 && Number.isFinite(rate))) {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', 'rateBytesPerSec: must be > 0');
  }
  const server = createServer({ keepAliveTimeout: 30_000 });
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const origin = new DevOrigin(server, options);
  try {
    for (const spec of options.objects ?? []) await origin.addObject(spec);
  } catch (error) {
    await origin.close();
    throw error;
  }
  return origin;
}

/** The ChaCha20 key of one version of a synthesized object. */
function syntheticKey(spec: DevObjectSpec, version: number): Buffer {
  return createHash('sha256')
    .update(`peapod-dev-origin\0${spec.name}\0${spec.sizeBytes}\0${spec.seed}\0${version}`)
    .digest();
}

/** Bytes `[start, end)` of a synthesized object's version, in chunks of `chunkBytes`. */
function* syntheticChunks(
  object: Synthetic,
  version: number,
  start: number,
  end: number,
  chunkBytes: number,
): Generator<Buffer> {
  const key = syntheticKey(object.spec, version);
  const iv = Buffer.alloc(16);
  iv.writeUInt32LE(Math.floor(start / 64), 0); // the block counter, then a 96-bit nonce
  createHash('sha256').update(key).digest().copy(iv, 4, 0, 12);
  const cipher = createCipheriv('chacha20', key, iv);
  cipher.update(ZEROS.subarray(0, start % 64));
  for (let position = start; position < end; position += chunkBytes) {
    yield cipher.update(ZEROS.subarray(0, Math.min(chunkBytes, end - position)));
  }
}

/** SHA-256 and MD5 of a byte stream, yielding to the event loop between chunks. */
async function hashChunks(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<Digests> {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  for await (const chunk of chunks) {
    sha256.update(chunk);
    md5.update(chunk);
    await new Promise((done) => setImmediate(done));
  }
  return { sha256: sha256.digest(), md5: md5.digest() };
}

/** If-Match (RFC 9110 section 13.1.1): `*`, or a list of tags, compared strongly. */
function matchesAny(ifMatch: string, etag: EntityTag | undefined): boolean {
  if (ifMatch.trim() === '*') return true;
  return ifMatch.split(',').some((member) => strongMatch(parseEntityTag(member), etag));
}

function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((done) => {
    const finish = () => {
      res.off('drain', finish);
      res.off('close', finish);
      done();
    };
    res.on('drain', finish);
    res.on('close', finish);
  });
}

const USAGE = `usage: node dev-origin.js [options]
  --size SIZE           synthesized object size, e.g. 256MiB (default 64MiB)
  --name NAME           its path (default object.bin)
  --seed N              its seed (default 1)
  --dir DIR             also serve the files under DIR
  --rate RATE           per client source address, e.g. 50Mbit, 6MB (default unlimited)
  --host HOST           default 127.0.0.1
  --port PORT           default 8088
  --no-ranges           ignore Range requests
  --etag MODE           strong (default), weak, none or s3
  --no-last-modified    send no Last-Modified
  --no-digest           send no Repr-Digest or Content-Digest
  --change-after SIZE   the object changes version after SIZE body bytes were sent
  --fail-every N        every Nth request answers 500
  --truncate-every N    every Nth response body stops at half`;

/** The CLI; see the module comment. Returns when interrupted. */
async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string', default: '64MiB' },
      name: { type: 'string', default: 'object.bin' },
      seed: { type: 'string', default: '1' },
      dir: { type: 'string' },
      rate: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8088' },
      'no-ranges': { type: 'boolean', default: false },
      etag: { type: 'string', default: 'strong' },
      'no-last-modified': { type: 'boolean', default: false },
      'no-digest': { type: 'boolean', default: false },
      'change-after': { type: 'string' },
      'fail-every': { type: 'string' },
      'truncate-every': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const fail = (message: string): never => {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `${message}\n${USAGE}`);
  };
  const count = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    return Number.isSafeInteger(n) && n > 0 ? n : fail(`--${flag}: expected a whole number > 0`);
  };
  const sizeBytes = parseSize(values.size) ?? fail(`--size: cannot read ${values.size}`);
  const rate =
    values.rate === undefined
      ? undefined
      : (parseRate(values.rate) ?? fail(`--rate: cannot read ${values.rate}`));
  const etag = values.etag;
  if (etag !== 'strong' && etag !== 'weak' && etag !== 'none' && etag !== 's3') {
    fail('--etag: expected strong, weak, none or s3');
  }
  const changeAfter =
    values['change-after'] === undefined
      ? undefined
      : (parseSize(values['change-after']) ?? fail('--change-after: cannot read the size'));
  const faults: OriginFaults = {
    ranges: !values['no-ranges'],
    etag: etag as NonNullable<OriginFaults['etag']>,
    lastModified: !values['no-last-modified'],
    digest: !values['no-digest'],
    ...(changeAfter === undefined ? {} : { changeAfterBytes: changeAfter }),
    ...optional('failEveryNth', count('fail-every', values['fail-every'])),
    ...optional('truncateEveryNth', count('truncate-every', values['truncate-every'])),
  };
  const origin = await startDevOrigin({
    host: values.host,
    port: count('port', values.port) ?? 8088,
    rateBytesPerSec: rate,
    objects: [{ name: values.name, sizeBytes, seed: count('seed', values.seed) ?? 1 }],
    faults,
    ...(values.dir === undefined ? {} : { directory: values.dir }),
  });
  const limit =
    rate === undefined
      ? 'no rate limit'
      : `${((rate * 8) / 1e6).toFixed(1)} Mbit/s per client address`;
  console.log(`${origin.url}/${values.name}`);
  console.log(
    `  ${formatBytes(sizeBytes)} (${sizeBytes} bytes), sha-256 ${origin.sha256(values.name)}, ${limit}`,
  );
  if (values.dir !== undefined)
    console.log(`  and the files under ${resolve(values.dir)} at ${origin.url}/`);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await origin.close();
}

function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
  });
}
