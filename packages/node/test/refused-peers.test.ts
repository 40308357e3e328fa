/**
 * `GET /api/peers`'s `refused` with real daemons: two `peapod daemon` processes in two different
 * pods; the one with the smaller Device ID (the side that dials, daemon.ts) knows the other from
 * its peers.json, as after moving to another pod or joining with an old code. The handshake fails
 * for want of the pod secret, and both daemons list the other's address with the sentence that
 * says so (the dialer for its outbound link, the listener for its inbound one). The table's bound and order are
 * checked on `RefusedPeers` directly.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { toHex } from '@peapod/core';
import { getPeers } from '../src/api-client.js';
import { DataDir } from '../src/data-dir.js';
import { freeUdpPort, spawnLocalDaemon, waitFor } from '../src/local-pod.js';
import { createPod } from '../src/pod.js';
import { REFUSED_ADDRESSES_MAX, RefusedPeers } from '../src/refused-peers.js';

const POD_SECRET_REASON = "it does not hold this pod's secret (another pod, or an old join code)";

test("a daemon of another pod is listed as refused by both daemons, with the pod's reason", async () => {
  const root = await mkdtemp(join(tmpdir(), 'peapod-refused-'));
  interface Device {
    readonly discoveryPort: number;
    readonly home: string;
    readonly deviceIdHex: string;
  }
  const devices: Device[] = [];
  for (let i = 0; i < 2; i++) {
    const discoveryPort = await freeUdpPort();
    // The home spawnLocalDaemon uses, prepared first to learn the Device ID.
    const home = join(root, `pod-${discoveryPort}-device1`);
    const identity = await (await DataDir.open(home)).loadIdentity();
    devices.push({ discoveryPort, home, deviceIdHex: toHex(identity.deviceId) });
  }
  // The smaller Device ID dials; the other listens and is started first.
  devices.sort((a, b) => (a.deviceIdHex < b.deviceIdHex ? -1 : 1));
  const [dialer, listener] = devices as [Device, Device];
  const spawn = (device: Device) =>
    spawnLocalDaemon({
      root,
      index: 0,
      secret: createPod(), // each its own pod
      discoveryPort: device.discoveryPort,
      logLevel: 'warn',
      stdio: 'ignore',
    });
  const daemons = [await spawn(listener)];
  try {
    await waitFor(() => getPeers(daemons[0]!.api).then(() => true), 10_000, 'the listener');
    const known = [
      { deviceId: listener.deviceIdHex, address: '127.0.0.1', port: daemons[0]!.peerPort },
    ];
    await writeFile(join(dialer.home, 'peers.json'), JSON.stringify(known));
    daemons.push(await spawn(dialer));
    for (const daemon of daemons) {
      await waitFor(
        async () => ((await getPeers(daemon.api)).refused ?? []).length > 0,
        15_000,
        'the daemon to list the other pod’s device as refused',
      );
      const answer = await getPeers(daemon.api);
      assert.equal(answer.refused?.length, 1);
      const [row] = answer.refused!;
      assert.equal(row!.address, '127.0.0.1');
      assert.equal(row!.reason, POD_SECRET_REASON);
      assert.equal(row!.count, 1);
      assert.equal(new Date(row!.lastAt).toISOString(), row!.lastAt);
      assert.ok(
        answer.peers.every((peer) => peer.state !== 'connected'),
        'no link came up between the pods',
      );
    }
  } finally {
    for (const daemon of daemons) {
      daemon.child.kill('SIGTERM');
      await new Promise((resolve) => daemon.child.once('exit', resolve));
    }
    await rm(root, { recursive: true, force: true });
  }
});

test('the refused table keeps the most recent addresses, newest first, and counts repeats', () => {
  const refused = new RefusedPeers();
  const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));
  for (let i = 0; i < REFUSED_ADDRESSES_MAX + 4; i++) refused.record(`192.0.2.${i}`, at(i));
  refused.record('192.0.2.4', at(59));
  const rows = refused.list();
  assert.equal(rows.length, REFUSED_ADDRESSES_MAX);
  assert.deepEqual(rows[0], {
    address: '192.0.2.4',
    reason: POD_SECRET_REASON,
    lastAt: at(59).toISOString(),
    count: 2,
  });
  assert.equal(rows[1]!.address, `192.0.2.${REFUSED_ADDRESSES_MAX + 3}`);
  assert.ok(!rows.some((row) => row.address === '192.0.2.0'), 'the oldest was forgotten');
});
