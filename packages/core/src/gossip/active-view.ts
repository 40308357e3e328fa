/**
 * The active view: which links carry gossip, where a message goes next, and which peers to dial.
 *
 * Theory of operation (eager push over a random overlay, HyParView's active view without its
 * passive-view shuffle: the gossip table plays that part)
 * - Every ready link whose remote speaks gossip is in the view (`add`/`remove`). A link that
 *   would take the view past `activeLinksMax` is refused at once (the engine closes it), so the
 *   degree stays near `activeLinks` and a message costs each node about `fanOut` sends.
 * - Fan-out: a message goes to `fanOut` links drawn with the engine's Prng among those other
 *   than the one it came from (all of them when there are no more than that).
 * - Dialling: below `activeLinks` (counting dials in flight), the engine asks the host to dial
 *   peers drawn uniformly at random (reservoir sampling) from the table's broadcasting records
 *   that are not linked, not being dialled and not backing off. Random, not best-scored, so the
 *   overlay stays an expander instead of piling links onto the best peers. A dial that has not
 *   come up within `DIAL_TIMEOUT_MS` frees its slot, and its peer backs off for
 *   `DIAL_BACKOFF_MS`. Silent devices dial too: their links are outbound only.
 * Memory: one small record per link and per dial in flight (both bounded by the settings).
 */
import type { Prng } from '../prng.js';
import type { TableEntry } from './gossip-table.js';

/** A dial that has not come up by then is given up (TCP connect plus the Noise handshake). */
export const DIAL_TIMEOUT_MS = 15_000;
/** How long a peer whose dial did not come up is left alone. */
export const DIAL_BACKOFF_MS = 5 * 60_000;

interface ActiveLink {
  readonly deviceKey: string;
  /** The remote's table sync (requestId zero) arrived: one per link is accepted. */
  syncReceived: boolean;
}

export class ActiveView {
  private readonly links = new Map<number, ActiveLink>();
  private readonly dialing = new Map<string, number>();

  get size(): number {
    return this.links.size;
  }

  has(linkId: number): boolean {
    return this.links.has(linkId);
  }

  deviceKeyOf(linkId: number): string | undefined {
    return this.links.get(linkId)?.deviceKey;
  }

  linkIds(): number[] {
    return [...this.links.keys()];
  }

  /** Adds a ready gossip link (a dial to its peer, if any, is done). */
  add(linkId: number, deviceKey: string): void {
    this.dialing.delete(deviceKey);
    this.links.set(linkId, { deviceKey, syncReceived: false });
  }

  remove(linkId: number): string | undefined {
    const link = this.links.get(linkId);
    this.links.delete(linkId);
    return link?.deviceKey;
  }

  /** True the first time the link's table sync arrives, false after. */
  takeSync(linkId: number): boolean {
    const link = this.links.get(linkId);
    if (link === undefined || link.syncReceived) return false;
    link.syncReceived = true;
    return true;
  }

  /** Links to send a message to: `count` drawn at random among all but `exceptLinkId`. */
  targets(count: number, exceptLinkId: number | undefined, prng: Prng): number[] {
    const candidates: number[] = [];
    for (const linkId of this.links.keys()) if (linkId !== exceptLinkId) candidates.push(linkId);
    if (candidates.length <= count) return candidates;
    return prng.sample(candidates.length, count).map((i) => candidates[i]!);
  }

  isDialing(deviceKey: string): boolean {
    return this.dialing.has(deviceKey);
  }

  /** How many dials to ask for now to reach `activeLinks`. */
  dialSlots(activeLinks: number): number {
    return Math.max(0, activeLinks - this.links.size - this.dialing.size);
  }

  markDialing(deviceKey: string, nowMs: number): void {
    this.dialing.set(deviceKey, nowMs + DIAL_TIMEOUT_MS);
  }

  /** Gives up dials past their timeout; returns the peers that did not come up. */
  expireDials(nowMs: number): string[] {
    const expired: string[] = [];
    for (const [deviceKey, deadline] of this.dialing) {
      if (nowMs >= deadline) {
        expired.push(deviceKey);
        this.dialing.delete(deviceKey);
      }
    }
    return expired;
  }

  /** The earliest dial timeout, if any dial is in flight. */
  nextDialDeadlineMs(): number | undefined {
    let next: number | undefined = undefined;
    for (const deadline of this.dialing.values())
      if (next === undefined || deadline < next) next = deadline;
    return next;
  }
}

/** Where a table entry can be dialled, or undefined when it cannot (no broadcast address). */
export function dialAddress(entry: TableEntry): { address: string; port: number } | undefined {
  const record = entry.record;
  if (record === undefined || record.listenPort === 0) return undefined;
  const address = record.addresses[0];
  return address === undefined ? undefined : { address, port: record.listenPort };
}

/**
 * Draws up to `count` entries uniformly at random among `entries` passing `eligible`
 * (reservoir sampling: one pass, no copy of the table).
 */
export function chooseDials(
  entries: readonly TableEntry[],
  count: number,
  eligible: (entry: TableEntry) => boolean,
  prng: Prng,
): TableEntry[] {
  const chosen: TableEntry[] = [];
  if (count <= 0) return chosen;
  let seen = 0;
  for (const entry of entries) {
    if (!eligible(entry)) continue;
    seen++;
    if (chosen.length < count) chosen.push(entry);
    else {
      const slot = prng.nextInt(seen);
      if (slot < count) chosen[slot] = entry;
    }
  }
  return chosen;
}
