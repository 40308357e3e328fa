/**
 * GET and HEAD through the gateway's cache: when a cached byte may be served, and how.
 *
 * Theory of operation (DESIGN.md decision 17; RFC 9110 and RFC 9111)
 * - The cache key is the upstream URL without the client's presign parameters; one key holds
 *   one version (object-cache.ts).
 * - A request whose upstream request carries credentials (the gateway's SigV4 for an S3 route,
 *   or the client's `Authorization`, `Cookie` or presigned query) is revalidated with the origin
 *   before any cached byte is served: the same upstream request, made conditional with the
 *   stored ETag / Last-Modified. A 304 (no body) serves the cache; a 200 is a new version,
 *   streamed to the client and cached in place of the old; anything else (403, 404, 5xx) is
 *   passed on as the origin sent it, and a 404 or 410 drops the cached copy. So a client the
 *   origin would refuse is refused, whatever the cache holds.
 * - An anonymous request follows the freshness of the stored response (cache-semantics.ts):
 *   fresh is served, otherwise revalidated as above.
 * - Serving from the cache applies the client's own preconditions (304, 412) and Range (206,
 *   multipart/byteranges, or 416) to the stored version, with the origin's replayed fields,
 *   `Age`, `Accept-Ranges: bytes` and an exact `Content-Length`. HEAD sends the same head.
 * - One stored copy serves every client: the gateway asks the origin without Accept-Encoding (so
 *   the copy is the identity encoding), and a response with `Vary` is passed on, never stored.
 * - A miss: a plain GET (no Range, no precondition) is sent upstream as is and, when the 200 is
 *   storable and has a Content-Length, streamed to the client while it is cached (to the end,
 *   even when the client leaves: others may be waiting for that fill). A concurrent plain
 *   miss of one key costs no second body from the origin: it streams the fill's segments as
 *   they are written (segment-feed.ts), after a conditional request with its own credentials
 *   when the fill's response is not fresh for it (credentials, private, stale), as a hit would.
 *   An object too small for segments is waited for, then served under a hit's rules.
 *   A miss with Range or preconditions is passed through unchanged (the origin answers it
 *   exactly), and a whole-object fill is started in the background when none runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { stripHopByHop } from '../proxy.js';
import {
  CacheMissing,
  replayedHeaders,
  type ObjectCache,
  type ObjectFill,
  type StoredResponse,
} from './object-cache.js';
import type { CachedObject } from './object-index.js';
import type { ClusterSharing, PeerObject, PeerTransferFigures, SegmentAnswer } from './cluster.js';
import type { SegmentFeed } from './segment-feed.js';
import {
  type HeaderFields,
  cacheDecision,
  evaluatePreconditions,
  freshFor,
  storedFreshness,
  type StoredFreshness,
  multipartByteranges,
  planRange,
  responseStorable,
  revalidationHeaders,
  varyFieldNames,
} from './cache-semantics.js';

/** The client closed its connection before the response was sent: not the gateway's failure. */
export class ClientLeft extends Error {
  constructor() {
    super('the client left');
  }
}

/** One upstream exchange the caller can start (routes, signing and agents are its business). */
export interface UpstreamCall {
  /** The upstream response to GET (or HEAD) `extraHeaders` added, body unread. */
  (
    method: 'GET' | 'HEAD',
    extraHeaders: Readonly<Record<string, string>>,
    /** Drop the client's Range and preconditions (a whole-object or conditional fetch of ours). */
    options: { readonly wholeObject: boolean },
  ): Promise<IncomingMessage>;
}

/** What the cache needs of the client's request (an IncomingMessage, or a proxied GET). */
export interface ClientAsk {
  readonly method?: string | undefined;
  readonly headers: HeaderFields;
}

export interface CachedGetEvents {
  lookup(layer: 'store', result: 'hit' | 'miss'): void;
  revalidated(result: 'not_modified' | 'changed' | 'denied'): void;
  bytes(source: 'origin' | 'store', count: number): void;
  /** An object came from members (cluster.ts): bytes by device hex, and the seconds it took. */
  fromMembers?(figures: PeerTransferFigures): void;
  /** The pod's segments of `key` stopped at byte `offset` (`reason`): the origin sends the rest. */
  resumed?(key: string, offset: number, reason: string): void;
}

const CONDITIONAL = [
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
];

export class CachedGet {
  private readonly inflight = new Map<string, Promise<CachedObject | undefined>>();

  constructor(
    private readonly cache: ObjectCache,
    private readonly events: CachedGetEvents,
    private readonly nowMs: () => number,
    /** The pod's other gateways (cluster.ts); without it every miss goes to the origin. */
    private readonly sharing?: ClusterSharing,
  ) {}

  /** Each stored version's freshness facts, computed at its first hit. */
  private readonly facts = new WeakMap<CachedObject, StoredFreshness>();

  private freshness(object: CachedObject): StoredFreshness {
    let facts = this.facts.get(object);
    if (facts === undefined) {
      facts = storedFreshness({
        headers: {
          ...Object.fromEntries(object.headers),
          date: new Date(object.responseDateMs).toUTCString(),
          age: String(Math.floor(object.ageAtStoreMs / 1000)),
        },
        requestTimeMs: object.storedAtMs,
        responseTimeMs: object.storedAtMs,
      });
      this.facts.set(object, facts);
    }
    return facts;
  }

  /** Answers `req` for cache key `key`; `credentialed` per the module comment. */
  async serve(
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    credentialed: boolean,
    upstream: UpstreamCall,
  ): Promise<void> {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
    const object = this.cache.lookup(key);
    if (object !== undefined && this.cache.held(object)) {
      this.events.lookup('store', 'hit');
      const fresh =
        !credentialed &&
        !object.private &&
        freshFor(req.headers, this.freshness(object), this.nowMs()) === 'fresh';
      if (fresh) return this.fromCache(req, res, object);
      return this.revalidate(req, res, key, object, upstream, credentialed);
    }
    this.events.lookup('store', 'miss');
    const plain = method === 'GET' && !hasRange(req) && !CONDITIONAL.some((h) => h in req.headers);
    const running = this.inflight.get(key);
    if (plain && running !== undefined) {
      const feed = await this.cache.feedOf(key, running);
      if (feed !== undefined)
        return this.joinRunningFill(req, res, key, feed, credentialed, upstream);
      const filled = await running;
      // Now a hit, under a hit's rules: a credentialed or stale request is revalidated first.
      if (filled !== undefined) return this.serve(req, res, key, credentialed, upstream);
    }
    if (!plain) {
      if (running === undefined && method === 'GET')
        this.fillInBackground(key, upstream, credentialed);
      const response = await upstream(method, {}, { wholeObject: false });
      return this.passOn(response, res, method);
    }
    // Registered before the upstream call, so misses arriving meanwhile wait for this fill.
    const fill = this.startFill(key);
    if (this.sharing !== undefined) {
      let answered: boolean;
      try {
        answered = await this.fromMembers(
          this.sharing,
          req,
          res,
          key,
          credentialed,
          upstream,
          fill.settle,
        );
      } catch (error) {
        fill.settle(undefined);
        throw error;
      }
      if (answered) return;
    }
    let response: IncomingMessage;
    try {
      response = await upstream('GET', {}, { wholeObject: false });
    } catch (error) {
      fill.settle(undefined);
      throw error;
    }
    await this.streamAndFill(req, res, key, response, fill.settle, credentialed);
  }

  /**
   * A miss through the pod's other gateways (cluster.ts): a member's whole copy, else the fill
   * of the key's owner when another member ranks above this one. The copy is used only after
   * the access and freshness rules of a hit: a credentialed request, or a private or stale
   * copy, is revalidated with the origin first. False when nothing was sent (no member could
   * help, or the transfer failed): the caller goes to the origin.
   */
  private async fromMembers(
    sharing: ClusterSharing,
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    credentialed: boolean,
    upstream: UpstreamCall,
    settle: (object: CachedObject | undefined) => void,
  ): Promise<boolean> {
    const candidates = await sharing.find(key);
    if (candidates.length === 0)
      for (const owner of sharing.owners(key)) {
        const first = await sharing.segment(owner, key, 0);
        if (first === 'uncacheable') break;
        if (first === undefined) continue;
        if (first.kind === 'segment')
          return this.fromSegments(
            sharing,
            owner,
            first,
            req,
            res,
            key,
            credentialed,
            upstream,
            settle,
          );
        candidates.push(first.object);
        break;
      }
    let found = candidates[0];
    if (found === undefined) return false;
    // Several versions among members: one request names them all; the 304 says which.
    const etags = [...new Set(candidates.flatMap((c) => (c.etag === undefined ? [] : [c.etag])))];
    const conditional =
      etags.length > 1 ? { 'if-none-match': etags.join(', ') } : revalidationHeaders(found);
    const verdict = await this.checkMemberCopy(
      req,
      res,
      key,
      found,
      conditional,
      credentialed,
      upstream,
      settle,
    );
    if (verdict === 'answered') return true;
    if (verdict !== 'fresh') {
      const current = verdict.headers.etag;
      found = candidates.find((c) => c.etag !== undefined && c.etag === current) ?? found;
    }
    const stored = {
      headers: found.headers,
      responseDateMs:
        verdict === 'fresh' ? found.responseDateMs : (dateOf(verdict) ?? this.nowMs()),
      ageMs: verdict === 'fresh' ? found.ageMs : 0,
      private: credentialed || found.private,
    };
    return this.fromMemberCopy(sharing, req, res, key, found, stored, settle);
  }

  /**
   * The access and freshness rules of a hit, for a member's copy described by `head`: 'fresh'
   * (serve it as it is), the origin's 304 to `conditional` (serve it, revalidated now), or
   * 'answered' when the origin sent a new version (streamed and cached) or refused (passed on).
   */
  private async checkMemberCopy(
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    head: StoredResponse,
    conditional: Record<string, string>,
    credentialed: boolean,
    upstream: UpstreamCall,
    settle: (object: CachedObject | undefined) => void,
  ): Promise<'fresh' | 'answered' | IncomingMessage> {
    if (this.freshAsStored(req, key, head, credentialed)) return 'fresh';
    const response = await upstream('GET', conditional, { wholeObject: true });
    const status = response.statusCode ?? 502;
    if (status === 200) {
      this.events.revalidated('changed');
      await this.streamAndFill(req, res, key, response, settle, credentialed);
      return 'answered';
    }
    if (status !== 304) {
      this.events.revalidated('denied');
      settle(undefined);
      this.passOn(response, res, 'GET');
      return 'answered';
    }
    response.resume();
    this.events.revalidated('not_modified');
    return response;
  }

  /** Whether `head` may be served to `req` without asking the origin (the module comment). */
  private freshAsStored(
    req: ClientAsk,
    key: string,
    head: StoredResponse,
    credentialed: boolean,
  ): boolean {
    if (credentialed || head.private) return false;
    const nowMs = this.nowMs();
    const stored = {
      headers: {
        ...Object.fromEntries(head.headers),
        date: new Date(head.responseDateMs).toUTCString(),
        age: String(Math.floor(head.ageMs / 1000)),
      },
      requestTimeMs: nowMs,
      responseTimeMs: nowMs,
    };
    return cacheDecision({ url: key, headers: req.headers }, stored, nowMs) === 'fresh';
  }

  /**
   * A plain miss while this device fills the key and its segments are being written: served
   * from them when the fill's response is fresh for this request; otherwise the origin is asked
   * first, with this request and the fill's validators, and only a 304 joins the fill (a
   * refusal or a new version is passed on as the origin sent it).
   */
  private async joinRunningFill(
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    feed: SegmentFeed,
    credentialed: boolean,
    upstream: UpstreamCall,
  ): Promise<void> {
    if (!this.freshAsStored(req, key, feed.head, credentialed)) {
      const conditional = revalidationHeaders(validatorsOf(replayedHeaders(feed.head.headers)));
      const response = await upstream('GET', conditional, { wholeObject: true });
      if (response.statusCode !== 304) {
        this.events.revalidated(response.statusCode === 200 ? 'changed' : 'denied');
        return this.passOn(response, res, 'GET');
      }
      response.resume();
      this.events.revalidated('not_modified');
    }
    return this.fromRunningFill(res, feed, upstream);
  }

  /**
   * A plain miss while this device fills the key: the segments the fill has written so far
   * (segment-feed.ts) are read back from the store, verified, and the rest as the fill writes
   * them, so the client streams at the fill's pace instead of waiting for its end. When the
   * fill stops, the rest comes from the origin pinned to the version (If-Range).
   */
  private async fromRunningFill(
    res: ServerResponse,
    feed: SegmentFeed,
    upstream: UpstreamCall,
  ): Promise<void> {
    const { head } = feed;
    const headers = replayedHeaders(head.headers);
    writeSegmentedHead(res, headers, head.ageMs, head.totalBytes);
    let written = 0;
    const pass = async (bytes: Uint8Array): Promise<void> => {
      this.events.bytes('store', bytes.length);
      written += bytes.length;
      await send(res, bytes);
    };
    try {
      for (let index = 0; index < feed.segmentCount; index++) {
        const manifest = await feed.segment(index);
        if (manifest === undefined) break;
        for await (const chunk of this.cache.segment(manifest)) await pass(chunk);
      }
      if (written < head.totalBytes) {
        this.events.resumed?.(feed.key, written, 'the fill this request joined stopped');
        const validators = validatorsOf(headers);
        await this.resumeFromOrigin(res, upstream, validators, written, head.totalBytes, pass);
      }
      res.end();
    } catch (error) {
      res.destroy();
      throw error;
    }
  }

  /**
   * A miss answered while the owner is still filling it: segment by segment (segment-feed.ts),
   * each fetched from the members by content ID as soon as the owner has it, streamed to the
   * client and cached here. When the owner leaves or a segment cannot be had, the rest comes
   * from the origin by a range request pinned to the version (If-Range), so the transfer
   * resumes where it was cut; without a validator to pin, the response is cut.
   */
  private async fromSegments(
    sharing: ClusterSharing,
    owner: string,
    first: Extract<SegmentAnswer, { kind: 'segment' }>,
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    credentialed: boolean,
    upstream: UpstreamCall,
    settle: (object: CachedObject | undefined) => void,
  ): Promise<boolean> {
    const { head, segmentBytes } = first;
    const validators = validatorsOf(head.headers);
    const verdict = await this.checkMemberCopy(
      req,
      res,
      key,
      head,
      revalidationHeaders(validators),
      credentialed,
      upstream,
      settle,
    );
    if (verdict === 'answered') return true;
    const stored: StoredResponse =
      verdict === 'fresh'
        ? { ...head, private: credentialed || head.private }
        : {
            ...head,
            private: credentialed || head.private,
            responseDateMs: dateOf(verdict) ?? this.nowMs(),
            ageMs: 0,
          };
    const total = head.totalBytes;
    const fill = this.cache.begin(key, total, stored);
    writeSegmentedHead(res, head.headers, stored.ageMs, total);
    let written = 0;
    const pass = async (bytes: Uint8Array): Promise<void> => {
      written += bytes.length;
      await Promise.all([fill?.write(bytes), send(res, bytes)]);
    };
    const count = Math.ceil(total / segmentBytes);
    try {
      const segments = sharing.segmentBytes(owner, key, first, count, fill === undefined, (f) =>
        this.events.fromMembers?.(f),
      );
      let step = await segments.next();
      for (; step.done !== true; step = await segments.next()) {
        const { parts, manifest } = step.value;
        const writing = fill?.writeVerified(parts, manifest);
        for (const part of parts) {
          written += part.length;
          await send(res, part);
        }
        await writing;
      }
      if (written < total) {
        this.events.resumed?.(key, written, step.value ?? 'the segments ended early');
        await this.resumeFromOrigin(res, upstream, validators, written, total, pass);
      }
      res.end();
      settle((await fill?.finish()) ?? undefined);
    } catch (error) {
      fill?.abort();
      settle(undefined);
      res.destroy();
      throw error;
    }
    return true;
  }

  /** The rest of an object from `offset`, from the origin, pinned to the version held. */
  private async resumeFromOrigin(
    res: ServerResponse,
    upstream: UpstreamCall,
    validators: { etag: string | undefined; lastModified: string | undefined },
    offset: number,
    total: number,
    pass: (bytes: Uint8Array) => Promise<void>,
  ): Promise<void> {
    if (res.destroyed) throw new ClientLeft();
    const pin =
      validators.etag !== undefined && !validators.etag.startsWith('W/')
        ? validators.etag
        : validators.lastModified;
    if (pin === undefined) throw new Error('the copy was cut and no validator pins a resume');
    const response = await upstream(
      'GET',
      { range: `bytes=${offset}-`, 'if-range': pin },
      { wholeObject: true },
    );
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers['content-range'] ?? '');
    if (
      response.statusCode !== 206 ||
      Number(range?.[1]) !== offset ||
      Number(range?.[3]) !== total
    ) {
      response.resume();
      throw new Error(
        `the origin answered the resume with ${response.statusCode}: the version changed`,
      );
    }
    for await (const piece of response as AsyncIterable<Buffer>) {
      this.events.bytes('origin', piece.length);
      await pass(piece);
    }
  }

  /**
   * Fetches a member's copy by content ID, stores it for `key` and answers from it; false (and
   * nothing sent) when the transfer failed.
   */
  private async fromMemberCopy(
    sharing: ClusterSharing,
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    found: PeerObject,
    stored: StoredResponse,
    settle: (object: CachedObject | undefined) => void,
  ): Promise<boolean> {
    const manifest = await sharing.transfer(found, (figures) => this.events.fromMembers?.(figures));
    if (manifest === undefined) return false;
    const object = await this.cache.adopt(key, manifest, stored);
    settle(object);
    await this.fromCache(req, res, object);
    return true;
  }

  /**
   * A member's `gateway.segment` when no fill of `key` runs (cluster.ts): the object held for `key`, else a whole-object fill
   * from the origin through `upstream` (joining one in progress). Undefined when nothing was
   * stored. Never asks members: the owner is the one that fetches.
   */
  async fillForMember(
    key: string,
    upstream: UpstreamCall,
    credentialed: boolean,
  ): Promise<CachedObject | undefined> {
    const held = this.cache.lookup(key);
    if (held !== undefined && this.cache.held(held)) return held;
    const running = this.inflight.get(key);
    if (running !== undefined) return running;
    const { settle } = this.startFill(key);
    let response: IncomingMessage;
    try {
      response = await upstream('GET', {}, { wholeObject: true });
    } catch {
      settle(undefined);
      return undefined;
    }
    if (response.statusCode !== 200) {
      response.resume();
      settle(undefined);
      return undefined;
    }
    return this.fillFrom(key, response, credentialed, settle);
  }

  /** An object's age now (ms), as a hit's `Age` field says it. */
  ageMs(object: CachedObject): number {
    return this.ageSeconds(object) * 1000;
  }

  /** Marks a fill of `key` as running; `settle` ends it with what was cached. */
  private startFill(key: string): { settle: (object: CachedObject | undefined) => void } {
    let resolve: (object: CachedObject | undefined) => void = () => undefined;
    const done = new Promise<CachedObject | undefined>((r) => (resolve = r));
    this.inflight.set(key, done);
    return {
      settle: (object) => {
        if (this.inflight.get(key) === done) this.inflight.delete(key);
        resolve(object);
      },
    };
  }

  /** Conditional upstream request for a stored version. */
  private async revalidate(
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    object: CachedObject,
    upstream: UpstreamCall,
    credentialed: boolean,
  ): Promise<void> {
    // Members may hold a newer version: one request names every ETag, the 304 says which.
    const others =
      this.sharing === undefined
        ? []
        : (await this.sharing.find(key)).filter(
            (c) => c.etag !== undefined && c.etag !== object.etag,
          );
    const etags = [object.etag, ...others.map((c) => c.etag)].filter((e) => e !== undefined);
    const conditional =
      others.length > 0 && object.etag !== undefined
        ? { 'if-none-match': [...new Set(etags)].join(', ') }
        : revalidationHeaders(object);
    const response = await upstream('GET', conditional, { wholeObject: true });
    const status = response.statusCode ?? 502;
    if (status === 304) {
      response.resume();
      this.events.revalidated('not_modified');
      const newer = others.find((c) => c.etag === response.headers.etag);
      if (newer !== undefined && this.sharing !== undefined) {
        const { settle } = this.startFill(key);
        const stored = {
          headers: newer.headers,
          responseDateMs: dateOf(response) ?? this.nowMs(),
          ageMs: 0,
          private: credentialed || newer.private,
        };
        if (await this.fromMemberCopy(this.sharing, req, res, key, newer, stored, settle)) return;
        settle(undefined);
        const again = await upstream('GET', {}, { wholeObject: false });
        return this.streamAndFill(req, res, key, again, this.startFill(key).settle, credentialed);
      }
      this.cache.refreshed(key, dateOf(response) ?? this.nowMs());
      return this.fromCache(req, res, object);
    }
    if (status === 200) {
      this.events.revalidated('changed');
      if (!hasRange(req) && !CONDITIONAL.some((h) => h in req.headers))
        return this.streamAndFill(
          req,
          res,
          key,
          response,
          this.startFill(key).settle,
          credentialed,
        );
      // The new version is cached whole first, then the client's range and preconditions apply.
      const filled = await this.fillFrom(key, response, credentialed);
      if (filled !== undefined) return this.fromCache(req, res, filled);
      const again = await upstream(
        req.method === 'HEAD' ? 'HEAD' : 'GET',
        {},
        { wholeObject: false },
      );
      return this.passOn(again, res, req.method === 'HEAD' ? 'HEAD' : 'GET');
    }
    this.events.revalidated('denied');
    if (status === 404 || status === 410) await this.cache.evict(key);
    this.passOn(response, res, 'GET');
  }

  /** Answers from the stored version. */
  private async fromCache(
    req: ClientAsk,
    res: ServerResponse,
    object: CachedObject,
  ): Promise<void> {
    const head = req.method === 'HEAD';
    const current = { etag: object.etag, lastModified: object.lastModified, exists: true };
    const verdict = evaluatePreconditions(req.method ?? 'GET', req.headers, current);
    const base: (readonly [string, string])[] = [
      ...object.headers,
      ['accept-ranges', 'bytes'],
      ['age', String(this.ageSeconds(object))],
    ];
    if (verdict === 'not-modified') {
      res.writeHead(
        304,
        base.filter(([n]) => n !== 'content-type' && n !== 'content-encoding').flat(),
      );
      res.end();
      return;
    }
    if (verdict === 'precondition-failed') {
      res.writeHead(412, ['content-length', '0']);
      res.end();
      return;
    }
    const total = object.totalBytes;
    const plan = planRange(
      rangeHeader(req),
      total,
      single(req.headers['if-range']),
      { etag: object.etag, lastModified: object.lastModified },
      { multi: 'multipart' },
    );
    this.cache.used(object.key);
    if (plan.kind === 'unsatisfiable') {
      res.writeHead(
        416,
        [
          ...base.filter(([n]) => n !== 'content-type'),
          ['content-range', `bytes */${total}`],
          ['content-length', '0'],
        ].flat(),
      );
      res.end();
      return;
    }
    if (plan.kind === 'multi') {
      const type = object.headers.find(([n]) => n === 'content-type')?.[1];
      const boundary = `peapod-${object.key.length}-${total}`;
      const parts = multipartByteranges(plan.ranges, total, type, boundary);
      res.writeHead(
        206,
        [
          ...base.filter(([n]) => n !== 'content-type'),
          ['content-type', parts.contentType],
          ['content-length', String(parts.contentLength)],
        ].flat(),
      );
      if (head) return void res.end();
      for (let i = 0; i < plan.ranges.length; i++) {
        res.write(parts.parts[i]!.header);
        await this.writeRange(res, object, plan.ranges[i]!.start, plan.ranges[i]!.end);
      }
      res.end(parts.close);
      return;
    }
    const [start, end, status] =
      plan.kind === 'single' ? [plan.start, plan.end, 206] : [0, total, 200];
    const fields: (readonly [string, string])[] = [
      ...base,
      ['content-length', String(end - start)],
    ];
    if (status === 206) fields.push(['content-range', `bytes ${start}-${end - 1}/${total}`]);
    res.writeHead(status, fields.flat());
    if (head) return void res.end();
    await this.writeRange(res, object, start, end, true);
  }

  /** Sends bytes [start, end) of `object`; `last`: the range ends the response. */
  private async writeRange(
    res: ServerResponse,
    object: CachedObject,
    start: number,
    end: number,
    last = false,
  ): Promise<void> {
    try {
      let at = start;
      for await (const piece of this.cache.read(object, start, end)) {
        this.events.bytes('store', piece.length);
        at += piece.length;
        // The last piece goes with the end of the response: one write, no wait for a drain.
        if (!last || at < end) await send(res, piece);
        else if (res.destroyed) throw new ClientLeft();
        else res.end(piece);
      }
      if (last && !res.writableEnded) res.end();
    } catch (error) {
      // The headers are out: a copy that turned out incomplete can only cut the response.
      if (error instanceof CacheMissing) await this.cache.evict(object.key);
      res.destroy();
      throw error;
    }
  }

  /** Streams a response to the client, caching a storable 200; `settle` ends the fill. */
  private async streamAndFill(
    req: ClientAsk,
    res: ServerResponse,
    key: string,
    response: IncomingMessage,
    settle: (object: CachedObject | undefined) => void,
    credentialed: boolean,
  ): Promise<void> {
    const fill = this.storable(req, key, response, credentialed);
    try {
      res.sendDate = false;
      res.writeHead(
        response.statusCode ?? 502,
        response.statusMessage,
        endToEnd(response.rawHeaders),
      );
      // A client that leaves does not end a fill: others (local requests, members reading its
      // segments) wait for it, so the rest is read into the cache alone.
      let clientLeft = false;
      for await (const piece of response as AsyncIterable<Buffer>) {
        this.events.bytes('origin', piece.length);
        const writing = fill?.write(piece);
        if (!clientLeft) {
          try {
            await send(res, piece);
          } catch (error) {
            if (fill === undefined) throw error;
            clientLeft = true;
          }
        }
        await writing;
      }
      if (!clientLeft) res.end();
      settle(await fill?.finish());
    } catch (error) {
      fill?.abort();
      settle(undefined);
      res.destroy();
      throw error;
    }
  }

  /** Reads a 200 into the cache without a client (background fill, or before a range). */
  private async fillFrom(
    key: string,
    response: IncomingMessage,
    credentialed: boolean,
    settle?: (object: CachedObject | undefined) => void,
  ): Promise<CachedObject | undefined> {
    const fill = this.storable(undefined, key, response, credentialed);
    if (fill === undefined) {
      response.resume();
      settle?.(undefined);
      return undefined;
    }
    settle ??= this.startFill(key).settle;
    try {
      for await (const piece of response as AsyncIterable<Buffer>) {
        this.events.bytes('origin', piece.length);
        await fill.write(piece);
      }
      const object = await fill.finish();
      settle(object);
      return object;
    } catch {
      fill.abort();
      settle(undefined);
      return undefined;
    }
  }

  private fillInBackground(key: string, upstream: UpstreamCall, credentialed: boolean): void {
    void upstream('GET', {}, { wholeObject: true })
      .then((response) => {
        if (response.statusCode !== 200 || this.inflight.has(key)) return void response.resume();
        return this.fillFrom(key, response, credentialed);
      })
      .catch(() => undefined);
  }

  private storable(
    req: ClientAsk | undefined,
    key: string,
    response: IncomingMessage,
    credentialed: boolean,
  ): ObjectFill | undefined {
    if (response.statusCode !== 200) return undefined;
    // Credentials do not stop storing here (RFC 9111 3.5 would): such an object is stored
    // private, and every use of it is revalidated with the origin first (module comment).
    const requestCacheControl = req?.headers['cache-control'];
    const verdict = responseStorable(
      'GET',
      200,
      requestCacheControl === undefined ? {} : { 'cache-control': requestCacheControl },
      response.headers,
    );
    if (!verdict.storable) return undefined;
    // One copy per key: a response that varies on request fields is passed on, not stored.
    if (varyFieldNames(response.headers).length > 0) return undefined;
    const length = Number(response.headers['content-length']);
    if (!Number.isSafeInteger(length) || length <= 0) return undefined;
    return this.cache.begin(key, length, {
      headers: pairs(endToEnd(response.rawHeaders)),
      responseDateMs: dateOf(response) ?? this.nowMs(),
      ageMs: 1000 * (Number(response.headers.age) || 0),
      private: credentialed,
    });
  }

  private passOn(response: IncomingMessage, res: ServerResponse, method: string): void {
    res.sendDate = false;
    res.writeHead(
      response.statusCode ?? 502,
      response.statusMessage,
      endToEnd(response.rawHeaders),
    );
    if (method === 'HEAD') {
      response.resume();
      res.end();
      return;
    }
    response.on('data', (piece: Buffer) => this.events.bytes('origin', piece.length));
    response.pipe(res);
  }

  private ageSeconds(object: CachedObject): number {
    const apparent = Math.max(0, object.storedAtMs - object.responseDateMs);
    const age =
      Math.max(apparent, object.ageAtStoreMs) + Math.max(0, this.nowMs() - object.storedAtMs);
    return Math.floor(age / 1000);
  }
}

/**
 * Writes to the client, waiting while its buffer is full.
 * @throws Error when the client left (a closed response never drains, so waiting would hang
 * the fill and every request waiting for it).
 */
async function send(res: ServerResponse, bytes: Uint8Array): Promise<void> {
  if (res.destroyed) throw new ClientLeft();
  if (res.write(bytes)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
  if (res.destroyed) throw new ClientLeft();
}

/** The validators among replayed fields (object-cache.ts `replayedHeaders`). */
function validatorsOf(headers: readonly (readonly [string, string])[]): {
  etag: string | undefined;
  lastModified: string | undefined;
} {
  const field = (name: string) => headers.find(([n]) => n === name)?.[1];
  return { etag: field('etag'), lastModified: field('last-modified') };
}

/**
 * The 200 head of an object sent segment by segment as they arrive, flushed at once (not
 * with the first segment, which may be a while).
 */
function writeSegmentedHead(
  res: ServerResponse,
  replayed: readonly (readonly [string, string])[],
  ageMs: number,
  totalBytes: number,
): void {
  res.sendDate = false;
  res.writeHead(
    200,
    [
      ...replayed,
      ['accept-ranges', 'bytes'],
      ['age', String(Math.floor(ageMs / 1000))],
      ['content-length', String(totalBytes)],
    ].flat(),
  );
  res.flushHeaders();
}

function hasRange(req: ClientAsk): boolean {
  return req.headers.range !== undefined;
}

function rangeHeader(req: ClientAsk): string | undefined {
  return single(req.headers.range);
}

function single(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' || value === undefined ? value : value[0];
}

function dateOf(response: IncomingMessage): number | undefined {
  const ms = Date.parse(response.headers.date ?? '');
  return Number.isFinite(ms) ? ms : undefined;
}

/** A flat rawHeaders list without hop-by-hop fields. */
function endToEnd(raw: readonly string[]): string[] {
  return stripHopByHop(raw);
}

function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!.toLowerCase(), flat[i + 1]!]);
  return out;
}
