/**
 * `peapod share --publish`, `peapod unpublish` and `peapod publish` across daemon restarts, with
 * real processes: a broadcasting daemon and a silent daemon of ANOTHER pod (a stranger to it),
 * a real tracker (GossipNet), driven as a user would (`peapod share`, `ls`, `fetch`, `rm`).
 *
 * What each test pins down:
 * - `share --publish`: `ls --json` says `published: true`, and `ls` shows PUBLISHED;
 * - restarted, the daemon still lists it published, and the stranger fetches it byte-exact
 *   from it: the store handed the flag to the core at start-up;
 * - `unpublish`: at once `ls --json` says false and the stranger's fetch fails (it is served
 *   nothing), and it stays so across a restart;
 * - sharing the same path again with `--publish` publishes it again; the stranger is served;
 * - `publish ID` / `unpublish ID` name what they did, and an unknown ID exits 1.
 * Every wait polls the daemons' API with a deadline; nothing sleeps.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ContentRow, ShareAnswer } from '../src/api-client.js';
import { waitFor } from '../src/local-pod.js';
import { jsonOf, peapod, sha256, storeRow } from './support/content-cli.js';
import { GossipNet, type NetDaemon } from './support/gossip-net.js';

const MiB = 1024 * 1024;

describe('published contents across restarts', { timeout: 240_000 }, () => {
  let net: GossipNet;
  let work: string;
  let beacon: NetDaemon;
  let stranger: NetDaemon;
  let file: string;
  let bytes: Buffer;
  let contentId: string;
  let serial = 0;

  /**
   * Restarts the beacon, then the stranger (so that it forgets what gossip told it and dials
   * the beacon anew, not after a backoff), and waits until the stranger is linked to it.
   */
  async function restartBeacon(): Promise<void> {
    beacon = await net.restart(beacon);
    stranger = await net.restart(stranger);
    await linked();
  }

  async function linked(): Promise<void> {
    await waitFor(
      async () =>
        (await net.gossipRows(stranger)).some(
          (row) => row.deviceId === beacon.deviceId && row.linked,
        ),
      30_000,
      `the stranger to link to the beacon\n${stranger.log().slice(-3000)}`,
    );
  }

  /** The stranger fetches the content afresh (what it held before removed first). */
  async function strangerFetch() {
    await peapod(stranger, ['rm', contentId]);
    const out = join(work, `fetched-${serial++}.bin`);
    const result = await peapod(stranger, ['fetch', contentId, '-o', out, '--json', '-q']);
    return { result, out };
  }

  async function publishedOnBeacon(): Promise<boolean | undefined> {
    return (await storeRow(beacon, contentId))?.published;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'peapod-publish-work-'));
    net = await GossipNet.create();
    const tracker = await net.startTracker();
    beacon = await net.add('beacon', ['--tracker', tracker, '--broadcast']);
    // A stranger's fetch of a content nobody serves it gives up after 3 s.
    stranger = await net.add('stranger', ['--tracker', tracker, '--stall-timeout', '3']);
    await linked();
    file = join(work, 'talk.bin');
    bytes = randomBytes(5 * MiB + 321);
    await writeFile(file, bytes);
  });

  after(async () => {
    await net?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('share --publish: ls shows it published, in --json and in the table', async () => {
    const shared = await peapod(beacon, ['share', file, '--publish', '--json']);
    assert.equal(shared.status, 0, shared.stderr);
    const answer = jsonOf<ShareAnswer>(shared);
    assert.equal(answer.published, true);
    contentId = answer.contentId;
    const listed = await peapod(beacon, ['ls', '--json']);
    assert.equal(listed.status, 0, listed.stderr);
    const rows = jsonOf<{ contents: ContentRow[] }>(listed).contents;
    assert.deepEqual(
      rows.map((row) => [row.contentId, row.published]),
      [[contentId, true]],
    );
    const table = await peapod(beacon, ['ls']);
    assert.match(table.stdout, /^ID\s+NAME\s+SIZE\s+HELD\s+PINNED\s+PUBLISHED\s+ORIGIN/);
    assert.match(table.stdout, /talk\.bin\s+5\.0 MiB\s+complete\s+pinned\s+published\s+shared/);
  });

  test('restarted, the daemon still publishes it: the stranger fetches it byte-exact from it', async () => {
    await restartBeacon();
    assert.equal(await publishedOnBeacon(), true, 'the flag survived the restart');
    const { result, out } = await strangerFetch();
    assert.equal(
      result.status,
      0,
      `${result.stdout}\n${result.stderr}\n${stranger.log().slice(-3000)}`,
    );
    assert.equal(sha256(await readFile(out)), sha256(bytes));
    const summary = jsonOf<{ bySource: Record<string, number> }>(result);
    assert.deepEqual(summary.bySource, { [beacon.deviceIdHex]: bytes.length });
  });

  test('unpublish takes effect at once and holds across a restart', async () => {
    const human = await peapod(beacon, ['unpublish', contentId.slice(0, 10)]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(
      human.stdout,
      /^Unpublished [0-9a-f]{12} talk\.bin: strangers are no longer served it/,
    );
    assert.equal(await publishedOnBeacon(), false);
    const { result, out } = await strangerFetch();
    assert.equal(result.status, 1, `${result.stdout}\n${result.stderr}`);
    await assert.rejects(stat(out), /ENOENT/, 'nothing was written');
    await restartBeacon();
    assert.equal(await publishedOnBeacon(), false, 'still unpublished after a restart');
    const again = await strangerFetch();
    assert.equal(again.result.status, 1, `${again.result.stdout}\n${again.result.stderr}`);
  });

  test('sharing it again with --publish publishes it again; publish and unpublish by ID', async () => {
    const shared = await peapod(beacon, ['share', file, '--publish']);
    assert.equal(shared.status, 0, shared.stderr);
    assert.match(shared.stdout, /Published: +strangers .* may fetch it too/);
    assert.equal(await publishedOnBeacon(), true);
    const { result, out } = await strangerFetch();
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.equal(sha256(await readFile(out)), sha256(bytes));

    const off = await peapod(beacon, ['unpublish', contentId, '--json']);
    assert.deepEqual(jsonOf(off), { contentId, found: true, published: false });
    // A plain share (no --publish) of an unpublished content leaves it unpublished.
    const plain = await peapod(beacon, ['share', file, '--json']);
    assert.equal(jsonOf<ShareAnswer>(plain).published, false);
    const on = await peapod(beacon, ['publish', contentId.slice(0, 12)]);
    assert.equal(on.status, 0, on.stderr);
    assert.match(on.stdout, /^Published [0-9a-f]{12} talk\.bin: strangers/);
    assert.equal(await publishedOnBeacon(), true);
    const unknown = await peapod(beacon, ['unpublish', 'ffffffffffff']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /the store holds no content ffffffffffff/);
  });
});
