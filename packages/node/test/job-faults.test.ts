/**
 * Nothing a job does takes the daemon down (issue 9 item 8), and a resume trusts only what it
 * verified (item 7): a real `peapod daemon` process, real HTTP origins on loopback (the dev
 * origin and a lying origin, test/support/lying-origin.ts), real file-system faults (a tiny
 * tmpfs for ENOSPC, a read-only bind mount for EROFS, /sys for EACCES: the tests run as root).
 *
 * What each test pins down: the job fails (or is refused) alone with one sentence naming the
 * output or the cause, no stack trace, and the daemon then still serves `GET /api/peers` and a
 * known-good download. Before this change a directory as `-o` killed the daemon (the rename in
 * `OutputFile.commit` rejected inside the job's promise chain: an unhandled rejection).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { CHECKPOINT_BYTES, OutputFile } from '../src/output-file.js';
import { runJob, sendApiRequest, serves, startJob, type JobOutcome } from './support/api-jobs.js';
import { rawServer } from './support/http.js';
import {
  LIES,
  objectBytes,
  startLyingOrigin,
  type Lie,
  type LyingOrigin,
} from './support/lying-origin.js';
import { mountReadOnly, mountTinyTmpfs, type Mount } from './support/mounts.js';
import { PodFixture } from './support/pod-fixture.js';

const MiB = 1024 * 1024;
const BROKE_OFF = /connection broke after \d+ bytes|closed the connection after \d+/;

/** One sentence for a person: one line, no stack frame, no raw JSON. */
function assertSentence(message: string): void {
  assert.equal(message.includes('\n'), false, message);
  assert.doesNotMatch(message, /^\s*at |\{"|\[object /m, message);
  assert.ok(message.length > 10, message);
}

/** The job failed, or was refused (with `status` when given), with a sentence matching. */
function failedWith(outcome: JobOutcome, pattern: RegExp, status?: number): void {
  assert.notEqual(outcome.kind, 'done', JSON.stringify(outcome));
  if (status !== undefined) {
    assert.ok(outcome.kind === 'refused' && outcome.status === status, JSON.stringify(outcome));
  }
  const message = outcome.kind === 'done' ? '' : outcome.message;
  assert.match(message, pattern);
  assertSentence(message);
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

describe('job faults: each fails that job alone', () => {
  let pod: PodFixture;
  let origin: DevOrigin;
  let liar: LyingOrigin;
  let slow: DevOrigin;
  const mounts: Mount[] = [];
  let root: string;

  before(async () => {
    pod = await PodFixture.start({ daemons: 1 });
    root = join(pod.root, 'out');
    await mkdir(root);
    origin = await startDevOrigin({
      objects: [
        { name: 'small.bin', sizeBytes: 300_000, seed: 1 },
        { name: 'big.bin', sizeBytes: 3 * MiB, seed: 2 },
      ],
    });
    slow = await startDevOrigin({
      rateBytesPerSec: 1e6,
      objects: [{ name: 'slow.bin', sizeBytes: 16 * MiB, seed: 3 }],
    });
    liar = await startLyingOrigin(3 * MiB);
  });
  after(async () => {
    for (const mounted of mounts) mounted.unmount();
    await pod?.stop();
    await origin?.close();
    await liar?.close();
    await slow?.close();
  });

  const api = () => pod.daemons[0]!.api;
  const job = (url: string, output: string, extra: object = {}) => ({
    url,
    output,
    pool: true,
    headers: [],
    ...extra,
  });

  /** The daemon answers and a small known-good download still succeeds, byte-exact. */
  async function stillServes(): Promise<void> {
    assert.ok(await serves(api()), `the daemon stopped serving:\n${pod.daemons[0]!.log()}`);
    const output = join(root, `control-${Math.random().toString(36).slice(2)}.bin`);
    const outcome = await runJob(api(), job(`${origin.url}/small.bin`, output));
    assert.equal(outcome.kind, 'done', JSON.stringify(outcome));
    const sha256 = createHash('sha256')
      .update(await readFile(output))
      .digest('hex');
    assert.equal(sha256, origin.sha256('small.bin'));
  }

  test('a directory as -o is refused at once with a sentence (it crashed the daemon)', async () => {
    for (const pool of [true, false]) {
      const outcome = await runJob(api(), job(`${origin.url}/small.bin`, root, { pool }));
      assert.equal(outcome.kind, 'refused');
      failedWith(outcome, /is a directory \(EISDIR\); give a file name with -o/, 409);
      assert.equal(await exists(`${root}.peapod-part`), false);
      await stillServes();
    }
  });

  test('an existing file is refused without --force, replaced with it', async () => {
    const output = join(root, 'existing.bin');
    await writeFile(output, 'keep me');
    const refused = await runJob(api(), job(`${origin.url}/small.bin`, output));
    failedWith(refused, new RegExp(`^${output} exists; use --force to replace it$`));
    assert.equal(await readFile(output, 'utf8'), 'keep me');
    const forced = await runJob(api(), job(`${origin.url}/small.bin`, output, { force: true }));
    assert.equal(forced.kind, 'done', JSON.stringify(forced));
    assert.equal((await stat(output)).size, 300_000);
    // The CLI: `peapod get URL -o EXISTING` fails with that sentence and exit status 1.
    const cli = await pod.get(0, [`${origin.url}/small.bin`, '-o', output, '-q']);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /exists; use --force to replace it/);
    const cliForced = await pod.get(0, [`${origin.url}/small.bin`, '-o', output, '--force', '-q']);
    assert.equal(cliForced.status, 0, cliForced.stderr);
  });

  test('a device as -o is refused even with --force (root would replace /dev/null)', async () => {
    const outcome = await runJob(
      api(),
      job(`${origin.url}/small.bin`, '/dev/null', { force: true }),
    );
    failedWith(outcome, /^\/dev\/null is not a regular file/);
    assert.ok((await stat('/dev/null')).isCharacterDevice());
  });

  test('a missing directory, a file in the path, EACCES (/sys): one sentence each', async () => {
    await writeFile(join(root, 'plain'), '');
    const cases: Array<[string, RegExp]> = [
      [join(root, 'missing', 'x.bin'), /a directory on its path does not exist \(ENOENT\)/],
      [join(root, 'plain', 'x.bin'), /is a file, not a directory \(ENOTDIR\)/],
      ['/sys/peapod-fault-test.bin', /permission denied \(EACCES\)/],
    ];
    for (const [output, pattern] of cases) {
      // A problem with -o is the request's (409), not the origin's (502).
      failedWith(await runJob(api(), job(`${origin.url}/small.bin`, output)), pattern, 409);
    }
    assert.equal(await exists('/sys/peapod-fault-test.bin.peapod-part'), false);
    await stillServes();
  });

  test('a read-only file system (EROFS)', async (t) => {
    const mounted = await mountReadOnly(join(pod.root, 'read-only'));
    if (typeof mounted === 'string') return t.skip(mounted);
    mounts.push(mounted);
    const outcome = await runJob(api(), job(`${origin.url}/small.bin`, join(mounted.path, 'x')));
    failedWith(outcome, /read-only \(EROFS\)/);
    await stillServes();
  });

  test('a full disk (ENOSPC) fails the job mid-way, pooled and single source', async (t) => {
    const mounted = await mountTinyTmpfs(join(pod.root, 'tiny'), MiB);
    if (typeof mounted === 'string') return t.skip(mounted);
    mounts.push(mounted);
    for (const pool of [true, false]) {
      const output = join(mounted.path, `full-${pool}.bin`);
      const outcome = await runJob(api(), job(`${origin.url}/big.bin`, output, { pool }));
      failedWith(outcome, /the disk is full \(ENOSPC\); free some space and re-run to resume/);
      assert.equal(await exists(output), false);
      await stillServes();
    }
  });

  test('two jobs on one output: the second is refused at once, under any spelling', async () => {
    const output = join(root, 'shared.bin');
    await symlink(root, join(pod.root, 'link'));
    // 16 s at the origin's 1 MB/s: it runs while the others try, until the test cancels it.
    const first = await startJob(api(), job(`${slow.url}/slow.bin`, output, { pool: false }));
    assert.ok(first.accepted);
    for (const spelling of [
      output,
      join(root, '..', 'out', 'shared.bin'),
      join(pod.root, 'link', 'shared.bin'),
    ]) {
      const second = await runJob(api(), job(`${origin.url}/small.bin`, spelling));
      failedWith(second, /another download is already writing .*shared\.bin; wait for it to end/);
    }
    first.cancel();
    await first.outcome;
    // Released when the job ended (the daemon notices the closed request first).
    let outcome: JobOutcome | undefined;
    for (let attempt = 0; attempt < 100; attempt++) {
      outcome = await runJob(api(), job(`${origin.url}/small.bin`, output, { force: true }));
      if (outcome.kind !== 'refused' || !/already writing/.test(outcome.message)) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(outcome?.kind, 'done', JSON.stringify(outcome));
  });

  /** What each lie must come to: `fail` (with a sentence matching) or a byte-exact `done`. */
  const verdicts: Record<Lie, { pooled: RegExp | 'done'; single: RegExp | 'done' }> = {
    // The single-source sentence is this branch's or the stall branch's (origin-whole.ts).
    short: { pooled: /broke off after/, single: BROKE_OFF },
    reset: { pooled: /broke off after/, single: BROKE_OFF },
    // A 206 whose Content-Range is off, or states another total, disagrees with the pin (its
    // length): the object "changed" twice, so the job ends single source, and the whole (200)
    // answer is honest, so the file is byte-exact.
    'wrong-range': { pooled: 'done', single: 'done' },
    'wrong-total': { pooled: 'done', single: 'done' },
    'new-etag': { pooled: 'done', single: 'done' }, // origin changed: restarted single source
  };
  test('origins that lie fail those jobs alone (or recover byte-exact), all at once', async () => {
    // Concurrently: the pooled ones retry the origin for about 15 s before they give up, and
    // the daemon must serve other jobs meanwhile.
    const runs = LIES.flatMap((lie) =>
      [true, false].map((pool) => {
        const output = join(root, `lie-${lie}-${pool}.bin`);
        const url = `${liar.url}/${lie}/x.bin`;
        return { lie, pool, output, outcome: runJob(api(), job(url, output, { pool })) };
      }),
    );
    await stillServes();
    for (const { lie, pool, output, outcome } of runs) {
      const ended = await outcome;
      const verdict = pool ? verdicts[lie].pooled : verdicts[lie].single;
      if (verdict === 'done') {
        assert.equal(ended.kind, 'done', `${lie} ${pool}: ${JSON.stringify(ended)}`);
        assert.ok((await readFile(output)).equals(objectBytes(3 * MiB)), `${lie} ${pool}`);
      } else {
        failedWith(ended, verdict);
        assert.equal(await exists(output), false, `${lie} ${pool}: a lie became the output`);
      }
    }
    await stillServes();
  });

  test('a client that leaves while the origin is probed: its job never starts', async () => {
    let probes = 0;
    let requests = 0;
    let probed: () => void = () => undefined;
    const probeSeen = new Promise<void>((resolve) => (probed = resolve));
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const held = await rawServer((req, res) => {
      requests++;
      if (req.headers.range === 'bytes=0-0') probes++;
      probed();
      void answered.then(() => {
        res.writeHead(200, { 'content-length': '1000' });
        res.end(Buffer.alloc(1000, 1));
      });
    });
    try {
      const output = join(root, 'left.bin');
      const client = sendApiRequest(api(), 'POST', '/api/get', job(`${held.url}/x`, output));
      client.on('error', () => undefined); // destroyed below on purpose
      await probeSeen;
      client.destroy();
      answer();
      // The claim is free once the abandoned job ended (this job then fails at its probe).
      let outcome: JobOutcome;
      do {
        outcome = await runJob(api(), job('http://127.0.0.1:1/x', output));
      } while (outcome.kind === 'refused' && /already writing/.test(outcome.message));
      assert.equal(outcome.kind, 'refused', JSON.stringify(outcome));
      assert.equal(requests, probes, 'the abandoned job went on to download');
      assert.equal(await exists(output), false);
      await stillServes();
    } finally {
      await held.close();
    }
  });

  test('an unreachable origin fails with a sentence', async () => {
    const outcome = await runJob(api(), job('http://127.0.0.1:1/x.bin', join(root, 'u.bin')));
    failedWith(outcome, /ECONNREFUSED|refused|connect/i, 502);
    await stillServes();
  });

  test('resume: an intact part file resumes; a tampered one is discarded with one note', async () => {
    const size = CHECKPOINT_BYTES + 2 * MiB;
    await origin.addObject({ name: 'resume.bin', sizeBytes: size, seed: 7 });
    const url = `${origin.url}/resume.bin`;
    const whole = await runJob(api(), job(url, join(root, 'resume-source.bin')));
    assert.equal(whole.kind, 'done');
    const bytes = await readFile(join(root, 'resume-source.bin'));
    const probe = await fetch(url, { headers: { range: 'bytes=0-0' } });
    const validator = probe.headers.get('etag') ?? '';
    for (const tamper of [false, true]) {
      const output = join(root, `resume-${tamper}.bin`);
      // An earlier run that checkpointed its first block, made with the real OutputFile.
      const part = await OutputFile.open(
        output,
        { url, validator, totalBytes: size },
        { force: false },
      );
      await part.write(0, bytes.subarray(0, CHECKPOINT_BYTES + MiB));
      await part.progress(CHECKPOINT_BYTES + MiB);
      if (tamper) await part.write(12345, Uint8Array.of(bytes[12345]! ^ 1));
      await part.close();
      const outcome = await runJob(api(), job(url, output));
      assert.equal(outcome.kind, 'done', JSON.stringify(outcome));
      const start = outcome.events.find((event) => event.type === 'start');
      assert.ok(start?.type === 'start');
      if (tamper) {
        assert.equal(start.resumeOffset, 0);
        assert.equal(
          start.note,
          'not resuming the part file: block 1 of 1 no longer matches its checkpoint; starting over',
        );
      } else {
        assert.equal(start.resumeOffset, CHECKPOINT_BYTES);
        assert.equal(start.note, '');
      }
      assert.ok((await readFile(output)).equals(bytes));
    }
  });
});
