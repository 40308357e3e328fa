/**
 * A full disk under the store (issue 11 item 5): the store lives on a real 1 MiB tmpfs with a
 * budget far larger, so a write meets ENOSPC (or SQLite meets SQLITE_FULL) long before the
 * budget. putChunk must reject with StoreFullError saying the disk is full, leave no temporary
 * file, keep serving what it held, and store again once space is freed. Needs CAP_SYS_ADMIN for
 * the mount (support/mounts.ts); where mounting is refused, the test skips and says why.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChunkStore } from '../src/store/chunk-store.js';
import type { StoreFullError } from '../src/store/store-api.js';
import { mountTinyTmpfs, type Mount } from './support/mounts.js';
import { makeContent } from './support/store-fixtures.js';

const TMPFS_BYTES = 1024 * 1024;
let root: string;
let mounted: Mount | string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-full-'));
  mounted = await mountTinyTmpfs(join(root, 'tiny'), TMPFS_BYTES);
});
after(async () => {
  if (typeof mounted !== 'string') mounted.unmount();
  await rm(root, { recursive: true, force: true });
});

async function temporaryFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    if (entry.split('/').at(-1)?.startsWith('.tmp-')) found.push(entry);
  }
  return found;
}

test('a full disk: StoreFullError says so, no temporary file is left, held chunks still read', async (t) => {
  if (typeof mounted === 'string') {
    t.skip(`needs a tmpfs mount: ${mounted}`);
    return;
  }
  const dir = join(mounted.path, 'store');
  // Someone else's file on the same disk, deleted later to free space.
  const filler = join(mounted.path, 'filler.bin');
  await writeFile(filler, new Uint8Array(256 * 1024));
  const store = await ChunkStore.open({ dir, budgetBytes: 2 ** 30 });
  // 32 chunks of 64 KiB: twice what the file system holds.
  const content = makeContent(5, [...Array(32).keys()]);
  store.addContent(content.manifest, { kind: 'fetched' }, { pinned: false });
  let stored = 0;
  let failure: unknown;
  for (const [index, bytes] of content.chunks.entries()) {
    try {
      await store.putChunk(content.manifest.contentId, index, bytes);
      stored += 1;
    } catch (error) {
      failure = error;
      break;
    }
  }
  assert.ok(failure, 'the disk never filled');
  assert.equal((failure as StoreFullError).code, 'PEAPOD_ERR_STORE_FULL');
  assert.match(
    (failure as Error).message,
    /^The disk holding the chunk store \(.*\) is full; free space there/,
  );
  assert.ok(stored > 0 && stored < 12, `stored ${stored} chunks on a 1 MiB file system`);
  assert.deepEqual(await temporaryFiles(dir), []);
  assert.deepEqual(store.heldIndices(content.manifest.contentId), [...Array(stored).keys()]);
  for (let index = 0; index < stored; index++) {
    const bytes = await store.readChunk(content.manifest.contentId, index);
    assert.ok(bytes && Buffer.from(bytes).equals(content.chunks[index]!));
  }
  // With the disk full, even forgetting may not commit: then it says so the same way.
  await store.remove(content.manifest.contentId).catch((error: unknown) => {
    assert.equal((error as StoreFullError).code, 'PEAPOD_ERR_STORE_FULL');
  });
  // Space freed, the store removes and writes again.
  await rm(filler);
  await store.remove(content.manifest.contentId);
  assert.deepEqual(store.list(), []);
  const next = makeContent(6, [100]);
  store.addContent(next.manifest, { kind: 'fetched' }, { pinned: false });
  await store.putChunk(next.manifest.contentId, 0, next.chunks[0]!);
  assert.deepEqual(store.heldIndices(next.manifest.contentId), [0]);
  store.close();
  const reopened = await ChunkStore.open({ dir, budgetBytes: 2 ** 30 });
  assert.deepEqual(reopened.recovery, {
    temporaryFilesRemoved: 0,
    orphanFilesRemoved: 0,
    rowsDropped: 0,
  });
  reopened.close();
});
