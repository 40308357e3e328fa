/**
 * `putChunk(..., { verified: true })` (store-api.ts PutOptions): the caller vouches for the
 * bytes (the core verifies every chunk before `store-chunk`), so the store skips its own hash
 * on the way in; reads still verify. So even bytes a caller wrongly vouched for are never
 * returned: the read drops them and reports the chunk. Without the flag a wrong chunk is
 * refused at once. Real SQLite and real chunk files in a temporary directory.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ChunkStore } from '../src/store/chunk-store.js';
import { CHUNK_BYTES, makeContent } from './support/store-fixtures.js';

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function open(): Promise<{ store: ChunkStore; dropped: number[] }> {
  const root = await mkdtemp(join(tmpdir(), 'peapod-store-put-'));
  roots.push(root);
  const dropped: number[] = [];
  const store = await ChunkStore.open({
    dir: join(root, 'store'),
    budgetBytes: 16 * CHUNK_BYTES,
    onChunksDropped: (_, indices) => dropped.push(...indices),
  });
  return { store, dropped };
}

test('verified puts skip the hash on the way in; reads still verify and drop what is wrong', async () => {
  const { store, dropped } = await open();
  const content = makeContent(5, [1, 2, 3], CHUNK_BYTES);
  const id = content.manifest.contentId;
  store.addContent(content.manifest, { kind: 'fetched' }, { pinned: false });
  await store.putChunk(id, 0, content.chunks[0]!, { verified: true });
  assert.deepEqual(await store.readChunk(id, 0), content.chunks[0]);
  // Bytes of another chunk, vouched for by mistake: stored, but never returned.
  await store.putChunk(id, 1, content.chunks[2]!, { verified: true });
  assert.equal(await store.readChunk(id, 1), undefined);
  assert.deepEqual(dropped, [1]);
  assert.deepEqual(store.heldIndices(id), [0]);
  // Without the flag the store checks, and refuses the wrong bytes before writing anything.
  await assert.rejects(store.putChunk(id, 2, content.chunks[0]!), /do not hash to the SHA-256/);
  assert.deepEqual(store.heldIndices(id), [0]);
  store.close();
});
