/**
 * PEER_REQUEST bookkeeping: the reverse paths answers travel back on, and this device's own
 * requests (docs/protocol.md section 11).
 *
 * Theory of operation
 * - A relay that forwards or answers a request remembers which link it came from, keyed by the
 *   request's message ID (what an answer names; the first route for an ID wins). An answer
 *   (PEER_LIST_RESPONSE naming that request) is sent back on that link only, hop by hop, so
 *   answers are unicast and never flooded.
 * - The origin records its own request (with the content asked about) the same way, with no
 *   link: answers that reach it are used, not forwarded.
 * - Bounded: at most `max` routes (the oldest is forgotten first); a route lives `lifetimeMs`
 *   (answers arrive within seconds; the request itself is stale after the 30 s clock window).
 *   The map is allocated on first use.
 */
export interface RequestRoute {
  /** The link the request came from; undefined for this device's own request. */
  readonly linkId: number | undefined;
  /** The content asked about (its key), for this device's own requests. */
  readonly contentKey: string | undefined;
  readonly expiresAtMs: number;
}

export class RequestRoutes {
  private routes: Map<string, RequestRoute> | undefined = undefined;

  constructor(
    readonly max: number,
    readonly lifetimeMs: number,
  ) {}

  get size(): number {
    return this.routes?.size ?? 0;
  }

  /** Remembers a request's route; the first route for a request ID wins. */
  add(
    requestKey: string,
    linkId: number | undefined,
    contentKey: string | undefined,
    nowMs: number,
  ): void {
    this.routes ??= new Map();
    this.prune(nowMs);
    if (this.routes.has(requestKey)) return;
    while (this.routes.size >= this.max) {
      this.routes.delete(this.routes.keys().next().value as string);
    }
    this.routes.set(requestKey, { linkId, contentKey, expiresAtMs: nowMs + this.lifetimeMs });
  }

  get(requestKey: string, nowMs: number): RequestRoute | undefined {
    const route = this.routes?.get(requestKey);
    if (route === undefined || nowMs >= route.expiresAtMs) return undefined;
    return route;
  }

  /** Forgets expired routes (insertion order is expiry order: same lifetime for all). */
  prune(nowMs: number): void {
    if (this.routes === undefined) return;
    for (const [key, route] of this.routes) {
      if (nowMs < route.expiresAtMs) break;
      this.routes.delete(key);
    }
  }
}
