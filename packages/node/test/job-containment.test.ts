/**
 * Error containment inside one DownloadJob (issue 9 item 8): an exception nobody expected,
 * anywhere in a job's promise chain, ends that job with one error event and closes its sink;
 * it never becomes an unhandled rejection. A broken invariant (PEAPOD_ERR_ASSERTION) is the
 * exception: it escapes the job, on purpose, for the process guard (process-guard.ts), which is
 * tested here in a child process: it logs one fatal line and exits 70.
 *
 * The sink and the job host here are stand-ins, not mocks of something that could run: the
 * point is an error no real sink throws today (a bug yet to be written), which no real file
 * system can be made to produce. The real file-system faults are in job-faults.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PeapodError } from '@peapod/core';
import { DownloadJob, type JobEvent, type JobHost } from '../src/download-job.js';
import { pinningOf } from '../src/http/pin-plan.js';
import { INTERNAL_ERROR_EXIT_STATUS } from '../src/process-guard.js';
import type { DownloadSink } from '../src/sinks.js';

type Step = 'write' | 'progress' | 'commit';

function throwingSink(failAt: Step, error: Error): DownloadSink & { aborts: number } {
  const sink = {
    resumeOffset: 0,
    aborts: 0,
    write: () => (failAt === 'write' ? Promise.reject(error) : Promise.resolve()),
    read: () => Promise.resolve(undefined),
    progress: () => (failAt === 'progress' ? Promise.reject(error) : Promise.resolve()),
    restart: () => Promise.resolve(),
    commit: () => (failAt === 'commit' ? Promise.reject(error) : Promise.resolve()),
    abort: () => {
      sink.aborts++;
      return Promise.resolve();
    },
  };
  return sink;
}

function hostFor(bytes: Uint8Array): JobHost & { cancelled: number[] } {
  const host = {
    cancelled: [] as number[],
    startCoreDownload: () => 7,
    cancelCoreDownload: (id: number) => host.cancelled.push(id),
    acknowledge: () => undefined,
    fetchWhole: async (
      _url: string,
      _headers: unknown,
      _offset: number,
      _validator: string,
      onData: (bytes: Uint8Array) => Promise<void>,
    ) => {
      await onData(bytes);
      return { digests: [] };
    },
    replan: () => Promise.reject(new Error('this test never changes the object')),
  };
  return host;
}

function jobOf(host: JobHost, sink: DownloadSink, pooled: boolean) {
  const job = new DownloadJob(host, 'http://origin.test/o', sink, [], {
    pooled,
    note: '',
    totalBytes: 4,
    validator: '"v"',
    pinStrength: 'strong',
    pinning: pinningOf('strong-etag', []),
    headers: [],
  });
  const events: JobEvent[] = [];
  job.on('event', (event) => events.push(event));
  return { job, events };
}

describe('a job contains what it meets', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => process.on('unhandledRejection', onUnhandled));
  after(() => {
    process.off('unhandledRejection', onUnhandled);
    assert.deepEqual(unhandled, [], 'a job error became an unhandled rejection');
  });

  const bytes = Uint8Array.of(1, 2, 3, 4);
  for (const pooled of [false, true]) {
    for (const step of ['write', 'progress', 'commit'] as const) {
      test(`${pooled ? 'pooled' : 'single source'}: a TypeError in ${step} ends that job`, async () => {
        const sink = throwingSink(step, new TypeError(`bug in ${step}`));
        const host = hostFor(bytes);
        const { job, events } = jobOf(host, sink, pooled);
        const running = job.run();
        if (pooled) {
          job.onDeliver(0, bytes, false);
          job.onCoreEvent({
            type: 'download:complete',
            downloadId: 7,
            totalBytes: bytes.length,
            sha256: new Uint8Array(32),
          });
        }
        await running;
        const errors = events.filter((event) => event.type === 'error');
        assert.deepEqual(errors, [{ type: 'error', message: `bug in ${step}` }]);
        assert.equal(sink.aborts, 1, 'the sink was not closed exactly once');
        if (pooled) assert.deepEqual(host.cancelled, [7], 'the core download still runs');
        await job.cancel(); // after the end: a no-op, no second event
        assert.equal(events.filter((event) => event.type === 'error').length, 1);
      });
    }
  }

  test('a broken invariant is not contained: it escapes run()', async () => {
    const invariant = new PeapodError('PEAPOD_ERR_ASSERTION', 'invariant broken: test');
    const { job } = jobOf(hostFor(bytes), throwingSink('write', invariant), false);
    await assert.rejects(job.run(), { code: 'PEAPOD_ERR_ASSERTION' });
  });
});

test('the process guard logs one fatal line and exits 70 on an unhandled rejection', async () => {
  const guard = fileURLToPath(new URL('../src/process-guard.js', import.meta.url));
  const script = `
    import { pino } from 'pino';
    import { installProcessGuard } from ${JSON.stringify(guard)};
    installProcessGuard(pino());
    Promise.reject(new Error('escaped'));
    setTimeout(() => console.log('still running'), 5000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (part: Buffer) => (output += part.toString()));
  child.stderr.on('data', (part: Buffer) => (output += part.toString()));
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(status, INTERNAL_ERROR_EXIT_STATUS, output);
  const lines = output.trim().split('\n');
  assert.equal(lines.length, 1, output);
  const line = JSON.parse(lines[0]!) as { level: number; msg: string };
  assert.equal(line.level, 60);
  assert.match(line.msg, /^internal error \(unhandled rejection\): escaped; the daemon stops/);
});
