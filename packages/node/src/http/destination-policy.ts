/**
 * Which addresses a helper may connect to when it fetches for a pod peer (DESIGN.md decision 14).
 *
 * Theory of operation: a FETCH_ASSIGN makes this device send a request of a peer's choosing,
 * with the peer's headers, and send the answer back. Aimed at this device's own network (its
 * loopback services, the cloud metadata endpoint 169.254.169.254, a router's admin page, the
 * LAN behind it) that is a way in for any pod member. So for peers only public unicast
 * addresses are allowed: `addressRefusal` classifies one address with `ipaddr.js` and says why
 * it is refused, or returns undefined when it is public.
 *
 * Refused: every IPv4 range `ipaddr.js` names other than `unicast` (unspecified 0.0.0.0/8,
 * loopback, link-local, RFC 1918 private, CGNAT 100.64.0.0/10, multicast, broadcast, the
 * reserved and documentation ranges, 240.0.0.0/4, AS112, AMT); for IPv6 everything outside
 * 2000::/3 (loopback, unspecified, link-local, ULA fc00::/7, site-local, multicast, discard,
 * IPv4-compatible ::/96, IPv4-translated) and the special ranges inside it (2001::/23 IETF
 * assignments with Teredo and benchmarking, documentation 2001:db8::/32 and 3fff::/20,
 * ORCHID). IPv6 forms that carry an IPv4 address the connection ends up at are judged by that
 * address: IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16; the local-use NAT64
 * prefix 64:ff9b:1::/48 is refused outright. Zoned addresses (fe80::1%eth0) are refused, and so
 * is any string that is not a plain IPv4 or IPv6 address (as `node:net` `isIP` reads them: no
 * octal or hexadecimal IPv4 forms).
 *
 * `publicDestinations` adds this device's own interface addresses: its public address reaches
 * its own services too (bound to 0.0.0.0), past a firewall that only filters inbound traffic.
 *
 * This module only classifies; origin-request.ts applies a policy to the address a socket is
 * about to connect to (after DNS) and has connected to, on every redirect hop.
 */
import ipaddr from 'ipaddr.js';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Judges one address a fetch would connect to: undefined when allowed, else why it is refused
 * (a phrase such as "127.0.0.1 is a loopback address").
 */
export type DestinationPolicy = (address: string) => string | undefined;

const IPV4_LABELS: Readonly<Record<string, string>> = {
  unspecified: 'an unspecified ("this network")',
  broadcast: 'a broadcast',
  multicast: 'a multicast',
  linkLocal: 'a link-local',
  loopback: 'a loopback',
  carrierGradeNat: 'a shared (CGNAT)',
  private: 'a private (RFC 1918)',
  reserved: 'a reserved or documentation',
  as112: 'an AS112',
  amt: 'an AMT relay',
};

const IPV6_LABELS: Readonly<Record<string, string>> = {
  unspecified: 'an unspecified',
  linkLocal: 'a link-local',
  multicast: 'a multicast',
  loopback: 'a loopback',
  uniqueLocal: 'a unique local (ULA)',
  deprecatedSiteLocal: 'a site-local',
  discard: 'a discard-only',
  rfc6145: 'an IPv4-translated',
  rfc6052: 'a local-use NAT64',
  teredo: 'a Teredo',
  benchmarking: 'a benchmarking',
  amt: 'an AMT relay',
  as112v6: 'an AS112',
  deprecatedOrchid: 'an ORCHID',
  orchid2: 'an ORCHID',
  droneRemoteIdProtocolEntityTags: 'a drone remote ID',
  segmentRouting: 'a segment routing',
  reserved: 'a reserved or documentation',
};

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');
const SIX_TO_FOUR = ipaddr.parseCIDR('2002::/16');

/**
 * Why `address` is not a public unicast address, or undefined when it is one (module comment).
 * Never throws, whatever the string.
 * @example
 * addressRefusal('169.254.169.254'); // => '169.254.169.254 is a link-local address'
 * addressRefusal('::ffff:10.0.0.1'); // => '::ffff:10.0.0.1 is a private (RFC 1918) address (as IPv4 10.0.0.1)'
 * addressRefusal('93.184.215.14'); // => undefined
 */
export function addressRefusal(address: string): string | undefined {
  const shown = JSON.stringify(address).slice(1, -1).slice(0, 64);
  if (address.includes('%')) return `${shown} is a zoned (link-scoped) address`;
  const version = isIP(address);
  if (version === 0) return `${shown} is not an IP address`;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = version === 4 ? ipaddr.IPv4.parse(address) : ipaddr.IPv6.parse(address);
  } catch {
    return `${shown} is not an IP address`;
  }
  const kind = parsed instanceof ipaddr.IPv4 ? v4Refusal(parsed) : v6Refusal(parsed);
  if (kind === undefined) return undefined;
  return `${shown} is ${kind.label} address${kind.via === undefined ? '' : ` (as IPv4 ${kind.via})`}`;
}

interface Refusal {
  readonly label: string;
  /** The embedded IPv4 address the verdict is about, for IPv6 forms that carry one. */
  readonly via?: string;
}

function v4Refusal(address: ipaddr.IPv4): Refusal | undefined {
  const range = address.range();
  if (range === 'unicast') return undefined;
  return { label: IPV4_LABELS[range] ?? `a special-purpose (${range})` };
}

function v6Refusal(address: ipaddr.IPv6): Refusal | undefined {
  const embedded = embeddedIPv4(address);
  if (embedded !== undefined) {
    const inner = v4Refusal(embedded);
    return inner === undefined ? undefined : { label: inner.label, via: embedded.toString() };
  }
  const range = address.range();
  if (range !== 'unicast') return { label: IPV6_LABELS[range] ?? `a special-purpose (${range})` };
  if (!address.match(GLOBAL_UNICAST_V6)) return { label: 'a non-global' };
  return undefined;
}

/** The IPv4 address an IPv4-mapped, NAT64 (well-known prefix) or 6to4 address leads to. */
function embeddedIPv4(address: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const p = address.parts;
  const fromWords = (high: number, low: number) =>
    new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
  if (address.isIPv4MappedAddress() || address.match(NAT64_WELL_KNOWN)) {
    return fromWords(p[6]!, p[7]!);
  }
  if (address.match(SIX_TO_FOUR)) return fromWords(p[1]!, p[2]!);
  return undefined;
}

/**
 * The policy for fetches on behalf of a peer: `addressRefusal`, then `ownAddressRefusal`.
 */
export const publicDestinations: DestinationPolicy = (address) =>
  addressRefusal(address) ?? ownAddressRefusal(address);

/**
 * Refuses an address of this device's own interfaces (read at each check: interfaces come and
 * go), whatever its kind.
 */
export function ownAddressRefusal(
  address: string,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string | undefined {
  const normal = normalize(address);
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) {
      if (normalize(entry.address) === normal) return `${address} is an address of this device`;
    }
  }
  return undefined;
}

/** One spelling per address (IPv4-mapped IPv6 as IPv4), for comparing. */
function normalize(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}
