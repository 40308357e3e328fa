/**
 * `peapod share`, `fetch`, `ls` and `rm` on real daemons (PodFixture: one `peapod daemon`
 * process each, loopback links), driven by the CLI as a user would.
 *
 * What each test pins down:
 * - a file and a small tree shared on one daemon are fetched by the 3 others at once,
 *   byte-exact, with the tree's layout and execute bits, every chunk verified; the link names
 *   the default output;
 * - `--only` writes only the chosen files (and none of the others);
 * - a re-run after the output was lost reads every chunk back from this device's store (the
 *   source is `self`), fetching nothing;
 * - `ls` shows the shared content pinned and complete on the seeder and fetched on the others;
 *   `rm` removes it (the user's files stay), and once every holder removed it a fetch fails
 *   'unavailable' after the stall timeout, exit 1, saying what is missing (having said first
 *   that it asks the pod for the manifest, and how many members are connected);
 * - without -o, fetch prints the target first, and refuses a default name that exists or starts
 *   with a dot (`.bash_login`, `.config`); an explicit -o merges into an existing directory;
 * - share skips hidden names unless --hidden (notes kept when the share fails), and names a
 *   missing path in words; --only reports the bytes of the files written;
 * - a symbolic link inside the output tree is refused, not followed.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Chunker, toHex } from '@peapod/core';
import type { ShareAnswer } from '../src/api-client.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { waitFor } from '../src/local-pod.js';
import {
  heldSet,
  jsonOf,
  peapod,
  sha256,
  storeRow,
  treeHashes,
  writeTree,
} from './support/content-cli.js';
import { PodFixture } from './support/pod-fixture.js';

const MiB = 1024 * 1024;

interface FetchSummary {
  readonly ok: boolean;
  readonly output?: string;
  readonly totalBytes?: number;
  readonly bySource?: Record<string, number>;
  readonly error?: string;
}

describe('peapod share and fetch across 4 daemons', () => {
  let pod: PodFixture;
  let work: string;
  let file: string;
  let tree: string;
  let shared: ShareAnswer;
  let sharedTree: ShareAnswer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'peapod-share-'));
    pod = await PodFixture.start({ daemons: 4, flags: { 3: ['--stall-timeout', '3'] } });
    for (let i = 0; i < 4; i++) await pod.connected(i, 3);
    file = join(work, 'seed', 'video.bin');
    await writeTree(join(work, 'seed'), { 'video.bin': 18 * MiB + 12345 });
    tree = join(work, 'seed', 'photos');
    await writeTree(tree, {
      'a.jpg': 3 * MiB,
      'b.txt': 1000,
      '2024/c.jpg': 5 * MiB + 7,
      '2024/notes/d.txt': 0,
      'tools/run.sh': 300,
    });
    await chmod(join(tree, 'tools/run.sh'), 0o755);
    await symlink('/etc/passwd', join(tree, 'link-out'));
    const seeder = pod.daemons[0]!;
    const one = await peapod(seeder, ['share', file, '--json']);
    assert.equal(one.status, 0, one.stderr);
    shared = jsonOf<ShareAnswer>(one);
    const two = await peapod(seeder, ['share', tree, '--json']);
    assert.equal(two.status, 0, two.stderr);
    sharedTree = jsonOf<ShareAnswer>(two);
  });

  after(async () => {
    await pod?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('share prints the content ID and the link; the walk skips the symlink with a note', async () => {
    assert.match(shared.contentId, /^[0-9a-f]{64}$/);
    assert.equal(shared.link, `peapod://${shared.contentId}?dn=video.bin`);
    assert.deepEqual(
      [shared.name, shared.files, shared.totalBytes],
      ['video.bin', 1, 18 * MiB + 12345],
    );
    assert.deepEqual([sharedTree.name, sharedTree.files], ['photos', 5]);
    assert.equal(sharedTree.skipped.length, 1);
    assert.match(sharedTree.skipped[0]!, /photos\/link-out.*symbolic link/);
    const human = await peapod(pod.daemons[0]!, ['share', file]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`Content ID: ${shared.contentId}`));
    assert.ok(human.stdout.includes(shared.link));
  });

  test('3 daemons fetch the file and the tree at once, byte-exact', async () => {
    const bytes = await readFile(file);
    const expected = sha256(bytes);
    const chunker = new Chunker(createNodeCryptoProvider());
    chunker.push(bytes);
    const videoChunkHashes = chunker.finish().chunkHashes.map((hash) => toHex(hash));
    const runs = [1, 2, 3].map(async (i) => {
      const out = join(work, `out${i}`);
      await mkdir(out);
      const [single, whole] = await Promise.all([
        peapod(pod.daemons[i]!, ['fetch', shared.link, '--json', '-q'], out),
        peapod(pod.daemons[i]!, ['fetch', sharedTree.contentId, '-o', join(out, 'pics')]),
      ]);
      return { i, out, single, whole };
    });
    for (const { i, out, single, whole } of await Promise.all(runs)) {
      assert.equal(single.status, 0, `daemon ${i + 1}: ${single.stdout} ${single.stderr}`);
      assert.equal(whole.status, 0, `daemon ${i + 1}: ${whole.stderr}`);
      const summary = jsonOf<FetchSummary>(single);
      assert.equal(summary.output, join(out, 'video.bin'));
      assert.equal(sha256(await readFile(join(out, 'video.bin'))), expected);
      // Kept once: the store references the committed output; no chunk file of it is left.
      const left = await Promise.all(
        videoChunkHashes.map((hex) =>
          stat(join(pod.daemons[i]!.home, 'store', 'chunks', hex.slice(0, 2), hex)).then(
            () => hex,
            () => undefined,
          ),
        ),
      );
      assert.deepEqual(
        left.filter((hex) => hex !== undefined),
        [],
        `daemon ${i + 1}`,
      );
      const got = await treeHashes(join(out, 'pics'));
      const want = await treeHashes(tree).then((hashes) => {
        delete hashes['link-out'];
        return hashes;
      });
      assert.deepEqual(got, want);
      const mode = (await stat(join(out, 'pics', 'tools/run.sh'))).mode;
      assert.ok((mode & 0o100) !== 0, 'run.sh keeps its execute bit');
      assert.equal((await stat(join(out, 'pics', 'b.txt'))).mode & 0o111, 0);
      assert.match(whole.stderr, /every chunk verified/);
    }
  });

  test('--only fetches the chosen files and writes no other', async () => {
    const out = join(work, 'only');
    const result = await peapod(pod.daemons[2]!, [
      'fetch',
      sharedTree.link,
      '-o',
      out,
      '--only',
      '2024/**',
      '--only',
      '*.txt',
      '--json',
    ]);
    assert.equal(result.status, 0, result.stderr);
    // The bytes of the files written, not of the chunks fetched for them.
    assert.equal(jsonOf<FetchSummary>(result).totalBytes, 5 * MiB + 7 + 0 + 1000);
    const got = await treeHashes(out);
    assert.deepEqual(Object.keys(got).sort(), ['2024/c.jpg', '2024/notes/d.txt', 'b.txt']);
    assert.equal(got['2024/c.jpg'], sha256(await readFile(join(tree, '2024/c.jpg'))));
    const typo = await peapod(pod.daemons[2]!, [
      'fetch',
      sharedTree.link,
      '-o',
      `${out}2`,
      '--only',
      '*.png',
    ]);
    assert.equal(typo.status, 1);
    assert.match(typo.stderr, /--only "\*\.png" matches no file of this tree/);
  });

  test('an existing output is refused without --force and replaced with it', async () => {
    const out = join(work, 'again');
    await mkdir(out);
    const first = await peapod(pod.daemons[1]!, ['fetch', shared.link, '-q'], out);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`writing ${join(out, 'video.bin')}`));
    // Without -o an existing default name is refused even with --force: the sharer chose it.
    const unnamed = await peapod(pod.daemons[1]!, ['fetch', shared.link, '--force'], out);
    assert.equal(unnamed.status, 1);
    assert.match(unnamed.stderr, /video\.bin exists; fetch writes into an existing .* -o/);
    const named = ['fetch', shared.link, '-o', 'video.bin'];
    const refused = await peapod(pod.daemons[1]!, [...named, '-q'], out);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /video\.bin exists; add --force/);
    const forced = await peapod(pod.daemons[1]!, [...named, '--force', '--json'], out);
    assert.equal(forced.status, 0, forced.stderr);
    // Every chunk came back from this device's own store: nothing was fetched again.
    const summary = jsonOf<FetchSummary>(forced);
    assert.deepEqual(Object.keys(summary.bySource ?? {}), ['self']);
    assert.equal(sha256(await readFile(join(out, 'video.bin'))), sha256(await readFile(file)));
  });

  test('without -o, a hidden or existing default name is refused; -o names it', async () => {
    // A sharer's `.bash_login`, or a tree `.config`, must not land in the user's home.
    const dotFile = join(work, 'seed', '.bash_login');
    const dotTree = join(work, 'seed', '.config');
    await writeTree(join(work, 'seed'), { '.bash_login': 100 });
    await writeTree(dotTree, { 'app/settings': 200 });
    const seeder = pod.daemons[0]!;
    const fileShare = jsonOf<ShareAnswer>(await peapod(seeder, ['share', dotFile, '--json']));
    const treeShare = jsonOf<ShareAnswer>(await peapod(seeder, ['share', dotTree, '--json']));
    const home = join(work, 'home');
    await writeTree(join(home, '.config'), { 'mine.conf': 10 });
    for (const share of [fileShare, treeShare]) {
      const result = await peapod(pod.daemons[1]!, ['fetch', share.link], home);
      assert.equal(result.status, 1, result.stderr);
      assert.match(result.stderr, /starts with a dot .*-o NAME/);
    }
    assert.deepEqual(Object.keys(await treeHashes(home)), ['.config/mine.conf']);
    // An existing directory of the tree's name is refused too, and merged only with -o.
    await mkdir(join(home, 'photos'));
    const existing = await peapod(pod.daemons[1]!, ['fetch', sharedTree.link], home);
    assert.equal(existing.status, 1);
    assert.match(existing.stderr, /photos exists; .*only when you name it with -o/);
    const merged = await peapod(pod.daemons[1]!, ['fetch', treeShare.link, '-o', '.config'], home);
    assert.equal(merged.status, 0, merged.stderr);
    assert.deepEqual(Object.keys(await treeHashes(join(home, '.config'))).sort(), [
      'app/settings',
      'mine.conf',
    ]);
  });

  test('share skips hidden names unless --hidden, and names a missing path in words', async () => {
    const root = join(work, 'seed', 'project');
    await writeTree(root, { 'main.c': 50, '.env': 20, '.git/config': 30 });
    const seeder = pod.daemons[0]!;
    const plain = await peapod(seeder, ['share', root]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stdout, /Shared project: 1 file/);
    assert.match(plain.stderr, /"project\/\.env": a hidden name \(add --hidden/);
    assert.match(plain.stderr, /"project\/\.git": a hidden name/);
    const all = jsonOf<ShareAnswer>(await peapod(seeder, ['share', root, '--hidden', '--json']));
    assert.deepEqual([all.files, all.skipped], [3, []]);
    const missing = await peapod(seeder, ['share', join(work, 'nonexistent')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot share .*nonexistent: no such file or directory/);
    // A share that fails keeps its notes: a tree of hidden files only.
    const hiddenOnly = join(work, 'seed', 'dots');
    await writeTree(hiddenOnly, { '.a': 1, '.b': 1 });
    const none = await peapod(seeder, ['share', hiddenOnly]);
    assert.equal(none.status, 1);
    assert.match(
      none.stderr,
      /holds no regular file to share \(skipped "dots\/\.a": a hidden name/,
    );
  });

  test('a symbolic link inside the output tree is refused, not followed', async () => {
    const out = join(work, 'trap');
    await mkdir(out);
    const elsewhere = join(work, 'elsewhere');
    await mkdir(elsewhere);
    await symlink(elsewhere, join(out, '2024'));
    const result = await peapod(pod.daemons[1]!, ['fetch', sharedTree.contentId, '-o', out]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /2024 is a symbolic link, and PeaPod follows none inside a tree/);
    assert.deepEqual(await treeHashes(elsewhere), {});
  });

  test('ls shows what each store holds; rm removes it and leaves the files', async () => {
    const seederList = await peapod(pod.daemons[0]!, ['ls']);
    assert.equal(seederList.status, 0, seederList.stderr);
    assert.match(seederList.stdout, /^ID\s+NAME\s+SIZE\s+HELD\s+PINNED\s+PUBLISHED\s+ORIGIN/);
    const line = seederList.stdout
      .split('\n')
      .find((l) => l.startsWith(shared.contentId.slice(0, 12)));
    assert.ok(line !== undefined, seederList.stdout);
    assert.match(line, /video\.bin\s+18\.0 MiB\s+complete\s+pinned\s+-\s+shared from /);
    const fetched = await storeRow(pod.daemons[1]!, shared.contentId);
    assert.deepEqual(
      [fetched?.complete, fetched?.pinned, fetched?.origin.kind],
      [true, false, 'fetched'],
    );
    const removed = await peapod(pod.daemons[0]!, ['rm', shared.contentId.slice(0, 10)]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.match(removed.stdout, /your files in .* stay/);
    assert.equal(await storeRow(pod.daemons[0]!, shared.contentId), undefined);
    assert.equal(sha256(await readFile(file)).length, 64, 'the shared file is still there');
    const again = await peapod(pod.daemons[0]!, ['rm', shared.contentId]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /holds no content/);
  });

  test('once no member holds it, fetch fails unavailable after the stall timeout', async () => {
    // Daemons 2 and 3 drop what they fetched; the seeder dropped it above.
    for (const i of [1, 2]) {
      const result = await peapod(pod.daemons[i]!, ['rm', shared.contentId, '--json']);
      assert.equal(result.status, 0, result.stderr);
    }
    const holder = pod.daemons[3]!;
    // Daemon 4 holds it too: it must tell the others nothing; remove it there and fetch anew.
    assert.equal(heldSet(await storeRow(holder, shared.contentId)).size > 0, true);
    await peapod(holder, ['rm', shared.contentId]);
    await waitFor(
      async () => (await storeRow(holder, shared.contentId)) === undefined,
      5_000,
      'the content to leave daemon 4',
    );
    const out = join(work, 'gone');
    await mkdir(out);
    const result = await peapod(holder, ['fetch', shared.link], out);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /unavailable: .*no connected pod member holds content/);
    // It said what it waited for, first, rather than nothing for the whole stall timeout.
    assert.match(
      result.stderr,
      /^peapod: asking the pod for the manifest \(3 members connected\)$/m,
    );
  });
});
