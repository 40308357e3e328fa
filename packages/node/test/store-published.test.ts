/**
 * The store's `published` flag on real SQLite files and real chunk files (store-api.ts,
 * store-migrate.ts).
 *
 * What each test pins down:
 * - the flag is recorded durably: it survives a close and reopen, a second `addContent` of the
 *   same content (a re-share) keeps it, clearing it persists too, and an unknown content is
 *   refused (false); `remove` forgets it with the row;
 * - a store written by schema version 1 (the frozen schema, with contents, chunk files,
 *   references and URL mappings) opens and is upgraded to version 2: every content, chunk and
 *   mapping is still there and reads back, none is published, and the flag then works;
 * - a store of a newer version, or with no readable version, is refused with a sentence that
 *   says which and what to do, and is left as it was.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { ChunkStore } from '../src/store/chunk-store.js';
import { SCHEMA_VERSION } from '../src/store/store-schema.js';
import { CHUNK_BYTES, makeContent, type TestContent } from './support/store-fixtures.js';
import { SCHEMA_V1 } from './support/store-v1-schema.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-published-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let serial = 0;
const open = (dir: string) => ChunkStore.open({ dir, budgetBytes: 64 * CHUNK_BYTES });

async function putAll(store: ChunkStore, content: TestContent, pinned: boolean): Promise<void> {
  store.addContent(content.manifest, { kind: 'fetched' }, { pinned });
  for (const [index, bytes] of content.chunks.entries()) {
    await store.putChunk(content.manifest.contentId, index, bytes);
  }
}

function publishedOf(store: ChunkStore): Record<string, boolean> {
  return Object.fromEntries(store.list().map((row) => [row.contentId, row.published]));
}

function indexVersion(dir: string): unknown {
  const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT version FROM schema_version').pluck().get();
  } finally {
    db.close();
  }
}

/** The `contents` table's columns (name, type, not null, default), as SQLite reports them. */
function contentColumns(dir: string): unknown[] {
  const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
  try {
    return db.pragma('table_info(contents)') as unknown[];
  } finally {
    db.close();
  }
}

/**
 * Rewrites the store's index as schema version 1 would have: the frozen v1 tables, the same
 * rows (every column v1 had), version 1. The chunk files stay as they are.
 */
async function downgradeToV1(dir: string): Promise<void> {
  const path = join(dir, 'index.sqlite');
  const oldPath = join(dir, 'index-v2.sqlite');
  const current = new Database(path);
  current.prepare('VACUUM INTO ?').run(oldPath);
  current.close();
  for (const file of [path, `${path}-wal`, `${path}-shm`]) await unlink(file).catch(() => {});
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA_V1);
  db.prepare('INSERT INTO schema_version VALUES (1)').run();
  db.prepare('ATTACH DATABASE ? AS v2').run(oldPath);
  db.exec(`
    INSERT INTO contents SELECT content_id, manifest, total_bytes, chunk_size_bytes, chunk_count,
      pinned, origin_kind, origin_path, origin_url, origin_validator, added_at_ms,
      last_used_at_ms FROM v2.contents;
    INSERT INTO chunk_files SELECT * FROM v2.chunk_files;
    INSERT INTO content_chunks SELECT * FROM v2.content_chunks;
    INSERT INTO url_mappings SELECT * FROM v2.url_mappings;
  `);
  db.exec('DETACH DATABASE v2');
  db.close();
  await unlink(oldPath);
}

describe('the published flag in the store', () => {
  test('survives a reopen and a re-add; clearing it persists; unknown contents are refused', async () => {
    const dir = join(root, `store-${serial++}`);
    const a = makeContent(1, [1, 2]);
    const b = makeContent(2, [3], 500);
    let store = await open(dir);
    await putAll(store, a, true);
    await putAll(store, b, false);
    assert.deepEqual(publishedOf(store), { [a.hex]: false, [b.hex]: false }, 'new rows: not');
    assert.equal(store.setPublished(a.manifest.contentId, true), true);
    assert.equal(store.isPublished(a.manifest.contentId), true);
    assert.equal(store.setPublished(makeContent(3, [9]).manifest.contentId, true), false);
    store.close();

    store = await open(dir);
    assert.deepEqual(publishedOf(store), { [a.hex]: true, [b.hex]: false });
    // A second share of the same content updates its origin and pin, not the flag.
    store.addContent(a.manifest, { kind: 'shared', path: '/data/a.bin' }, { pinned: true });
    assert.equal(store.isPublished(a.manifest.contentId), true);
    assert.equal(store.setPublished(a.manifest.contentId, false), true);
    store.close();

    store = await open(dir);
    assert.deepEqual(publishedOf(store), { [a.hex]: false, [b.hex]: false });
    store.setPublished(b.manifest.contentId, true);
    assert.equal(await store.remove(b.manifest.contentId), true);
    assert.equal(store.isPublished(b.manifest.contentId), false, 'removed: no longer published');
    // Added again after a removal: a new row, not published.
    await putAll(store, b, false);
    assert.equal(store.isPublished(b.manifest.contentId), false);
    store.close();
  });

  test('a version 1 store opens upgraded: every content, chunk and mapping kept, none published', async () => {
    const dir = join(root, `store-${serial++}`);
    const contents = [
      makeContent(11, [1, 2, 3], 777),
      makeContent(12, [2, 4]),
      makeContent(13, [5]),
    ];
    let store = await open(dir);
    await putAll(store, contents[0]!, true);
    await putAll(store, contents[1]!, false);
    // A content held only in part, and one with a URL mapping.
    store.addContent(
      contents[2]!.manifest,
      { kind: 'url', url: 'https://example.org/x', validator: '"v1"' },
      {
        pinned: false,
      },
    );
    store.mapUrl('https://example.org/x', '"v1"', contents[2]!.manifest.contentId);
    const before = store.list();
    const heldBefore = contents.map((c) => store.heldIndices(c.manifest.contentId));
    store.close();
    await downgradeToV1(dir);
    assert.equal(indexVersion(dir), 1);

    store = await open(dir);
    assert.deepEqual(store.recovery, {
      temporaryFilesRemoved: 0,
      orphanFilesRemoved: 0,
      rowsDropped: 0,
    });
    const afterRows = store.list();
    // None was published before the downgrade, so each row is as it was, flag included.
    assert.deepEqual(afterRows, before, 'every content row as it was');
    assert.ok(
      afterRows.every((row) => !row.published),
      'no content published after the upgrade',
    );
    assert.deepEqual(
      contents.map((c) => store.heldIndices(c.manifest.contentId)),
      heldBefore,
    );
    for (const content of contents.slice(0, 2)) {
      for (const [index, bytes] of content.chunks.entries()) {
        const read = await store.readChunk(content.manifest.contentId, index);
        assert.ok(read !== undefined && Buffer.from(read).equals(bytes), `${content.hex} ${index}`);
      }
    }
    assert.deepEqual(store.urlContents('https://example.org/x'), [
      { validator: '"v1"', contentId: contents[2]!.manifest.contentId },
    ]);
    assert.equal(store.setPublished(contents[0]!.manifest.contentId, true), true);
    store.close();
    assert.equal(indexVersion(dir), SCHEMA_VERSION, 'the index now says version 2');
    const fresh = join(root, `store-${serial++}`);
    (await open(fresh)).close();
    assert.deepEqual(contentColumns(dir), contentColumns(fresh), 'upgraded = created anew');
    store = await open(dir);
    assert.equal(store.isPublished(contents[0]!.manifest.contentId), true);
    store.close();
  });

  test('a newer or unreadable schema version is refused with a sentence, the index untouched', async () => {
    const dir = join(root, `store-${serial++}`);
    const store = await open(dir);
    await putAll(store, makeContent(21, [1]), true);
    store.close();
    const setVersion = (sql: string) => {
      const db = new Database(join(dir, 'index.sqlite'));
      db.exec(sql);
      db.close();
    };
    setVersion(`UPDATE schema_version SET version = ${SCHEMA_VERSION + 1}`);
    await assert.rejects(
      open(dir),
      new RegExp(
        `has schema version ${SCHEMA_VERSION + 1}, written by a newer PeaPod, and this PeaPod reads versions up to ${SCHEMA_VERSION}; run the newer PeaPod, or move the store directory aside`,
      ),
    );
    assert.equal(indexVersion(dir), SCHEMA_VERSION + 1, 'a refused index is not rewritten');
    for (const [sql, shown] of [
      [`UPDATE schema_version SET version = 'two'`, /no readable schema version \(\["two"\]\)/],
      ['UPDATE schema_version SET version = 0', /no readable schema version \(\[0\]\)/],
      ['DELETE FROM schema_version', /no readable schema version \(\[\]\)/],
    ] as const) {
      setVersion(sql);
      await assert.rejects(open(dir), shown);
    }
    setVersion('INSERT INTO schema_version VALUES (2)');
    const again = await open(dir);
    again.close();
  });
});
