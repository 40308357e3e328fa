/**
 * The daemon's HTTP client for origins: the probe that plans a download, the range fetches the
 * core asks for (`fetch-origin`), and the plain single-source fallback.
 *
 * Theory of operation
 * - `probeOrigin` sends one `GET` with `Range: bytes=0-0` (one request tells size, Range support
 *   and validator; a HEAD would need a second request for servers that answer HEAD wrongly) and
 *   follows up to 5 redirects. Pooling needs: a 206 with `Content-Range: bytes 0-0/SIZE`, and a
 *   strong ETag (a weak one cannot pin a range, RFC 9110 section 13.1.5). Otherwise
 *   `reasonNotPoolable` says in one line why the download goes single source. It also collects
 *   any digest the origin states: `Repr-Digest` (RFC 9530: sha-256 / sha-512 of the whole
 *   representation, which a 206 may carry), `x-amz-checksum-sha256`, and a single-part S3 ETag
 *   (32 hex digits: the MD5 of the object). `Content-Digest` is not used: on a 206 it covers only
 *   the partial content.
 * - `RangeFetcher.start` performs one range of the pinned object: `Range` plus `If-Range: ETAG`
 *   (RFC 9110 section 13.1.5: a changed object comes back whole as 200, which is reported as
 *   `changed` before any byte is passed on). The 206's Content-Range must match the request
 *   exactly, and exactly the requested bytes must arrive; anything else is `error` with a
 *   one-line detail. `cancel` aborts. Bytes pass through the download bandwidth limit.
 * - Never throws on a bad server: every failure becomes an outcome and a detail.
 */
import { createHash, type Hash } from 'node:crypto';
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import type { TokenBucket } from './rate-limit.js';

export interface Header {
  readonly name: string;
  readonly value: string;
}

export interface ProbeResult {
  /** The URL after redirects. */
  readonly url: string;
  readonly totalBytes: number | undefined;
  /** Strong ETag, or undefined. */
  readonly validator: string | undefined;
  readonly digests: StatedDigests;
  /** Why this object cannot be pooled; undefined when it can. */
  readonly reasonNotPoolable: string | undefined;
  /** The probe response's header fields, as received (the proxy passes them on). */
  readonly rawHeaders: readonly string[];
}

/** Digests of the whole object, as raw bytes, from the origin's headers. */
export interface StatedDigests {
  readonly sha256?: Uint8Array;
  readonly sha512?: Uint8Array;
  readonly md5?: Uint8Array;
  /** Where each came from, for the user. */
  readonly sources: Readonly<Record<string, string>>;
}

export interface OriginClientOptions {
  /** Source address of origin requests (this device's own link). */
  readonly localAddress?: string | undefined;
  readonly download?: TokenBucket | undefined;
}

const REDIRECTS_MAX = 5;

export class OriginClient {
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 16 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 16 });
  private readonly active = new Map<number, () => void>();

  constructor(private readonly options: OriginClientOptions = {}) {}

  close(): void {
    for (const abort of this.active.values()) abort();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One GET of the first byte: what the pooled path needs to know. */
  async probe(url: string, headers: readonly Header[]): Promise<ProbeResult> {
    let current = url;
    for (let hop = 0; hop <= REDIRECTS_MAX; hop++) {
      const res = await this.open(current, headers, { Range: 'bytes=0-0' });
      res.resume();
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status >= 300 && status < 400 && location !== undefined) {
        current = new URL(location, current).toString();
        continue;
      }
      if (status !== 200 && status !== 206) {
        throw new Error(`the origin answered ${status} ${res.statusMessage ?? ''} for ${current}`);
      }
      return describe(current, res);
    }
    throw new Error(`more than ${REDIRECTS_MAX} redirects from ${url}`);
  }

  /** One range of the pinned object, streamed in order; see the module comment. */
  fetchRange(
    id: number,
    spec: {
      url: string;
      rangeStart: number;
      rangeEnd: number;
      validator: string;
      headers: readonly Header[];
    },
    onData: (bytes: Uint8Array) => void,
    onEnd: (outcome: 'ok' | 'changed' | 'error', detail: string) => void,
  ): void {
    const { rangeStart, rangeEnd, validator } = spec;
    const expected = rangeEnd - rangeStart;
    let ended = false;
    const end = (outcome: 'ok' | 'changed' | 'error', detail: string) => {
      if (ended) return;
      ended = true;
      this.active.delete(id);
      onEnd(outcome, detail);
    };
    const extra: Record<string, string> = { Range: `bytes=${rangeStart}-${rangeEnd - 1}` };
    if (validator !== '') extra['If-Range'] = validator;
    const req = this.request(spec.url, spec.headers, extra, (res) => {
      const status = res.statusCode ?? 0;
      if (status === 200 || status === 412) {
        res.resume();
        end(
          validator === '' ? 'error' : 'changed',
          `the origin answered ${status} to a pinned range`,
        );
        return;
      }
      const range = parseContentRange(res.headers['content-range']);
      if (
        status !== 206 ||
        range === undefined ||
        range.start !== rangeStart ||
        range.end !== rangeEnd
      ) {
        res.resume();
        end(
          'error',
          `the origin answered ${status} ${res.headers['content-range'] ?? ''} for bytes ${rangeStart}-${rangeEnd - 1}`,
        );
        return;
      }
      let received = 0;
      this.throttle(res, (bytes) => {
        if (received + bytes.length > expected) {
          req.destroy();
          end('error', 'the origin sent more than the range');
          return;
        }
        received += bytes.length;
        onData(bytes);
      });
      res.on('end', () =>
        received === expected
          ? end('ok', '')
          : end('error', `the origin sent ${received} of ${expected} bytes`),
      );
      res.on('error', (error) => end('error', error.message));
    });
    req.on('error', (error) => end('error', error.message));
    this.active.set(id, () => {
      ended = true;
      req.destroy();
    });
  }

  cancel(id: number): void {
    this.active.get(id)?.();
    this.active.delete(id);
  }

  /**
   * The single-source fallback: the object from `offset` to its end, in order. With a validator
   * and offset > 0 the rest is pinned (If-Range); a 200 then means the object changed and the
   * caller must start over.
   */
  async fetchRest(
    url: string,
    headers: readonly Header[],
    offset: number,
    validator: string,
    onData: (bytes: Uint8Array) => Promise<void>,
  ): Promise<void> {
    const extra: Record<string, string> = {};
    if (offset > 0) {
      extra['Range'] = `bytes=${offset}-`;
      if (validator !== '') extra['If-Range'] = validator;
    }
    const res = await this.open(url, headers, extra);
    const status = res.statusCode ?? 0;
    if (offset > 0 && status !== 206) {
      res.resume();
      throw new Error(`the origin answered ${status} when resuming at byte ${offset}; start over`);
    }
    if (offset === 0 && status !== 200) {
      res.resume();
      throw new Error(`the origin answered ${status} ${res.statusMessage ?? ''}`);
    }
    const length = Number(res.headers['content-length'] ?? NaN);
    let received = 0;
    for await (const part of res) {
      const bytes = part as Buffer;
      received += bytes.length;
      const wait = this.options.download?.take(bytes.length) ?? 0;
      await onData(bytes);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    if (Number.isFinite(length) && received !== length) {
      throw new Error(`the origin sent ${received} of ${length} bytes`);
    }
  }

  /** Passes response bytes on, pausing the stream while the download bucket is in debt. */
  private throttle(res: IncomingMessage, onData: (bytes: Uint8Array) => void): void {
    const bucket = this.options.download;
    res.on('data', (bytes: Buffer) => {
      onData(bytes);
      const wait = bucket?.take(bytes.length) ?? 0;
      if (wait > 0) {
        res.pause();
        setTimeout(() => res.resume(), wait);
      }
    });
  }

  private open(url: string, headers: readonly Header[], extra: Record<string, string>) {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = this.request(url, headers, extra, resolve);
      req.on('error', (error) => reject(new Error(`cannot reach ${url}: ${error.message}`)));
    });
  }

  private request(
    url: string,
    headers: readonly Header[],
    extra: Record<string, string>,
    onResponse: (res: IncomingMessage) => void,
  ) {
    const target = new URL(url);
    const https = target.protocol === 'https:';
    if (!https && target.protocol !== 'http:') throw new Error(`unsupported URL scheme in ${url}`);
    const all: Record<string, string> = {};
    for (const { name, value } of headers) all[name] = value;
    Object.assign(all, extra);
    const options = {
      method: 'GET',
      headers: all,
      agent: https ? this.httpsAgent : this.httpAgent,
      ...(this.options.localAddress === undefined
        ? {}
        : { localAddress: this.options.localAddress }),
    };
    const req = (https ? httpsRequest : httpRequest)(target, options, onResponse);
    req.end();
    return req;
  }
}

function describe(url: string, res: IncomingMessage): ProbeResult {
  const status = res.statusCode ?? 0;
  const range = parseContentRange(res.headers['content-range']);
  const etag = res.headers.etag;
  const strong = etag !== undefined && /^"[^"]*"$/.test(etag) ? etag : undefined;
  let totalBytes: number | undefined;
  if (status === 206 && range !== undefined) totalBytes = range.total;
  else if (status === 200 && res.headers['content-length'] !== undefined) {
    const length = Number(res.headers['content-length']);
    if (Number.isSafeInteger(length) && length >= 0) totalBytes = length;
  }
  let reasonNotPoolable: string | undefined;
  if (status !== 206 || range === undefined)
    reasonNotPoolable = 'the origin does not support Range requests';
  else if (totalBytes === undefined) reasonNotPoolable = 'the origin does not state the size';
  else if (strong === undefined)
    reasonNotPoolable =
      etag === undefined
        ? 'the origin gives no ETag to pin the version to'
        : 'the origin gives only a weak ETag';
  return {
    url,
    totalBytes,
    validator: strong,
    digests: statedDigests(res, strong),
    reasonNotPoolable,
    rawHeaders: res.rawHeaders,
  };
}

/** `bytes START-END/TOTAL` → exclusive end; undefined if malformed or unknown total. */
export function parseContentRange(value: string | undefined) {
  if (value === undefined) return undefined;
  const match = /^\s*bytes\s+(\d{1,15})-(\d{1,15})\/(\d{1,15})\s*$/i.exec(value);
  if (match === null) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]) + 1;
  const total = Number(match[3]);
  if (start >= end || end > total) return undefined;
  return { start, end, total };
}

/** Digests of the whole object from a response's headers (see the module comment). */
export function statedDigests(res: IncomingMessage, etag: string | undefined): StatedDigests {
  const sources: Record<string, string> = {};
  const found: { sha256?: Uint8Array; sha512?: Uint8Array; md5?: Uint8Array } = {};
  const repr = res.headers['repr-digest'];
  if (typeof repr === 'string') {
    for (const [algorithm, bytes] of parseDigestField(repr)) {
      if (algorithm === 'sha-256' && bytes.length === 32) {
        found.sha256 = bytes;
        sources['sha-256'] = 'Repr-Digest';
      }
      if (algorithm === 'sha-512' && bytes.length === 64) {
        found.sha512 = bytes;
        sources['sha-512'] = 'Repr-Digest';
      }
    }
  }
  const amz = res.headers['x-amz-checksum-sha256'];
  if (found.sha256 === undefined && typeof amz === 'string') {
    const bytes = Buffer.from(amz, 'base64');
    if (bytes.length === 32) {
      found.sha256 = bytes;
      sources['sha-256'] = 'x-amz-checksum-sha256';
    }
  }
  if (
    etag !== undefined &&
    /^"[0-9a-f]{32}"$/i.test(etag) &&
    res.headers['x-amz-request-id'] !== undefined
  ) {
    found.md5 = Buffer.from(etag.slice(1, -1), 'hex');
    sources['md5'] = 'S3 ETag';
  }
  return { ...found, sources };
}

/** RFC 9530 Dictionary of byte sequences: `sha-256=:BASE64:, sha-512=:BASE64:`. */
export function parseDigestField(value: string): Array<[string, Uint8Array]> {
  const out: Array<[string, Uint8Array]> = [];
  for (const member of value.split(',')) {
    const match = /^\s*([a-z][a-z0-9_.*-]*)\s*=\s*:([A-Za-z0-9+/]*={0,2}):\s*(;.*)?$/.exec(member);
    if (match === null) continue;
    out.push([match[1]!, Uint8Array.from(Buffer.from(match[2]!, 'base64'))]);
  }
  return out;
}

/** End-to-end verification of a whole object, fed in order. */
export class ObjectVerifier {
  private sha256: Hash = createHash('sha256');
  private sha512: Hash | undefined;
  private md5: Hash | undefined;

  constructor(
    private readonly expected: StatedDigests,
    private readonly userSha256: Uint8Array | undefined,
  ) {
    if (expected.sha512 !== undefined) this.sha512 = createHash('sha512');
    if (expected.md5 !== undefined) this.md5 = createHash('md5');
  }

  update(bytes: Uint8Array): void {
    this.sha256.update(bytes);
    this.sha512?.update(bytes);
    this.md5?.update(bytes);
  }

  restart(): ObjectVerifier {
    return new ObjectVerifier(this.expected, this.userSha256);
  }

  private sha256Digest: Buffer | undefined;
  sha256Hex(): string {
    this.sha256Digest ??= this.sha256.digest();
    return this.sha256Digest.toString('hex');
  }

  /** Names of the digests that matched; throws on a mismatch. */
  finish(): string[] {
    const matched: string[] = [];
    const sha256 = Buffer.from(this.sha256Hex(), 'hex');
    const check = (name: string, expected: Uint8Array | undefined, actual: Buffer | undefined) => {
      if (expected === undefined || actual === undefined) return;
      if (!actual.equals(expected)) {
        throw new Error(
          `${name} mismatch: expected ${Buffer.from(expected).toString('hex')}, got ${actual.toString('hex')}; the file was discarded`,
        );
      }
      matched.push(name);
    };
    check('sha-256 (--sha256)', this.userSha256, sha256);
    check(`sha-256 (${this.expected.sources['sha-256'] ?? ''})`, this.expected.sha256, sha256);
    check('sha-512 (Repr-Digest)', this.expected.sha512, this.sha512?.digest());
    check('md5 (S3 ETag)', this.expected.md5, this.md5?.digest());
    return matched;
  }
}
