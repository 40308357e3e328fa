/**
 * URL lookups across the pod (DESIGN.md decision 16; docs/protocol.md, URL_QUERY / URL_ANSWER):
 * which content holds the bytes of a URL at which version, so a pod never fetches one version
 * of one object over the WAN twice.
 *
 * Two halves, both owned here:
 * - **This device's mappings** (`url-content` inputs, `map`): URL -> up to
 *   `URL_VERSIONS_MAX` (validator, contentId) pairs, most recent first, for at most
 *   `URL_INDEX_URLS_MAX` URLs; the least recently used URL (mapped or answered) is dropped
 *   first. A URL_QUERY from a pod link is answered with the mappings whose content the chunk
 *   server holds at least one chunk of (`holds`, from the engine), maybe none; a device that
 *   does not serve chunks answers with none. Queries on links that are not pod links are not
 *   answered: strangers learn nothing of what this device fetched. `forgetContent` drops the
 *   mappings of a content the host removed entirely.
 * - **Lookups** (`lookup-url` inputs, `lookup`): one URL_QUERY, with one query ID, to every
 *   ready pod link whose peer serves chunks; each asked link's URL_ANSWER adds its entries as
 *   holders (the device ID is the link's authenticated peer, never a field of the answer). The
 *   lookup ends with exactly one `url:lookup` event when every asked link answered or closed,
 *   at its deadline (`URL_LOOKUP_TIMEOUT_MS` after it started), or at once when no link can be
 *   asked. An answer from a link that was not asked, or a second one, is ignored.
 *
 * Deadlines: every lookup waits the same time and inputs never go back in time, so pending
 * lookups in start order are also in deadline order; the first one's is the next deadline.
 * The engine feeds `nextDeadlineMs` into its own and calls `onTimer`.
 */
import { equalBytes, utf8Encode } from '../bytes.js';
import { invalidArgument, PeapodError } from '../errors.js';
import {
  Capability,
  Limits,
  type UrlAnswerEntry,
  type UrlAnswerMessage,
  type UrlQueryMessage,
} from '../wire/messages.js';
import { URL_LOOKUP_TIMEOUT_MS, type UrlHolder } from './transfer-api.js';
import type { TransferContext } from './transfer-context.js';

/** URLs whose mappings this device keeps (about 4096 x 4 x 300 bytes at most: ~5 MiB). */
export const URL_INDEX_URLS_MAX = 4096;
/** Versions (validators) kept per URL; the oldest mapping goes first. */
export const URL_VERSIONS_MAX = 4;

interface Mapping {
  readonly validator: string;
  readonly contentId: Uint8Array;
}

interface Lookup {
  readonly lookupId: number;
  readonly url: string;
  readonly queryId: number;
  readonly deadlineMs: number;
  /** Asked links that have neither answered nor closed. */
  readonly waiting: Set<number>;
  readonly holders: UrlHolder[];
}

const U32_MAX = 0xffff_ffff;
const loneSurrogate = /\p{Surrogate}/u;

/** Checks a host-given string field against its wire bounds (it travels in a message). */
function checkText(field: string, value: unknown, minBytes: number, maxBytes: number): string {
  if (typeof value !== 'string') invalidArgument(field, 'must be a string');
  if (loneSurrogate.test(value)) invalidArgument(field, 'holds a lone UTF-16 surrogate');
  const length = utf8Encode(value).length;
  if (length < minBytes || length > maxBytes) {
    invalidArgument(field, `must be ${minBytes} to ${maxBytes} UTF-8 bytes, got ${length}`);
  }
  return value;
}

export class UrlIndex {
  /** url -> its mappings, most recent first; Map order is least recently used first. */
  private readonly mappings = new Map<string, Mapping[]>();
  /** Pending lookups by lookup ID, in start order (which is deadline order). */
  private readonly lookups = new Map<number, Lookup>();
  private readonly byQueryId = new Map<number, Lookup>();
  private nextQueryId = 1;

  constructor(
    private readonly ctx: TransferContext,
    /** Whether the chunk server holds at least one chunk of the content. */
    private readonly holds: (contentId: Uint8Array) => boolean,
  ) {}

  /**
   * This device holds `contentId` as `url` at `validator` (`url-content`). A mapping for the
   * same URL and validator is replaced.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when a field would not fit in URL_QUERY /
   * URL_ANSWER (an empty or too long URL, a validator over 256 bytes, an ID not 32 bytes).
   */
  map(url: string, validator: string, contentId: Uint8Array): void {
    checkText('url-content.url', url, 1, Limits.urlBytes);
    checkText('url-content.validator', validator, 0, Limits.validatorBytes);
    if (!(contentId instanceof Uint8Array) || contentId.length !== 32) {
      invalidArgument('url-content.contentId', 'must be 32 bytes');
    }
    const list = (this.mappings.get(url) ?? []).filter((m) => m.validator !== validator);
    list.unshift({ validator, contentId: contentId.slice() });
    list.length = Math.min(list.length, URL_VERSIONS_MAX);
    this.touch(url, list);
    for (const oldest of this.mappings.keys()) {
      if (this.mappings.size <= URL_INDEX_URLS_MAX) break;
      this.mappings.delete(oldest);
    }
  }

  /** Chunks of `contentId` went; `gone` true when none is left: its mappings go too. */
  forgetContent(contentId: Uint8Array, gone: boolean): void {
    if (!gone) return;
    for (const [url, list] of this.mappings) {
      const kept = list.filter((m) => !equalBytes(m.contentId, contentId));
      if (kept.length === 0) this.mappings.delete(url);
      else if (kept.length < list.length) this.mappings.set(url, kept); // keeps its LRU place
    }
  }

  /** A URL_QUERY from a ready link: answered on pod links only (module header). */
  onQuery(linkId: number, message: UrlQueryMessage): void {
    if (this.ctx.links.peer(linkId)?.trust !== 'pod') return;
    const serves = (this.ctx.settings.capabilities & Capability.serveChunks) !== 0;
    const list = serves ? this.mappings.get(message.url) : undefined;
    const entries: UrlAnswerEntry[] = [];
    for (const mapping of list ?? []) {
      if (this.holds(mapping.contentId)) entries.push(mapping);
    }
    if (list !== undefined && entries.length > 0) this.touch(message.url, list);
    this.ctx.links.send(linkId, {
      type: 'url-answer',
      queryId: message.queryId,
      entries: entries.slice(0, Limits.urlAnswerEntries),
    });
  }

  /** A URL_ANSWER from a ready link: counted only from a link asked and still waited for. */
  onAnswer(linkId: number, message: UrlAnswerMessage): void {
    const lookup = this.byQueryId.get(message.queryId);
    if (lookup === undefined || !lookup.waiting.delete(linkId)) return;
    const peer = this.ctx.links.peer(linkId);
    if (peer !== undefined) {
      for (const { validator, contentId } of message.entries) {
        lookup.holders.push({ deviceId: peer.deviceId, validator, contentId });
      }
    }
    if (lookup.waiting.size === 0) this.finish(lookup);
  }

  /**
   * `lookup-url`: asks every ready pod link that serves chunks.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a URL that cannot travel in URL_QUERY;
   * PEAPOD_ERR_INVALID_STATE when a lookup with this ID is still running.
   */
  lookup(lookupId: number, url: string, nowMs: number): void {
    if (!Number.isSafeInteger(lookupId)) invalidArgument('lookup-url.lookupId', 'not an integer');
    if (this.lookups.has(lookupId)) {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `lookup ${lookupId} is already running`);
    }
    checkText('lookup-url.url', url, 1, Limits.urlBytes);
    const links = this.ctx.links;
    const asked = links.ready().filter((id) => {
      const peer = links.peer(id);
      return peer?.trust === 'pod' && (peer.capabilities & Capability.serveChunks) !== 0;
    });
    const lookup: Lookup = {
      lookupId,
      url,
      queryId: this.takeQueryId(),
      deadlineMs: nowMs + URL_LOOKUP_TIMEOUT_MS,
      waiting: new Set(),
      holders: [],
    };
    for (const linkId of asked) {
      if (links.send(linkId, { type: 'url-query', queryId: lookup.queryId, url })) {
        lookup.waiting.add(linkId);
      }
    }
    this.lookups.set(lookupId, lookup);
    this.byQueryId.set(lookup.queryId, lookup);
    if (lookup.waiting.size === 0) this.finish(lookup);
  }

  /** A link closed: lookups stop waiting for it. */
  onLinkClosed(linkId: number): void {
    for (const lookup of this.lookups.values()) {
      if (lookup.waiting.delete(linkId) && lookup.waiting.size === 0) this.finish(lookup);
    }
  }

  /** Ends the lookups whose deadline passed, with the holders they have. */
  onTimer(nowMs: number): void {
    for (const lookup of this.lookups.values()) {
      if (lookup.deadlineMs > nowMs) break;
      this.finish(lookup);
    }
  }

  /** The earliest pending lookup's deadline. */
  nextDeadlineMs(): number | undefined {
    for (const lookup of this.lookups.values()) return lookup.deadlineMs;
    return undefined;
  }

  private finish(lookup: Lookup): void {
    this.lookups.delete(lookup.lookupId);
    this.byQueryId.delete(lookup.queryId);
    this.ctx.event({
      type: 'url:lookup',
      lookupId: lookup.lookupId,
      url: lookup.url,
      holders: lookup.holders,
    });
  }

  /** Marks a URL most recently used. */
  private touch(url: string, list: Mapping[]): void {
    this.mappings.delete(url);
    this.mappings.set(url, list);
  }

  /** A u32 query ID no pending lookup uses (there are far fewer lookups than IDs). */
  private takeQueryId(): number {
    for (;;) {
      const id = this.nextQueryId;
      this.nextQueryId = id === U32_MAX ? 1 : id + 1;
      if (!this.byQueryId.has(id)) return id;
    }
  }
}
