/**
 * Error sentences for a person: what failed, why, what to do next.
 *
 * The daemon's messages already say what failed ("example.com: certificate has expired
 * (CERT_HAS_EXPIRED)"); a TLS or network error code in them is a fact a curl user knows how to
 * act on only with a hint, so `explainError` appends the next step for the codes people meet:
 * an expired, self-signed or unknown-issuer certificate, a certificate for another host name, a
 * refused or unknown host. Messages without such a code come back unchanged. The daemon
 * verifies origins' certificates with Node's CA store, so an extra CA is the daemon's
 * `NODE_EXTRA_CA_CERTS`, never a switch that turns verification off.
 */

const TRUST_HINT =
  'If you trust this origin, give its CA certificate to the daemon: restart it with ' +
  'NODE_EXTRA_CA_CERTS=/path/to/ca.pem peapod daemon.';

/** Next steps by error code (Node's TLS and socket codes). */
const HINTS: ReadonlyArray<readonly [RegExp, string]> = [
  [
    /\bCERT_HAS_EXPIRED\b/,
    "The origin's TLS certificate has expired (or this machine's clock is wrong): check the " +
      'date here, and tell the site owner; PeaPod does not download over an untrusted connection.',
  ],
  [
    /\bCERT_NOT_YET_VALID\b/,
    "The origin's TLS certificate is not valid yet: check this machine's clock (`date`).",
  ],
  [
    /\b(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\b/,
    `The origin's TLS certificate is self-signed, so nothing vouches for it. ${TRUST_HINT}`,
  ],
  [
    /\b(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?)\b/,
    `The origin's TLS certificate was issued by a CA this machine does not know. ${TRUST_HINT}`,
  ],
  [
    /\bERR_TLS_CERT_ALTNAME_INVALID\b/,
    "The origin's TLS certificate is for another host name: check the URL's host (use the name " +
      'the certificate was issued for, not an IP address or an alias).',
  ],
  [/\bECONNREFUSED\b/, 'Nothing listens at that address and port: check the URL.'],
  [
    /\b(ENOTFOUND|EAI_AGAIN)\b/,
    "The origin's host name does not resolve: check the URL and this machine's DNS.",
  ],
  [
    /\b(ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)\b/,
    'The origin cannot be reached from this machine: check the URL and the network.',
  ],
];

/** `message`, with the next step appended when it carries a TLS or network error code. */
export function explainError(message: string): string {
  for (const [pattern, hint] of HINTS) {
    if (pattern.test(message)) return `${message.replace(/[.\s]+$/, '')}. ${hint}`;
  }
  return message;
}
