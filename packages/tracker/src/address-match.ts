/**
 * Whether a registration's record points where its request came from. A record is
 * self-signed, so without this anyone could register records whose address is a victim's (or
 * 127.0.0.1) and have the tracker hand it to every node that discovers. The rule: every address
 * in the record is an IP literal equal to the request's observed source address (IPv4-mapped
 * IPv6 compared as IPv4). A DNS name in a record is refused here: the tracker cannot tell whose
 * it is without resolving, and resolving would make it a DNS client of its callers.
 *
 * `sourceAddress` is what the tracker takes as the source: the socket's remote address, or with
 * `trustProxy` the rightmost X-Forwarded-For entry (the one the operator's own load balancer
 * appended; entries to its left are the client's to forge).
 */
import { isIP } from 'node:net';

/** One spelling of an IP literal: lower case, IPv4-mapped IPv6 as IPv4, ::-compressed. */
export function normalizeIp(address: string): string | undefined {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const version = isIP(bare);
  if (version === 4) return bare;
  if (version !== 6) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped !== null) return mapped[1];
  // Canonical form through the URL parser (RFC 5952 compression, lower case).
  try {
    return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** The first record address that is not the source, or undefined when all are. Never throws. */
export function foreignAddress(addresses: readonly string[], observed: string): string | undefined {
  const source = normalizeIp(observed);
  for (const address of addresses) {
    if (source === undefined || normalizeIp(address) !== source) return address;
  }
  return undefined;
}

/**
 * The source address of a request: the socket's, or with `trustProxy` the rightmost valid
 * X-Forwarded-For entry (falling back to the socket's when there is none).
 */
export function sourceAddress(
  socketAddress: string,
  forwardedFor: string | string[] | undefined,
  trustProxy: boolean,
): string {
  const socket = normalizeIp(socketAddress) ?? socketAddress;
  if (!trustProxy || forwardedFor === undefined) return socket;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const last = header.split(',').at(-1)?.trim() ?? '';
  return normalizeIp(last) ?? socket;
}
