/**
 * The active view: which links carry gossip, where a message goes next, which link gives way to
 * a newcomer, and which peers to dial.
 *
 * Theory of operation (HyParView's active view, flooded, without its passive-view shuffle: the
 * gossip table plays that part; eclipse guards after Bitcoin Core's inbound eviction)
 * - Every ready link whose remote speaks gossip is in the view (`add`/`remove`) with the facts
 *   the host knows of it (`LinkFacts`): whether this device dialled it, the remote address's
 *   network group (address-prefix.ts), whether it is a pod member's link.
 * - Forwarding: a message goes on every link but the one it came from, up to `fanOut` of them
 *   (drawn with the engine's Prng when there are more). With the default view of 4 to 5 links
 *   that is a flood of the view: each node sends a message about (links - 1) times, and a lost
 *   frame on one link is made up by the copies on the others.
 * - Room for a newcomer (`victimFor`), when the view is full:
 *   - a link this device dialled, or a pod member's, always gets in: an inbound stranger's link
 *     gives way (so at least the links this device chose cannot be crowded out);
 *   - an inbound stranger's link gets in in place of another inbound stranger's link, never one
 *     of the PROTECTED_INBOUND proven links that have been up longest: unproven ones first, from
 *     the network group holding the most of them. A link is proven once it has been up
 *     `provenAfterMs` and brought at least PROVEN_MESSAGES new valid messages. So a node under a
 *     flood of Sybil links keeps the links it dialled, its pod links and its two oldest proven
 *     inbound links, while a newcomer still finds room at most nodes (a mature overlay whose
 *     links are all protected would strand every newcomer);
 *   - at most INBOUND_PER_GROUP inbound stranger links from one /24 (IPv4) or /48 (IPv6);
 *   - a bootstrap node (`strangersDisplace` false) displaces nothing for an inbound stranger: it
 *     is every newcomer's first dial, and evicting for each would start a cascade of redials
 *     through the overlay per join; its table sync sends the newcomer on instead.
 *   The engine refuses a newcomer that gets no room (after a table sync, so it learns where else
 *   to go).
 * - Dialling: below `activeLinks` (counting dials in flight), or with fewer than OUTBOUND_MIN
 *   links it dialled itself, the engine asks the host to dial peers from the table's
 *   broadcasting records that are not linked, not being dialled and not backing off, drawn
 *   group first (a random network group among the eligible ones, then a random record in it),
 *   never two in one group with an outbound link or dial already: an operator with many records
 *   in few groups gets few of this device's own picks. Random, not best-scored, so the overlay
 *   stays an expander instead of piling links onto the best peers. A dial that has not come up
 *   within `DIAL_TIMEOUT_MS` frees its slot, and its peer backs off for `DIAL_BACKOFF_MS`.
 *   Silent devices dial too: their links are outbound only.
 * Memory: one small record per link and per dial in flight (both bounded by the settings).
 */
import type { Prng } from '../prng.js';
import { addressPrefix } from './address-prefix.js';
import type { TableEntry } from './gossip-table.js';

/** A dial that has not come up by then is given up (TCP connect plus the Noise handshake). */
export const DIAL_TIMEOUT_MS = 15_000;
/** How long a peer whose link closed, or whose dial did not come up, is left alone. */
export const DIAL_BACKOFF_MS = 5 * 60_000;
/** New valid messages a link must bring, besides its uptime, to be proven. */
export const PROVEN_MESSAGES = 2;
/** Inbound stranger links one network group may hold. */
export const INBOUND_PER_GROUP = 2;
/** Proven inbound links (the longest up) an inbound stranger's link never displaces. */
export const PROTECTED_INBOUND = 2;
/** Links this device dialled that it keeps at least (dialling past `activeLinks` if need be). */
export const OUTBOUND_MIN = 1;

/** What the host knows of a new link. */
export interface LinkFacts {
  /** This device dialled it. */
  readonly outbound: boolean;
  /** The remote address seen on the socket (no group cap when absent or loopback). */
  readonly address?: string;
  /** A pod member's link (the pod secret vouches for it): never evicted for a stranger. */
  readonly pinned?: boolean;
}

interface ActiveLink {
  readonly deviceKey: string;
  readonly outbound: boolean;
  readonly pinned: boolean;
  /** Network group of the remote address (undefined: loopback or not known). */
  readonly group: string | undefined;
  readonly upAtMs: number;
  /** New valid messages it brought. */
  accepted: number;
  /** The remote's table sync (requestId zero) arrived: one per link is accepted. */
  syncReceived: boolean;
}

/** Why a newcomer got no room. */
export type Refusal = 'group-full' | 'view-full';

export class ActiveView {
  private readonly links = new Map<number, ActiveLink>();
  private readonly dialing = new Map<string, { deadlineMs: number; group: string | undefined }>();

  constructor(private readonly provenAfterMs: number) {}

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

  /** Links this device dialled (and pod links, which it keeps as it would its own picks). */
  get chosen(): number {
    let count = 0;
    for (const link of this.links.values()) if (link.outbound || link.pinned) count++;
    return count;
  }

  /** Adds a ready gossip link (a dial to its peer, if any, is done). */
  add(linkId: number, deviceKey: string, facts: LinkFacts, nowMs: number): void {
    this.dialing.delete(deviceKey);
    const pinned = facts.pinned === true;
    this.links.set(linkId, {
      deviceKey,
      outbound: facts.outbound,
      pinned,
      group: groupOf(facts.address),
      upAtMs: nowMs,
      accepted: 0,
      syncReceived: false,
    });
  }

  remove(linkId: number): string | undefined {
    const link = this.links.get(linkId);
    this.links.delete(linkId);
    return link?.deviceKey;
  }

  /** A new valid message arrived on the link (towards it being proven). */
  noteAccepted(linkId: number): void {
    const link = this.links.get(linkId);
    if (link !== undefined) link.accepted++;
  }

  /**
   * Room for a newcomer in a view holding `max` links: undefined when there is room already,
   * else the link to close for it, or why it gets none.
   */
  victimFor(
    facts: LinkFacts,
    max: number,
    nowMs: number,
    prng: Prng,
    strangersDisplace = true,
  ): { readonly victim: number } | { readonly refused: Refusal } | undefined {
    const chosenByUs = facts.outbound || facts.pinned === true;
    const group = chosenByUs ? undefined : groupOf(facts.address);
    if (group !== undefined) {
      let inGroup = 0;
      for (const link of this.links.values())
        if (link.group === group && !link.outbound && !link.pinned) inGroup++;
      if (inGroup >= INBOUND_PER_GROUP) return { refused: 'group-full' };
    }
    if (this.links.size < max) return undefined;
    if (!chosenByUs && !strangersDisplace) return { refused: 'view-full' };
    const inbound: [number, ActiveLink][] = [];
    for (const entry of this.links) if (!entry[1].outbound && !entry[1].pinned) inbound.push(entry);
    // An inbound stranger never displaces the PROTECTED_INBOUND longest-up proven links.
    const protectedIds = new Set<number>();
    if (!chosenByUs) {
      const provenOldestFirst = inbound
        .filter(([, link]) => this.proven(link, nowMs))
        .sort((a, b) => a[1].upAtMs - b[1].upAtMs);
      for (const [id] of provenOldestFirst.slice(0, PROTECTED_INBOUND)) protectedIds.add(id);
    }
    const candidates = inbound.filter(([id]) => !protectedIds.has(id));
    if (candidates.length === 0) {
      // Only links this device chose, or protected ones: an inbound stranger waits elsewhere; a
      // link this device chose is kept past `max` (it dials no more than OUTBOUND_MIN past it).
      return chosenByUs ? undefined : { refused: 'view-full' };
    }
    // Unproven before proven, then from the group holding the most of them.
    const unproven = candidates.filter(([, link]) => !this.proven(link, nowMs));
    const pool = unproven.length > 0 ? unproven : candidates;
    const perGroup = new Map<string, [number, ActiveLink][]>();
    for (const entry of pool) {
      const key = entry[1].group ?? `link:${entry[0]}`;
      const list = perGroup.get(key);
      if (list === undefined) perGroup.set(key, [entry]);
      else list.push(entry);
    }
    let largest: [number, ActiveLink][] = [];
    for (const list of perGroup.values()) if (list.length > largest.length) largest = list;
    return { victim: largest[prng.nextInt(largest.length)]![0] };
  }

  /** True the first time the link's table sync arrives, false after. */
  takeSync(linkId: number): boolean {
    const link = this.links.get(linkId);
    if (link === undefined || link.syncReceived) return false;
    link.syncReceived = true;
    return true;
  }

  /** Links to send a message to: all but `exceptLinkId`, at most `count` (drawn at random). */
  targets(count: number, exceptLinkId: number | undefined, prng: Prng): number[] {
    const candidates: number[] = [];
    for (const linkId of this.links.keys()) if (linkId !== exceptLinkId) candidates.push(linkId);
    if (candidates.length <= count) return candidates;
    return prng.sample(candidates.length, count).map((i) => candidates[i]!);
  }

  /** Peers being dialled now. */
  dialingKeys(): IterableIterator<string> {
    return this.dialing.keys();
  }

  isDialing(deviceKey: string): boolean {
    return this.dialing.has(deviceKey);
  }

  /** How many dials to ask for now: to reach `activeLinks`, and OUTBOUND_MIN links of its own. */
  dialSlots(activeLinks: number): number {
    const toFill = activeLinks - this.links.size - this.dialing.size;
    const toChoose = OUTBOUND_MIN - this.chosen - this.dialing.size;
    return Math.max(0, toFill, toChoose);
  }

  /** Network groups of this device's outbound links and dials in flight (one pick per group). */
  chosenGroups(): Set<string> {
    const groups = new Set<string>();
    for (const link of this.links.values())
      if (link.outbound && link.group !== undefined) groups.add(link.group);
    for (const dial of this.dialing.values()) if (dial.group !== undefined) groups.add(dial.group);
    return groups;
  }

  markDialing(deviceKey: string, address: string, nowMs: number): void {
    this.dialing.set(deviceKey, { deadlineMs: nowMs + DIAL_TIMEOUT_MS, group: groupOf(address) });
  }

  /** Gives up dials past their timeout; returns the peers that did not come up. */
  expireDials(nowMs: number): string[] {
    const expired: string[] = [];
    for (const [deviceKey, dial] of this.dialing) {
      if (nowMs >= dial.deadlineMs) {
        expired.push(deviceKey);
        this.dialing.delete(deviceKey);
      }
    }
    return expired;
  }

  /** The earliest dial timeout, if any dial is in flight. */
  nextDialDeadlineMs(): number | undefined {
    let next: number | undefined = undefined;
    for (const dial of this.dialing.values())
      if (next === undefined || dial.deadlineMs < next) next = dial.deadlineMs;
    return next;
  }

  private proven(link: ActiveLink, nowMs: number): boolean {
    return link.accepted >= PROVEN_MESSAGES && nowMs - link.upAtMs >= this.provenAfterMs;
  }
}

function groupOf(address: string | undefined): string | undefined {
  return address === undefined ? undefined : addressPrefix(address);
}

/** Where a table entry can be dialled, or undefined when it cannot (no broadcast address). */
export function dialAddress(entry: TableEntry): { address: string; port: number } | undefined {
  const record = entry.record;
  if (record === undefined || record.listenPort === 0) return undefined;
  const address = record.addresses[0];
  return address === undefined ? undefined : { address, port: record.listenPort };
}

/**
 * Draws up to `count` entries passing `eligible`, group first: a network group drawn uniformly
 * among the eligible entries' groups not in `usedGroups`, then an entry drawn uniformly in it;
 * each pick's group is then used. Entries without a group (loopback) are each their own group.
 */
export function chooseDials(
  entries: readonly TableEntry[],
  count: number,
  eligible: (entry: TableEntry) => boolean,
  usedGroups: ReadonlySet<string>,
  prng: Prng,
): TableEntry[] {
  const chosen: TableEntry[] = [];
  if (count <= 0) return chosen;
  const byGroup = new Map<string, TableEntry[]>();
  for (const entry of entries) {
    if (!eligible(entry)) continue;
    const group = entry.record?.dialGroup ?? `key:${entry.key}`;
    if (usedGroups.has(group)) continue;
    const list = byGroup.get(group);
    if (list === undefined) byGroup.set(group, [entry]);
    else list.push(entry);
  }
  const groups = [...byGroup.values()];
  while (chosen.length < count && groups.length > 0) {
    const at = prng.nextInt(groups.length);
    const list = groups[at]!;
    chosen.push(list[prng.nextInt(list.length)]!);
    groups[at] = groups[groups.length - 1]!;
    groups.pop();
  }
  return chosen;
}
