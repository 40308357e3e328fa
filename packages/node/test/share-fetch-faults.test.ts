/**
 * `peapod fetch` when things go wrong, on real daemons (PodFixture) and real mounts.
 *
 * What each test pins down:
 * - the seeder is SIGKILLed mid-fetch after the 3 fetchers together hold every chunk (but
 *   none holds all): each finishes from the others, byte-exact;
 * - the seeder is SIGKILLed before they together hold every chunk: each fails after the stall
 *   timeout with 'unavailable' and a sentence of what is missing, exit 1, and no output file;
 * - a fetch interrupted with Ctrl-C (SIGINT, exit 130) resumes: the re-run reads the chunks
 *   verified before back from this device's store (source `self`) and fetches only the rest;
 * - a seeder that corrupts every chunk it serves (`--test-corrupt-served-chunks`) is banned
 *   ('peer banned' in the fetcher's log): with an honest holder too the fetch finishes
 *   byte-exact; with none it fails clearly and no byte of the output lands;
 * - an output on a disk too small (a tiny tmpfs; skipped where mount is not allowed) fails that
 *   fetch before anything is written, saying the free space, the daemon keeps running, and a
 *   re-run elsewhere is byte-exact; a disk that fills after that check fails the writes with
 *   the disk-full sentence and leaves no part file; a full disk under the store fails the fetch with the
 *   store's sentence.
 * The kills wait on the fetchers' stores (their held chunks, polled through the API), never
 * on sleeps; the seeders' upload is limited (`--max-upload`, `--limit-lan`: loopback counts as
 * LAN) so the kills land mid-transfer.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getPeers, type ShareAnswer } from '../src/api-client.js';
import { serves } from './support/api-jobs.js';
import { waitFor } from '../src/local-pod.js';
import {
  heldSet,
  jsonOf,
  peapod,
  sha256,
  startPeapod,
  storeRow,
  writeTree,
  type CliResult,
} from './support/content-cli.js';
import { mountTinyTmpfs } from './support/mounts.js';
import { PodFixture, type DaemonProcess } from './support/pod-fixture.js';
import { TreeSink } from '../src/tree-sink.js';

const MiB = 1024 * 1024;
/** 8 chunks of 4 MiB. */
const CONTENT_BYTES = 32 * MiB;
const CHUNKS = 8;
const LIMITED = ['--max-upload', '8MB', '--limit-lan'];
const FETCHER = [...LIMITED, '--stall-timeout', '3'];

let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'peapod-faults-'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A pod of a seeder and 3 fetchers, all connected, the seeder sharing a fresh file. */
async function seededPod(name: string): Promise<{ pod: PodFixture; file: string; link: string }> {
  const pod = await PodFixture.start({
    daemons: 4,
    flags: { 0: LIMITED, 1: FETCHER, 2: FETCHER, 3: FETCHER },
  });
  for (let i = 0; i < 4; i++) await pod.connected(i, 3);
  await writeTree(join(work, name), { 'object.bin': CONTENT_BYTES });
  const file = join(work, name, 'object.bin');
  const shared = await peapod(pod.daemons[0]!, ['share', file, '--json']);
  assert.equal(shared.status, 0, shared.stderr);
  return { pod, file, link: jsonOf<ShareAnswer>(shared).link };
}

function startFetches(pod: PodFixture, link: string, name: string) {
  return [1, 2, 3].map((i) => {
    const out = join(work, `${name}-out${i}.bin`);
    return { out, run: startPeapod(pod.daemons[i]!, ['fetch', link, '-o', out, '-q']).done };
  });
}

/** Chunks each fetcher's store holds now. */
async function heldByFetchers(pod: PodFixture, contentId: string): Promise<Set<number>[]> {
  return Promise.all(
    [1, 2, 3].map(async (i) => heldSet(await storeRow(pod.daemons[i]!, contentId))),
  );
}

function union(sets: readonly Set<number>[]): Set<number> {
  return new Set(sets.flatMap((set) => [...set]));
}

function contentIdOf(link: string): string {
  return /^peapod:\/\/([0-9a-f]{64})/.exec(link)![1]!;
}

describe('the seeder dies mid-fetch', () => {
  test('the others finish from each other when together they hold everything', async () => {
    const { pod, file, link } = await seededPod('together');
    try {
      const fetches = startFetches(pod, link, 'together');
      let atKill: Set<number>[] = [];
      await waitFor(
        async () => {
          atKill = await heldByFetchers(pod, contentIdOf(link));
          return union(atKill).size === CHUNKS;
        },
        60_000,
        'the fetchers to hold every chunk between them',
      );
      pod.daemons[0]!.child.kill('SIGKILL');
      assert.ok(
        atKill.some((held) => held.size < CHUNKS),
        `a fetcher was still missing chunks at the kill: ${atKill.map((s) => s.size).join(', ')}`,
      );
      const expected = sha256(await readFile(file));
      for (const { out, run } of fetches) {
        const result = await run;
        assert.equal(result.status, 0, result.stderr);
        assert.equal(sha256(await readFile(out)), expected);
      }
    } finally {
      await pod.stop();
    }
  });

  test('each fails unavailable, saying what is missing, when together they cannot', async () => {
    const { pod, link } = await seededPod('apart');
    try {
      const fetches = startFetches(pod, link, 'apart');
      let atKill: Set<number>[] = [];
      await waitFor(
        async () => {
          atKill = await heldByFetchers(pod, contentIdOf(link));
          return atKill.some((held) => held.size > 0);
        },
        60_000,
        'a first verified chunk',
      );
      pod.daemons[0]!.child.kill('SIGKILL');
      assert.ok(union(atKill).size < CHUNKS, 'the kill landed before they held everything');
      for (const { out, run } of fetches) {
        const result: CliResult = await run;
        assert.equal(result.status, 1, result.stderr);
        assert.match(
          result.stderr,
          /fetch failed: unavailable: \d of 8 chunks \([\d.]+ MiB\) (is|are) held by no connected pod member/,
        );
        const left = await readdir(work);
        assert.ok(!left.some((entry) => join(work, entry).startsWith(out)), `${out} stays absent`);
      }
    } finally {
      await pod.stop();
    }
  });
});

describe('an interrupted fetch', () => {
  test('resumes: what was verified is read back from the store, the rest fetched', async () => {
    const pod = await PodFixture.start({ daemons: 2, flags: { 0: LIMITED } });
    try {
      await pod.connected(1, 1);
      await writeTree(join(work, 'resume'), { 'resume.bin': CONTENT_BYTES });
      const file = join(work, 'resume', 'resume.bin');
      const { link } = jsonOf<ShareAnswer>(
        await peapod(pod.daemons[0]!, ['share', file, '--json']),
      );
      const fetcher = pod.daemons[1]!;
      const out = join(work, 'resume-out.bin');
      const first = startPeapod(fetcher, ['fetch', link, '-o', out]);
      let held = 0;
      await waitFor(
        async () => {
          held = heldSet(await storeRow(fetcher, contentIdOf(link))).size;
          return held >= 2;
        },
        60_000,
        'two verified chunks',
      );
      first.child.kill('SIGINT');
      const interrupted = await first.done;
      assert.equal(interrupted.status, 130, interrupted.stderr);
      assert.match(interrupted.stderr, /interrupted; .*re-run the same command to resume/);
      const again = await peapod(fetcher, ['fetch', link, '-o', out, '--json']);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(sha256(await readFile(out)), sha256(await readFile(file)));
      const { bySource } = jsonOf<{ bySource: Record<string, number> }>(again);
      assert.ok(
        (bySource['self'] ?? 0) >= 2 * 4 * MiB,
        `at least the ${held} chunks held before came from the store: ${JSON.stringify(bySource)}`,
      );
      assert.ok(Object.keys(bySource).length === 2, 'the rest came from the seeder');
    } finally {
      await pod.stop();
    }
  });
});

describe('a corrupting seeder', () => {
  let pod: PodFixture;
  let liar: DaemonProcess;
  let honest: DaemonProcess;

  before(async () => {
    pod = await PodFixture.start({
      daemons: 3,
      flags: {
        0: ['--test-corrupt-served-chunks'],
        1: LIMITED,
        2: ['--stall-timeout', '3'],
      },
    });
    for (let i = 0; i < 3; i++) await pod.connected(i, 2);
    [liar, honest] = [pod.daemons[0]!, pod.daemons[1]!];
  });

  after(async () => {
    await pod?.stop();
  });

  test('is banned, and the fetch finishes from an honest holder, byte-exact', async () => {
    await writeTree(join(work, 'both'), { 'same.bin': CONTENT_BYTES });
    const file = join(work, 'both', 'same.bin');
    const byLiar = jsonOf<ShareAnswer>(await peapod(liar, ['share', file, '--json']));
    const byHonest = jsonOf<ShareAnswer>(await peapod(honest, ['share', file, '--json']));
    assert.equal(byLiar.contentId, byHonest.contentId, 'one file, one content ID');
    const out = join(work, 'both-out.bin');
    const result = await peapod(pod.daemons[2]!, ['fetch', byLiar.link, '-o', out, '-q']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(sha256(await readFile(out)), sha256(await readFile(file)));
    assert.match(pod.daemons[2]!.log(), /peer banned.*device1|device1.*peer banned/);
  });

  test('alone, it is banned and the fetch fails clearly; no byte of the output lands', async () => {
    const fetcher = await pod.add(['--stall-timeout', '3']);
    await pod.connected(fetcher.index, 3);
    // 8 chunks: the ban comes at the third bad one (fewer, and the liar stays a holder).
    await writeTree(join(work, 'lies'), { 'lies.bin': CONTENT_BYTES });
    const shared = jsonOf<ShareAnswer>(
      await peapod(liar, ['share', join(work, 'lies', 'lies.bin'), '--json']),
    );
    const out = join(work, 'lies-out');
    await mkdir(out);
    const result = await peapod(fetcher, ['fetch', shared.link], out);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /fetch failed: unavailable: .*held by no connected pod member/);
    assert.match(fetcher.log(), /peer banned/);
    assert.deepEqual(await readdir(out), []);
  });
});

describe('a full disk during a fetch', () => {
  test('fails that fetch with a clear sentence; the daemon keeps running', async (t) => {
    const mount = await mountTinyTmpfs(join(work, 'tiny'), 2 * MiB);
    if (typeof mount === 'string') {
      t.skip(`cannot mount a tmpfs here: ${mount}`);
      return;
    }
    const pod = await PodFixture.start({ daemons: 2 });
    try {
      await pod.connected(1, 1);
      await writeTree(join(work, 'big'), { 'big.bin': 8 * MiB });
      const file = join(work, 'big', 'big.bin');
      const shared = jsonOf<ShareAnswer>(await peapod(pod.daemons[0]!, ['share', file, '--json']));
      const fetcher = pod.daemons[1]!;
      const full = await peapod(fetcher, ['fetch', shared.link, '-o', join(mount.path, 'big.bin')]);
      assert.equal(full.status, 1, full.stderr);
      // The free space is checked before anything is written (or fetched).
      assert.match(
        full.stderr,
        /cannot write 8\.0 MiB under .*tiny: its file system has .* free; free some space or choose another -o/,
      );
      assert.deepEqual(await readdir(mount.path), [], 'nothing is written');
      await getPeers(fetcher.api); // still answers
      const out = join(work, 'big-out.bin');
      const again = await peapod(fetcher, ['fetch', shared.link, '-o', out, '--json']);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(sha256(await readFile(out)), sha256(await readFile(file)));
    } finally {
      await pod.stop();
      mount.unmount();
    }
  });

  test('a disk that fills after the space check fails the writes with the disk-full sentence', async (t) => {
    const mount = await mountTinyTmpfs(join(work, 'tiny-later'), 2 * MiB);
    if (typeof mount === 'string') {
      t.skip(`cannot mount a tmpfs here: ${mount}`);
      return;
    }
    try {
      const output = join(mount.path, 'x.bin');
      const layout = {
        kind: 'file' as const,
        output,
        targets: [{ path: output, start: 0, end: MiB, executable: false }],
      };
      const sink = await TreeSink.open(layout, { force: false }); // 2 MiB free: it fits
      await writeFile(join(mount.path, 'filler'), Buffer.alloc(1.5 * MiB)); // someone else
      await assert.rejects(
        sink.write(0, Buffer.alloc(MiB, 1)),
        /cannot write .*x\.bin: the disk is full \(ENOSPC\)/,
      );
      await sink.abort();
      assert.deepEqual(await readdir(mount.path), ['filler'], 'the part file is removed');
    } finally {
      mount.unmount();
    }
  });

  test("the store's disk full fails the fetch with the store's sentence", async (t) => {
    // Both data directories (so both stores) on a tmpfs too small for one 4 MiB chunk file.
    const mount = await mountTinyTmpfs(join(work, 'tiny-store'), 3 * MiB);
    if (typeof mount === 'string') {
      t.skip(`cannot mount a tmpfs here: ${mount}`);
      return;
    }
    const pod = await PodFixture.start({ daemons: 2, root: mount.path, flags: { 0: LIMITED } });
    try {
      await pod.connected(1, 1);
      await writeTree(join(work, 'stored'), { 'stored.bin': CONTENT_BYTES });
      const file = join(work, 'stored', 'stored.bin');
      const shared = jsonOf<ShareAnswer>(await peapod(pod.daemons[0]!, ['share', file, '--json']));
      const fetcher = pod.daemons[1]!;
      const out = join(work, 'stored-out.bin');
      const result = await peapod(fetcher, ['fetch', shared.link, '-o', out]);
      assert.equal(result.status, 1, result.stderr);
      assert.match(
        result.stderr,
        /fetch failed: The disk holding the chunk store .* is full; free space there/,
      );
      assert.ok(await serves(fetcher.api), 'the daemon keeps running');
      assert.ok(!(await readdir(work)).some((entry) => entry.startsWith('stored-out.bin')));
    } finally {
      await pod.stop();
      mount.unmount();
    }
  });
});
