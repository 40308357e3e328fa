/**
 * The devices this daemon refused lately, for `GET /api/peers` (`refused`) and `peapod peers`:
 * one row per remote address, the latest reason as a sentence a person can act on, when it last
 * happened and how often. It keeps the `REFUSED_ADDRESSES_MAX` most recent addresses, so a flood
 * from many addresses costs a bounded table. Fed by the host's `peer:refused` events.
 */
import type { PeerRefusedEvent } from './node-host.js';

/** 16 rows: enough to name a neighbour in another pod beside a flood, small enough to read. */
export const REFUSED_ADDRESSES_MAX = 16;

/** One row of `GET /api/peers`'s `refused`. */
export interface RefusedRow {
  /** The remote's IP address. */
  readonly address: string;
  /** Why, as a clause that follows the address: "it does not hold this pod's secret (...)". */
  readonly reason: string;
  /** ISO 8601 time of the latest refusal. */
  readonly lastAt: string;
  readonly count: number;
}

/** The sentence for each cause of `peer:refused`. */
export function refusalReason(event: Pick<PeerRefusedEvent, 'cause' | 'detail'>): string {
  switch (event.cause) {
    case 'pod-secret':
      return "it does not hold this pod's secret (another pod, or an old join code)";
    case 'rate':
    case 'half-open-address':
      return `it opened handshakes faster than allowed (${event.detail}); closed before any handshake work`;
    case 'busy':
    case 'half-open':
      return `too many new devices were handshaking at once (${event.detail}); closed before any handshake work, it may retry`;
  }
}

export class RefusedPeers {
  private readonly rows = new Map<string, { reason: string; lastAt: Date; count: number }>();

  /** Counts one refusal at `at`; the address becomes the most recent. */
  record(event: PeerRefusedEvent, at: Date): void {
    const previous = this.rows.get(event.address);
    this.rows.delete(event.address);
    this.rows.set(event.address, {
      reason: refusalReason(event),
      lastAt: at,
      count: (previous?.count ?? 0) + 1,
    });
    if (this.rows.size > REFUSED_ADDRESSES_MAX) {
      this.rows.delete(this.rows.keys().next().value!);
    }
  }

  /** The rows, most recent first. */
  list(): RefusedRow[] {
    return [...this.rows].reverse().map(([address, row]) => ({
      address,
      reason: row.reason,
      lastAt: row.lastAt.toISOString(),
      count: row.count,
    }));
  }
}
