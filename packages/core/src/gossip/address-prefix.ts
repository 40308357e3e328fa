/**
 * The network group of a link's remote address, for the eclipse guard (active-view.ts): one
 * operator usually holds many addresses in one /24 (IPv4) or /48 (IPv6), so inbound links are
 * capped per group, as Bitcoin Core caps them per netgroup.
 *
 * Theory of operation: a pure parse of the address the host saw on the socket (never of a
 * peer's claim). IPv4 dotted quads give their first three octets; IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`) is the IPv4 address; other IPv6 addresses give their first three 16-bit
 * groups, `::` expanded and a zone (`%eth0`) dropped. Loopback (127.0.0.0/8, ::1) has no group:
 * every local test and tool connects from it, and a remote cannot reach this device from it.
 * Anything else (a name, garbage) is its own group, so it can only ever share a cap with itself.
 */

/** The group key of `address`, or undefined for loopback (no cap). Never throws. */
export function addressPrefix(address: string): string | undefined {
  if (typeof address !== 'string') return 'other:';
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const v4 = ipv4Octets(bare);
  if (v4 !== undefined) return v4[0] === 127 ? undefined : `v4:${v4[0]}.${v4[1]}.${v4[2]}`;
  const groups = ipv6Groups(bare);
  if (groups === undefined) return `other:${address}`;
  if (groups.every((g, i) => g === (i === 7 ? 1 : 0))) return undefined; // ::1
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) {
    const a = groups[6]! >> 8;
    if (a === 127) return undefined;
    return `v4:${a}.${groups[6]! & 0xff}.${groups[7]! >> 8}`;
  }
  return `v6:${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}`;
}

function ipv4Octets(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const octets: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    octets.push(value);
  }
  return octets;
}

/** The eight 16-bit groups of an IPv6 literal (a trailing dotted quad allowed), or undefined. */
function ipv6Groups(text: string): number[] | undefined {
  const zone = text.indexOf('%');
  const body = zone >= 0 ? text.slice(0, zone) : text;
  if (!body.includes(':') || body.length > 45) return undefined;
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const parse = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    const pieces = half.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = ipv4Octets(piece);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}
