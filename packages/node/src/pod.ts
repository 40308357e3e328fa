/**
 * Pods: pod secrets, join codes and pod IDs (DESIGN.md decision 5).
 *
 * Theory of operation
 * - A pod is the set of devices that hold one 32-byte secret. The secret is the Noise PSK of
 *   their peer links (XXpsk3) and keys their discovery beacons; whoever holds it is a member.
 *   `createPod()` draws a fresh one from node:crypto.
 * - A join code carries the secret from one device to another, typed or pasted by a person:
 *
 *     peapod1-XXXXXXXC-XXXXXXXC-XXXXXXXC-XXXXXXXC-XXXXXXXC-XXXXXXXC-XXXXXXXC-XXXXXXXC
 *
 *   "peapod" and the format version "1"; then the RFC 4648 base32 of 35 bytes (the secret and a
 *   3-byte checksum) in 8 groups of 7 characters, each followed by a Luhn mod 32 check character
 *   `C` (the same check as Device IDs, identity.ts). The group checks catch every single typo
 *   and every swap of neighbours (but A <-> 7) and say which group holds it; the checksum,
 *   SHA-256("peapod/join-code/v1" || secret)[0..3], catches what they miss (several typos in a
 *   group) with a chance of 1 in 2^24 of letting one through. Without it a mistyped code would
 *   silently make a new, empty pod. Parsing accepts any case, any or no separators and the
 *   look-alikes 0, 1, 8 for O, I, B, like Device IDs.
 * - A pod ID names a pod for people ("which pod is this device in?") without revealing the
 *   secret: the first 40 bits of SHA-256("peapod/pod-id/v1" || secret), as 8 base32 characters
 *   in two groups of 4. It is a label for comparison, not a credential.
 * - Errors: a join code that cannot be read throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT with a
 *   message for a person that starts "Invalid join code:" and says what to do.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  BASE32_ALPHABET,
  PeapodError,
  POD_SECRET_BYTES,
  base32Encode,
  luhnCheckCharacter,
} from '@peapod/core';

/** The join code format version this implementation writes and reads. */
export const JOIN_CODE_VERSION = 1;
/** What every join code of this version starts with. */
export const JOIN_CODE_PREFIX = `peapod${JOIN_CODE_VERSION}-`;

const CHECKSUM_BYTES = 3;
const GROUPS = 8;
const GROUP_DATA_CHARS = 7; // 8 * 7 * 5 bits = 280 bits = 35 bytes exactly, no padding
const GROUP_CHARS = GROUP_DATA_CHARS + 1;
const CODE_CHARS = GROUPS * GROUP_CHARS; // 64, without prefix and separators
const LOOK_ALIKES: Readonly<Record<string, string>> = { '0': 'O', '1': 'I', '8': 'B' };
/** '-', whitespace, Unicode dashes and minus, zero-width characters (as in identity.ts). */
const SEPARATORS = /[-\s\u2010-\u2015\u2212\u200b-\u200d\ufeff]/gu;

/** A fresh random 32-byte pod secret. */
export function createPod(): Uint8Array {
  return new Uint8Array(randomBytes(POD_SECRET_BYTES));
}

function checkSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.length !== POD_SECRET_BYTES) {
    throw new PeapodError(
      'PEAPOD_ERR_INVALID_ARGUMENT',
      `secret: a pod secret is a ${POD_SECRET_BYTES}-byte Uint8Array`,
    );
  }
}

function taggedHash(tag: string, secret: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(tag).update(secret).digest());
}

/**
 * The pod ID people see: 8 base32 characters in two groups of 4. It reveals nothing useful
 * about the secret.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `secret` is not 32 bytes.
 * @example
 * podId(new Uint8Array(32)); // => 'DL4K-QD7M' (the same secret always gives the same ID)
 */
export function podId(secret: Uint8Array): string {
  checkSecret(secret);
  const text = base32Encode(taggedHash('peapod/pod-id/v1', secret).subarray(0, 5));
  return `${text.slice(0, 4)}-${text.slice(4)}`;
}

/**
 * The join code of a pod secret.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `secret` is not 32 bytes.
 * @example
 * const code = formatJoinCode(secret); // 'peapod1-' and 8 groups of 8 characters
 * equalBytes(parseJoinCode(code), secret); // => true
 */
export function formatJoinCode(secret: Uint8Array): string {
  checkSecret(secret);
  const checksum = taggedHash('peapod/join-code/v1', secret).subarray(0, CHECKSUM_BYTES);
  const data = base32Encode(Uint8Array.of(...secret, ...checksum));
  const groups: string[] = [];
  for (let group = 0; group < GROUPS; group++) {
    const chars = data.slice(group * GROUP_DATA_CHARS, (group + 1) * GROUP_DATA_CHARS);
    groups.push(chars + luhnCheckCharacter(BASE32_ALPHABET, chars));
  }
  return JOIN_CODE_PREFIX + groups.join('-');
}

function invalidJoinCode(problem: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `Invalid join code: ${problem}`);
}

/**
 * Reads a join code as a person typed or pasted it and returns the pod secret.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `text` is not a join code. The message
 *   says what is wrong: a missing "peapod1-" prefix, an unsupported version, a character that is
 *   not allowed (and where), the wrong length, the group that holds a typo, or a checksum that
 *   does not match.
 * @example
 * parseJoinCode('peapod1-AAAA'); // throws: "Invalid join code: expected 64 characters after ..."
 */
export function parseJoinCode(text: string): Uint8Array {
  if (typeof text !== 'string') {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', 'text: must be a string');
  }
  const compact = text.replace(SEPARATORS, '');
  const prefix = compact.slice(0, 6).toLowerCase();
  if (prefix !== 'peapod') {
    invalidJoinCode(
      `a join code starts with "${JOIN_CODE_PREFIX}". Copy the whole code from a device of ` +
        'the pod (`peapod code` prints it).',
    );
  }
  const version = compact.charAt(6);
  if (version !== String(JOIN_CODE_VERSION)) {
    invalidJoinCode(
      `this PeaPod reads join codes of version ${JOIN_CODE_VERSION}, and this one is version ` +
        `"${version}". Update PeaPod on this device, or create the code with this version.`,
    );
  }
  let chars = '';
  for (const char of compact.slice(7)) {
    const upper = char >= 'a' && char <= 'z' ? char.toUpperCase() : (LOOK_ALIKES[char] ?? char);
    if (!BASE32_ALPHABET.includes(upper) || upper.length !== 1) {
      invalidJoinCode(
        `character "${char}" is not allowed (after "${JOIN_CODE_PREFIX}" only the letters A-Z ` +
          'and the digits 2-7 appear). Check the code for a typo.',
      );
    }
    chars += upper;
  }
  if (chars.length !== CODE_CHARS) {
    invalidJoinCode(
      `expected ${CODE_CHARS} characters after "${JOIN_CODE_PREFIX}" (${GROUPS} groups of ` +
        `${GROUP_CHARS}), got ${chars.length}. Copy the whole code.`,
    );
  }
  let data = '';
  for (let group = 0; group < GROUPS; group++) {
    const groupData = chars.slice(group * GROUP_CHARS, group * GROUP_CHARS + GROUP_DATA_CHARS);
    if (luhnCheckCharacter(BASE32_ALPHABET, groupData) !== chars[(group + 1) * GROUP_CHARS - 1]) {
      invalidJoinCode(
        `group ${group + 1} of ${GROUPS} has a typo. Compare it with the code shown on the ` +
          'device that created the pod.',
      );
    }
    data += groupData;
  }
  const bytes = new Uint8Array(POD_SECRET_BYTES + CHECKSUM_BYTES);
  let buffer = 0;
  let bits = 0;
  let offset = 0;
  for (const char of data) {
    buffer = ((buffer << 5) | BASE32_ALPHABET.indexOf(char)) & 0x1fff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[offset++] = (buffer >>> bits) & 0xff;
    }
  }
  const secret = bytes.slice(0, POD_SECRET_BYTES);
  const checksum = taggedHash('peapod/join-code/v1', secret).subarray(0, CHECKSUM_BYTES);
  if (!checksum.every((byte, i) => byte === bytes[POD_SECRET_BYTES + i])) {
    invalidJoinCode(
      'it has typos that the group checks cannot locate (its checksum does not match). Copy ' +
        'it again from the device that created the pod.',
    );
  }
  return secret;
}
