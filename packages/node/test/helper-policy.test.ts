/**
 * The helper destination policy end to end (DESIGN.md decision 14): two real `peapod daemon`
 * processes, the helper (device 2, origin source address 127.0.0.12) with the default policy,
 * the requester (device 1, 127.0.0.11) with private origins allowed, and the dev origin on
 * loopback logging requests by source address. The helper must refuse its assignment at once
 * and never touch the origin; the requester fetches every byte itself, and the download is exact.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { summaryOf } from './support/get-summary.js';
import { PodFixture } from './support/pod-fixture.js';

const MiB = 1024 * 1024;

let pod: PodFixture;
let origin: DevOrigin;

before(async () => {
  pod = await PodFixture.start({ daemons: 2, publicOriginsOnly: [1] });
  await pod.connected(0, 1);
  await pod.connected(1, 1);
  // Paced so that the download spans several rounds of assignment, in which a helper that had
  // not refused (or were asked again) would fetch.
  origin = await startDevOrigin({
    rateBytesPerSec: 40e6,
    objects: [{ name: 'object.bin', sizeBytes: 24 * MiB, seed: 24 }],
  });
});

after(async () => {
  await pod?.stop();
  await origin?.close();
});

test('a helper that fetches only public origins refuses a loopback one; the requester does it all', async () => {
  const output = join(pod.root, 'policy.bin');
  const result = await pod.get(0, [`${origin.url}/object.bin`, '-o', output, '--json']);
  assert.equal(result.status, 0, result.stderr + result.stdout.toString());
  const summary = summaryOf(result);
  assert.equal(summary.ok, true);
  assert.equal(summary.pooled, true, 'pooled: the helper was a source it could have used');
  assert.equal(summary.sha256, origin.sha256('object.bin'));
  const bytes = await readFile(output);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), origin.sha256('object.bin'));

  // Every byte from the requester itself (the summary's shares are those of the last progress
  // event, so they need not add up to the whole object).
  assert.deepEqual(Object.keys(summary.bySource), ['self']);
  assert.ok(summary.bySource['self']! > 0);
  // The helper refused its one assignment, saying why, and was not asked again.
  const refusals = pod.daemons[1]!.log()
    .split('\n')
    .filter((line) => line.includes('refused a pod peer fetch'));
  assert.equal(refusals.length, 1, pod.daemons[1]!.log());
  assert.match(refusals[0]!, /127\.0\.0\.1 is a loopback address/);
  // The origin saw requests from the requester's address only, none from the helper's.
  const clients = origin.clients();
  assert.ok((clients.get('127.0.0.11')?.requests ?? 0) > 0, JSON.stringify([...clients]));
  assert.equal(clients.get('127.0.0.12'), undefined, JSON.stringify([...clients]));
});
