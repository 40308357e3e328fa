/**
 * Pod secrets, join codes and pod IDs (src/pod.ts): round trips as people type them, and typos
 * refused with a message that says where. Exhaustive over every single-character substitution
 * and neighbour swap of one code; a double typo that passes its group check is caught by the
 * checksum.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { equalBytes, luhnCheckCharacter } from '@peapod/core';
import { JOIN_CODE_PREFIX, createPod, formatJoinCode, parseJoinCode, podId } from '../src/pod.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const SECRET = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

/** Replaces the body character at `index` (0-63, separators not counted) of a formatted code. */
function withBodyChar(code: string, index: number, char: string): string {
  const body = code.slice(JOIN_CODE_PREFIX.length).replaceAll('-', '');
  return JOIN_CODE_PREFIX + body.slice(0, index) + char + body.slice(index + 1);
}

function rejects(text: string, message: RegExp): void {
  assert.throws(() => parseJoinCode(text), { code: 'PEAPOD_ERR_INVALID_ARGUMENT', message });
}

describe('join codes', () => {
  test('TSDoc examples', () => {
    const code = formatJoinCode(SECRET);
    assert.match(code, /^peapod1-([A-Z2-7]{8}-){7}[A-Z2-7]{8}$/);
    assert.ok(equalBytes(parseJoinCode(code), SECRET));
    rejects('peapod1-AAAA', /^Invalid join code: expected 64 characters after "peapod1-"/);
    assert.equal(podId(new Uint8Array(32)), 'DL4K-QD7M');
  });

  test('round trip, as typed: any case, any separators, look-alikes (1000 runs)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom('-', ' ', '', '\u2013', ' - ', '\u200b'),
        fc.boolean(),
        (secret, separator, lowerCase) => {
          const code = formatJoinCode(secret);
          let typed = code.replaceAll('-', separator).replace(/O/g, '0').replace(/I/g, '1');
          typed = `  ${lowerCase ? typed.toLowerCase() : typed}\n`;
          assert.ok(equalBytes(parseJoinCode(typed), secret), typed);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('createPod draws fresh secrets; podId is short, stable and distinct', () => {
    const first = createPod();
    const second = createPod();
    assert.equal(first.length, 32);
    assert.ok(!equalBytes(first, second));
    assert.match(podId(first), /^[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    assert.equal(podId(first), podId(first.slice()));
    assert.notEqual(podId(first), podId(second));
    assert.ok(!formatJoinCode(first).includes(podId(first).replace('-', '')));
  });

  test('every single-character substitution names its group', () => {
    const code = formatJoinCode(SECRET);
    const body = code.slice(JOIN_CODE_PREFIX.length).replaceAll('-', '');
    for (let index = 0; index < body.length; index++) {
      for (const char of ALPHABET) {
        if (char === body[index]) continue;
        const group = Math.floor(index / 8) + 1;
        rejects(withBodyChar(code, index, char), new RegExp(`group ${group} of 8 has a typo`));
      }
    }
  });

  test('every swap of neighbours in a group is caught, except A <-> 7 (Luhn)', () => {
    // Luhn misses a swap of equal characters (no typo) and of A and 7; every other one fails.
    const code = formatJoinCode(SECRET);
    const body = code.slice(JOIN_CODE_PREFIX.length).replaceAll('-', '');
    let swaps = 0;
    for (let index = 0; index + 1 < body.length; index++) {
      if (index % 8 === 7) continue; // the pair spans two groups: both groups fail anyway
      const left = body[index]!;
      const right = body[index + 1]!;
      if (left === right || `${left}${right}` === 'A7' || `${left}${right}` === '7A') continue;
      swaps++;
      const swapped = withBodyChar(withBodyChar(code, index, right), index + 1, left);
      rejects(swapped, /group \d of 8 has a typo/);
    }
    assert.ok(swaps > 40, `only ${swaps} swaps tested`);
  });

  test('a double typo that passes its group check is caught by the checksum', () => {
    const code = formatJoinCode(SECRET);
    const body = code.slice(JOIN_CODE_PREFIX.length).replaceAll('-', '');
    const group = body.slice(0, 7);
    // The first two-character change of group 1 whose Luhn check character is unchanged.
    let typo: string | undefined;
    for (const a of ALPHABET) {
      for (const b of ALPHABET) {
        const changed = a + b + group.slice(2);
        if (changed === group || changed[0] === group[0] || changed[1] === group[1]) continue;
        if (luhnCheckCharacter(ALPHABET, changed) === body[7]) typo ??= changed;
      }
    }
    assert.ok(typo !== undefined);
    rejects(
      JOIN_CODE_PREFIX + typo + body.slice(7),
      /checksum does not match\)\. Copy it again from the device that created the pod\.$/,
    );
  });

  test('wrong prefix, version, characters and length say what is wrong', () => {
    const code = formatJoinCode(SECRET);
    const body = code.slice(JOIN_CODE_PREFIX.length);
    rejects(body, /^Invalid join code: a join code starts with "peapod1-"/);
    rejects('', /^Invalid join code: a join code starts with "peapod1-"/);
    rejects(`peapod2-${body}`, /version 1, and this one is version "2"\. Update PeaPod/);
    rejects(`peapod-${body}`, /this one is version "[A-Z2-7]"/);
    rejects(`${code}9`, /character "9" is not allowed/);
    rejects(`${code}é`, /character "é" is not allowed/);
    rejects(code.slice(0, -1), /expected 64 characters after "peapod1-" \(8 groups of 8\), got 63/);
    rejects(`${code}A`, /got 65/);
  });

  test('caller misuse', () => {
    assert.throws(() => formatJoinCode(new Uint8Array(31)), { message: /^secret: / });
    assert.throws(() => podId(new Uint8Array(33)), { message: /^secret: / });
    assert.throws(() => parseJoinCode(42 as unknown as string), { message: /^text: / });
  });
});
