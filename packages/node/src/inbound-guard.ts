/**
 * The inbound guard: decides, for each accepted TCP connection and before any byte of it is read,
 * whether this device spends handshake work on it.
 *
 * Why it exists: in Noise XXpsk3 the pod secret enters only at message 3, so the responder's
 * answer to message 1 (an X25519 key pair, two DH operations, an Ed25519 signature; about 0.9 ms
 * of CPU here, bench/handshake-flood.ts) is computed before anything proves the remote is a
 * member. Anyone who can reach the peer port can replay a captured message 1 and buy that work
 * on every connection. Nothing in the protocol can refuse earlier, so the host limits how often
 * one address may ask.
 *
 * Policy (all limits in `InboundGuardDefaults`, each with its reason):
 * - Addresses are grouped as routing allocates them: an IPv4 address alone (/32), an IPv6 address
 *   by its /64 (one host or LAN owns a whole /64, so its addresses are one source), and an
 *   IPv4-mapped IPv6 address as its IPv4 address. Except on this device's own LAN: a link-local
 *   address, or one in the same /64 as the address the connection arrived on, is a neighbour
 *   (a pod member, usually) and counts alone, since a home LAN's devices all share one /64.
 * - Each group has a token bucket: `burst` handshakes at once, then one per `refillIntervalMs`.
 * - All groups share one more bucket (`globalBurst`, then one per `globalRefillIntervalMs`), so
 *   many sources together cannot take more either; a group that once completed a handshake (a
 *   member's address: only a holder of the pod secret can) skips it, so members still connect
 *   while strangers from many addresses flood, and is never forgotten.
 * - At most `halfOpenMax` connections are half-open (accepted, handshake not complete) in all,
 *   and at most `halfOpenPerAddressMax` per group.
 * - A half-open connection past `handshakeDeadlineMs` is reported `overdue`; the host closes it.
 * A connection over any limit is refused: the host closes it at once, unread.
 *
 * Inputs: `admit(address, nowMs, localAddress)` per accepted connection, `settle(ticket,
 * completed)` when its handshake completed or it closed, `overdue(nowMs)` when the host's timer fires. The clock is the caller's
 * (monotonic ms), so tests drive it directly. State: one entry per address group (bounded by
 * `groupsMax`; an idle group is forgotten first) and one per half-open ticket.
 */
import { isIPv6 } from 'node:net';
import { CoreDefaults } from '@peapod/core';

/** The guard's limits; `InboundGuardDefaults` gives each one and why. */
export interface InboundGuardLimits {
  readonly burst: number;
  readonly refillIntervalMs: number;
  readonly globalBurst: number;
  readonly globalRefillIntervalMs: number;
  readonly halfOpenMax: number;
  readonly halfOpenPerAddressMax: number;
  readonly handshakeDeadlineMs: number;
  readonly groupsMax: number;
}

export const InboundGuardDefaults: InboundGuardLimits = {
  /**
   * 16 handshakes at once per address: a member needs one link per device pair and one more per
   * reconnect; 16 covers a few devices behind one NAT address restarting together.
   */
  burst: 16,
  /**
   * Then one every 500 ms: a member reconnects far less often, and an outsider held to two
   * handshakes a second costs about 0.2% of a core (2 x ~0.9 ms).
   */
  refillIntervalMs: 500,
  /** 64 at once from all strangers together: more than a whole pod reconnecting at once. */
  globalBurst: 64,
  /** Then 50 a second in all: ~4.5% of a core (50 x ~0.9 ms), whatever the number of sources. */
  globalRefillIntervalMs: 20,
  /**
   * 64 handshakes under way in all: a pod's devices all connecting after a restart are far fewer,
   * and each half-open link holds a socket and ~40 KiB (bench/link-idle.ts).
   */
  halfOpenMax: 64,
  /** 4 under way per address: a device opens one link per peer, a few devices may share a NAT. */
  halfOpenPerAddressMax: 4,
  /** The core's own handshake deadline: a handshake that slow is not a LAN member's. */
  handshakeDeadlineMs: CoreDefaults.handshakeTimeoutMs,
  /** 4096 address groups remembered (~100 bytes each); an idle one is forgotten first. */
  groupsMax: 4096,
};

/** Why a connection was refused. */
export type GuardRefusal = 'rate' | 'busy' | 'half-open' | 'half-open-address';

export type GuardVerdict =
  | { readonly admitted: true; readonly ticket: number }
  | { readonly admitted: false; readonly refusal: GuardRefusal };

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

interface Group extends Bucket {
  halfOpen: number;
  /** A handshake from this group completed once. */
  member: boolean;
}

interface Ticket {
  readonly group: string;
  readonly deadlineMs: number;
}

export class InboundGuard {
  readonly limits: InboundGuardLimits;
  private readonly groups = new Map<string, Group>();
  /** Half-open tickets in admission order, so deadlines are in order too. */
  private readonly tickets = new Map<number, Ticket>();
  private readonly shared: Bucket;
  private nextTicket = 1;
  private lastNowMs = -Infinity;

  /** @throws RangeError if a limit is not a positive integer. */
  constructor(limits: Partial<InboundGuardLimits> = {}) {
    this.limits = { ...InboundGuardDefaults, ...limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `inbound guard limit ${name} must be a positive integer, got ${value}`,
        );
      }
    }
    this.shared = { tokens: this.limits.globalBurst, updatedAtMs: -Infinity };
  }

  /** Connections accepted and not yet settled. */
  get halfOpenCount(): number {
    return this.tickets.size;
  }

  /**
   * Decides on one accepted connection from `address` (as `socket.remoteAddress` gives it),
   * which arrived on `localAddress` (`socket.localAddress`). An admitted connection holds a
   * half-open slot until `settle(ticket)`.
   */
  admit(address: string, nowMs: number, localAddress?: string): GuardVerdict {
    const now = this.clock(nowMs);
    if (this.tickets.size >= this.limits.halfOpenMax) return refused('half-open');
    const key = addressGroup(address, localAddress);
    const group = this.group(key, now);
    if (group.halfOpen >= this.limits.halfOpenPerAddressMax) return refused('half-open-address');
    if (group.tokens < 1) return refused('rate');
    if (!group.member) {
      refill(this.shared, now, this.limits.globalBurst, this.limits.globalRefillIntervalMs);
      if (this.shared.tokens < 1) return refused('busy');
      this.shared.tokens -= 1;
    }
    group.tokens -= 1;
    group.halfOpen += 1;
    const ticket = this.nextTicket++;
    this.tickets.set(ticket, { group: key, deadlineMs: now + this.limits.handshakeDeadlineMs });
    return { admitted: true, ticket };
  }

  /**
   * The connection's handshake `completed` (its group is a member's from now on), or it closed:
   * its half-open slot frees. Idempotent.
   */
  settle(ticket: number, completed = false): void {
    const entry = this.tickets.get(ticket);
    if (entry === undefined) return;
    this.tickets.delete(ticket);
    const group = this.groups.get(entry.group);
    if (group === undefined) return;
    group.halfOpen -= 1;
    if (completed) group.member = true;
  }

  /** Settles and returns the tickets whose handshake deadline has passed; the host closes them. */
  overdue(nowMs: number): number[] {
    const now = this.clock(nowMs);
    const due: number[] = [];
    for (const [ticket, entry] of this.tickets) {
      if (entry.deadlineMs > now) break; // admission order is deadline order
      due.push(ticket);
    }
    for (const ticket of due) this.settle(ticket);
    return due;
  }

  /** When `overdue` next has something to return, or undefined with nothing half-open. */
  nextDeadlineMs(): number | undefined {
    for (const entry of this.tickets.values()) return entry.deadlineMs;
    return undefined;
  }

  /** A non-decreasing reading of the caller's clock (a clock that steps back is held still). */
  private clock(nowMs: number): number {
    this.lastNowMs = Math.max(this.lastNowMs, nowMs);
    return this.lastNowMs;
  }

  /** The group's entry with its bucket refilled to `now`, most recently used last. */
  private group(key: string, now: number): Group {
    let group = this.groups.get(key);
    if (group === undefined) {
      this.forgetIdleGroup();
      group = { tokens: this.limits.burst, updatedAtMs: now, halfOpen: 0, member: false };
    } else {
      this.groups.delete(key);
      refill(group, now, this.limits.burst, this.limits.refillIntervalMs);
    }
    this.groups.set(key, group);
    return group;
  }

  /**
   * At `groupsMax`, forgets the least recently used stranger's group with nothing half-open.
   * Forgetting gives that address a full bucket again, no more than a new address would get.
   */
  private forgetIdleGroup(): void {
    if (this.groups.size < this.limits.groupsMax) return;
    for (const [key, group] of this.groups) {
      if (group.halfOpen === 0 && !group.member) {
        this.groups.delete(key);
        return;
      }
    }
  }
}

/** Adds the tokens earned since the bucket's last update, up to `burst`. */
function refill(bucket: Bucket, now: number, burst: number, intervalMs: number): void {
  const earned = (now - bucket.updatedAtMs) / intervalMs;
  bucket.tokens = Math.min(burst, bucket.tokens + earned);
  bucket.updatedAtMs = now;
}

function refused(refusal: GuardRefusal): GuardVerdict {
  return { admitted: false, refusal };
}

/**
 * The source an address counts as: IPv4 as is, IPv4-mapped IPv6 as its IPv4 address, other IPv6
 * as its /64 prefix (`2001:db8:1:2::/64`), except a neighbour's (link-local, or in the /64 of
 * `localAddress`), which counts alone (`2001:db8:1:2:0:0:0:9`). Anything else is its own group.
 */
export function addressGroup(address: string, localAddress?: string): string {
  const groups = ipv6Groups(address);
  if (groups === undefined) return address; // IPv4 (a /32), or no address at all
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  const local = localAddress === undefined ? undefined : ipv6Groups(localAddress);
  const linkLocal = (groups[0]! & 0xffc0) === 0xfe80;
  const sameLan = local !== undefined && groups.slice(0, 4).every((g, i) => g === local[i]);
  const hex = (part: number[]) => part.map((g) => g.toString(16)).join(':');
  return linkLocal || sameLan ? hex(groups) : `${hex(groups.slice(0, 4))}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (a zone, `%eth0`, dropped), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.split('%')[0]!;
  return isIPv6(bare) ? expandIPv6(bare) : undefined;
}

/** The eight 16-bit groups of a valid IPv6 address (with `::` and a dotted IPv4 tail). */
function expandIPv6(address: string): number[] {
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
