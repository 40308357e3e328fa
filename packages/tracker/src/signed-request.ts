/**
 * Signed tracker requests: the bytes a device signs to prove a state-changing call is its own.
 *
 * A signed request is a JSON body that names the device's Ed25519 public key (`publicKey`,
 * 64 lowercase hex) and the device's wall-clock time (`timestampMs`), plus the header
 * `PeaPod-Signature: <128 lowercase hex>`: an Ed25519 signature, by that key, over
 *
 *   "PeaPod/1 tracker"            16 bytes, ASCII
 *   | u8  m  + m bytes            the HTTP method, upper case ASCII ("PUT")
 *   | u16 p  + p bytes            the request path exactly as sent, without the query
 *                                 ("/api/v1/nodes/<deviceIdHex>/heartbeat")
 *   | u64 timestampMs             big-endian, the body's `timestampMs`
 *   | 32 bytes                    SHA-256 of the body bytes exactly as sent
 *
 * Length prefixes keep the fields unambiguous; the method and path bind the signature to one
 * endpoint (a heartbeat cannot be replayed as an unregister); the body hash binds every field.
 * The tracker refuses a timestamp outside +-30 s of its clock and, per device, any timestamp
 * not above the last one it accepted (docs/tracker.md, "Replays"), so a captured request can
 * never be used again. Used by the client to sign and by the server to check.
 */
import { createHash } from 'node:crypto';

export const SIGNED_REQUEST_DOMAIN = 'PeaPod/1 tracker';
/** The header that carries the signature. */
export const SIGNATURE_HEADER = 'peapod-signature';

/** SHA-256 of `data`, as a plain Uint8Array. */
export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/**
 * The bytes a signed request's signature covers.
 * @throws RangeError when the method or path is not ASCII or too long, or the timestamp is not a
 *   non-negative safe integer (caller bugs: the server only passes values it has checked).
 */
export function signedRequestMessage(
  method: string,
  path: string,
  timestampMs: number,
  body: Uint8Array,
): Uint8Array {
  if (!/^[\x21-\x7e]{1,16}$/.test(method)) throw new RangeError('method: 1-16 ASCII characters');
  if (!/^[\x21-\x7e]{1,2048}$/.test(path)) throw new RangeError('path: 1-2048 ASCII characters');
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0)
    throw new RangeError('timestampMs: a non-negative safe integer');
  const domain = Buffer.from(SIGNED_REQUEST_DOMAIN, 'ascii');
  const out = Buffer.alloc(domain.length + 1 + method.length + 2 + path.length + 8 + 32);
  let offset = domain.copy(out, 0);
  offset = out.writeUInt8(method.length, offset);
  offset += out.write(method, offset, 'ascii');
  offset = out.writeUInt16BE(path.length, offset);
  offset += out.write(path, offset, 'ascii');
  offset = out.writeBigUInt64BE(BigInt(timestampMs), offset);
  out.set(sha256(body), offset);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
