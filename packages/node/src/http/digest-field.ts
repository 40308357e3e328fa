/**
 * `Repr-Digest` and `Content-Digest` (RFC 9530): digests an origin states for an object.
 *
 * Theory of operation: the value is a Structured Field Dictionary (RFC 8941) whose keys are
 * algorithms from the IANA Hash Algorithms for HTTP Digest Fields registry and whose values are
 * Byte Sequences (RFC 9530 sections 2, 3 and 5). Only the two algorithms the registry marks
 * "Active", `sha-256` and `sha-512`, are read; the deprecated ones (md5, sha, unixsum, ...)
 * must not be relied on (section 5). A member of another type, or whose length is not the
 * algorithm's, is ignored: the origin then states no digest of that algorithm. Parameters are
 * ignored (the RFC defines none).
 *
 * Which field covers what (RFC 9530) is the caller's business: `Repr-Digest` covers the whole
 * selected representation, also in a 206; `Content-Digest` covers only the bytes of that one
 * message's content, so it describes the object only in a full 200 response to a GET.
 */
import { parseDictionary, serializeDictionary, type Member } from './structured-field.js';

/** The algorithms read from digest fields, with their digest lengths in bytes. */
export const DIGEST_FIELD_ALGORITHMS = { 'sha-256': 32, 'sha-512': 64 } as const;

export type DigestFieldAlgorithm = keyof typeof DIGEST_FIELD_ALGORITHMS;

/** The digests one field states. */
export type FieldDigests = Partial<Record<DigestFieldAlgorithm, Uint8Array>>;

/**
 * Reads the sha-256 and sha-512 members of a `Repr-Digest` or `Content-Digest` value. Never
 * throws; an absent or invalid field states nothing (`{}`).
 * @example parseDigestField('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:')['sha-256']?.length // 32
 */
export function parseDigestField(value: string | undefined): FieldDigests {
  const dictionary = parseDictionary(value);
  const digests: FieldDigests = {};
  if (dictionary === undefined) return digests;
  for (const [algorithm, length] of Object.entries(DIGEST_FIELD_ALGORITHMS)) {
    const member = dictionary.get(algorithm);
    if (
      member?.kind === 'item' &&
      member.value.type === 'byte-sequence' &&
      member.value.value.length === length
    ) {
      digests[algorithm as DigestFieldAlgorithm] = member.value.value;
    }
  }
  return digests;
}

/**
 * Formats digests as a field value, e.g. `sha-256=:...:`; `parseDigestField` reads it back.
 * @throws RangeError if a digest has the wrong length for its algorithm.
 */
export function formatDigestField(digests: FieldDigests): string {
  const dictionary = new Map<string, Member>();
  for (const [algorithm, length] of Object.entries(DIGEST_FIELD_ALGORITHMS)) {
    const digest = digests[algorithm as DigestFieldAlgorithm];
    if (digest === undefined) continue;
    if (digest.length !== length) {
      throw new RangeError(`${algorithm}: must be ${length} bytes, got ${digest.length}`);
    }
    dictionary.set(algorithm, {
      kind: 'item',
      value: { type: 'byte-sequence', value: digest },
      parameters: new Map(),
    });
  }
  return serializeDictionary(dictionary);
}
