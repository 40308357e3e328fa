/**
 * Device IDs (identity.ts): derivation, the text form and its check characters, the lenient
 * parser and its error messages. The TSDoc examples of identity.ts run here verbatim.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { equalBytes, fromHex, toHex } from '../src/bytes.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import {
  DEVICE_ID_BYTES,
  deriveDeviceId,
  formatDeviceId,
  luhnCheckCharacter,
  parseDeviceId,
  shortDeviceId,
} from '../src/identity.js';
import { Prng } from '../src/prng.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const FORMAT = /^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$/;

function deterministicRandomBytes(seed: number): (length: number) => Uint8Array {
  const prng = new Prng(seed);
  return (length) => Uint8Array.from({ length }, () => prng.nextU32() & 0xff);
}
const crypto = createNobleCryptoProvider({ randomBytes: deterministicRandomBytes(7) });

/** The 56 characters of a Device ID without dashes. */
function compact(text: string): string {
  return text.replaceAll('-', '');
}
/** Back to 8 blocks of 7. */
function blocks(chars: string): string {
  return chars.match(/.{7}/g)!.join('-');
}

/** Calls `parse` and returns the PeapodError it throws (failing if it returns). */
function parseError(text: string): { code: string; message: string } {
  try {
    parseDeviceId(text);
  } catch (error) {
    return error as { code: string; message: string };
  }
  assert.fail(`parseDeviceId(${JSON.stringify(text)}) accepted an invalid Device ID`);
}

const arbitraryRawId = fc.uint8Array({ minLength: 32, maxLength: 32 });

// ---- Derivation ----

test('deriveDeviceId: the SHA-256 of the Ed25519 public key (golden vector)', () => {
  // RFC 8032 section 7.1 TEST 1 public key. Expected values computed independently with Python's
  // hashlib and base64.b32encode plus a transcription of Luhn mod N.
  const publicKey = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')!;
  const raw = deriveDeviceId(crypto, publicKey);
  assert.equal(raw.length, DEVICE_ID_BYTES);
  assert.equal(toHex(raw), '21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9');
  assert.equal(
    formatDeviceId(raw),
    'EH7DDX5-BKSRGCD-YTL7BKA-I36SE44-NXX3KLN-K7ELKS2-YQ57PI7-4XEG4QI',
  );
  assert.equal(shortDeviceId(raw), 'EH7DDX5');
});

test('deriveDeviceId: a generated identity round-trips through its text form', () => {
  const { publicKey } = crypto.ed25519GenerateKeyPair();
  const raw = deriveDeviceId(crypto, publicKey);
  assert.deepEqual(parseDeviceId(formatDeviceId(raw)), raw);
});

// ---- The TSDoc examples, verbatim ----

test('TSDoc examples of identity.ts', () => {
  assert.equal(
    formatDeviceId(new Uint8Array(32).fill(0x61)),
    'MFQWCYL-BMFQWCB-YLBMFQW-CYLBMFZ-QWCYLBM-FQWCYLQ-BMFQWCY-LBMFQQE',
  );
  assert.equal(shortDeviceId(new Uint8Array(32).fill(0x61)), 'MFQWCYL');

  const raw = new Uint8Array(32).fill(0x61);
  assert.equal(equalBytes(parseDeviceId(formatDeviceId(raw)), raw), true);
  assert.equal(
    equalBytes(
      parseDeviceId('mfqwcyl 8mfqwcb ylbmfqw cylbmfz qwcylbm fqwcylq bmfqwcy lbmfqqe'),
      raw,
    ),
    true,
  );
  assert.throws(
    () => parseDeviceId('MFQWCYL-BMFQWCY'),
    (error: { code: string; message: string }) =>
      error.code === 'PEAPOD_ERR_INVALID_DEVICE_ID' &&
      error.message.startsWith(
        'Invalid Device ID: expected 56 characters (8 groups of 7), got 14. ',
      ),
  );
});

// ---- Format ----

test('formatDeviceId: base32 data matches an independent RFC 4648 encoder', () => {
  // Reference: the 256-bit number, shifted left by 4 bits of padding, written in base 32.
  const reference = (raw: Uint8Array): string => {
    let value = BigInt('0x' + toHex(raw)) << 4n;
    let out = '';
    for (let i = 0; i < 52; i++) {
      out = ALPHABET[Number(value & 31n)]! + out;
      value >>= 5n;
    }
    return out;
  };
  fc.assert(
    fc.property(arbitraryRawId, (raw) => {
      const chars = compact(formatDeviceId(raw));
      const data = [0, 1, 2, 3].map((g) => chars.slice(g * 14, g * 14 + 13)).join('');
      assert.equal(data, reference(raw));
    }),
    { numRuns: 2_000 },
  );
});

test('formatDeviceId and shortDeviceId reject anything but 32 bytes', () => {
  for (const bad of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(0)]) {
    for (const fn of [formatDeviceId, shortDeviceId]) {
      assert.throws(
        () => fn(bad),
        (error: { code: string; message: string }) =>
          error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' &&
          error.message.includes(`32 bytes, got ${bad.length}`),
      );
    }
  }
  assert.throws(
    () => formatDeviceId('not bytes' as unknown as Uint8Array),
    (error: { code: string }) => error.code === 'PEAPOD_ERR_INVALID_ARGUMENT',
  );
});

// ---- Round trip ----

test('parseDeviceId(formatDeviceId(raw)) === raw, in every accepted spelling (10,000 runs)', () => {
  fc.assert(
    fc.property(arbitraryRawId, fc.nat(), (raw, seed) => {
      const text = formatDeviceId(raw);
      assert.match(text, FORMAT);
      assert.equal(shortDeviceId(raw), text.slice(0, 7));
      assert.deepEqual(parseDeviceId(text), raw);
      // The same ID lower-cased, without dashes, and with random separators sprinkled in.
      assert.deepEqual(parseDeviceId(compact(text).toLowerCase()), raw);
      const prng = new Prng(seed);
      const separators = ['', '', '', ' ', '-', '\t', '\n', '\u2013', '\u200b'];
      let sprinkled = '';
      for (const char of compact(text)) {
        sprinkled += separators[prng.nextInt(separators.length)]! + char;
      }
      assert.deepEqual(parseDeviceId(sprinkled), raw);
    }),
    { numRuns: 10_000 },
  );
});

test('parseDeviceId maps the look-alikes 0 -> O, 1 -> I, 8 -> B, in either case', () => {
  // An ID that contains O, I and B, found by search over derived IDs.
  let raw: Uint8Array = new Uint8Array(32);
  let text = formatDeviceId(raw);
  for (let i = 0; !(text.includes('O') && text.includes('I') && text.includes('B')); i++) {
    raw = crypto.sha256(Uint8Array.of(i));
    text = formatDeviceId(raw);
  }
  const typed = text.replaceAll('O', '0').replaceAll('I', '1').replaceAll('B', '8');
  assert.notEqual(typed, text);
  assert.deepEqual(parseDeviceId(typed), raw);
  assert.deepEqual(parseDeviceId(typed.toLowerCase()), raw);
  assert.deepEqual(parseDeviceId(` ${text}\r\n`), raw, 'surrounding whitespace is ignored');
});

// ---- Check characters ----

test('luhnCheckCharacter: Syncthing luhn_test.go cases and the textbook base-10 example', () => {
  assert.equal(luhnCheckCharacter('abcdef', 'abcdef'), 'e');
  assert.equal(luhnCheckCharacter('0123456789', '7992739871'), '3'); // 79927398713
  assert.equal(luhnCheckCharacter(ALPHABET, ''), 'A');
  assert.throws(
    () => luhnCheckCharacter('ABC', '7992739871'),
    (error: { code: string }) => error.code === 'PEAPOD_ERR_INVALID_ARGUMENT',
  );
});

/** The group (1-4) and the 1-based character range of the check group holding `index`. */
function groupOf(index: number): { group: number; first: number; last: number } {
  const group = Math.floor(index / 14) + 1;
  return { group, first: (group - 1) * 14 + 1, last: group * 14 };
}

test('every single-character substitution is caught by its group check (exhaustive, 3 IDs)', () => {
  const ids = [new Uint8Array(32), new Uint8Array(32).fill(0xff), crypto.sha256(Uint8Array.of(1))];
  let substitutions = 0;
  for (const raw of ids) {
    const chars = compact(formatDeviceId(raw));
    for (let index = 0; index < chars.length; index++) {
      const { group, first, last } = groupOf(index);
      for (const replacement of ALPHABET) {
        if (replacement === chars[index]) continue;
        const typo = blocks(chars.slice(0, index) + replacement + chars.slice(index + 1));
        const error = parseError(typo);
        assert.equal(error.code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
        assert.ok(
          error.message.includes(`group ${group} (characters ${first}-${last}) has a typo`),
          `${typo}: ${error.message}`,
        );
        substitutions++;
      }
    }
  }
  assert.equal(substitutions, 3 * 56 * 31);
});

test('adjacent transpositions are caught, except A <-> 7 inside one group (Luhn mod 32)', () => {
  let caught = 0;
  let missed = 0;
  fc.assert(
    fc.property(arbitraryRawId, (raw) => {
      const chars = compact(formatDeviceId(raw));
      for (let index = 0; index + 1 < chars.length; index++) {
        const a = chars[index]!;
        const b = chars[index + 1]!;
        if (a === b) continue;
        const swapped = chars.slice(0, index) + b + a + chars.slice(index + 2);
        let accepted = true;
        try {
          parseDeviceId(swapped);
        } catch (error) {
          assert.equal((error as { code: string }).code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
          accepted = false;
        }
        if (accepted) {
          missed++;
          const sameGroup = groupOf(index).group === groupOf(index + 1).group;
          assert.ok(sameGroup && [a, b].sort().join('') === '7A', swapped);
        } else {
          caught++;
        }
      }
    }),
    { numRuns: 1_000 },
  );
  // Every miss above is the documented {A, 7} blind spot, and the blind spot is real (fast-check
  // favours 0x00 and 0xff bytes, i.e. runs of A and 7, so it shows up more often than 1 in 512).
  assert.ok(caught > 40_000, `caught ${caught}`);
  assert.ok(missed > 0, 'no A <-> 7 swap was generated; the test lost its power');
});

/** Syncthing's generator (lib/protocol/luhn.go): weights 1, 2, 1, ... from the left. */
function syncthingLuhn(text: string): string {
  let sum = 0;
  let factor = 1;
  for (const char of text) {
    const addend = ALPHABET.indexOf(char) * factor;
    factor = factor === 2 ? 1 : 2;
    sum += Math.floor(addend / 32) + (addend % 32);
  }
  return ALPHABET[(32 - (sum % 32)) % 32]!;
}

test('why not Syncthing’s weights: they never catch a swap of a group’s last two characters', () => {
  // Syncthing's published example (lib/protocol/deviceid_test.go) checks with its own weights,
  // which confirms the layout (base32, 4 x (13 + 1), 8 x 7) is the same as ours...
  const syncthing = compact('P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2');
  for (let g = 0; g < 4; g++) {
    assert.equal(syncthingLuhn(syncthing.slice(g * 14, g * 14 + 13)), syncthing[g * 14 + 13]);
  }
  // ...and with those weights, the 13th data character and the check character carry the same
  // weight, so swapping them always verifies. With Luhn's weights it is caught.
  let syncthingMissed = 0;
  let oursMissed = 0;
  for (let i = 0; i < 200; i++) {
    const data = compact(formatDeviceId(crypto.sha256(Uint8Array.of(i, 1)))).slice(0, 13);
    const theirs = data + syncthingLuhn(data);
    const ours = data + luhnCheckCharacter(ALPHABET, data);
    const swap = (group: string) => group.slice(0, 12) + group[13]! + group[12]!;
    if (
      theirs[12] !== theirs[13] &&
      syncthingLuhn(swap(theirs).slice(0, 13)) === swap(theirs)[13]
    ) {
      syncthingMissed++;
    }
    const oursSwapped = swap(ours);
    const oursPair = [ours[12], ours[13]].sort().join('');
    if (
      ours[12] !== ours[13] &&
      oursPair !== '7A' &&
      luhnCheckCharacter(ALPHABET, oursSwapped.slice(0, 13)) === oursSwapped[13]
    ) {
      oursMissed++;
    }
  }
  assert.ok(syncthingMissed > 150, `Syncthing's weights missed only ${syncthingMissed}`);
  assert.equal(oursMissed, 0);
});

// ---- Error messages ----

const GOLDEN = 'EH7DDX5-BKSRGCD-YTL7BKA-I36SE44-NXX3KLN-K7ELKS2-YQ57PI7-4XEG4QI';

test('parseDeviceId: wrong length says how long an ID is', () => {
  const cases: [string, number][] = [
    ['', 0],
    [GOLDEN.slice(0, 31), 28],
    [GOLDEN + '-AAAAAAA', 63],
    [compact(GOLDEN).slice(1), 55],
    ['A'.repeat(1_000_000), 1_000_000], // a runaway paste is counted, not copied
  ];
  for (const [text, count] of cases) {
    const error = parseError(text);
    assert.equal(error.code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
    assert.ok(
      error.message.includes(`expected 56 characters (8 groups of 7), got ${count}`),
      error.message,
    );
    assert.ok(error.message.includes('copy the whole ID'), error.message);
  }
});

test('parseDeviceId: a character outside the alphabet is named, with its position', () => {
  const cases: [string, string][] = [
    [GOLDEN.replace('X5', '9X'), "character '9' at position 6 is not allowed"],
    [GOLDEN.replace('-', '_'), "character '_' at position 8 is not allowed"],
    ['ID: ' + GOLDEN, "character ':' at position 3 is not allowed"],
    [GOLDEN.slice(0, 10) + '\u0000' + GOLDEN.slice(10), 'character U+0000 at position 11'],
    [GOLDEN.slice(0, 10) + 'É' + GOLDEN.slice(10), "character 'É' at position 11"],
    ['🙂' + GOLDEN, "character '🙂' at position 1"],
    ['a 🙂' + GOLDEN, "character '🙂' at position 3"],
  ];
  for (const [text, expected] of cases) {
    const error = parseError(text);
    assert.equal(error.code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
    assert.ok(error.message.includes(expected), error.message);
    assert.ok(error.message.includes('only the letters A-Z and the digits 2-7'), error.message);
  }
});

test('parseDeviceId: a check-character mismatch names the group and what to do', () => {
  const chars = compact(GOLDEN);
  for (let group = 1; group <= 4; group++) {
    const index = (group - 1) * 14 + 3;
    const typo =
      chars.slice(0, index) + (chars[index] === 'A' ? 'B' : 'A') + chars.slice(index + 1);
    const error = parseError(blocks(typo));
    assert.equal(error.code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
    const first = (group - 1) * 14 + 1;
    assert.ok(
      error.message.includes(
        `group ${group} (characters ${first}-${first + 13}) has a typo: the check character ` +
          'does not match. Compare it with the ID shown on the other device',
      ),
      error.message,
    );
    assert.ok(error.message.includes(`blocks ${2 * group - 1} and ${2 * group}`), error.message);
  }
});

test('parseDeviceId: a non-canonical last data character is refused', () => {
  // The 52nd base32 character carries 1 data bit and 4 zero bits, so it is always A or Q. Forge
  // an ID whose last data character is B, with a check character that matches.
  const chars = compact(GOLDEN);
  assert.equal(chars[54], 'Q');
  const data = chars.slice(42, 54) + 'B';
  const forged = chars.slice(0, 42) + data + luhnCheckCharacter(ALPHABET, data);
  const error = parseError(forged);
  assert.equal(error.code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
  assert.ok(error.message.includes("character 55 ('B') cannot end a Device ID"), error.message);
});

test('parseDeviceId: a non-string is an invalid argument, not an invalid Device ID', () => {
  for (const bad of [undefined, 42, new Uint8Array(32)]) {
    assert.throws(
      () => parseDeviceId(bad as unknown as string),
      (error: { code: string }) => error.code === 'PEAPOD_ERR_INVALID_ARGUMENT',
    );
  }
});

test('parseDeviceId never throws anything but PEAPOD_ERR_INVALID_DEVICE_ID on any string', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc.string({ unit: fc.constantFrom(...`${ALPHABET}abc018- `), maxLength: 70 }),
      ),
      (text) => {
        try {
          const raw = parseDeviceId(text);
          assert.equal(raw.length, 32);
        } catch (error) {
          assert.equal((error as { code: string }).code, 'PEAPOD_ERR_INVALID_DEVICE_ID');
        }
      },
    ),
    { numRuns: 5_000 },
  );
});
