/**
 * Carries out the core's `fetch-origin` outputs: one byte range of one pinned object version per
 * fetch, streamed back in order (docs/architecture.md, "Transfers"; DESIGN.md decision 6).
 *
 * Theory of operation
 * - `start(fetch, callbacks)` sends `GET` with `Range: bytes=START-(END-1)` and the fetch's
 *   headers over a keep-alive pool bound to this device's `localAddress` (its own internet
 *   link). Redirects are followed (up to 5) on every fetch, because signed redirect targets
 *   (S3 presigned, GitHub release assets) expire within minutes while a download runs longer.
 * - Pinning. The fetch's `validator` is an encoded pin (origin-pin.ts). Every fetch sends the
 *   pin's preconditions and checks the 206's head against it before any byte is passed on:
 *   - strong ETag: `If-Match` is evaluated first (RFC 9110 section 13.2.2): a changed object
 *     answers 412 with a short body, so the connection survives and no byte of the wrong
 *     version flows. `If-Range` (section 13.1.5) covers servers that implement it but not
 *     If-Match: a changed object answers 200 with the whole object, which is reported as
 *     changed and the connection closed at once.
 *   - Last-Modified: `If-Unmodified-Since` (section 13.1.4), and If-Range with the date when it
 *     is a strong validator (section 8.8.2.2), the same way.
 *   - Every level: a 206 whose validators or total length differ from the pin's is changed
 *     (a bare strong ETag carries no length: the fetch's `totalBytes`, which the core gives for
 *     this device's own downloads, stands in; a helper's strong-ETag range has only the ETag):
 *     the last line against a server that honours Range but no precondition, and the only one
 *     for weak ETags and origins without any validator.
 *   So with a pin a 412, a 200 or a disagreeing 206 is `changed`; without one (validator '') a
 *   200 is `error` (the origin ignored Range). A validator this version cannot read (a newer
 *   peer's pin) is `error` before any request is sent.
 * - Exactness. A 206 must carry `Content-Range: bytes START-(END-1)/...` exactly (and a
 *   matching Content-Length, when present), and exactly END - START bytes must arrive: a short
 *   body, a reset, an idle timeout or an overlong body is `error`, never `ok`. Bytes are passed
 *   to `onData` as they arrive, in order, and never beyond the requested length.
 * - Callbacks. Exactly one `onEnd(outcome, detail)` ends every fetch that was not cancelled,
 *   always asynchronously (never inside `start`), after all of its `onData` calls. `detail` is
 *   one line for a person ('' for ok). `cancel(fetchId)` aborts the request and silences the
 *   fetch: the core that cancelled it expects no further input about it.
 * - Destinations (DESIGN.md decision 14). A fetch for a pod peer (`forPeer`) connects only to
 *   addresses `peerDestinations` allows (default: public ones), checked after DNS and on every
 *   redirect hop (origin-request.ts); a refused one ends as `refused`, at once and without a
 *   request when the first hop is refused. This device's own fetches go anywhere.
 * - Never throws on a bad server or a bad fetch (a URL or header from a peer's FETCH_ASSIGN):
 *   every failure becomes `error` with a detail. Starting a fetch ID that is already active is
 *   a host bug and throws.
 * - `limiter` (the daemon's `--max-download` bucket) is charged for every byte; the response
 *   is paused for the wait it returns, so TCP back-pressure slows the origin down.
 *
 * The fetcher owns its agents and the table of active fetches; `close()` aborts them all.
 */
import { PeapodError, type TransferOutput } from '@peapod/core';
import { Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { formatRangeRequest, parseContentRange } from './content-range.js';
import {
  checkPinnedHead,
  decodePin,
  describePin,
  pinRequestHeaders,
  type OriginPin,
} from './origin-pin.js';
import { REDIRECTS_MAX } from './origin-probe.js';
import { publicDestinations, type DestinationPolicy } from './destination-policy.js';
import { describeError, openOrigin } from './origin-request.js';

/** The core's output this module carries out. */
export type FetchOriginOutput = Extract<TransferOutput, { type: 'fetch-origin' }>;

export type FetchOutcome = 'ok' | 'changed' | 'error' | 'refused';

export interface FetchCallbacks {
  /** The next bytes of the range, in order. */
  onData(bytes: Uint8Array): void;
  /** The fetch ended; see the module comment. */
  onEnd(outcome: FetchOutcome, detail: string): void;
}

/** A bandwidth limit: takes `bytes`, returns the milliseconds to wait before moving more. */
export interface ByteLimiter {
  take(bytes: number): number;
}

export interface OriginFetcherOptions {
  /** Source address of every origin request (this device's own internet link). */
  readonly localAddress?: string;
  /** Pooled sockets per origin host. Default 16. */
  readonly socketsPerHostMax?: number;
  /** A fetch fails after this long without a byte. Default 30 000 ms. */
  readonly idleTimeoutMs?: number;
  readonly limiter?: ByteLimiter;
  /** Where fetches for a peer may connect. Default `publicDestinations`. */
  readonly peerDestinations?: DestinationPolicy;
}

interface ActiveFetch {
  readonly controller: AbortController;
  cancelled: boolean;
}

/** See the module comment. */
export class OriginFetcher {
  private readonly agents: { readonly http: HttpAgent; readonly https: HttpsAgent };
  private readonly active = new Map<number, ActiveFetch>();

  constructor(private readonly options: OriginFetcherOptions = {}) {
    const socketsMax = options.socketsPerHostMax ?? 16;
    this.agents = {
      http: new HttpAgent({ keepAlive: true, maxSockets: socketsMax }),
      https: new HttpsAgent({ keepAlive: true, maxSockets: socketsMax }),
    };
  }

  /** Fetches currently running. */
  get activeCount(): number {
    return this.active.size;
  }

  /**
   * Starts one fetch.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE if `fetch.fetchId` is already active.
   * @example
   * fetcher.start(output, {
   *   onData: (bytes) => host.input({ type: 'origin-data', nowMs: now(), fetchId: output.fetchId, bytes }),
   *   onEnd: (outcome, detail) => host.input({ type: 'origin-end', nowMs: now(), fetchId: output.fetchId, outcome, detail }),
   * });
   */
  start(fetch: Omit<FetchOriginOutput, 'type'>, callbacks: FetchCallbacks): void {
    if (this.active.has(fetch.fetchId)) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        `fetchId: fetch ${fetch.fetchId} is already active`,
      );
    }
    const entry: ActiveFetch = { controller: new AbortController(), cancelled: false };
    this.active.set(fetch.fetchId, entry);
    void this.run(fetch, entry, callbacks);
  }

  /** Aborts a fetch; no callback of it fires afterwards. Unknown IDs are ignored. */
  cancel(fetchId: number): void {
    const entry = this.active.get(fetchId);
    if (entry === undefined) return;
    entry.cancelled = true;
    this.active.delete(fetchId);
    entry.controller.abort();
  }

  /** Cancels every fetch and closes the pooled connections. */
  close(): void {
    for (const fetchId of [...this.active.keys()]) this.cancel(fetchId);
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async run(
    fetch: Omit<FetchOriginOutput, 'type'>,
    entry: ActiveFetch,
    callbacks: FetchCallbacks,
  ): Promise<void> {
    const { fetchId, rangeStart, rangeEnd, validator } = fetch;
    const range = `bytes ${rangeStart}-${rangeEnd - 1}`;
    let ended = false;
    const end = (outcome: FetchOutcome, detail: string) => {
      if (ended || entry.cancelled) return;
      ended = true;
      this.active.delete(fetchId);
      callbacks.onEnd(outcome, detail);
    };
    if (
      !Number.isSafeInteger(rangeStart) ||
      !Number.isSafeInteger(rangeEnd) ||
      rangeStart < 0 ||
      rangeEnd <= rangeStart
    ) {
      await Promise.resolve(); // onEnd never runs inside start()
      end('error', `invalid range ${rangeStart}..${rangeEnd}`);
      return;
    }
    const decoded = decodePin(validator);
    if (decoded.kind === 'invalid') {
      await Promise.resolve(); // onEnd never runs inside start()
      end('error', decoded.detail);
      return;
    }
    // A bare strong ETag carries no length; this device's own fetches know it from the core.
    const pin =
      decoded.kind !== 'pin'
        ? undefined
        : decoded.pin.totalBytes === undefined && fetch.totalBytes !== undefined
          ? { ...decoded.pin, totalBytes: fetch.totalBytes }
          : decoded.pin;
    const protocolHeaders: Record<string, string> = {
      range: formatRangeRequest({ kind: 'from-to', first: rangeStart, last: rangeEnd - 1 }),
      ...(pin === undefined ? {} : pinRequestHeaders(pin)),
    };
    const opened = await openOrigin({
      url: fetch.url,
      headers: fetch.headers,
      protocolHeaders,
      redirectsMax: REDIRECTS_MAX,
      localAddress: this.options.localAddress,
      agents: this.agents,
      signal: entry.controller.signal,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 30_000,
      destinationPolicy: fetch.forPeer
        ? (this.options.peerDestinations ?? publicDestinations)
        : undefined,
    });
    if (opened.kind === 'failed') {
      end(opened.refused === true ? 'refused' : 'error', opened.detail);
      return;
    }
    const { response, request } = opened;
    const discard = () => {
      response.on('error', () => undefined);
      request.destroy();
    };
    if (entry.cancelled) {
      discard();
      return;
    }
    const status = response.statusCode ?? 0;
    const problem = checkHead(response, status, rangeStart, rangeEnd, pin);
    if (problem !== undefined) {
      discard();
      end(pin !== undefined && problem.changed ? 'changed' : 'error', problem.detail);
      return;
    }
    this.stream(response, rangeEnd - rangeStart, range, callbacks, end, discard, entry);
  }

  /** Passes the body on, counting bytes; see "Exactness" in the module comment. */
  private stream(
    response: IncomingMessage,
    expected: number,
    range: string,
    callbacks: FetchCallbacks,
    end: (outcome: FetchOutcome, detail: string) => void,
    discard: () => void,
    entry: ActiveFetch,
  ): void {
    let received = 0;
    let resumeTimer: NodeJS.Timeout | undefined;
    const finish = (outcome: FetchOutcome, detail: string) => {
      clearTimeout(resumeTimer);
      end(outcome, detail);
    };
    response.on('data', (bytes: Buffer) => {
      if (entry.cancelled) return;
      if (received + bytes.length > expected) {
        discard();
        finish('error', `the origin sent more than the ${expected} bytes of ${range}`);
        return;
      }
      received += bytes.length;
      callbacks.onData(bytes);
      const waitMs = this.options.limiter?.take(bytes.length) ?? 0;
      if (waitMs > 0 && !response.destroyed) {
        response.pause();
        resumeTimer = setTimeout(() => response.resume(), waitMs);
      }
    });
    response.on('end', () => {
      if (received === expected) finish('ok', '');
      else finish('error', `the origin sent ${received} of the ${expected} bytes of ${range}`);
    });
    response.on('error', (error) =>
      finish(
        'error',
        `${range} broke off after ${received} of ${expected} bytes: ${describeError(error)}`,
      ),
    );
    response.on('close', () =>
      finish(
        'error',
        `the connection closed after ${received} of the ${expected} bytes of ${range}`,
      ),
    );
  }
}

/**
 * Checks a response's status and headers before any byte is passed on; undefined when the body
 * is the requested range of the pinned version. `changed` marks the answers that mean "the
 * object is no longer the pinned version" (they count as such only when the fetch is pinned).
 */
function checkHead(
  response: IncomingMessage,
  status: number,
  rangeStart: number,
  rangeEnd: number,
  pin: OriginPin | undefined,
): { changed: boolean; detail: string } | undefined {
  const range = `bytes ${rangeStart}-${rangeEnd - 1}`;
  const version = pin === undefined ? '' : describePin(pin);
  if (status === 412) {
    return {
      changed: true,
      detail: `the origin answered 412 Precondition Failed: the object is no longer ${version}`,
    };
  }
  if (status === 200) {
    return pin === undefined
      ? { changed: false, detail: `the origin ignored the Range request for ${range} (200)` }
      : {
          changed: true,
          detail: `the origin answered 200 with the whole object instead of ${range}: it is no longer ${version}`,
        };
  }
  if (status !== 206) {
    const reason = response.statusMessage === undefined ? '' : ` ${response.statusMessage}`;
    return { changed: false, detail: `the origin answered ${status}${reason} for ${range}` };
  }
  if (pin !== undefined) {
    const pinned = checkPinnedHead(pin, response.headers);
    if (!pinned.ok) return { changed: true, detail: `${pinned.detail} (answering ${range})` };
  }
  const contentRange = parseContentRange(response.headers['content-range']);
  if (
    contentRange?.kind !== 'satisfied' ||
    contentRange.start !== rangeStart ||
    contentRange.end !== rangeEnd
  ) {
    return {
      changed: false,
      detail: `the origin answered ${range} with Content-Range ${response.headers['content-range'] ?? '(none)'}`,
    };
  }
  const length = response.headers['content-length'];
  if (length !== undefined && length.trim() !== String(rangeEnd - rangeStart)) {
    return {
      changed: false,
      detail: `the origin answered ${range} with Content-Length ${length}, not ${rangeEnd - rangeStart}`,
    };
  }
  return undefined;
}
