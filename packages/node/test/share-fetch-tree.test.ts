/**
 * The pieces of share and fetch that touch files, on real files in a temp directory: the walk
 * and hash pass (share-scan.ts) and the tree sink (tree-sink.ts).
 *
 * What each test pins down:
 * - the walk: regular files sorted by UTF-8 bytes (not UTF-16 order), execute bits, symlinks
 *   and FIFOs skipped with a note, the hash pass equal to one Chunker over the concatenation;
 * - the layout: a single file is the output itself; a tree's root becomes the output
 *   directory; the default names;
 * - the sink: deliveries of any split land in the right files (fast-check), only complete files
 *   appear (part files renamed on commit), unselected files are never created, abort removes
 *   the part files, and an existing target needs `force`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Chunker, createManifest, toHex, type Manifest } from '@peapod/core';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { hashTree, scanTree } from '../src/share-scan.js';
import { defaultOutputName, targetsOf, TreeSink } from '../src/tree-sink.js';
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
    await assert.rejects(scanTree(join(work, 'missing')), /cannot share .*missing: ENOENT/);
  });
});

describe('the tree sink', () => {
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
    const single = treeManifest([['x.iso', 10]], new Uint8Array(10));
    assert.deepEqual(targetsOf(single, '/out/y.iso').targets[0]?.path, '/out/y.iso');
    assert.equal(defaultOutputName(single, 'ab'.repeat(32)), 'x.iso');
    const bare = createManifest(crypto, { totalBytes: 0, chunkSizeBytes: CHUNK, chunkHashes: [] });
    assert.equal(defaultOutputName(bare, 'ab'.repeat(32)), `content-${'ab'.repeat(6)}`);
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
