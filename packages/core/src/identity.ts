/**
 * Device identity (DESIGN.md decision 3). Each device has an Ed25519 key pair; its Device ID is
 * the SHA-256 of the Ed25519 public key (32 bytes, `deriveDeviceId`), and the Noise handshake
 * proves possession of the key (secure-session.ts).
 *
 * People read Device IDs aloud, type them from another screen and paste them into chat, so the
 * text form is built to survive that, after Syncthing's Device IDs:
 *
 *   raw ID (32 bytes)
 *     -> RFC 4648 base32 (A-Z, 2-7), no padding: 52 characters (260 bits; the last 4 are zero)
 *     -> 4 groups of 13, each followed by a Luhn mod 32 check character: 56 characters
 *     -> 8 blocks of 7 joined by '-':  EH7DDX5-BKSRGCD-YTL7BKA-...  (63 characters)
 *
 * `parseDeviceId` undoes this leniently: either case, dashes (or look-alike dashes) and whitespace
 * anywhere or nowhere,
 * and the look-alike digits Syncthing also maps (0 -> O, 1 -> I, 8 -> B; none of 0, 1, 8 is in
 * the base32 alphabet). It is strict about everything else and says precisely what is wrong.
 *
 * Check characters: the textbook Luhn mod N algorithm with N = 32 over the base32 alphabet, as
 * Syncthing's `luhnBase32`, with one deliberate difference. Luhn doubles every second character
 * counting from the right, so the character next to the check character is always doubled.
 * Syncthing's generator counts from the left starting with weight 1 (its source says it "doesn't
 * follow the actual Luhn algorithm"); with 13-character groups that gives the last data character
 * weight 1, the same as the check character, so swapping those two is never detected. Counting
 * from the right, as here, a group's check character detects every single-character substitution
 * and every transposition of adjacent characters except A <-> 7 (code points 0 and 31, Luhn's
 * analogue of 09 <-> 90 in base 10). Device IDs are not meant to interoperate with Syncthing's
 * (theirs hash a certificate), so nothing is lost; identity.test.ts demonstrates both claims.
 *
 * Pure computation: no platform API, no Buffer (STYLE.md section 1).
 */
import { BASE32_ALPHABET, base32Encode } from './bytes.js';
import type { CryptoProvider } from './crypto-provider.js';
import { PeapodError } from './errors.js';

/** Length of a raw Device ID in bytes. */
export const DEVICE_ID_BYTES = 32;

/** The raw 32-byte Device ID of an Ed25519 public key. */
export function deriveDeviceId(crypto: CryptoProvider, ed25519PublicKey: Uint8Array): Uint8Array {
  return crypto.sha256(ed25519PublicKey);
}

/** Base32 characters of a raw ID: ceil(256 / 5). */
const DATA_CHARS = 52;
const GROUPS = 4;
const GROUP_DATA_CHARS = DATA_CHARS / GROUPS; // 13
const GROUP_CHARS = GROUP_DATA_CHARS + 1; // 14, with the check character
/** Characters of a Device ID without separators. */
const ID_CHARS = GROUPS * GROUP_CHARS; // 56
const BLOCK_CHARS = 7;
const BLOCKS = ID_CHARS / BLOCK_CHARS; // 8

/** Look-alike characters people and OCR produce, mapped as Syncthing's `untypeoify` does. */
const LOOK_ALIKES: Readonly<Record<string, string>> = { '0': 'O', '1': 'I', '8': 'B' };

/** Base32 value of each character code, or -1; covers 'A'-'Z' and '2'-'7' only. */
const BASE32_VALUE: readonly number[] = (() => {
  const values = new Array<number>(128).fill(-1);
  for (let i = 0; i < BASE32_ALPHABET.length; i++) values[BASE32_ALPHABET.charCodeAt(i)] = i;
  return values;
})();

/**
 * The Luhn mod N check character of `text`, whose characters all come from `alphabet` (N is the
 * alphabet's length). Weights alternate 2, 1, 2, ... from the rightmost character; a weighted
 * value is reduced to the sum of its two base-N digits. Exported for the tests, which also run
 * Syncthing's base-6 and base-10 cases through it; not part of the package's public surface.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if a character is not in `alphabet`.
 */
export function luhnCheckCharacter(alphabet: string, text: string): string {
  const n = alphabet.length;
  let sum = 0;
  let weight = 2;
  for (let i = text.length - 1; i >= 0; i--) {
    const value = alphabet.indexOf(text[i]!);
    if (value < 0) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_ARGUMENT',
        `text: character '${text[i]!}' is not in the alphabet '${alphabet}'`,
      );
    }
    const weighted = value * weight;
    sum += Math.floor(weighted / n) + (weighted % n);
    weight = 3 - weight;
  }
  return alphabet[(n - (sum % n)) % n]!;
}

function checkRawId(raw: Uint8Array): void {
  if (!(raw instanceof Uint8Array)) {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', 'raw: must be a Uint8Array');
  }
  if (raw.length !== DEVICE_ID_BYTES) {
    throw new PeapodError(
      'PEAPOD_ERR_INVALID_ARGUMENT',
      `raw: a Device ID is ${DEVICE_ID_BYTES} bytes, got ${raw.length}`,
    );
  }
}

/**
 * Formats a raw Device ID for people: 8 blocks of 7 characters joined by '-', the last character
 * of every second block a check character.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `raw` is not a 32-byte Uint8Array.
 * @example
 * formatDeviceId(new Uint8Array(32).fill(0x61));
 * // => 'MFQWCYL-BMFQWCB-YLBMFQW-CYLBMFZ-QWCYLBM-FQWCYLQ-BMFQWCY-LBMFQQE'
 */
export function formatDeviceId(raw: Uint8Array): string {
  checkRawId(raw);
  const data = base32Encode(raw);
  let text = '';
  for (let group = 0; group < GROUPS; group++) {
    const chars = data.slice(group * GROUP_DATA_CHARS, (group + 1) * GROUP_DATA_CHARS);
    text += chars + luhnCheckCharacter(BASE32_ALPHABET, chars);
  }
  const blocks: string[] = [];
  for (let block = 0; block < BLOCKS; block++) {
    blocks.push(text.slice(block * BLOCK_CHARS, (block + 1) * BLOCK_CHARS));
  }
  return blocks.join('-');
}

/**
 * The first block of a Device ID's text form (7 characters), for logs and compact UI. Like a
 * short Git hash it names a device among a handful, not globally: compare full IDs for trust.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `raw` is not a 32-byte Uint8Array.
 * @example
 * shortDeviceId(new Uint8Array(32).fill(0x61)); // => 'MFQWCYL'
 */
export function shortDeviceId(raw: Uint8Array): string {
  checkRawId(raw);
  return base32Encode(raw.subarray(0, 5)).slice(0, BLOCK_CHARS);
}

function invalidDeviceId(problem: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_DEVICE_ID', `Invalid Device ID: ${problem}`);
}

/** A character as a person can see it in an error message, control characters spelled out. */
function showCharacter(char: string): string {
  const code = char.codePointAt(0)!;
  const printable = code > 0x20 && !(code >= 0x7f && code <= 0x9f);
  return printable ? `'${char}'` : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Separators: '-', any whitespace, the Unicode dashes and minus that word processors and chat
 * apps substitute for '-', and the invisible zero-width characters copy and paste can carry.
 */
const SEPARATOR = /^[-\s\u2010-\u2015\u2212\u200b-\u200d\ufeff]$/u;

function isSeparator(char: string): boolean {
  return SEPARATOR.test(char);
}

/**
 * Parses a Device ID as a person typed or pasted it and returns the raw 32 bytes. Accepts upper
 * or lower case, dashes and whitespace anywhere (or none), and the look-alikes 0, 1 and 8 for
 * O, I and B. Every check character must match and the encoding must be the canonical one, so
 * `formatDeviceId(parseDeviceId(text))` is the one normal form of `text`.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `text` is not a string.
 * @throws PeapodError PEAPOD_ERR_INVALID_DEVICE_ID when `text` is not a Device ID. The message
 *   says what is wrong and what to do: which character is not allowed and where; that the length
 *   is wrong ("expected 56 characters (8 groups of 7), got N"); or which group holds a typo
 *   ("group K (characters a-b) has a typo: the check character does not match. Compare it with
 *   the ID shown on the other device.").
 * @example
 * const raw = new Uint8Array(32).fill(0x61);
 * equalBytes(parseDeviceId(formatDeviceId(raw)), raw); // => true
 * // Lower case, spaces instead of dashes, and an 8 typed for a B:
 * equalBytes(parseDeviceId('mfqwcyl 8mfqwcb ylbmfqw cylbmfz qwcylbm fqwcylq bmfqwcy lbmfqqe'), raw);
 * // => true
 * parseDeviceId('MFQWCYL-BMFQWCY'); // throws PEAPOD_ERR_INVALID_DEVICE_ID:
 * // "Invalid Device ID: expected 56 characters (8 groups of 7), got 14. ..."
 */
export function parseDeviceId(text: string): Uint8Array {
  if (typeof text !== 'string') {
    throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', 'text: must be a string');
  }
  // 1. Normalise: drop separators, upper-case, map look-alikes; stop at the first stranger.
  let chars = '';
  let count = 0; // ID characters seen; `chars` stops growing past a full ID (huge pastes)
  let position = 0; // 1-based, in characters (code points) of `text` as given
  for (const char of text) {
    position++;
    if (isSeparator(char)) continue;
    const upper = char >= 'a' && char <= 'z' ? char.toUpperCase() : (LOOK_ALIKES[char] ?? char);
    if (upper.length !== 1 || (BASE32_VALUE[upper.charCodeAt(0)] ?? -1) < 0) {
      invalidDeviceId(
        `character ${showCharacter(char)} at position ${position} is not allowed. Device IDs ` +
          'use only the letters A-Z and the digits 2-7, in groups separated by dashes. Check ' +
          'the ID for a typo or a stray character.',
      );
    }
    if (++count <= ID_CHARS) chars += upper;
  }
  // 2. Length.
  if (count !== ID_CHARS) {
    invalidDeviceId(
      `expected ${ID_CHARS} characters (${BLOCKS} groups of ${BLOCK_CHARS}), got ` +
        `${count}. Dashes and spaces are optional and not counted; copy the whole ID ` +
        'from the other device.',
    );
  }
  // 3. Check characters, one per group of 14 (two printed blocks).
  let data = '';
  for (let group = 0; group < GROUPS; group++) {
    const start = group * GROUP_CHARS;
    const groupData = chars.slice(start, start + GROUP_DATA_CHARS);
    if (luhnCheckCharacter(BASE32_ALPHABET, groupData) !== chars[start + GROUP_DATA_CHARS]) {
      invalidDeviceId(
        `group ${group + 1} (characters ${start + 1}-${start + GROUP_CHARS}) has a typo: the ` +
          'check character does not match. Compare it with the ID shown on the other device ' +
          `(group ${group + 1} is printed blocks ${2 * group + 1} and ${2 * group + 2}; ` +
          'dashes are not counted in character positions).',
      );
    }
    data += groupData;
  }
  // 4. Decode. 52 characters carry 260 bits; the last 4 must be zero (canonical encoding).
  const raw = new Uint8Array(DEVICE_ID_BYTES);
  let buffer = 0;
  let bits = 0;
  let offset = 0;
  for (let i = 0; i < DATA_CHARS; i++) {
    buffer = ((buffer << 5) | BASE32_VALUE[data.charCodeAt(i)]!) & 0x1fff; // <= 7 + 5 bits
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      raw[offset++] = (buffer >>> bits) & 0xff;
    }
  }
  if ((buffer & ((1 << bits) - 1)) !== 0) {
    const last = data[DATA_CHARS - 1]!;
    invalidDeviceId(
      `character ${ID_CHARS - 1} ('${last}') cannot end a Device ID: the last data character ` +
        "is always 'A' or 'Q', so this ID was not produced by PeaPod. Compare it with the ID " +
        'shown on the other device.',
    );
  }
  return raw;
}
