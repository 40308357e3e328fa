/**
 * PEER_REQUEST bookkeeping: the reverse paths answers travel back on, and this device's own
 * requests (docs/protocol.md section 11).
 *
 * Theory of operation
 * - A relay that forwards or answers a request remembers which link it came from, keyed by the
 *   request's message ID (what an answer names; the first route for an ID wins), and which links
 *   it sent the request on. An answer (PEER_LIST_RESPONSE naming that request) is accepted only
 *   from one of those links (`answerable`: anyone else who saw the ID is not asked) and sent back
 *   on the link the request came from only, hop by hop, so answers are unicast and never flooded.
 * - The origin records its own request (with the content asked about) the same way, with no
 *   link: answers that reach it are used, not forwarded.
 * - Bounded: at most `max` routes (the oldest is forgotten first); a route lives `lifetimeMs`
 *   (answers arrive within seconds; the request itself is stale after the 30 s clock window).
 *   Quotas keep one key or one link from flushing the others' routes: a link holds at most
 *   `perLink` routes and an origin at most `perOrigin`; a request past either is not recorded
 *   (`add` answers false, and the engine neither answers nor forwards it). With `perLink` times
 *   the links below `max`, routes from honest links and this device's own are never flushed.
 *   The map is allocated on first use.
 */
export interface RequestRoute {
  /** The link the request came from; undefined for this device's own request. */
  readonly linkId: number | undefined;
  /** The content asked about (its key), for this device's own requests. */
  readonly contentKey: string | undefined;
  readonly expiresAtMs: number;
  /** The links the request was sent or forwarded on: answers are taken from these only. */
  readonly sentTo: readonly number[];
  /** The request's origin (its key), for the per-origin quota. */
  readonly origin: string | undefined;
}

export class RequestRoutes {
  private routes: Map<string, RequestRoute> | undefined = undefined;
  private readonly perLinkCount = new Map<number, number>();
  private readonly perOriginCount = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly lifetimeMs: number,
    readonly perLink: number = Math.max(1, Math.floor(max / 8)),
    readonly perOrigin: number = Math.max(1, Math.floor(max / 32)),
  ) {}

  get size(): number {
    return this.routes?.size ?? 0;
  }

  /**
   * Remembers a request's route; the first route for a request ID wins (true). False: the
   * requesting link or origin is over its quota, nothing recorded.
   */
  add(
    requestKey: string,
    linkId: number | undefined,
    contentKey: string | undefined,
    nowMs: number,
    sentTo: readonly number[] = [],
    origin?: string,
  ): boolean {
    this.routes ??= new Map();
    this.prune(nowMs);
    if (this.routes.has(requestKey)) return true;
    if (linkId !== undefined && (this.perLinkCount.get(linkId) ?? 0) >= this.perLink) return false;
    if (origin !== undefined && (this.perOriginCount.get(origin) ?? 0) >= this.perOrigin)
      return false;
    while (this.routes.size >= this.max) this.delete(this.routes.keys().next().value as string);
    this.routes.set(requestKey, {
      linkId,
      contentKey,
      expiresAtMs: nowMs + this.lifetimeMs,
      sentTo: [...sentTo],
      origin,
    });
    if (linkId !== undefined) bump(this.perLinkCount, linkId, 1);
    if (origin !== undefined) bump(this.perOriginCount, origin, 1);
    return true;
  }

  get(requestKey: string, nowMs: number): RequestRoute | undefined {
    const route = this.routes?.get(requestKey);
    if (route === undefined || nowMs >= route.expiresAtMs) return undefined;
    return route;
  }

  /** Whether an answer to `route` may come from `linkId` (the request went out on it). */
  static answerable(route: RequestRoute, linkId: number): boolean {
    return route.sentTo.includes(linkId);
  }

  /** Forgets expired routes (insertion order is expiry order: same lifetime for all). */
  prune(nowMs: number): void {
    if (this.routes === undefined) return;
    for (const [key, route] of this.routes) {
      if (nowMs < route.expiresAtMs) break;
      this.delete(key);
    }
  }

  private delete(key: string): void {
    const route = this.routes?.get(key);
    if (route === undefined) return;
    this.routes!.delete(key);
    if (route.linkId !== undefined) bump(this.perLinkCount, route.linkId, -1);
    if (route.origin !== undefined) bump(this.perOriginCount, route.origin, -1);
  }
}

function bump<K>(counts: Map<K, number>, key: K, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}
