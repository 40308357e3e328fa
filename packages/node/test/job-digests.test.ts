/**
 * What a DownloadJob hashes and what it decides (download-job.ts, BRIEF interfaces 1 and 2),
 * with an in-memory sink that counts its reads and a job host that records what the job asks of
 * the core. The core's side is played by the events a real core sends.
 * - A pooled download from byte 0 takes the object's SHA-256 from `download:complete.sha256`
 *   (the user's `--sha256` is compared against it, never hashed again here); only other
 *   algorithms (an S3 ETag's MD5) are hashed here, and after a repair from the core's read-back
 *   as the job answers it (the output is read once).
 * - A resume hashes the whole object here, once: the prefix the sink fed on open, then the new
 *   bytes; the prefix is read back only when no one fed it, and then once.
 * - The fallback is the core's: the job carries out `origin-only` and `repin` (passing the next
 *   `attempt`) and fails on `none`, whatever the reason.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { DownloadFallback, TransferEvent } from '@peapod/core';
import { DownloadJob, type CoreUrlSpec, type JobEvent, type JobHost } from '../src/download-job.js';
import { ObjectVerifier, userSha256, type ExpectedDigest } from '../src/http/digest.js';
import { pinningOf } from '../src/http/pin-plan.js';
import type { DownloadSink } from '../src/sinks.js';

const OBJECT = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}
function md5(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('md5').update(bytes).digest());
}
function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** A file held in memory; `prefix` bytes are there from an earlier run. */
class MemorySink implements DownloadSink {
  readonly bytes = new Uint8Array(OBJECT.length);
  reads = 0;
  committed = false;
  constructor(readonly resumeOffset = 0) {
    this.bytes.set(OBJECT.subarray(0, resumeOffset));
  }
  write(offset: number, bytes: Uint8Array): Promise<void> {
    this.bytes.set(bytes, offset);
    return Promise.resolve();
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    this.reads++;
    return Promise.resolve(this.bytes.slice(offset, offset + length));
  }
  progress(): Promise<void> {
    return Promise.resolve();
  }
  restart(): Promise<void> {
    this.bytes.fill(0);
    return Promise.resolve();
  }
  commit(): Promise<void> {
    this.committed = true;
    return Promise.resolve();
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }
}

/** Records the core downloads the job starts; the single-source fetch serves OBJECT. */
function recordingHost(): JobHost & { specs: CoreUrlSpec[]; fetches: number; replans: number } {
  const host = {
    specs: [] as CoreUrlSpec[],
    fetches: 0,
    replans: 0,
    startCoreDownload: (_job: DownloadJob, spec: CoreUrlSpec) => host.specs.push(spec),
    cancelCoreDownload: () => undefined,
    acknowledge: () => undefined,
    fetchWhole: async (
      _url: string,
      _headers: unknown,
      offset: number,
      _validator: string,
      onData: (bytes: Uint8Array) => Promise<void>,
    ) => {
      host.fetches++;
      await onData(OBJECT.slice(offset));
      return { digests: [] };
    },
    replan: () => {
      host.replans++;
      return Promise.resolve({
        plan: {
          kind: 'pooled' as const,
          totalBytes: OBJECT.length,
          validator: '"v2"',
          pinStrength: 'strong' as const,
          pinning: pinningOf('strong-etag', []),
        },
        digests: [],
      });
    },
  };
  return host;
}

function jobOf(
  host: JobHost,
  sink: DownloadSink,
  expected: readonly ExpectedDigest[],
  prefix?: ObjectVerifier,
) {
  const job = new DownloadJob(
    host,
    'http://origin.test/o',
    sink,
    expected,
    {
      pooled: true,
      note: '',
      totalBytes: OBJECT.length,
      validator: '"v"',
      pinStrength: 'strong',
      pinning: pinningOf('strong-etag', []),
      headers: [],
    },
    prefix,
  );
  const events: JobEvent[] = [];
  job.on('event', (event) => events.push(event));
  return { job, events, running: job.run() };
}

/** The job's core download reached byte `from` of the object: deliver the rest. */
function deliverFrom(job: DownloadJob, from: number, bytes: Uint8Array = OBJECT): void {
  for (let offset = from; offset < bytes.length; offset += 1000) {
    job.onDeliver(offset - from, bytes.slice(offset, offset + 1000), false);
  }
}

function complete(job: DownloadJob, digest: Uint8Array | undefined): void {
  job.onCoreEvent({
    type: 'download:complete',
    downloadId: 1,
    totalBytes: OBJECT.length,
    sha256: digest,
  });
}

function done(events: JobEvent[]): Extract<JobEvent, { type: 'done' }> {
  const last = events.at(-1)!;
  assert.equal(last.type, 'done', JSON.stringify(last));
  return last as Extract<JobEvent, { type: 'done' }>;
}

/** Waits (a turn of the event loop at a time) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

const S3_ETAG = (bytes: Uint8Array): ExpectedDigest => ({
  algorithm: 'md5',
  digest: md5(bytes),
  source: 'S3 ETag',
});

describe('digests: the SHA-256 of a pooled download is the core’s', () => {
  test('--sha256 is compared against download:complete.sha256, not hashed again', async () => {
    // The core's digest stands for the delivered bytes: a job that hashed them itself would
    // see these zero bytes disagree with the --sha256 the core vouched for.
    const claimed = sha256(OBJECT);
    const { job, events, running } = jobOf(recordingHost(), new MemorySink(), [
      userSha256(hex(claimed)),
    ]);
    deliverFrom(job, 0, new Uint8Array(OBJECT.length));
    complete(job, claimed);
    await running;
    assert.equal(done(events).sha256, hex(claimed));
    assert.deepEqual(done(events).verified, ['sha-256 (--sha256)']);
  });

  test('a core digest that differs from --sha256 fails the job', async () => {
    const { job, events, running } = jobOf(recordingHost(), new MemorySink(), [
      userSha256(hex(sha256(OBJECT))),
    ]);
    deliverFrom(job, 0);
    complete(job, new Uint8Array(32));
    await running;
    const last = events.at(-1)!;
    assert.equal(last.type, 'error');
    assert.match((last as { message: string }).message, /^digest mismatch: sha-256 \(--sha256\)/);
  });

  test('an S3 ETag is hashed here (MD5), from the delivered bytes', async () => {
    const sink = new MemorySink();
    const { job, events, running } = jobOf(recordingHost(), sink, [S3_ETAG(OBJECT)]);
    const corrupted = Uint8Array.from(OBJECT);
    corrupted[5]! ^= 1;
    deliverFrom(job, 0, corrupted);
    complete(job, sha256(corrupted));
    await running;
    const last = events.at(-1)!;
    assert.equal(last.type, 'error');
    assert.match((last as { message: string }).message, /md5 \(S3 ETag\)/);
    assert.equal(sink.reads, 0);
  });

  test('after a repair, the MD5 comes from the core’s read-back: the output is read once', async () => {
    const sink = new MemorySink();
    const { job, events, running } = jobOf(recordingHost(), sink, [S3_ETAG(OBJECT)]);
    const lie = Uint8Array.from(OBJECT);
    lie[1500]! ^= 1;
    deliverFrom(job, 0, lie);
    job.onDeliver(1000, OBJECT.slice(1000, 2000), true); // the repair
    // The core reads its whole range back in order (read-delivered), then completes.
    const reads = [0, 1024, 2048].map((offset) =>
      job.readDelivered(offset, Math.min(1024, OBJECT.length - offset)),
    );
    assert.deepEqual(
      Buffer.concat((await Promise.all(reads)) as Uint8Array[]),
      Buffer.from(OBJECT),
    );
    complete(job, sha256(OBJECT));
    await running;
    assert.deepEqual(done(events).verified, ['md5 (S3 ETag)']);
    assert.equal(sink.reads, 3, 'the job read the output back a second time');
  });
});

describe('digests: a resume is hashed here, whole, once', () => {
  const prefixLength = 1000;

  test('with the prefix fed on open: no read-back, the whole object’s SHA-256', async () => {
    const expected = [userSha256(hex(sha256(OBJECT)))];
    const prefix = ObjectVerifier.create(expected, 'host');
    prefix.update(OBJECT.subarray(0, prefixLength));
    const sink = new MemorySink(prefixLength);
    const host = recordingHost();
    const { job, events, running } = jobOf(host, sink, expected, prefix);
    assert.equal(host.specs[0]!.startOffset, prefixLength);
    assert.equal(host.specs[0]!.sha256, undefined);
    deliverFrom(job, prefixLength);
    complete(job, undefined); // a resumed download's core knows no whole-object digest
    await running;
    assert.equal(done(events).sha256, hex(sha256(OBJECT)));
    assert.equal(sink.reads, 0);
  });

  test('without it, the prefix is read back once', async () => {
    const sink = new MemorySink(prefixLength);
    const host = recordingHost();
    const { job, events, running } = jobOf(host, sink, []);
    await until(() => host.specs.length === 1); // the prefix was hashed, the download started
    deliverFrom(job, prefixLength);
    complete(job, new Uint8Array(32)); // the core's digest of its range alone: not used
    await running;
    assert.equal(done(events).sha256, hex(sha256(OBJECT)));
    assert.equal(sink.reads, 1);
  });
});

describe('fallback: the job carries out the core’s decision', () => {
  function failed(reason: string, fallback: DownloadFallback): TransferEvent {
    return { type: 'download:failed', downloadId: 1, reason, detail: 'd', fallback };
  }

  test('origin-only, even for a reason the job would not fall back on', async () => {
    const host = recordingHost();
    const { job, events, running } = jobOf(host, new MemorySink(), []);
    job.onCoreEvent(failed('origin-error', { action: 'origin-only', reason: 'r' }));
    await running;
    assert.equal(host.fetches, 1);
    assert.equal(done(events).pooled, false);
    assert.equal(done(events).sha256, hex(sha256(OBJECT)));
  });

  test('repin: probe again and start pooled as the next attempt', async () => {
    const host = recordingHost();
    const { job, events, running } = jobOf(host, new MemorySink(), []);
    job.onCoreEvent(failed('origin-changed', { action: 'repin', reason: 'r' }));
    await until(() => host.specs.length === 2);
    assert.deepEqual(
      host.specs.map((spec) => spec.attempt),
      [0, 1],
    );
    assert.equal(host.specs[1]!.validator, '"v2"');
    deliverFrom(job, 0);
    complete(job, sha256(OBJECT));
    await running;
    assert.equal(done(events).pooled, true);
    assert.equal(host.replans, 1);
  });

  test('none: the job fails, even after an origin change', async () => {
    const host = recordingHost();
    const { job, events, running } = jobOf(host, new MemorySink(), []);
    job.onCoreEvent(failed('origin-changed', { action: 'none' }));
    await running;
    assert.deepEqual(events.at(-1), { type: 'error', message: 'origin-changed: d' });
    assert.equal(host.fetches + host.replans, 0);
  });
});
