/**
 * The devices of another pod that tried to connect lately, for `GET /api/peers` (`refused`) and
 * `peapod peers`: one row per remote address whose handshake failed because it does not hold
 * this pod's secret (the host's `peer:refused` with cause `pod-secret`, in either direction),
 * with the sentence that says so, when it last happened and how often. It keeps the
 * `REFUSED_ADDRESSES_MAX` most recent addresses, so many such devices cost a bounded table. The
 * inbound guard's refusals of a flood are not recorded here: they are not a neighbour's mistake.
 */

/** 16 rows: enough to name the neighbours of another pod, few enough to read. */
export const REFUSED_ADDRESSES_MAX = 16;

/** The reason every row gives: the handshake failed for want of the pod secret. */
export const POD_SECRET_REASON =
  "it does not hold this pod's secret (another pod, or an old join code)";

/** One row of `GET /api/peers`'s `refused`. */
export interface RefusedRow {
  /** The remote's IP address. */
  readonly address: string;
  /** Why, as a clause that follows the address. */
  readonly reason: string;
  /** ISO 8601 time of the latest attempt. */
  readonly lastAt: string;
  readonly count: number;
}

export class RefusedPeers {
  private readonly rows = new Map<string, { lastAt: Date; count: number }>();

  /** Counts one failed handshake with `address` at `at`; the address becomes the most recent. */
  record(address: string, at: Date): void {
    const previous = this.rows.get(address);
    this.rows.delete(address);
    this.rows.set(address, { lastAt: at, count: (previous?.count ?? 0) + 1 });
    if (this.rows.size > REFUSED_ADDRESSES_MAX) {
      this.rows.delete(this.rows.keys().next().value!);
    }
  }

  /** The rows, most recent first. */
  list(): RefusedRow[] {
    return [...this.rows].reverse().map(([address, row]) => ({
      address,
      reason: POD_SECRET_REASON,
      lastAt: row.lastAt.toISOString(),
      count: row.count,
    }));
  }
}
