/**
 * Several tracker instances on one database (DESIGN.md decision 11): what one accepts, the
 * others see and enforce, with no in-process state involved. In-process pairs run on both
 * backends (two connections to one SQLite file, two pools on one PostgreSQL schema); races
 * send the same request to both at once and require exactly one acceptance. The last test runs
 * the second instance as a real `peapod tracker --db postgres://...` process.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TrackerClient } from '../src/client.js';
import { eachBackend } from './support/each-backend.js';
import { call } from './support/http.js';
import { base64, newDevice, recordOf, signedBody, silentRecordOf } from './support/devices.js';
import { startTracker } from './support/tracker-fixture.js';

eachBackend("two instances see each other's registrations and unregistrations", async (backend) => {
  const clock = { ms: Date.now() };
  const a = await startTracker(backend, { clock });
  const b = await startTracker(backend, { clock });
  try {
    const device = newDevice();
    const viaA = new TrackerClient(a.url, device.signer, { now: () => clock.ms });
    const viaB = new TrackerClient(b.url, device.signer, { now: () => clock.ms });
    const record = recordOf(device, clock.ms);
    await viaA.register(record);
    assert.deepEqual((await viaB.discover()).records.map(base64), [base64(record)]);
    clock.ms += 1000;
    await viaB.unregister();
    assert.equal((await viaA.discover()).records.length, 0);
    const replay = await call(a.url, 'POST', '/api/v1/bootstrap/register', {
      body: JSON.stringify({ record: base64(record) }),
    });
    assert.equal(replay.status, 409, "B's unregister is A's tombstone");
    await viaA.registerNode(silentRecordOf(device, clock.ms));
    await viaB.heartbeat([new Uint8Array(32).fill(3)]);
    const located = await viaA.chunkLocations([new Uint8Array(32).fill(3)]);
    assert.deepEqual([...located.values()], [[device.deviceIdHex]]);
  } finally {
    await a.tracker.close();
    await b.tracker.close();
  }
});

eachBackend(
  'the same registration or signed request sent to two instances at once is accepted once',
  async (backend) => {
    const clock = { ms: Date.now() };
    const a = await startTracker(backend, { clock });
    const b = await startTracker(backend, { clock });
    try {
      for (let round = 0; round < 10; round++) {
        const device = newDevice();
        const body = JSON.stringify({ record: base64(recordOf(device, clock.ms)) });
        const answers = await Promise.all(
          [a.url, b.url].map((url) => call(url, 'POST', '/api/v1/bootstrap/register', { body })),
        );
        assert.deepEqual(
          answers.map((answer) => answer.status).sort(),
          [200, 409],
          `round ${round}`,
        );
        const nodeBody = JSON.stringify({ record: base64(silentRecordOf(device, clock.ms)) });
        await call(a.url, 'POST', '/api/v1/nodes', { body: nodeBody });
        const path = `/api/v1/nodes/${device.deviceIdHex}/heartbeat`;
        const signed = signedBody(device, 'PUT', path, clock.ms, { contentIds: [] });
        const beats = await Promise.all(
          [a.url, b.url].map((url) =>
            call(url, 'PUT', path, {
              body: signed.body,
              headers: { 'peapod-signature': signed.signature },
            }),
          ),
        );
        assert.deepEqual(beats.map((answer) => answer.status).sort(), [200, 409], `round ${round}`);
      }
    } finally {
      await a.tracker.close();
      await b.tracker.close();
    }
  },
);

const CLI = fileURLToPath(new URL('../../../node/dist/src/cli.js', import.meta.url));

/** Starts `peapod tracker` and resolves with its URL once it logs "ready". */
async function startCliTracker(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'tracker', '--port', '0', '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEAPOD_HOME: '/nonexistent-peapod-home-unused' },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'ready' && typeof entry.url === 'string') resolve(entry.url);
    });
    child.once('exit', (code) => reject(new Error(`peapod tracker exited ${code}: ${stderr}`)));
  });
  return { child, url };
}

eachBackend(
  "a `peapod tracker` process and an in-process tracker on one database see each other's entries",
  async (backend) => {
    const inProcess = await startTracker(backend);
    const cli = await startCliTracker(['--db', backend.db]);
    try {
      const device = newDevice();
      const record = recordOf(device, Date.now());
      await new TrackerClient(cli.url, device.signer).register(record);
      const seen = await new TrackerClient(inProcess.url, device.signer).discover();
      assert.deepEqual(seen.records.map(base64), [base64(record)]);
      await new TrackerClient(inProcess.url, device.signer).unregister();
      assert.equal((await new TrackerClient(cli.url, device.signer).discover()).records.length, 0);
    } finally {
      const exited = new Promise((resolve) => cli.child.once('exit', resolve));
      cli.child.kill('SIGTERM');
      await exited;
      await inProcess.tracker.close();
    }
  },
);
