/**
 * A real HTTP origin for the URL-content tests that answers conditional requests, which the dev
 * origin (src/dev-origin.ts) does not: `If-None-Match` (weak comparison, a list or `*`) and,
 * without it, `If-Modified-Since` answer 304 with no body, as RFC 9110 sections 13.1.2, 13.1.3
 * and 13.2.2 order them (before Range). Otherwise it serves the files of one directory as a
 * static server does: one byte range per request (206, or 416), `If-Match` (412) and `If-Range`,
 * an nginx-style strong ETag from size and mtime (`etag: 'weak'` or `'none'` to change it),
 * Last-Modified (`lastModified: false` drops it) and the file's SHA-256 as Repr-Digest
 * (`digest: false` drops it; a 304 states it too, as RFC 9530 allows, unless dropped). Every request is logged with its source address, method,
 * conditional headers, status and body bytes sent, so a test can say exactly what the origin
 * saw from each daemon (each binds its origin traffic to its own 127.0.0.x).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { open, readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  formatContentRange,
  parseRangeRequest,
  resolveRange,
} from '../../src/http/content-range.js';
import { formatDigestField } from '../../src/http/digest-field.js';
import { sigV4Valid } from './sigv4-check.js';
import { parseEntityTag, strongMatch, type EntityTag } from '../../src/http/entity-tag.js';

export interface RevalidatingOriginOptions {
  readonly etag?: 'strong' | 'weak' | 'none';
  readonly lastModified?: boolean;
  readonly digest?: boolean;
  /** A 304 states this SHA-256 as Repr-Digest instead of the file's (a lying 304). */
  readonly notModifiedSha256?: Uint8Array;
  /** Requests without `Authorization: <this>` get 401 (the origin decides access). */
  readonly authorization?: string;
  /** Requests without a valid SigV4 signature by one of these keys (access key -> secret) get 403. */
  readonly sigV4Secrets?: Readonly<Record<string, string>>;
}

/** One request as the origin saw it. */
export interface OriginLogEntry {
  readonly client: string;
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly ifNoneMatch: string | undefined;
  readonly ifModifiedSince: string | undefined;
  readonly ifMatch: string | undefined;
  readonly authorization: string | undefined;
  status: number;
  bodyBytes: number;
}

export class RevalidatingOrigin {
  readonly log: OriginLogEntry[] = [];
  private open = 0;
  private readonly idle: (() => void)[] = [];
  private readonly digests = new Map<string, Promise<Uint8Array>>();

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    readonly url: string,
    readonly directory: string,
    public options: RevalidatingOriginOptions,
  ) {}

  static async start(
    directory: string,
    options: RevalidatingOriginOptions = {},
  ): Promise<RevalidatingOrigin> {
    const server = createServer({ keepAliveTimeout: 30_000 });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const origin = new RevalidatingOrigin(server, `http://127.0.0.1:${port}`, directory, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      origin.open++;
      res.once('close', () => {
        if (--origin.open === 0) for (const done of origin.idle.splice(0)) done();
      });
      origin.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(error));
        else res.destroy();
      });
    });
    return origin;
  }

  /** The requests from `client` (a source address) after the first `since` log entries. */
  from(client: string, since = 0): OriginLogEntry[] {
    return this.log.slice(since).filter((entry) => entry.client === client);
  }

  /** Resolves once every response so far has finished or was cut off. */
  untilIdle(): Promise<void> {
    return this.open === 0 ? Promise.resolve() : new Promise((done) => this.idle.push(done));
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  /** The file's SHA-256, hashed once per version (`key`: its size and mtime). */
  private sha256Of(path: string, key: string): Promise<Uint8Array> {
    const cacheKey = `${path}\0${key}`;
    let digest = this.digests.get(cacheKey);
    if (digest === undefined) {
      digest = readFile(path).then(
        (bytes) => new Uint8Array(createHash('sha256').update(bytes).digest()),
      );
      this.digests.set(cacheKey, digest);
    }
    return digest;
  }

  /** A 304's fields: the 200's validators and digest (or the lie `notModifiedSha256` tells). */
  private notModifiedHeaders(headers: Record<string, string>): Record<string, string> {
    const lie = this.options.notModifiedSha256;
    const fields = { ...headers };
    delete fields['content-type'];
    if (lie !== undefined) fields['repr-digest'] = formatDigestField({ 'sha-256': lie });
    return fields;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = (name: string) => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    const entry: OriginLogEntry = {
      client: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      method: req.method ?? '',
      path: req.url ?? '/',
      range: text('range'),
      ifNoneMatch: text('if-none-match'),
      ifModifiedSince: text('if-modified-since'),
      ifMatch: text('if-match'),
      authorization: text('authorization'),
      status: 0,
      bodyBytes: 0,
    };
    this.log.push(entry);
    const reply = (status: number, headers: Record<string, string>, body?: Buffer) => {
      entry.status = status;
      entry.bodyBytes = body?.length ?? 0;
      res.writeHead(status, headers).end(req.method === 'HEAD' ? undefined : body);
    };
    const name = decodeURIComponent(new URL(entry.path, 'http://origin').pathname.slice(1));
    const path = join(this.directory, name);
    const info = await stat(path).catch(() => undefined);
    if (name.includes('..') || info === undefined || !info.isFile()) {
      reply(404, {});
      return;
    }
    if (
      this.options.authorization !== undefined &&
      entry.authorization !== this.options.authorization
    ) {
      reply(401, { 'www-authenticate': 'Bearer' });
      return;
    }
    const secrets = this.options.sigV4Secrets;
    if (secrets !== undefined && !(await sigV4Valid(req, secrets))) {
      reply(
        403,
        { 'content-type': 'application/xml' },
        Buffer.from('<Error><Code>SignatureDoesNotMatch</Code></Error>'),
      );
      return;
    }
    const size = info.size;
    const {
      etag: etagMode = 'strong',
      lastModified: withDate = true,
      digest = true,
    } = this.options;
    const etag: EntityTag | undefined =
      etagMode === 'none'
        ? undefined
        : {
            weak: etagMode === 'weak',
            opaqueTag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`,
          };
    const lastModified = withDate ? info.mtime.toUTCString() : undefined;
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
    };
    if (etag !== undefined) headers.etag = `${etag.weak ? 'W/' : ''}${etag.opaqueTag}`;
    if (lastModified !== undefined) headers['last-modified'] = lastModified;
    if (digest) {
      const sha256 = await this.sha256Of(path, `${size}-${info.mtimeMs}`);
      headers['repr-digest'] = formatDigestField({ 'sha-256': sha256 });
    }
    const ifMatch = entry.method === 'GET' ? entry.ifMatch : undefined;
    if (
      ifMatch !== undefined &&
      !ifMatch.split(',').some((m) => strongMatch(parseEntityTag(m), etag))
    ) {
      reply(412, headers);
      return;
    }
    if (entry.ifNoneMatch !== undefined) {
      const matches =
        entry.ifNoneMatch.trim() === '*'
          ? etag !== undefined
          : entry.ifNoneMatch
              .split(',')
              .some((member) => parseEntityTag(member)?.opaqueTag === etag?.opaqueTag);
      if (matches && etag !== undefined) {
        reply(304, this.notModifiedHeaders(headers));
        return;
      }
    } else if (entry.ifModifiedSince !== undefined && lastModified !== undefined) {
      const since = Date.parse(entry.ifModifiedSince);
      if (Number.isFinite(since) && Math.floor(info.mtimeMs / 1000) * 1000 <= since) {
        reply(304, this.notModifiedHeaders(headers));
        return;
      }
    }
    let range = parseRangeRequest(entry.range);
    const ifRange = text('if-range');
    if (range !== undefined && ifRange !== undefined) {
      const tag = parseEntityTag(ifRange);
      if (tag === undefined ? ifRange !== lastModified : !strongMatch(tag, etag)) range = undefined;
    }
    if (range === undefined) {
      headers['content-length'] = String(size);
      reply(200, headers, await readRange(path, 0, size));
      return;
    }
    const resolved = resolveRange(range, size);
    if (resolved === 'unsatisfiable') {
      headers['content-range'] = formatContentRange({ kind: 'unsatisfied', totalBytes: size });
      reply(416, headers);
      return;
    }
    const { start, end } = resolved;
    headers['content-range'] = formatContentRange({
      kind: 'satisfied',
      start,
      end,
      totalBytes: size,
    });
    headers['content-length'] = String(end - start);
    reply(206, headers, await readRange(path, start, end));
  }
}

/** Bytes [start, end) of the file at `path`. */
async function readRange(path: string, start: number, end: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(end - start);
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await file.read(bytes, done, bytes.length - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return bytes.subarray(0, done);
  } finally {
    await file.close();
  }
}
