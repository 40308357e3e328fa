/**
 * Reason codes: why a session or link ended, or why a request failed. They travel in GOODBYE
 * frames and appear in `closed` events, so they are part of the wire format (docs/protocol.md,
 * "Reason codes"). Append only; never renumber.
 */
export const ReasonCode = {
  /** Orderly close requested by the application or user. */
  normal: 0,
  /** The sender is shutting down (daemon stop, tab closed). */
  goingAway: 1,
  /** A frame or handshake message did not parse, or broke the protocol's rules. */
  protocolError: 2,
  /** A transport record failed authentication: tampered, replayed, reordered or misrouted. */
  decryptFailed: 3,
  /** The Noise handshake failed (bad message, wrong pre-shared key, low-order key). */
  handshakeFailed: 4,
  /** The identity proof in the handshake payload did not verify. */
  identityInvalid: 5,
  /** The remote proved an identity, but not the one this side expected or allows. */
  identityRejected: 6,
  /** No protocol version in common (HELLO negotiation). */
  versionUnsupported: 7,
  /** A record or frame exceeded its size bound. */
  frameTooLarge: 8,
  /** The remote stayed silent past the idle timeout. */
  timeout: 9,
  /** The byte stream ended in the middle of a record. */
  truncated: 10,
  /** The remote sent data that failed integrity checks too often. */
  banned: 11,
  /** The remote offered a Noise suite this side does not accept. */
  suiteUnsupported: 12,
  /** A local failure unrelated to the remote's behaviour. */
  internalError: 13,
  /** A second link to the same device replaced this one. */
  duplicateLink: 14,
  /** The transport ended without a GOODBYE (process killed, cable pulled, socket error). */
  connectionLost: 15,
} as const;

export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];

const reasonNames = new Map<number, string>(
  Object.entries(ReasonCode).map(([name, code]) => [code, name]),
);

/** The reason's name, e.g. `decryptFailed`, or `unknown(N)` for a code this version lacks. */
export function reasonName(code: number): string {
  return reasonNames.get(code) ?? `unknown(${code})`;
}
