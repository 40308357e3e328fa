/**
 * A fast-check property over the daemon's job API (issue 9 item 8): random `POST /api/get`
 * requests, over real HTTP to a real `peapod daemon` process, against real origins on
 * loopback (the dev origin, a lying origin, a closed port) and real file-system faults (a tiny
 * tmpfs, a directory, a missing parent, a file already written by a running job).
 *
 * After every request the daemon must still answer `GET /api/peers`; a request whose outcome
 * is known in advance (a bad URL, a relative path, a directory, a missing directory, the busy
 * job's file, an existing file without --force) must be refused at once with that sentence;
 * a good download to a fresh file must be byte-exact. At the end every job has ended with
 * `done` or one sentence, a known-good download still succeeds, the daemon logged no internal
 * error, and no file carrying this run's tag exists outside the test's temp directory (the
 * relative path must not land in the daemon's working directory). Jobs run concurrently: a
 * request is only awaited until the daemon accepts or refuses it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { runJob, serves, startJob, type JobOutcome } from './support/api-jobs.js';
import { LIES, startLyingOrigin, type LyingOrigin } from './support/lying-origin.js';
import { mountTinyTmpfs, type Mount } from './support/mounts.js';
import { PodFixture } from './support/pod-fixture.js';

const OUTPUTS = [
  'fresh',
  'fresh-dotdot',
  'existing',
  'directory',
  'busy',
  'tiny',
  'no-parent',
  'relative',
] as const;
type OutputKind = (typeof OUTPUTS)[number];
const URLS = ['good', 'unreachable', 'not-http', 'garbage', ...LIES] as const;
type UrlKind = (typeof URLS)[number];

interface Request {
  readonly output: OutputKind;
  readonly url: UrlKind;
  readonly force: boolean;
  readonly pool: boolean;
}

const request: fc.Arbitrary<Request> = fc.record({
  output: fc.constantFrom(...OUTPUTS),
  url: fc.constantFrom(...URLS),
  force: fc.boolean(),
  pool: fc.boolean(),
});

let pod: PodFixture;
let origin: DevOrigin;
let slow: DevOrigin;
let liar: LyingOrigin;
let tiny: Mount | string;
let work: string;
const tag = `fz-${randomBytes(4).toString('hex')}`;

before(async () => {
  pod = await PodFixture.start({ daemons: 1 });
  work = join(pod.root, 'work');
  await mkdir(join(work, 'adir'), { recursive: true });
  await writeFile(join(work, 'existing.bin'), 'old');
  origin = await startDevOrigin({ objects: [{ name: 'small.bin', sizeBytes: 200_000, seed: 4 }] });
  slow = await startDevOrigin({
    rateBytesPerSec: 250_000,
    objects: [{ name: 'slow.bin', sizeBytes: 64 * 1024 * 1024, seed: 5 }],
  });
  liar = await startLyingOrigin(1024 * 1024);
  tiny = await mountTinyTmpfs(join(pod.root, 'tiny'), 256 * 1024);
});
after(async () => {
  if (typeof tiny !== 'string') tiny.unmount();
  await pod?.stop();
  await origin?.close();
  await slow?.close();
  await liar?.close();
});

test('random job requests never take the daemon down', async (t) => {
  if (typeof tiny === 'string') t.diagnostic(`no tiny tmpfs, that output kind is skipped: ${tiny}`);
  const api = pod.daemons[0]!.api;
  // A job that runs through the whole property: "the same output as a running job".
  const busyPath = join(work, 'busy.bin');
  const busy = await startJob(api, {
    url: `${slow.url}/slow.bin`,
    output: busyPath,
    pool: false,
    headers: [],
  });
  assert.ok(busy.accepted);
  let serial = 0;
  const outputPath = (kind: OutputKind): string => {
    serial++;
    switch (kind) {
      case 'fresh':
        return join(work, `${tag}-${serial}.bin`);
      case 'fresh-dotdot':
        return join(work, 'adir', '..', `${tag}-${serial}.bin`);
      case 'existing':
        return join(work, 'existing.bin');
      case 'directory':
        return join(work, 'adir');
      case 'busy':
        return busyPath;
      case 'tiny':
        return typeof tiny === 'string'
          ? join(work, `${tag}-${serial}.bin`)
          : join(tiny.path, `${tag}-${serial}.bin`);
      case 'no-parent':
        return join(work, 'missing', `${tag}-${serial}.bin`);
      case 'relative':
        return `${tag}-${serial}.bin`;
    }
  };
  const urlOf = (kind: UrlKind): string => {
    switch (kind) {
      case 'good':
        return `${origin.url}/small.bin`;
      case 'unreachable':
        return 'http://127.0.0.1:1/x.bin';
      case 'not-http':
        return 'file:///etc/passwd';
      case 'garbage':
        return '\u0000not a url';
      default:
        return `${liar.url}/${kind}/x.bin`;
    }
  };
  const running: Array<{ request: Request; output: string; outcome: Promise<JobOutcome> }> = [];

  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 4 }), async (requests) => {
      for (const one of requests) {
        const output = outputPath(one.output);
        const body = { url: urlOf(one.url), output, pool: one.pool, force: one.force, headers: [] };
        const started = await startJob(api, body);
        const refusal = started.accepted ? undefined : await started.outcome;
        const said = refusal?.kind === 'refused' ? refusal.message : '';
        const expected = expectedRefusal(one);
        if (expected !== undefined) {
          assert.equal(started.accepted, false, `${JSON.stringify(one)} was accepted`);
          assert.match(said, expected, JSON.stringify(one));
        }
        if (started.accepted) running.push({ request: one, output, outcome: started.outcome });
        else assert.doesNotMatch(said, /\n|^\s*at /m, said);
        assert.ok(await serves(api), `the daemon stopped serving after ${JSON.stringify(one)}`);
      }
    }),
    { numRuns: 40, verbose: true },
  );

  for (const job of running) {
    const outcome = await job.outcome;
    const what = `${JSON.stringify(job.request)}: ${JSON.stringify(outcome).slice(0, 400)}`;
    if (outcome.kind === 'failed') assert.doesNotMatch(outcome.message, /\n|^\s*at /m, what);
    if (
      job.request.url === 'good' &&
      (job.request.output === 'fresh' || job.request.output === 'fresh-dotdot')
    ) {
      assert.equal(outcome.kind, 'done', what);
      const sha256 = createHash('sha256')
        .update(await readFile(job.output))
        .digest('hex');
      assert.equal(sha256, origin.sha256('small.bin'), what);
    }
  }
  busy.cancel();
  await busy.outcome;

  // Still serving, and a known-good download still works.
  const control = await runJob(api, {
    url: `${origin.url}/small.bin`,
    output: join(work, `${tag}-control.bin`),
    pool: true,
    headers: [],
  });
  assert.equal(control.kind, 'done', JSON.stringify(control));
  const log = pod.daemons[0]!.log();
  assert.doesNotMatch(log, /internal error|"level":60|Unhandled|unhandled/, log.slice(-2000));
  assert.equal(pod.daemons[0]!.child.exitCode, null);
  // Nothing written outside the temp directory: no entry with this run's tag anywhere else.
  for (const directory of [tmpdir(), process.cwd(), '/', '/sys']) {
    const strays = (await readdir(directory)).filter((name) => name.includes(tag));
    assert.deepEqual(strays, [], `written outside the test directory, in ${directory}`);
  }
});

/** The refusal a request must get at once, when its outcome is known without the origin. */
function expectedRefusal(one: Request): RegExp | undefined {
  if (one.url === 'not-http' || one.url === 'garbage') return /url must be an http/;
  if (one.output === 'relative') return /output must be an absolute path/;
  if (one.output === 'directory') return /is a directory \(EISDIR\)/;
  if (one.output === 'busy') return /another download is already writing/;
  if (one.output === 'no-parent') return /does not exist \(ENOENT\)/;
  // A running forced job may hold existing.bin: then that is the refusal.
  if (one.output === 'existing' && !one.force) return /exists; use --force|already writing/;
  return undefined;
}
