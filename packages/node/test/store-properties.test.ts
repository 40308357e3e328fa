/**
 * fast-check properties of the store's other entry points: URL mappings (any strings, any order
 * of maps and removes, against a model list; newest first; kept across a reopen) and references
 * (any offsets into a user's file: a read returns the chunk exactly when the bytes there are
 * the chunk, otherwise nothing, the reference dropped and reported, the file unchanged).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { toHex } from '@peapod/core';
import { ChunkStore } from '../src/store/chunk-store.js';
import { CHUNK_BYTES, makeContent } from './support/store-fixtures.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-properties-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});
let serial = 0;

const CONTENTS = [makeContent(21, [1]), makeContent(21, [2]), makeContent(21, [3])];

type UrlOp =
  | { kind: 'map'; url: number; validator: string; content: number }
  | { kind: 'remove'; content: number };

const urlOp: fc.Arbitrary<UrlOp> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      url: fc.nat(3),
      validator: fc.oneof(
        fc.constantFrom('etag:"1"', 'etag:"2"', ''),
        fc.string({ unit: 'grapheme' }),
      ),
      content: fc.nat(2),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), content: fc.nat(2) }) },
);

test('URL mappings follow a model list: newest first per URL, one per (URL, validator), gone with their content', async () => {
  const urls = [
    'http://o.test/a',
    'https://o.test/ü?x=1',
    `http://o.test/${'long/'.repeat(200)}`,
    'http://o.test/',
  ];
  await fc.assert(
    fc.asyncProperty(fc.array(urlOp, { maxLength: 30 }), async (ops) => {
      const dir = join(root, `urls-${serial++}`);
      let store = await ChunkStore.open({ dir, budgetBytes: 0 });
      const model: Array<{ url: string; validator: string; content: number }> = [];
      const present = new Set<number>();
      const add = (content: number): void => {
        store.addContent(CONTENTS[content]!.manifest, { kind: 'fetched' }, { pinned: false });
        present.add(content);
      };
      try {
        for (const op of ops) {
          if (op.kind === 'remove') {
            await store.remove(CONTENTS[op.content]!.manifest.contentId);
            present.delete(op.content);
            model.splice(0, model.length, ...model.filter((m) => m.content !== op.content));
            continue;
          }
          if (!present.has(op.content)) add(op.content);
          const url = urls[op.url]!;
          store.mapUrl(url, op.validator, CONTENTS[op.content]!.manifest.contentId);
          const kept = model.filter((m) => !(m.url === url && m.validator === op.validator));
          model.splice(0, model.length, ...kept, {
            url,
            validator: op.validator,
            content: op.content,
          });
        }
        const check = (where: string): void => {
          const hex = (content: number): string => CONTENTS[content]!.hex;
          assert.deepEqual(
            store
              .urlMappings()
              .map((m) => ({ url: m.url, validator: m.validator, content: toHex(m.contentId) })),
            model.map((m) => ({ url: m.url, validator: m.validator, content: hex(m.content) })),
            where,
          );
          for (const url of urls) {
            assert.deepEqual(
              store.urlContents(url).map((m) => `${m.validator} ${toHex(m.contentId)}`),
              model
                .filter((m) => m.url === url)
                .reverse()
                .map((m) => `${m.validator} ${hex(m.content)}`),
              `${where}: ${url}`,
            );
          }
        };
        check('before reopen');
        store.close();
        store = await ChunkStore.open({ dir, budgetBytes: 0 });
        check('after reopen');
      } finally {
        store.close();
        await rm(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 60 },
  );
});

test('references at any offset: the chunk when the bytes there are it, else nothing, dropped and reported, the file unchanged', async () => {
  const content = makeContent(22, [1, 2, 1, 3], 3000);
  const userBytes = Buffer.concat(content.chunks);
  const offsetFor = (index: number): fc.Arbitrary<number> =>
    fc.oneof(
      fc.constant(index * CHUNK_BYTES),
      fc.constant(((index + 2) % 4) * CHUNK_BYTES), // chunk 0 and chunk 2 are the same bytes
      fc.integer({ min: 0, max: userBytes.length + 10 }),
    );
  const references = fc
    .uniqueArray(fc.nat(3), { minLength: 1, maxLength: 4 })
    .chain((indices) =>
      fc.tuple(...indices.map((index) => offsetFor(index).map((offset) => ({ index, offset })))),
    );
  await fc.assert(
    fc.asyncProperty(references, async (refs) => {
      const dir = join(root, `refs-${serial++}`);
      const path = join(root, `user-${serial}.bin`);
      await writeFile(path, userBytes);
      const reported: number[] = [];
      const store = await ChunkStore.open({
        dir,
        budgetBytes: 0,
        onChunksDropped: (_contentId, indices) => reported.push(...indices),
      });
      try {
        store.addContent(content.manifest, { kind: 'shared', path }, { pinned: true });
        store.referenceChunks(
          content.manifest.contentId,
          refs.map((ref) => ({ ...ref, path })),
        );
        const expectedDropped: number[] = [];
        for (const { index, offset } of refs) {
          const expected = content.chunks[index]!;
          const there = userBytes.subarray(offset, offset + expected.length);
          const bytes = await store.readChunk(content.manifest.contentId, index);
          if (there.equals(expected)) assert.ok(bytes && Buffer.from(bytes).equals(expected));
          else {
            assert.equal(bytes, undefined);
            expectedDropped.push(index);
          }
        }
        assert.deepEqual(reported, expectedDropped);
        assert.deepEqual(
          store.heldIndices(content.manifest.contentId),
          refs
            .map((ref) => ref.index)
            .filter((index) => !expectedDropped.includes(index))
            .sort((a, b) => a - b),
        );
        assert.ok((await readFile(path)).equals(userBytes), "the user's file is unchanged");
      } finally {
        store.close();
        await rm(dir, { recursive: true, force: true });
        await rm(path, { force: true });
      }
    }),
    { numRuns: 60 },
  );
});
