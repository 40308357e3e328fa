/**
 * The helper side of pooled downloads (docs/protocol.md 7.3): a pod peer asked this device to
 * fetch `[rangeStart, rangeEnd)` of an origin object through its own internet link. The helper
 * turns each FETCH_ASSIGN into a `fetch-origin` output, streams every `origin-data` back as DATA
 * (offsets are absolute positions in the object, starting at `rangeStart`), and ends with STATUS:
 * `ok` when exactly the range arrived, `originChanged` when the host reports the object is no
 * longer the pinned version, `originError` otherwise.
 *
 * Refusals (STATUS `error`): this device does not advertise `fetchOrigin`, the link is not a pod
 * link (FETCH_ASSIGN carries credentials and makes this device issue requests, so it is for pod
 * members only), the URL is not http(s), a header would defeat pinning or framing, or the host's
 * destination policy refused the URL's address (DESIGN.md decision 14: the fetch is marked
 * `forPeer`; the host refuses before it connects, so the answer comes at once, with the host's
 * sentence as the STATUS message). The coordinator treats a refusal as final for its download.
 * `busy` when the link already has `servingPerLinkMax` fetches running. A CANCEL stops the fetch
 * (`cancel-fetch`) and answers STATUS(cancelled).
 */
import {
  Capability,
  TransferStatus,
  type FetchAssignMessage,
  type StatusMessage,
} from '../wire/messages.js';
import type { OriginOutcome } from './transfer-api.js';
import type { FetchHandler, TransferContext } from './transfer-context.js';

/** Headers a coordinator may not set (docs/protocol.md 7.3). */
const FORBIDDEN_HEADERS = new Set([
  'range',
  'if-match',
  'if-range',
  'if-none-match',
  'host',
  'content-length',
  'connection',
  'transfer-encoding',
]);

interface HelperFetch {
  readonly linkId: number;
  readonly requestId: number;
  readonly rangeStart: number;
  readonly length: number;
  received: number;
}

export class FetchHelper implements FetchHandler {
  private readonly fetches = new Map<number, HelperFetch>();

  constructor(private readonly ctx: TransferContext) {}

  /** A FETCH_ASSIGN arrived (parity already checked by the engine). */
  onAssign(linkId: number, message: FetchAssignMessage): void {
    const links = this.ctx.links;
    if (links.peer(linkId) === undefined) return;
    const refuse = (status: TransferStatus, detail: string): void => {
      links.send(linkId, statusMessage(message.requestId, status, 0, detail));
    };
    if ((this.ctx.settings.capabilities & Capability.fetchOrigin) === 0) {
      refuse(TransferStatus.error, 'this device does not fetch for others');
      return;
    }
    if (links.peer(linkId)?.trust !== 'pod') {
      refuse(TransferStatus.error, 'FETCH_ASSIGN is accepted on pod links only');
      return;
    }
    if (!/^https?:\/\//i.test(message.url)) {
      refuse(TransferStatus.error, 'only http and https URLs are fetched');
      return;
    }
    for (const header of message.headers) {
      if (FORBIDDEN_HEADERS.has(header.name.toLowerCase())) {
        refuse(TransferStatus.error, `header ${header.name} is not allowed`);
        return;
      }
    }
    let running = 0;
    for (const fetch of this.fetches.values()) if (fetch.linkId === linkId) running++;
    if (running >= this.ctx.settings.servingPerLinkMax) {
      refuse(TransferStatus.busy, 'fetching as many ranges as allowed');
      return;
    }
    const fetchId = this.ctx.openFetch(this, {
      url: message.url,
      rangeStart: message.rangeStart,
      rangeEnd: message.rangeEnd,
      validator: message.validator,
      headers: message.headers,
      forPeer: true,
    });
    this.fetches.set(fetchId, {
      linkId,
      requestId: message.requestId,
      rangeStart: message.rangeStart,
      length: message.rangeEnd - message.rangeStart,
      received: 0,
    });
  }

  onOriginData(fetchId: number, bytes: Uint8Array, nowMs: number): void {
    const fetch = this.fetches.get(fetchId);
    if (fetch === undefined || bytes.length === 0) return;
    if (fetch.received + bytes.length > fetch.length) {
      this.ctx.cancelFetch(fetchId);
      this.end(fetchId, fetch, TransferStatus.originError, 'the origin sent more than the range');
      return;
    }
    // A copy: the host may reuse its buffer once the input returns.
    this.ctx.links.stream(
      fetch.linkId,
      fetch.requestId,
      bytes.slice(),
      fetch.rangeStart + fetch.received,
    );
    fetch.received += bytes.length;
    void nowMs;
  }

  onOriginEnd(fetchId: number, outcome: OriginOutcome, detail: string): void {
    const fetch = this.fetches.get(fetchId);
    if (fetch === undefined) return;
    this.ctx.endFetch(fetchId);
    if (outcome === 'changed') {
      this.end(fetchId, fetch, TransferStatus.originChanged, detail);
    } else if (outcome === 'refused') {
      this.end(fetchId, fetch, TransferStatus.error, detail);
    } else if (outcome === 'error') {
      this.end(fetchId, fetch, TransferStatus.originError, detail);
    } else if (fetch.received !== fetch.length) {
      this.end(
        fetchId,
        fetch,
        TransferStatus.originError,
        `body ended after ${fetch.received} bytes`,
      );
    } else {
      this.end(fetchId, fetch, TransferStatus.ok, '');
    }
  }

  /** CANCEL from the coordinator. Returns true if this module had the request. */
  onCancel(linkId: number, requestId: number): boolean {
    for (const [fetchId, fetch] of this.fetches) {
      if (fetch.linkId !== linkId || fetch.requestId !== requestId) continue;
      this.fetches.delete(fetchId);
      this.ctx.cancelFetch(fetchId);
      const links = this.ctx.links;
      if (links.peer(linkId) !== undefined) {
        const dropped = links.drop(linkId, requestId);
        const sent = Math.max(
          0,
          dropped.dropped ? dropped.sentBytes - fetch.rangeStart : fetch.received,
        );
        links.send(linkId, statusMessage(requestId, TransferStatus.cancelled, sent, ''));
      }
      return true;
    }
    return false;
  }

  /** The coordinator's link closed: stop its fetches. */
  onLinkClosed(linkId: number): void {
    for (const [fetchId, fetch] of this.fetches) {
      if (fetch.linkId !== linkId) continue;
      this.fetches.delete(fetchId);
      this.ctx.cancelFetch(fetchId);
    }
  }

  private end(fetchId: number, fetch: HelperFetch, status: TransferStatus, detail: string): void {
    this.fetches.delete(fetchId);
    const length = status === TransferStatus.ok ? fetch.length : fetch.received;
    this.ctx.links.send(
      fetch.linkId,
      statusMessage(fetch.requestId, status, length, detail.slice(0, 200)),
    );
  }
}

function statusMessage(
  requestId: number,
  status: TransferStatus,
  length: number,
  message: string,
): StatusMessage {
  return { type: 'status', requestId, status, length, message };
}
