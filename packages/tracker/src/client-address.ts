/**
 * Which rate-limit bucket a source address spends. IPv4 addresses each have their own; IPv6
 * addresses share one per /64, since a single host (or a single customer of an ISP) is routinely
 * given a whole /64 and could otherwise spend a fresh bucket per address. The result is a bucket
 * key only: it is never stored or shown.
 */

/** The eight 16-bit groups of an IPv6 literal, or undefined when `address` is not one. */
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.split('%')[0]!;
  const halves = bare.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups = part.split(':');
    if (!groups.every((group) => /^[0-9a-f]{1,4}$/i.test(group))) return undefined;
    return groups.map((group) => parseInt(group, 16));
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const missing = 8 - head.length - tail.length;
  return missing >= 1 ? [...head, ...new Array<number>(missing).fill(0), ...tail] : undefined;
}

/** The bucket key of a source address: the address itself, or its /64 for IPv6. */
export function rateLimitKey(address: string): string {
  if (!address.includes(':')) return address;
  const groups = ipv6Groups(address);
  if (groups === undefined) return address;
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}
