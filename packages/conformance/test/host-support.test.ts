/**
 * The compliance suite's own parts, so a failure of the suite is the host's and not theirs:
 * - LogWatch (log-watch.ts) reads a daemon's JSON log lines: however the stream is cut into
 *   chunks, it yields the same entries, skips lines that are not JSON objects, never throws, and
 *   `until` resolves for an entry that came before or after it was asked, and rejects (saying
 *   why) when the process exits first (fast-check for the chunking; a stand-in child process,
 *   since only its stdout and exit matter here).
 * - PacedOrigin (paced-origin.ts) over real HTTP on loopback: a range is the object's exact
 *   slice with its Content-Range, the whole object is a 200, `whenServed` resolves once the
 *   bytes went out, and a stalled address gets its head and no body until it closes, while a
 *   probe from it is answered.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import { LogWatch, type LogEntry } from './host/log-watch.js';
import { PacedOrigin } from './host/paced-origin.js';

/** A stand-in for a child process: its stdout, stderr and exit are all LogWatch listens to. */
function fakeChild(): ChildProcess & { stdout: EventEmitter; stderr: EventEmitter } {
  const child = new EventEmitter() as ChildProcess & { stdout: EventEmitter; stderr: EventEmitter };
  Object.assign(child, { stdout: new EventEmitter(), stderr: new EventEmitter() });
  return child;
}

test('LogWatch: the same entries however the stream is chunked; non-JSON lines skipped', () => {
  const line = fc.oneof(
    fc.record({ msg: fc.string(), n: fc.integer() }).map((o) => JSON.stringify(o)),
    fc.string().filter((s) => !s.includes('\n')),
  );
  fc.assert(
    fc.property(
      fc.array(line, { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (lines, cuts) => {
        const text = lines.map((l) => `${l}\n`).join('');
        const expected: LogEntry[] = [];
        for (const l of lines) {
          try {
            const parsed = JSON.parse(l) as unknown;
            if (parsed !== null && typeof parsed === 'object') expected.push(parsed as LogEntry);
          } catch {
            // not JSON: skipped
          }
        }
        const child = fakeChild();
        const watch = new LogWatch('test', child);
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        let from = 0;
        for (const at of [...points, text.length]) {
          child.stdout.emit('data', Buffer.from(text.slice(from, at)));
          from = at;
        }
        assert.deepEqual(watch.entries, expected);
      },
    ),
  );
});

test('LogWatch: until finds past and future entries, and rejects when the process exits', async () => {
  const child = fakeChild();
  const watch = new LogWatch('daemon', child);
  child.stdout.emit('data', Buffer.from('{"msg":"ready"}\n{"msg":"peer con'));
  assert.equal((await watch.until('ready', (e) => e.msg === 'ready')).msg, 'ready');
  const later = watch.until('a link', (e) => e.msg === 'peer connected');
  child.stdout.emit('data', Buffer.from('nected","peer":"node-1 (ABC)"}\n'));
  assert.equal((await later).peer, 'node-1 (ABC)');
  const never = watch.until('a ban', (e) => e.msg === 'peer banned');
  child.emit('exit', 1, null);
  await assert.rejects(never, /daemon exited \(1\)/);
  await assert.rejects(
    watch.until('a ban', (e) => e.msg === 'peer banned'),
    /a ban: daemon exited/,
  );
});

function get(url: string, range?: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: range === undefined ? {} : { range } }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function body(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of res) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

test('PacedOrigin: exact ranges and whole answers, whenServed, and a stall', async () => {
  const origin = await PacedOrigin.start({
    sizeBytes: 300_000,
    rateBytesPerSec: 100e6,
    stalled: new Set(['127.0.0.2']),
  });
  try {
    const ranged = await get(origin.url, 'bytes=1000-199999');
    assert.equal(ranged.statusCode, 206);
    assert.equal(ranged.headers['content-range'], 'bytes 1000-199999/300000');
    assert.match(String(ranged.headers['repr-digest']), /^sha-256=:[A-Za-z0-9+/]+=*:$/);
    assert.deepEqual(await body(ranged), origin.body.subarray(1000, 200000));
    const whole = await get(origin.url);
    assert.equal(whole.statusCode, 200);
    assert.deepEqual(await body(whole), origin.body);
    await origin.whenServed('127.0.0.1', 199_000 + 300_000);
    assert.equal(origin.stats('127.0.0.1').requests, 2);

    // From 127.0.0.2 the head comes, then nothing: the body never ends until the client leaves.
    const stalled = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        origin.url,
        { headers: { range: 'bytes=0-99999' }, localAddress: '127.0.0.2' },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(stalled.statusCode, 206);
    // A probe from the same address is still answered (only real fetches stall), and by the
    // time it was, the stalled answer had sent nothing.
    const probe = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        origin.url,
        { headers: { range: 'bytes=0-0' }, localAddress: '127.0.0.2' },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(await body(probe), origin.body.subarray(0, 1));
    assert.equal(origin.stats('127.0.0.2').bodyBytes, 1);
    stalled.destroy();
    await once(stalled, 'close');
  } finally {
    await origin.close();
  }
});
