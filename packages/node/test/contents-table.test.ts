/**
 * `peapod ls`'s table (src/commands/contents.ts `renderContents`) from fixed and random rows.
 *
 * What each test pins down:
 * - the columns, PUBLISHED among them ('published' or '-'), and every cell whole off a terminal;
 * - property: on a terminal of any width that holds the short columns and 12 characters each of
 *   NAME and ORIGIN, every line fits; ID, SIZE, HELD and PUBLISHED stay whole; a table that
 *   did not fit shows where it was cut ('…'), and one that fits is not changed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ContentRow } from '../src/api-client.js';
import { renderContents } from '../src/commands/contents.js';

function row(overrides: Partial<ContentRow>): ContentRow {
  return {
    contentId: 'ab'.repeat(32),
    totalBytes: 18 * 2 ** 20,
    chunkCount: 5,
    heldChunks: 5,
    complete: true,
    pinned: true,
    published: false,
    origin: { kind: 'shared', path: '/home/me/Videos/talk.mp4' },
    addedAtMs: 0,
    lastUsedAtMs: 0,
    name: 'talk.mp4',
    heldRanges: [{ start: 0, end: 5 }],
    ...overrides,
  };
}

test('ls: PUBLISHED says which contents strangers are served; off a terminal nothing is cut', () => {
  const long = `/home/me/${'deep/'.repeat(30)}file.bin`;
  const lines = renderContents([
    row({ published: true }),
    row({
      contentId: 'cd'.repeat(32),
      name: 'photos/',
      pinned: false,
      complete: false,
      heldChunks: 2,
      origin: { kind: 'shared', path: long },
    }),
  ]);
  assert.match(lines[0]!, /^ID\s+NAME\s+SIZE\s+HELD\s+PINNED\s+PUBLISHED\s+ORIGIN$/);
  assert.match(
    lines[1]!,
    /^abababababab\s+talk\.mp4\s+18\.0 MiB\s+complete\s+pinned\s+published\s+shared from /,
  );
  assert.match(lines[2]!, /^cdcdcdcdcdcd\s+photos\/\s+18\.0 MiB\s+2\/5 chunks\s+-\s+-\s+shared/);
  assert.ok(lines[2]!.endsWith(long), 'the whole origin');
});

test('property: on a terminal every line fits, cut cells end in …, short columns whole', () => {
  const text = fc.string({ unit: 'grapheme-ascii', maxLength: 120 });
  const rows = fc.array(
    fc.record({
      name: text,
      path: text.map((tail) => `/${tail}`),
      published: fc.boolean(),
      pinned: fc.boolean(),
    }),
    { minLength: 1, maxLength: 6 },
  );
  fc.assert(
    fc.property(rows, fc.integer({ min: 0, max: 200 }), (specs, extra) => {
      const input = specs.map((spec, i) =>
        row({
          contentId: i.toString(16).padStart(64, '0'),
          name: spec.name,
          published: spec.published,
          pinned: spec.pinned,
          origin: { kind: 'shared', path: spec.path },
        }),
      );
      const whole = renderContents(input);
      // ID, SIZE, HELD, PINNED, PUBLISHED with their separators, and 12 each for NAME, ORIGIN.
      const shortColumns =
        whole[0]!.match(/^ID\s+/)![0].length +
        whole[0]!.match(/SIZE\s+HELD\s+PINNED\s+PUBLISHED\s+/)![0].length;
      const columns = shortColumns + 2 + 12 + 12 + extra;
      const cut = renderContents(input, columns);
      assert.equal(cut.length, whole.length);
      for (const [i, line] of cut.entries()) {
        assert.ok([...line].length <= columns, `${columns}: ${JSON.stringify(line)}`);
        if (i === 0) continue;
        const spec = specs[i - 1]!;
        assert.ok(line.startsWith(`${(i - 1).toString(16).padStart(64, '0').slice(0, 12)}  `));
        assert.match(
          line,
          spec.published
            ? /  18\.0 MiB  complete  (pinned|-     )  published  /
            : /  18\.0 MiB  complete  (pinned|-     )  -          /,
        );
      }
      if (whole.every((line) => [...line].length <= columns)) assert.deepEqual(cut, whole);
      else assert.ok(cut.some((line) => line.includes('…')));
    }),
    { numRuns: 300 },
  );
});
