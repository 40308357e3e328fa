/**
 * `--max-upload` / `--max-download`. The token bucket (rate-limit.ts) is checked on a virtual
 * clock (its `nowMs` arguments): a caller that waits the delays it is given moves at most
 * `burst + rate x interval` bytes over any interval, and no less than `rate x interval` when it
 * always has bytes to move. On a real encrypted peer link between two Node hosts over loopback
 * TCP (`limitLan`, since loopback counts as LAN and is otherwise exempt), only that guarantee's
 * lower bound on time is asserted: a busy machine makes a transfer slower, never faster, so it
 * cannot flake. How close a link comes to its limit is a figure, measured by
 * bench/rate-limits.ts next to an unlimited link in the same run.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { NodeHost } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { TokenBucket, createLimits, isLanAddress } from '../src/rate-limit.js';

const crypto = createNodeCryptoProvider();
const MiB = 1024 * 1024;

test('TokenBucket on a virtual clock: at most burst + rate x interval, and never starved', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1_000, max: 100_000_000 }), // bytes per second
      fc.array(
        fc.record({
          bytes: fc.integer({ min: 1, max: 4 * MiB }),
          idleMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5_000 })),
        }),
        { minLength: 1, maxLength: 60 },
      ),
      (rate, moves) => {
        const bucket = new TokenBucket(rate, undefined, 0);
        let nowMs = 0;
        const takes: { atMs: number; bytes: number }[] = [];
        let greedy = true; // no idle time so far: the caller always had bytes to move
        for (const { bytes, idleMs } of moves) {
          nowMs += idleMs;
          if (idleMs > 0) greedy = false;
          assert.ok(bucket.waitMs(nowMs) < 1e-6, 'the caller waited out its debt (to rounding)');
          takes.push({ atMs: nowMs, bytes });
          nowMs += bucket.take(bytes, nowMs); // moves the bytes, then waits as told
          if (greedy) {
            // Bytes moved before nowMs: at least what the rate allowed since the start.
            const moved = takes.reduce((sum, take) => sum + take.bytes, 0);
            assert.ok(moved >= (rate * nowMs) / 1000 - 1e-6 * moved, `${moved} by ${nowMs} ms`);
          }
        }
        // Every interval [takes[i], takes[j]): the bytes taken in it.
        for (let i = 0; i < takes.length; i++) {
          let moved = 0;
          for (let j = i + 1; j < takes.length; j++) {
            moved += takes[j - 1]!.bytes;
            const allowed = bucket.burstBytes + (rate * (takes[j]!.atMs - takes[i]!.atMs)) / 1000;
            assert.ok(moved <= allowed * (1 + 1e-9) + 1e-6, `${moved} > ${allowed} (${i}..${j})`);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

/** Sends 8 MiB over a limited link; returns the bytes and the milliseconds they took. */
async function transfer(
  direction: 'upload' | 'download',
  rate: number,
): Promise<{ bytes: number; elapsedMs: number; burstBytes: number }> {
  const total = 8 * MiB;
  const secret = randomBytes(32);
  const limits = createLimits(
    direction === 'upload'
      ? { maxUploadBytesPerSec: rate, limitLan: true }
      : { maxDownloadBytesPerSec: rate, limitLan: true },
  );
  const sender = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    ...(direction === 'upload' ? { limits } : {}),
  });
  const receiver = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    ...(direction === 'download' ? { limits } : {}),
  });
  const { port } = await receiver.listen(0);
  let received = 0;
  const done = new Promise<number>((resolve) =>
    receiver.on('peer:message', ({ message }) => {
      if (message.type !== 'data') return;
      received += message.bytes.length;
      if (received >= total) resolve(performance.now());
    }),
  );
  const connected = new Promise<number>((resolve) =>
    sender.once('peer:connect', ({ linkId }) => resolve(linkId)),
  );
  await sender.dial(port);
  const linkId = await connected;
  const chunk = randomBytes(MiB);
  const startedMs = performance.now(); // every payload byte goes through the bucket after this
  for (let offset = 0; offset < total; offset += MiB) {
    sender.send(linkId, { type: 'data', requestId: 1, offset, bytes: chunk });
  }
  const elapsedMs = (await done) - startedMs;
  await sender.close();
  await receiver.close();
  const bucket = direction === 'upload' ? limits.upload : limits.download;
  return { bytes: received, elapsedMs, burstBytes: bucket!.burstBytes };
}

/**
 * The bucket's guarantee on a link: moving `bytes` takes at least (bytes - burst - the last
 * batch or read, which drives the balance negative) / rate. A batch is one host loop's sends,
 * within the core's 256 KiB send window; a read is at most 64 KiB: 1 MiB bounds both.
 */
function assertNotFasterThan(
  direction: string,
  rate: number,
  run: Awaited<ReturnType<typeof transfer>>,
) {
  const fastestMs = ((run.bytes - run.burstBytes - MiB) / rate) * 1000;
  assert.ok(
    run.elapsedMs >= fastestMs,
    `${direction}: ${run.bytes} bytes in ${run.elapsedMs.toFixed(0)} ms, faster than the ` +
      `limit allows (${fastestMs.toFixed(0)} ms): the limit is not applied`,
  );
}

test('--max-upload limits what a peer link sends', async () => {
  assertNotFasterThan('upload', 4e6, await transfer('upload', 4e6));
});

test('--max-download limits what a peer link receives', async () => {
  assertNotFasterThan('download', 4e6, await transfer('download', 4e6));
});

test('LAN addresses are exempt by default (Syncthing rule)', () => {
  for (const lan of ['127.0.0.1', '10.1.2.3', '172.16.0.9', '192.168.1.20', '169.254.3.4', '::1'])
    assert.equal(isLanAddress(lan), true, lan);
  for (const wan of ['8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:1.1.1.1'])
    assert.equal(isLanAddress(wan), false, wan);
  assert.equal(isLanAddress('::ffff:192.168.0.1'), true);
});
