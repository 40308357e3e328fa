/**
 * The chunk store on real SQLite files and real chunk files in a temporary directory
 * (store-api.ts): round trips across a reopen, dedup across contents, every read verified (a
 * flipped byte, a truncated file, a changed or deleted user file: dropped, reported, never
 * returned, the user's file untouched), LRU eviction with pins, StoreFullError, remove, URL
 * mappings, recovery of planted leftovers, one process per store, misuse, and every failure to
 * open (a damaged index, a file where a directory should be) as a sentence with the path.
 */
import assert from 'node:assert/strict';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { toHex } from '@peapod/core';
import { ChunkStore } from '../src/store/chunk-store.js';
import type { StoreFullError } from '../src/store/store-api.js';
import { CHUNK_BYTES, makeContent, type TestContent } from './support/store-fixtures.js';

const SEED = 11;
let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let serial = 0;
/** A store in a fresh directory that records every `onChunksDropped` call. */
async function freshStore(
  budgetBytes = 64 * CHUNK_BYTES,
  dir = join(root, `store-${serial++}`),
): Promise<{ store: ChunkStore; dir: string; dropped: string[] }> {
  const dropped: string[] = [];
  const store = await ChunkStore.open({
    dir,
    budgetBytes,
    onChunksDropped: (contentId, indices) =>
      dropped.push(`${toHex(contentId)}:${indices.join(',')}`),
  });
  return { store, dir, dropped };
}

async function putAll(store: ChunkStore, content: TestContent, pinned = false): Promise<void> {
  store.addContent(content.manifest, { kind: 'fetched' }, { pinned });
  for (const [index, bytes] of content.chunks.entries()) {
    await store.putChunk(content.manifest.contentId, index, bytes);
  }
}

function chunkPath(dir: string, content: TestContent, index: number): string {
  const hex = toHex(content.manifest.chunkHashes[index]!);
  return join(dir, 'chunks', hex.slice(0, 2), hex);
}

async function chunkFileCount(dir: string): Promise<number> {
  let count = 0;
  for (const sub of await readdir(join(dir, 'chunks'))) {
    count += (await readdir(join(dir, 'chunks', sub))).length;
  }
  return count;
}

async function assertReads(store: ChunkStore, content: TestContent, index: number): Promise<void> {
  const bytes = await store.readChunk(content.manifest.contentId, index);
  assert.ok(bytes, `chunk ${index} of ${content.hex.slice(0, 8)} does not read back`);
  assert.ok(Buffer.from(bytes).equals(content.chunks[index]!));
}

function isStoreFull(error: unknown): boolean {
  return (error as StoreFullError).code === 'PEAPOD_ERR_STORE_FULL';
}

describe('ChunkStore', () => {
  test('chunks round-trip through chunks/<2 hex>/<sha256>, and across a close and reopen', async () => {
    const { store, dir } = await freshStore();
    const content = makeContent(SEED, [1, 2, 3], 777);
    store.addContent(
      content.manifest,
      { kind: 'url', url: 'http://o.test/a', validator: 'e:"1"' },
      { pinned: false },
    );
    assert.deepEqual(store.heldIndices(content.manifest.contentId), []);
    assert.equal(await store.readChunk(content.manifest.contentId, 0), undefined);
    await store.putChunk(content.manifest.contentId, 2, content.chunks[2]!);
    await store.putChunk(content.manifest.contentId, 0, content.chunks[0]!);
    assert.deepEqual(store.heldIndices(content.manifest.contentId), [0, 2]);
    assert.ok((await readFile(chunkPath(dir, content, 2))).equals(content.chunks[2]!));
    let [row] = store.list();
    assert.equal(row?.complete, false);
    assert.equal(row?.heldChunks, 2);
    await store.putChunk(content.manifest.contentId, 1, content.chunks[1]!);
    // A second put of a held chunk changes nothing.
    await store.putChunk(content.manifest.contentId, 1, content.chunks[1]!);
    assert.deepEqual(store.usage(), {
      storedBytes: 2 * CHUNK_BYTES + 777,
      budgetBytes: 64 * CHUNK_BYTES,
    });
    store.close();

    const reopened = await freshStore(64 * CHUNK_BYTES, dir);
    assert.deepEqual(reopened.store.recovery, {
      temporaryFilesRemoved: 0,
      orphanFilesRemoved: 0,
      rowsDropped: 0,
    });
    [row] = reopened.store.list();
    assert.equal(row?.contentId, content.hex);
    assert.equal(row?.complete, true);
    assert.equal(row?.chunkCount, 3);
    assert.equal(row?.totalBytes, 2 * CHUNK_BYTES + 777);
    assert.deepEqual(row?.origin, { kind: 'url', url: 'http://o.test/a', validator: 'e:"1"' });
    assert.ok((row?.lastUsedAtMs ?? 0) >= (row?.addedAtMs ?? Infinity));
    assert.deepEqual(reopened.store.manifest(content.manifest.contentId), content.manifest);
    for (const index of [0, 1, 2]) await assertReads(reopened.store, content, index);
    assert.equal(reopened.store.usage().storedBytes, 2 * CHUNK_BYTES + 777);
    reopened.store.close();
  });

  test('one chunk file per hash, whatever contents use it; removing one content keeps the shared files', async () => {
    const { store, dir, dropped } = await freshStore();
    const a = makeContent(SEED, [1, 2, 3]);
    const b = makeContent(SEED, [2, 3, 4]);
    const twice = makeContent(SEED, [5, 5]);
    await putAll(store, a);
    await putAll(store, b);
    await putAll(store, twice);
    assert.equal(await chunkFileCount(dir), 5);
    assert.equal(store.usage().storedBytes, 5 * CHUNK_BYTES);
    assert.equal(await store.remove(a.manifest.contentId), true);
    assert.deepEqual(dropped, [`${a.hex}:0,1,2`]);
    assert.equal(await store.remove(a.manifest.contentId), false);
    assert.equal(await chunkFileCount(dir), 4);
    await assert.rejects(stat(chunkPath(dir, a, 0)), { code: 'ENOENT' });
    for (const index of [0, 1, 2]) await assertReads(store, b, index);
    for (const index of [0, 1]) await assertReads(store, twice, index);
    assert.equal(store.usage().storedBytes, 4 * CHUNK_BYTES);
    assert.deepEqual(
      store.list().map((row) => row.contentId),
      [b.hex, twice.hex],
    );
    store.close();
  });

  test('a flipped byte on disk: the read returns nothing, the file and every row using it go, each content is told', async () => {
    const { store, dir, dropped } = await freshStore();
    const a = makeContent(SEED, [1, 2]);
    const b = makeContent(SEED, [3, 2]);
    await putAll(store, a);
    await putAll(store, b);
    const path = chunkPath(dir, a, 1);
    const bytes = await readFile(path);
    bytes[100] = bytes[100]! ^ 0x01;
    await writeFile(path, bytes);

    assert.equal(await store.readChunk(a.manifest.contentId, 1), undefined);
    assert.deepEqual(dropped.sort(), [`${a.hex}:1`, `${b.hex}:1`].sort());
    await assert.rejects(stat(path), { code: 'ENOENT' });
    assert.deepEqual(store.heldIndices(a.manifest.contentId), [0]);
    assert.deepEqual(store.heldIndices(b.manifest.contentId), [0]);
    assert.equal(await store.readChunk(b.manifest.contentId, 1), undefined);
    assert.equal(dropped.length, 2, 'a chunk no longer held is not reported again');
    assert.equal(store.usage().storedBytes, 2 * CHUNK_BYTES);
    // Refetched: stored and served again.
    await store.putChunk(b.manifest.contentId, 1, b.chunks[1]!);
    await assertReads(store, b, 1);
    store.close();
  });

  test('a truncated or vanished chunk file is a failed read too', async () => {
    const { store, dir, dropped } = await freshStore();
    const a = makeContent(SEED, [1, 2, 3]);
    await putAll(store, a);
    await truncate(chunkPath(dir, a, 0), 1000);
    await rm(chunkPath(dir, a, 2));
    assert.equal(await store.readChunk(a.manifest.contentId, 0), undefined);
    assert.equal(await store.readChunk(a.manifest.contentId, 2), undefined);
    assert.deepEqual(dropped, [`${a.hex}:0`, `${a.hex}:2`]);
    assert.deepEqual(store.heldIndices(a.manifest.contentId), [1]);
    assert.equal(store.usage().storedBytes, CHUNK_BYTES);
    store.close();
  });

  test('references: read from the user file, verified; a changed or deleted file is dropped and never written', async () => {
    const { store, dir, dropped } = await freshStore();
    const shared = makeContent(SEED, [7, 8, 9], 5000);
    const userFile = join(dir, '..', `user-${serial}.bin`);
    await writeFile(userFile, Buffer.concat(shared.chunks));
    store.addContent(shared.manifest, { kind: 'shared', path: userFile }, { pinned: true });
    store.referenceChunks(
      shared.manifest.contentId,
      [0, 1, 2].map((index) => ({ index, path: userFile, offset: index * CHUNK_BYTES })),
    );
    assert.deepEqual(store.heldIndices(shared.manifest.contentId), [0, 1, 2]);
    for (const index of [0, 1, 2]) await assertReads(store, shared, index);
    assert.equal(store.usage().storedBytes, 0, 'references cost no budget');
    assert.equal(await chunkFileCount(dir), 0);

    const changed = Buffer.concat(shared.chunks);
    changed[CHUNK_BYTES + 5] = changed[CHUNK_BYTES + 5]! ^ 0xff;
    await writeFile(userFile, changed);
    const before = await stat(userFile);
    assert.equal(await store.readChunk(shared.manifest.contentId, 1), undefined);
    assert.deepEqual(dropped, [`${shared.hex}:1`]);
    assert.ok((await readFile(userFile)).equals(changed), "the user's file is left as it was");
    assert.equal((await stat(userFile)).mtimeMs, before.mtimeMs);
    await assertReads(store, shared, 0);

    await rm(userFile);
    assert.equal(await store.readChunk(shared.manifest.contentId, 2), undefined);
    assert.deepEqual(dropped, [`${shared.hex}:1`, `${shared.hex}:2`]);
    await assert.rejects(stat(userFile), { code: 'ENOENT' }, 'nothing recreated the file');
    store.close();
  });

  test('a reference replaces a chunk file copy and frees it', async () => {
    const { store, dir } = await freshStore();
    const content = makeContent(SEED, [1, 2]);
    await putAll(store, content);
    const userFile = join(dir, '..', `output-${serial}.bin`);
    await writeFile(userFile, Buffer.concat(content.chunks));
    store.referenceChunks(content.manifest.contentId, [{ index: 0, path: userFile, offset: 0 }]);
    assert.equal(store.usage().storedBytes, CHUNK_BYTES);
    await store.remove(content.manifest.contentId);
    await assert.rejects(stat(chunkPath(dir, content, 0)), { code: 'ENOENT' });
    assert.equal(
      (await stat(userFile)).size,
      2 * CHUNK_BYTES,
      'remove never touches a referenced file',
    );
    store.close();
  });

  test('a reference that moves while it is read is read at its new place, not dropped', async () => {
    const { store, dir, dropped } = await freshStore();
    const content = makeContent(SEED, [3]);
    store.addContent(content.manifest, { kind: 'fetched' }, { pinned: false });
    const before = join(dir, '..', `spool-${serial}.bin`);
    const after = join(dir, '..', `object-${serial}.bin`);
    await writeFile(before, content.chunks[0]!);
    const { contentId } = content.manifest;
    store.referenceChunks(contentId, [{ index: 0, path: before, offset: 0 }]);
    // What a gateway fill does when it ends: the file is renamed, then referenced by its new
    // name. The read below started at the old name, which is already gone.
    await rename(before, after);
    const read = store.readChunk(contentId, 0);
    store.referenceChunks(contentId, [{ index: 0, path: after, offset: 0 }]);
    assert.deepEqual(await read, content.chunks[0]);
    assert.deepEqual(dropped, [], 'nothing reported dropped');
    assert.deepEqual(store.heldIndices(contentId), [0]);
    store.close();
  });

  test('a content removed while its puts are in flight keeps nothing', async () => {
    const { store, dir } = await freshStore();
    const content = makeContent(SEED, [11, 12, 13, 14]);
    store.addContent(content.manifest, { kind: 'fetched' }, { pinned: false });
    const puts = content.chunks.map((bytes, index) =>
      store.putChunk(content.manifest.contentId, index, bytes),
    );
    // One put committed, the others waiting or writing: remove lands among them.
    await puts[0];
    assert.equal(await store.remove(content.manifest.contentId), true);
    await Promise.all(puts);
    assert.deepEqual(store.list(), []);
    assert.equal(store.usage().storedBytes, 0);
    store.close();
    assert.equal(await chunkFileCount(dir), 0);
    const reopened = await freshStore(64 * CHUNK_BYTES, dir);
    assert.deepEqual(reopened.store.recovery, {
      temporaryFilesRemoved: 0,
      orphanFilesRemoved: 0,
      rowsDropped: 0,
    });
    reopened.store.close();
  });

  test('over budget, the least recently used chunks of unpinned contents go first; pinned ones stay', async () => {
    const { store, dropped } = await freshStore(4 * CHUNK_BYTES);
    const pinned = makeContent(SEED, [100]);
    const a = makeContent(SEED, [1, 2, 3]);
    const b = makeContent(SEED, [4, 5, 6]);
    await putAll(store, pinned, true);
    await putAll(store, a);
    await assertReads(store, a, 0); // a0 is now the most recently used of a
    store.addContent(b.manifest, { kind: 'fetched' }, { pinned: false });
    await assertReads(store, pinned, 0); // a pinned chunk is never a candidate, used or not

    await store.putChunk(b.manifest.contentId, 0, b.chunks[0]!);
    assert.deepEqual(dropped, [`${a.hex}:1`]);
    await store.putChunk(b.manifest.contentId, 1, b.chunks[1]!);
    assert.deepEqual(dropped, [`${a.hex}:1`, `${a.hex}:2`]);
    await assertReads(store, b, 0);
    await store.putChunk(b.manifest.contentId, 2, b.chunks[2]!);
    assert.deepEqual(dropped, [`${a.hex}:1`, `${a.hex}:2`, `${a.hex}:0`]);
    await store.putChunk(a.manifest.contentId, 0, a.chunks[0]!);
    assert.deepEqual(dropped.at(-1), `${b.hex}:1`);
    assert.deepEqual(store.heldIndices(pinned.manifest.contentId), [0]);
    assert.deepEqual(store.heldIndices(b.manifest.contentId), [0, 2]);
    assert.ok(store.usage().storedBytes <= 4 * CHUNK_BYTES);
    store.close();
  });

  test('when pinned chunks fill the budget, putChunk fails with StoreFullError saying how to raise it', async () => {
    const { store, dir } = await freshStore(2 * CHUNK_BYTES);
    const kept = makeContent(SEED, [1, 2, 3]);
    store.addContent(kept.manifest, { kind: 'fetched' }, { pinned: true });
    await store.putChunk(kept.manifest.contentId, 0, kept.chunks[0]!);
    await store.putChunk(kept.manifest.contentId, 1, kept.chunks[1]!);
    await assert.rejects(
      store.putChunk(kept.manifest.contentId, 2, kept.chunks[2]!),
      (error: Error) => {
        assert.ok(isStoreFull(error));
        assert.match(error.message, /budget is 0\.1 MiB/);
        assert.match(error.message, /--store-budget or PEAPOD_STORE_BUDGET/);
        return true;
      },
    );
    assert.equal(await chunkFileCount(dir), 2);
    // Unpinned, the same content makes room for itself.
    store.addContent(kept.manifest, { kind: 'fetched' }, { pinned: false });
    await store.putChunk(kept.manifest.contentId, 2, kept.chunks[2]!);
    assert.deepEqual(store.heldIndices(kept.manifest.contentId), [1, 2]);
    // A chunk larger than the whole budget never fits.
    const { store: tiny } = await freshStore(1000);
    const one = makeContent(SEED, [9]);
    tiny.addContent(one.manifest, { kind: 'fetched' }, { pinned: false });
    await assert.rejects(tiny.putChunk(one.manifest.contentId, 0, one.chunks[0]!), isStoreFull);
    tiny.close();
    store.close();
  });

  test('URL mappings: newest first, replaced by a remap, kept across a reopen, gone with their content', async () => {
    const { store, dir } = await freshStore();
    const v1 = makeContent(SEED, [1]);
    const v2 = makeContent(SEED, [2]);
    for (const content of [v1, v2])
      store.addContent(content.manifest, { kind: 'fetched' }, { pinned: false });
    store.mapUrl('http://o.test/x', 'etag:"1"', v1.manifest.contentId);
    store.mapUrl('http://o.test/y', 'etag:"1"', v1.manifest.contentId);
    store.mapUrl('http://o.test/x', 'etag:"2"', v2.manifest.contentId);
    const hexes = (rows: Array<{ validator: string; contentId: Uint8Array }>): string[] =>
      rows.map((row) => `${row.validator} ${toHex(row.contentId).slice(0, 8)}`);
    const [h1, h2] = [v1.hex.slice(0, 8), v2.hex.slice(0, 8)];
    assert.deepEqual(hexes(store.urlContents('http://o.test/x')), [
      `etag:"2" ${h2}`,
      `etag:"1" ${h1}`,
    ]);
    store.mapUrl('http://o.test/x', 'etag:"1"', v1.manifest.contentId);
    assert.deepEqual(hexes(store.urlContents('http://o.test/x')), [
      `etag:"1" ${h1}`,
      `etag:"2" ${h2}`,
    ]);
    assert.deepEqual(store.urlContents('http://o.test/none'), []);
    assert.throws(() => store.mapUrl('http://o.test/z', 'v', new Uint8Array(32)), {
      code: 'PEAPOD_ERR_INVALID_ARGUMENT',
    });
    store.close();

    const { store: reopened } = await freshStore(64 * CHUNK_BYTES, dir);
    assert.deepEqual(
      reopened.urlMappings().map((row) => `${row.url} ${row.validator}`),
      ['http://o.test/y etag:"1"', 'http://o.test/x etag:"2"', 'http://o.test/x etag:"1"'],
    );
    await reopened.remove(v1.manifest.contentId);
    assert.deepEqual(hexes(reopened.urlContents('http://o.test/x')), [`etag:"2" ${h2}`]);
    assert.deepEqual(reopened.urlContents('http://o.test/y'), []);
    reopened.close();
  });

  test('open recovers: temporary, orphan and wrong-size files deleted, rows of missing files dropped', async () => {
    const { store, dir } = await freshStore();
    const content = makeContent(SEED, [1, 2, 3, 4]);
    await putAll(store, content);
    store.close();
    const stranger = makeContent(SEED, [50]);
    const orphan = chunkPath(dir, stranger, 0);
    await writeFile(join(dir, 'chunks', '.tmp-top'), 'x');
    await rm(chunkPath(dir, content, 0));
    await truncate(chunkPath(dir, content, 1), 10);
    const sub = join(dir, 'chunks', toHex(stranger.manifest.chunkHashes[0]!).slice(0, 2));
    await mkdir(sub, { recursive: true });
    await writeFile(orphan, stranger.chunks[0]!);
    await writeFile(join(sub, '.tmp-abc'), 'half');
    await writeFile(join(sub, 'not-a-chunk'), 'stray');

    const { store: reopened, dropped } = await freshStore(64 * CHUNK_BYTES, dir);
    assert.deepEqual(reopened.recovery, {
      temporaryFilesRemoved: 2,
      orphanFilesRemoved: 3, // the orphan, the stray, the truncated file
      rowsDropped: 4, // two chunk file rows and the two chunk rows that used them
    });
    assert.deepEqual(dropped, [], 'recovery tells no one: nobody was told of those chunks yet');
    assert.deepEqual(reopened.heldIndices(content.manifest.contentId), [2, 3]);
    await assertReads(reopened, content, 2);
    assert.equal(reopened.usage().storedBytes, 2 * CHUNK_BYTES);
    assert.equal(await chunkFileCount(dir), 2);
    reopened.close();
    const again = await freshStore(64 * CHUNK_BYTES, dir);
    assert.deepEqual(again.store.recovery, {
      temporaryFilesRemoved: 0,
      orphanFilesRemoved: 0,
      rowsDropped: 0,
    });
    again.store.close();
  });

  test('open drops a content whose stored manifest is damaged, keeps the others, and list() works', async () => {
    const { store, dir } = await freshStore();
    const damaged = makeContent(SEED, [5, 6]);
    const sound = makeContent(SEED, [7]);
    await putAll(store, damaged);
    await putAll(store, sound);
    store.mapUrl('http://o.test/d', 'etag:"1"', damaged.manifest.contentId);
    store.close();
    const db = new Database(join(dir, 'index.sqlite'));
    const changed = db
      .prepare('UPDATE contents SET manifest = ? WHERE content_id = ?')
      .run(Buffer.from('not a manifest'), Buffer.from(damaged.manifest.contentId)).changes;
    db.close();
    assert.equal(changed, 1, 'the test damaged one row');

    const { store: reopened } = await freshStore(64 * CHUNK_BYTES, dir);
    assert.equal(reopened.recovery.rowsDropped, 1, 'the damaged content row');
    assert.equal(reopened.recovery.orphanFilesRemoved, 2, 'its two chunk files');
    assert.deepEqual(
      reopened.list().map((row) => row.contentId),
      [toHex(sound.manifest.contentId)],
    );
    assert.deepEqual(reopened.urlContents('http://o.test/d'), []);
    await assertReads(reopened, sound, 0);
    assert.equal(await chunkFileCount(dir), 1);
    reopened.close();
  });

  test('a second opener of a store in use is refused with a sentence', async () => {
    const { store, dir } = await freshStore();
    await assert.rejects(
      ChunkStore.open({ dir, budgetBytes: 1 }),
      /in use by another PeaPod process/,
    );
    store.close();
    const { store: next } = await freshStore(1, dir);
    next.close();
  });

  test('a damaged index and a file in place of the store are sentences: the path, what to do, what is lost', async () => {
    // Pages past the schema table are garbage: the first transaction can pass, recovery not.
    const { store, dir } = await freshStore();
    for (let i = 0; i < 40; i++)
      await putAll(store, makeContent(1000 + i, [3 * i, 3 * i + 1, 3 * i + 2]));
    store.close();
    const indexPath = join(dir, 'index.sqlite');
    const bytes = await readFile(indexPath);
    const page = bytes.readUInt16BE(16) === 1 ? 65536 : bytes.readUInt16BE(16);
    assert.ok(bytes.length > 4 * page, 'the index spans several pages');
    bytes.fill(0xa5, 3 * page);
    await writeFile(indexPath, bytes);
    const damaged = await ChunkStore.open({ dir, budgetBytes: 1 }).then(
      () => assert.fail('a damaged index must not open'),
      (error: Error) => error.message,
    );
    assert.ok(damaged.includes(dir), damaged);
    assert.match(damaged, /is damaged .*mv .*\.broken.* restart: .*shared again \(peapod share\)/);
    // A file where the store directory, or its chunks directory, should be.
    for (const spot of ['', 'chunks']) {
      const place = join(root, `file-${serial++}`);
      if (spot !== '') await mkdir(place);
      await writeFile(join(place, spot), 'not a directory');
      const message = await ChunkStore.open({ dir: place, budgetBytes: 1 }).then(
        () => assert.fail('a file in place of the store must not open'),
        (error: Error) => error.message,
      );
      assert.match(message, /is a file, not a directory; move it aside .*shared again/);
      assert.ok(message.startsWith(`The chunk store ${place} `), message);
      assert.doesNotMatch(message, /^EEXIST|ENOTDIR:/);
    }
  });

  test('an index that is not a database, or of another schema version, is refused with a sentence', async () => {
    const damaged = join(root, `damaged-${serial++}`);
    await mkdir(damaged, { recursive: true });
    await writeFile(
      join(damaged, 'index.sqlite'),
      'this is not SQLite, only long enough to be read as a header '.repeat(4),
    );
    await assert.rejects(
      ChunkStore.open({ dir: damaged, budgetBytes: 1 }),
      /is damaged .*move the store directory aside/,
    );
    const { store, dir } = await freshStore();
    store.close();
    const db = new Database(join(dir, 'index.sqlite'));
    db.prepare('UPDATE schema_version SET version = 99').run();
    db.close();
    await assert.rejects(
      ChunkStore.open({ dir, budgetBytes: 1 }),
      /has schema version 99, written by a newer PeaPod, and this PeaPod reads versions up to 2/,
    );
  });

  test('the @example of ChunkStore.open runs as written', async () => {
    // The example is plain JavaScript with `ChunkStore` and `dir` in scope; `expr; // => JSON`
    // asserts that the expression deep-equals the JSON value (as core's content-examples test).
    const source = await readFile(
      new URL('../../src/store/chunk-store.ts', import.meta.url),
      'utf8',
    );
    const example = /@example\n((?:\s+\*(?! @)(?!\/).*\n)+)/.exec(source)?.[1];
    assert.ok(example, 'ChunkStore.open has an @example');
    const body = example
      .split('\n')
      .map((line) => line.replace(/^\s*\* ?/, ''))
      .map((line) => {
        const check = /^(.*); \/\/ => (.*)$/.exec(line);
        return check ? `assertEqual(${check[1]}, ${check[2]});` : line;
      })
      .join('\n');
    const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (
      ...args: string[]
    ) => (...values: unknown[]) => Promise<void>;
    const run = new AsyncFunction('ChunkStore', 'dir', 'assertEqual', body);
    await run(ChunkStore, join(root, `example-${serial++}`), (actual: unknown, expected: unknown) =>
      assert.deepEqual(JSON.parse(JSON.stringify(actual)), expected),
    );
  });

  test('misuse throws PEAPOD_ERR_INVALID_ARGUMENT naming the argument', async () => {
    const { store } = await freshStore();
    const content = makeContent(SEED, [1, 2]);
    const code = { code: 'PEAPOD_ERR_INVALID_ARGUMENT' };
    await assert.rejects(store.putChunk(content.manifest.contentId, 0, content.chunks[0]!), code);
    store.addContent(content.manifest, { kind: 'fetched' }, { pinned: false });
    await assert.rejects(
      store.putChunk(content.manifest.contentId, 0, content.chunks[1]!),
      /bytes: do not hash/,
    );
    await assert.rejects(
      store.putChunk(content.manifest.contentId, 2, content.chunks[1]!),
      /index/,
    );
    await assert.rejects(store.putChunk(content.manifest.contentId, 0, new Uint8Array(3)), /bytes/);
    assert.throws(
      () =>
        store.referenceChunks(content.manifest.contentId, [
          { index: 0, path: 'relative.bin', offset: 0 },
        ]),
      /absolute/,
    );
    assert.throws(
      () =>
        store.referenceChunks(content.manifest.contentId, [{ index: 0, path: '/a', offset: -1 }]),
      /offset/,
    );
    await assert.rejects(
      ChunkStore.open({ dir: join(root, 'bad'), budgetBytes: -1 }),
      /budgetBytes/,
    );
    assert.deepEqual(store.heldIndices(content.manifest.contentId), []);
    store.close();
  });
});
