/**
 * Which stranger addresses the daemon dials (DESIGN.md decision 14's public-address rule,
 * applied to gossip; docs/protocol.md §11, "Dialling learnt addresses").
 *
 * Theory of operation: a peer record is self-signed, so anyone can publish one whose address
 * is 127.0.0.1, a host of 10/8, the cloud metadata endpoint or a victim's server, and every node
 * that learns it (by gossip, a tracker or peers.db) would connect there. The core only orders
 * dials (`connect` outputs); the host asks this policy about each before it opens a socket.
 * - Pod dials (`trust: 'pod'`, LAN beacons) and the strangers the user named (`--peer`) are
 *   allowed as they are: the user chose them.
 * - Every other stranger dial must go to a public unicast address (`publicDestinations`,
 *   http/destination-policy.ts): for an IP literal that is checked here; for a DNS name the
 *   socket connects through `lookup`, which checks each address the name resolves to and refuses
 *   the dial when none is allowed. `--allow-private-peers` (off by default) lifts the address
 *   rule for LANs and tests on loopback.
 * - Each public IP address may be dialled at most `perAddressMax` times per `windowMs`
 *   (default 2 per 10 minutes) unless a dial to it completed its handshake: a link that came up
 *   refunds its charge (`linked`), so several real peers behind one NAT address stay reachable,
 *   while a set of records all aimed at one victim costs it at most 2 connections per node per
 *   10 minutes. Addresses allowed only by `--allow-private-peers` are not capped (tests run many
 *   daemons on 127.0.0.1). A refusal is a string the host reports as the dial's failure.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { publicDestinations, type DestinationPolicy } from './http/destination-policy.js';

/** A dial the core ordered, as the policy needs it. */
export interface StrangerDialOrder {
  readonly address: string;
  readonly port: number;
  readonly trust: 'pod' | 'stranger';
}

/** The policy's answer: a refusal (the dial fails with it), or how to connect. */
export type DialVerdict =
  { readonly refused: string } | { readonly refused?: undefined; readonly lookup?: LookupFunction };

export interface DialPolicyOptions {
  /** `--allow-private-peers`: dial loopback, private and link-local stranger addresses too. */
  readonly allowPrivate: boolean;
  /** The `--peer` strangers the user gave: always allowed. */
  readonly userGiven: readonly { readonly host: string; readonly port: number }[];
  /** Dials per public IP address per window that did not come up (default 2). */
  readonly perAddressMax?: number;
  /** The window of `perAddressMax` (default 10 minutes). */
  readonly windowMs?: number;
  /** The classification (default `publicDestinations`). */
  readonly classify?: DestinationPolicy;
  /** The monotonic clock (default `performance.now`). */
  readonly now?: () => number;
  /** The resolver for DNS names (default `dns.lookup`). */
  readonly resolve?: typeof dnsLookup;
}

export const DialPolicyDefaults = { perAddressMax: 2, windowMs: 10 * 60_000 } as const;

export class StrangerDialPolicy {
  private readonly perAddressMax: number;
  private readonly windowMs: number;
  private readonly classify: DestinationPolicy;
  private readonly now: () => number;
  private readonly resolve: typeof dnsLookup;
  private readonly userGiven: Set<string>;
  /** Charged dial times per normalized IP address, oldest first. */
  private readonly charges = new Map<string, number[]>();
  /** Dials refused since start, for logs and tests. */
  refusedCount = 0;

  constructor(private readonly options: DialPolicyOptions) {
    this.perAddressMax = options.perAddressMax ?? DialPolicyDefaults.perAddressMax;
    this.windowMs = options.windowMs ?? DialPolicyDefaults.windowMs;
    this.classify = options.classify ?? publicDestinations;
    this.now = options.now ?? (() => performance.now());
    this.resolve = options.resolve ?? dnsLookup;
    this.userGiven = new Set(options.userGiven.map(({ host, port }) => `${host}|${port}`));
  }

  /** Whether, and how, to open the socket of `dial` (module comment). Never throws. */
  check(dial: StrangerDialOrder): DialVerdict {
    if (dial.trust === 'pod' || this.userGiven.has(`${dial.address}|${dial.port}`)) return {};
    if (isIP(dial.address) !== 0) {
      const refused = this.admit(dial.address);
      if (refused !== undefined) this.refusedCount += 1;
      return refused === undefined ? {} : { refused };
    }
    return { lookup: this.lookupFor() };
  }

  /** A link to `remoteAddress` (`ip:port`) came up: one charged dial of that IP is refunded. */
  linked(remoteAddress: string): void {
    const colon = remoteAddress.lastIndexOf(':');
    const ip = normalize(colon < 0 ? remoteAddress : remoteAddress.slice(0, colon));
    const list = this.charges.get(ip);
    if (list === undefined) return;
    list.pop();
    if (list.length === 0) this.charges.delete(ip);
  }

  /** The refusal of one IP address, charging it when allowed. */
  private admit(address: string): string | undefined {
    const classified = this.classify(address);
    if (classified !== undefined) {
      if (this.options.allowPrivate) return undefined;
      return `${classified}; a learnt stranger address must be public (--allow-private-peers allows it)`;
    }
    const ip = normalize(address);
    const nowMs = this.now();
    const list = (this.charges.get(ip) ?? []).filter((at) => nowMs - at < this.windowMs);
    if (list.length >= this.perAddressMax) {
      this.charges.set(ip, list);
      return `${address} was dialled ${list.length} times in ${Math.round(this.windowMs / 60_000)} min without a link (the per-address cap)`;
    }
    list.push(nowMs);
    this.charges.set(ip, list);
    this.prune(nowMs);
    return undefined;
  }

  /** Drops addresses whose charges all left the window, so the map stays bounded. */
  private prune(nowMs: number): void {
    if (this.charges.size < 4096) return;
    for (const [ip, list] of this.charges) {
      if (list.every((at) => nowMs - at >= this.windowMs)) this.charges.delete(ip);
    }
  }

  /** A `net.connect` lookup that resolves a name and keeps only addresses `admit` allows. */
  private lookupFor(): LookupFunction {
    return (hostname, options, callback) => {
      const all: LookupAllOptions = { ...options, all: true };
      this.resolve(hostname, all, (error, addresses: LookupAddress[]) => {
        if (error !== null) {
          callback(error, '', 0);
          return;
        }
        const refusals: string[] = [];
        for (const entry of addresses) {
          const refused = this.admit(entry.address);
          if (refused === undefined) {
            if (options.all === true) callback(null, [entry]);
            else callback(null, entry.address, entry.family);
            return;
          }
          refusals.push(refused);
        }
        this.refusedCount += 1;
        const detail = refusals[0] ?? `${hostname} resolves to no address`;
        callback(
          Object.assign(new Error(`${hostname}: ${detail}`), { code: 'EPEAPODPOLICY' }),
          '',
          0,
        );
      });
    };
  }
}

/** One spelling per address (IPv4-mapped IPv6 as IPv4). */
function normalize(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}
