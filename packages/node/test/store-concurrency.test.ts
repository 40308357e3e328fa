/**
 * The chunk store under concurrent calls (fast-check): batches of puts, reads and removes of
 * contents that share chunks, all in flight at once on a small budget, so evictions, dedup
 * puts, unlinks and re-writes of one hash interleave. No model predicts the exact outcome of a
 * race; the properties are what must hold whatever the interleaving: every call settles (a put
 * only with StoreFullError when the budget is pinned full), no read returns a wrong byte, no
 * read finds a corrupt copy (nothing was corrupted), the bytes stay within the budget, and after
 * a close every index row has its file and every file its row (a reopen recovers nothing).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { toHex } from '@peapod/core';
import { ChunkStore } from '../src/store/chunk-store.js';
import type { StoreFullError } from '../src/store/store-api.js';
import { CHUNK_BYTES, makeContent } from './support/store-fixtures.js';

const CONTENTS = [
  makeContent(9, [0, 1, 2, 3]),
  makeContent(9, [2, 3, 4, 5]),
  makeContent(9, [5, 0, 6]),
  makeContent(9, [7, 7, 1]),
];

type Call =
  | { kind: 'put'; content: number; index: number }
  | { kind: 'read'; content: number; index: number }
  | { kind: 'remove'; content: number };

const chunkOf = fc.integer({ min: 0, max: CONTENTS.length - 1 }).chain((content) =>
  fc.record({
    content: fc.constant(content),
    index: fc.integer({ min: 0, max: CONTENTS[content]!.chunks.length - 1 }),
  }),
);
const callArbitrary: fc.Arbitrary<Call> = fc.oneof(
  { weight: 6, arbitrary: chunkOf.map((c) => ({ kind: 'put' as const, ...c })) },
  { weight: 4, arbitrary: chunkOf.map((c) => ({ kind: 'read' as const, ...c })) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('remove' as const),
      content: fc.nat(CONTENTS.length - 1),
    }),
  },
);

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-concurrency-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let serial = 0;
async function runBatches(
  budgetChunks: number,
  pinnedContent: number,
  batches: Call[][],
): Promise<void> {
  const dir = join(root, `run-${serial++}`);
  const budgetBytes = budgetChunks * CHUNK_BYTES;
  const reports: string[] = [];
  const store = await ChunkStore.open({
    dir,
    budgetBytes,
    onChunksDropped: (contentId, indices) =>
      reports.push(`${toHex(contentId).slice(0, 8)}:${indices.join(',')}`),
  });
  const addAll = (): void => {
    for (const [c, content] of CONTENTS.entries()) {
      store.addContent(content.manifest, { kind: 'fetched' }, { pinned: c === pinnedContent });
    }
  };
  addAll();
  let corruptReads = 0;
  try {
    for (const batch of batches) {
      await Promise.all(
        batch.map(async (call) => {
          const content = CONTENTS[call.content]!;
          const contentId = content.manifest.contentId;
          if (call.kind === 'remove') {
            await store.remove(contentId);
            return;
          }
          if (call.kind === 'put') {
            // A remove earlier in the batch already ran (its commit is synchronous): a put for
            // a content the store does not know is misuse, not a race.
            if (store.manifest(contentId) === undefined) return;
            await store
              .putChunk(contentId, call.index, content.chunks[call.index]!)
              .catch((error: unknown) => {
                // Only pinned chunks can fill the budget (writes in flight are waited for).
                assert.equal(
                  (error as StoreFullError).code,
                  'PEAPOD_ERR_STORE_FULL',
                  String(error),
                );
                assert.match((error as Error).message, /pinned content/);
                assert.ok(pinnedContent >= 0, 'nothing is pinned, yet the budget was full');
              });
            return;
          }
          const held = store.heldIndices(contentId).includes(call.index);
          const bytes = await store.readChunk(contentId, call.index);
          if (bytes !== undefined)
            assert.ok(Buffer.from(bytes).equals(content.chunks[call.index]!));
          // Held when the read started and still held after it, yet not returned: a false alarm.
          else if (held && store.heldIndices(contentId).includes(call.index)) corruptReads += 1;
        }),
      );
      assert.ok(store.usage().storedBytes <= budgetBytes, 'over budget');
      addAll();
    }
    assert.equal(corruptReads, 0, 'a read failed a chunk that stayed held');
    for (const content of CONTENTS) {
      for (const index of store.heldIndices(content.manifest.contentId)) {
        const bytes = await store.readChunk(content.manifest.contentId, index);
        assert.ok(
          bytes && Buffer.from(bytes).equals(content.chunks[index]!),
          `held chunk ${index} reads back`,
        );
      }
    }
  } finally {
    store.close();
  }
  const reopened = await ChunkStore.open({ dir, budgetBytes });
  reopened.close();
  assert.deepEqual(reopened.recovery, {
    temporaryFilesRemoved: 0,
    orphanFilesRemoved: 0,
    rowsDropped: 0,
  });
  await rm(dir, { recursive: true, force: true });
}

test('concurrent puts, reads and removes: exact bytes, within budget, index and files agree', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 6 }),
      fc.integer({ min: -1, max: CONTENTS.length - 1 }),
      fc.array(fc.array(callArbitrary, { minLength: 1, maxLength: 12 }), {
        minLength: 1,
        maxLength: 6,
      }),
      runBatches,
    ),
    { numRuns: 60 },
  );
});
