/**
 * The pieces of share and fetch that touch files, on real files in a temp directory: the walk
 * and hash pass (share-scan.ts) and the tree sink (tree-sink.ts).
 *
 * What each test pins down:
 * - the walk: regular files sorted by UTF-8 bytes (not UTF-16 order), execute bits, symlinks
 *   and FIFOs skipped with a note, the hash pass equal to one Chunker over the concatenation;
 * - what share refuses: the data directory, a tree holding it or inside it (any spelling);
 *   hidden names skipped with a note unless `hidden`; a missing path said in words;
 * - stopping: an aborted walk, hash pass or store step rejects, and a failed or aborted store
 *   step leaves no row for a content that was new (an existing one keeps its row);
 * - printable names: control and bidi characters escaped (fast-check), plain text unchanged;
 * - the sink refuses more bytes than the file system has free, before writing anything;
 * - the layout: a single file is the output itself; a tree's root becomes the output
 *   directory; the default names;
 * - the sink: deliveries of any split land in the right files (fast-check), only complete files
 *   appear (part files renamed on commit), unselected files are never created, abort removes
 *   the part files, and an existing target needs `force`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Chunker, createManifest, toHex, type Manifest } from '@peapod/core';
import { selectedBytes } from '../src/content-job.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { printable } from '../src/printable.js';
import { hashTree, scanTree, shareIntoStore } from '../src/share-scan.js';
import { ChunkStore } from '../src/store/chunk-store.js';
import { chunksInFiles, defaultOutputName, targetsOf, TreeSink } from '../src/tree-sink.js';
import { treeHashes, writeTree } from './support/content-cli.js';

const crypto = createNodeCryptoProvider();
const CHUNK = 65536;
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'peapod-tree-'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A tree manifest over `sizes` (path -> bytes), chunk hashes of `bytes`. */
function treeManifest(files: Array<[string, number]>, bytes: Uint8Array): Manifest {
  const chunker = new Chunker(crypto, { chunkSizeBytes: CHUNK });
  chunker.push(bytes);
  return chunker.finish(files.map(([path, sizeBytes]) => ({ path, sizeBytes, executable: false })));
}

describe('the share walk', () => {
  test('regular files by UTF-8 bytes, execute bits, links and FIFOs skipped', async () => {
    const root = join(work, 'walk', 'photos');
    // U+FF61 sorts after U+1F600 in UTF-16 code units, before it in UTF-8 bytes.
    await writeTree(root, { 'z.txt': 10, 'a/b.bin': 70000, '\u{1F600}.txt': 3, '\uFF61.txt': 4 });
    await writeFile(join(root, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    await symlink('z.txt', join(root, 'link'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const tree = await scanTree(root);
    assert.equal(tree.name, 'photos');
    assert.deepEqual(
      tree.files.map((file) => file.path),
      [
        'photos/a/b.bin',
        'photos/run.sh',
        'photos/z.txt',
        'photos/\uFF61.txt',
        'photos/\u{1F600}.txt',
      ],
    );
    assert.deepEqual(
      tree.files.map((file) => file.executable),
      [false, true, false, false, false],
    );
    assert.equal(tree.notes.length, 2);
    assert.match(tree.notes.join('\n'), /"photos\/link": a symbolic link \(not followed\)/);
    assert.match(tree.notes.join('\n'), /"photos\/pipe": not a regular file/);
    const manifest = await hashTree(crypto, tree, CHUNK);
    const whole = Buffer.concat(await Promise.all(tree.files.map((f) => readFile(f.absolutePath))));
    const chunker = new Chunker(crypto, { chunkSizeBytes: CHUNK });
    chunker.push(whole);
    const expected = chunker.finish(
      tree.files.map(({ path, sizeBytes, executable }) => ({ path, sizeBytes, executable })),
    );
    assert.equal(toHex(manifest.contentId), toHex(expected.contentId));
    assert.equal(manifest.files?.[1]?.executable, true);
  });

  test('a single file shares as a tree of one entry, its base name', async () => {
    await writeTree(join(work, 'one'), { 'movie.mkv': 100 });
    const tree = await scanTree(join(work, 'one', 'movie.mkv'));
    assert.deepEqual(
      tree.files.map((file) => file.path),
      ['movie.mkv'],
    );
    await assert.rejects(
      scanTree(join(work, 'missing')),
      /cannot share .*missing: no such file or directory/,
    );
  });
});

describe('what share refuses, and how it stops', () => {
  test("the daemon's data directory, a tree holding it, one inside it, by any spelling", async () => {
    const home = join(work, 'refuse', 'home');
    const dataDir = join(home, '.peapod');
    await writeTree(dataDir, { 'api-key': 32, 'store/index.sqlite': 100 });
    await writeTree(home, { 'notes.txt': 10 });
    await symlink(dataDir, join(work, 'refuse', 'alias'));
    const spellings = [
      dataDir,
      home,
      join(dataDir, 'store'),
      join(dataDir, 'api-key'),
      join(work, 'refuse', 'alias'),
      join(home, 'x', '..'),
    ];
    for (const path of spellings) {
      await assert.rejects(
        scanTree(path, { dataDir, hidden: true }),
        /the daemon's data directory .* \(its keys and store\); share a directory that does not contain it/,
        path,
      );
    }
    const beside = join(work, 'refuse', 'beside');
    await writeTree(beside, { 'a.txt': 3 });
    assert.equal((await scanTree(beside, { dataDir })).files.length, 1);
  });

  test('hidden names are skipped with a note unless hidden; a missing path is said in words', async () => {
    const root = join(work, 'dots', 'proj');
    await writeTree(root, { 'a.c': 4, '.env': 3, 'sub/.ssh/id': 5, 'sub/b.c': 1 });
    const plain = await scanTree(root);
    assert.deepEqual(
      plain.files.map((f) => f.path),
      ['proj/a.c', 'proj/sub/b.c'],
    );
    assert.deepEqual([...plain.notes].sort(), [
      'skipped "proj/.env": a hidden name (add --hidden to share it)',
      'skipped "proj/sub/.ssh": a hidden name (add --hidden to share it)',
    ]);
    const all = await scanTree(root, { hidden: true });
    assert.equal(all.files.length, 4);
    await assert.rejects(scanTree(join(work, 'no-such')), /no-such: no such file or directory$/);
  });

  test('an aborted walk or hash pass stops; a failed or aborted store step leaves no row', async () => {
    const root = join(work, 'abort', 'tree');
    // Chunks of 64 KiB over files of 40000 bytes: most chunks span two files (copied).
    await writeTree(root, { a: 40000, b: 40000, c: 40000, d: 40000 });
    const stopped = AbortSignal.abort();
    await assert.rejects(scanTree(root, { signal: stopped }), { name: 'AbortError' });
    const tree = await scanTree(root);
    await assert.rejects(hashTree(crypto, tree, CHUNK, stopped), { name: 'AbortError' });
    const manifest = await hashTree(crypto, tree, CHUNK);
    const store = await ChunkStore.open({
      dir: join(work, 'abort', 'store'),
      budgetBytes: 2 ** 30,
    });
    try {
      await assert.rejects(shareIntoStore(crypto, store, tree, manifest, stopped), {
        name: 'AbortError',
      });
      assert.deepEqual(store.list(), []);
      // A file edited between the hash pass and the store step (same size) fails the share.
      const edited = Buffer.alloc(40000, 1);
      await writeFile(join(root, 'b'), edited);
      await assert.rejects(
        shareIntoStore(crypto, store, tree, manifest),
        /changed while it was shared .*share it again/,
      );
      assert.deepEqual(store.list(), []);
      // A content already in the store keeps its row when a later share of it fails.
      const fresh = await hashTree(crypto, tree, CHUNK);
      await shareIntoStore(crypto, store, tree, fresh);
      await assert.rejects(shareIntoStore(crypto, store, tree, fresh, stopped));
      assert.equal(store.list().length, 1);
    } finally {
      store.close();
    }
  });
});

describe('printable names', () => {
  test('control and bidi characters are escaped; everything else is unchanged', () => {
    assert.equal(printable('evil\u001b[2J\u009b31m'), 'evil\\x1b[2J\\x9b31m');
    assert.equal(printable('photo\u202egpj.exe'), 'photo\\u202egpj.exe');
    assert.equal(printable('a\nb\u007f\u2066'), 'a\\x0ab\\x7f\\u2066');
    assert.equal(printable('Zoë 日本 \u{1F600}.txt'), 'Zoë 日本 \u{1F600}.txt');
  });

  test('property: the result holds no control or bidi character, and plain text is kept (500 runs)', () => {
    const unsafe = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (name) => {
        const shown = printable(name);
        assert.doesNotMatch(shown, unsafe);
        if (!unsafe.test(name)) assert.equal(shown, name);
      }),
      { numRuns: 500 },
    );
  });
});

describe('the tree sink', () => {
  test('more bytes than the file system has free are refused before anything is written', async () => {
    const out = join(work, 'huge');
    await mkdir(out);
    const layout = {
      kind: 'directory' as const,
      output: out,
      targets: [{ path: join(out, 'sub', 'big.iso'), start: 0, end: 2 ** 52, executable: false }],
    };
    await assert.rejects(
      TreeSink.open(layout, { force: false }),
      /cannot write 4096\.0 TiB under .*huge: its file system has .* free; free some space or choose another -o/,
    );
    assert.deepEqual(await readdir(out), []);
  });

  const files: Array<[string, number]> = [
    ['photos/a.jpg', CHUNK + 100],
    ['photos/empty', 0],
    ['photos/sub/b.txt', 5],
    ['photos/sub/c.bin', CHUNK * 2 - 3],
  ];
  const total = files.reduce((sum, [, size]) => sum + size, 0);

  test('layouts and default names', () => {
    const bytes = new Uint8Array(total);
    const manifest = treeManifest(files, bytes);
    const layout = targetsOf(manifest, '/out/pics');
    assert.equal(layout.kind, 'directory');
    assert.deepEqual(
      layout.targets.map((target) => target.path),
      ['/out/pics/a.jpg', '/out/pics/empty', '/out/pics/sub/b.txt', '/out/pics/sub/c.bin'],
    );
    assert.equal(defaultOutputName(manifest, 'ab'.repeat(32)), 'photos');
    // selectedBytes' example: 131082 bytes, chunks 1 and 2 of 64 KiB hold 65546 of them.
    const example = treeManifest([['f', 131082]], new Uint8Array(131082));
    assert.equal(selectedBytes(example, [{ start: 1, end: 3 }]), 65546);
    const single = treeManifest([['x.iso', 10]], new Uint8Array(10));
    assert.deepEqual(targetsOf(single, '/out/y.iso').targets[0]?.path, '/out/y.iso');
    assert.equal(defaultOutputName(single, 'ab'.repeat(32)), 'x.iso');
    const bare = createManifest(crypto, { totalBytes: 0, chunkSizeBytes: CHUNK, chunkHashes: [] });
    assert.equal(defaultOutputName(bare, 'ab'.repeat(32)), `content-${'ab'.repeat(6)}`);
  });

  test('chunksInFiles: the chunks lying whole inside one written file, at their offsets there', () => {
    const manifest = treeManifest(files, new Uint8Array(total));
    const layout = targetsOf(manifest, '/out/pics');
    // Chunk 1 spans a.jpg, b.txt and c.bin: it stays a chunk file.
    assert.deepEqual(chunksInFiles(manifest, layout, [0, 1, 2, 3]), [
      { index: 0, path: '/out/pics/a.jpg', offset: 0 },
      { index: 2, path: '/out/pics/sub/c.bin', offset: CHUNK - 105 },
      { index: 3, path: '/out/pics/sub/c.bin', offset: 2 * CHUNK - 105 },
    ]);
    // Only c.bin written (--only): only its chunks.
    assert.deepEqual(
      chunksInFiles(manifest, layout, [3]).map((reference) => reference.index),
      [2, 3],
    );
  });

  test('property: any split of in-order deliveries writes every file exactly (25 runs)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: total, maxLength: total }),
        fc.array(fc.integer({ min: 1, max: total }), { maxLength: 12 }),
        async (bytes, cuts) => {
          const manifest = treeManifest(files, bytes);
          const out = join(work, `split-${run++}`);
          const sink = await TreeSink.open(targetsOf(manifest, out), { force: false });
          const points = [...new Set([0, ...cuts, total])].sort((a, b) => a - b);
          for (let i = 0; i + 1 < points.length; i++) {
            await sink.write(points[i]!, bytes.subarray(points[i]!, points[i + 1]!));
          }
          assert.deepEqual(await readdir(join(out, 'sub')).then((names) => names.sort()), [
            'b.txt.peapod-part',
            'c.bin.peapod-part',
          ]);
          await sink.commit();
          let at = 0;
          for (const [path, size] of files) {
            const written = await readFile(join(out, path.slice('photos/'.length)));
            assert.deepEqual(new Uint8Array(written), bytes.subarray(at, at + size));
            at += size;
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  test('unselected files are never created; abort removes the part files', async () => {
    const bytes = new Uint8Array(total).fill(7);
    const manifest = treeManifest(files, bytes);
    const out = join(work, 'selected');
    const sink = await TreeSink.open(targetsOf(manifest, out), { force: false, selected: [2] });
    await sink.write(0, bytes);
    await sink.commit();
    assert.deepEqual(Object.keys(await treeHashes(out)), ['sub/b.txt']);
    const aborted = join(work, 'aborted');
    const second = await TreeSink.open(targetsOf(manifest, aborted), { force: false });
    await second.write(0, bytes.subarray(0, CHUNK));
    await second.abort();
    assert.deepEqual(await treeHashes(aborted), {});
  });

  test('an existing target needs force; a directory in its place is refused', async () => {
    const single = treeManifest([['x.bin', 3]], Uint8Array.of(1, 2, 3));
    const path = join(work, 'x.bin');
    await writeFile(path, 'old');
    await assert.rejects(
      TreeSink.open(targetsOf(single, path), { force: false }),
      /x\.bin exists; add --force to replace it/,
    );
    const sink = await TreeSink.open(targetsOf(single, path), { force: true });
    await sink.write(0, Uint8Array.of(1, 2, 3));
    await sink.commit();
    assert.deepEqual([...(await readFile(path))], [1, 2, 3]);
    assert.equal((await stat(path)).size, 3);
    await assert.rejects(
      TreeSink.open(targetsOf(single, work), { force: true }),
      /it is a directory; remove it or choose another -o/,
    );
  });
});
