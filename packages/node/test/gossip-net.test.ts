/**
 * Gossip beyond the pod with real processes: `peapod daemon`s of DIFFERENT pods (each its own
 * `peapod init`) on loopback, a real tracker (@peapod/tracker, SQLite), driven and read as a
 * user would (`peapod peers --json`, `peapod share`, `peapod fetch`) plus the files they leave
 * (peers.db) and the tracker's own answer.
 *
 * What each test pins down:
 * - broadcasting daemons learn each other with their addresses, and silent ones learn every
 *   broadcasting one, all through the tracker and gossip;
 * - the IP-sharing rule across processes: no silent daemon's HOST:PORT appears in any other
 *   daemon's `peapod peers --json`, in any record of any peers.db, or in the tracker's discover
 *   answer (checked again at the end over every daemon, newcomers included);
 * - content by ID from a stranger found this way: shared on a broadcasting daemon, fetched
 *   byte-exact by a silent daemon of another pod;
 * - with the tracker stopped, a new broadcasting daemon that knows one peer is announced by
 *   gossip to all the others, and a newcomer given only `--peer HOST:PORT` learns them all;
 * - a daemon restarted while the tracker is down rejoins from its peers.db.
 * Every wait polls the daemons' API with a deadline; nothing sleeps, nothing is timed.
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { decodePeerRecord, deriveDeviceId, formatDeviceId, type PeerRecord } from '@peapod/core';
import { TrackerClient } from '@peapod/tracker';
import type { ShareAnswer } from '../src/api-client.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { waitFor } from '../src/local-pod.js';
import { jsonOf, peapod, sha256 } from './support/content-cli.js';
import { GossipNet, type NetDaemon } from './support/gossip-net.js';

const crypto = createNodeCryptoProvider();
const MiB = 1024 * 1024;

/** The records a daemon's peers.db holds (read beside the running daemon: WAL allows it). */
function peersDbRecords(daemon: NetDaemon): PeerRecord[] {
  const db = new Database(join(daemon.home, 'peers.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT record FROM peers').all() as { record: Buffer }[];
    return rows.map((row) => {
      const decoded = decodePeerRecord(new Uint8Array(row.record));
      assert.ok(decoded.ok, 'every stored record decodes');
      return decoded.record;
    });
  } finally {
    db.close();
  }
}

const deviceIdOf = (record: PeerRecord) => formatDeviceId(deriveDeviceId(crypto, record.publicKey));

describe('gossip across pods: tracker, broadcast and silent daemons', () => {
  let net: GossipNet;
  let tracker: string;
  let beacons: NetDaemon[];
  let quiet: NetDaemon[];
  let work: string;

  /**
   * The IP-sharing rule over every daemon started so far: no silent daemon's HOST:PORT in any
   * other's `peapod peers --json` or peers.db records, nor in the tracker's answer (when up).
   */
  async function assertSilentAddressesNowhere(trackerUp: boolean): Promise<void> {
    const silent = net.daemons.filter((daemon) => !daemon.broadcast);
    assert.ok(silent.length > 0);
    const silentIds = new Set(silent.map((daemon) => daemon.deviceId));
    const silentPorts = new Set(silent.map((daemon) => daemon.peerPort));
    for (const daemon of net.daemons) {
      if (daemon.child.exitCode !== null) continue;
      const json = await peapod(daemon, ['peers', '--json']);
      assert.equal(json.status, 0, json.stderr);
      for (const other of silent) {
        if (other === daemon) continue;
        assert.ok(
          !json.stdout.includes(`:${other.peerPort}"`) &&
            !json.stdout.includes(`127.0.0.1:${other.peerPort}`),
          `${daemon.name}'s peapod peers --json shows ${other.name}'s port:\n${json.stdout}`,
        );
      }
      const answer = JSON.parse(json.stdout) as {
        gossip?: { peers: { deviceId: string; address?: string }[] };
      };
      for (const row of answer.gossip?.peers ?? []) {
        if (silentIds.has(row.deviceId))
          assert.equal(row.address, undefined, `${daemon.name}: ${row.deviceId}`);
      }
      for (const record of peersDbRecords(daemon)) {
        if (silentIds.has(deviceIdOf(record))) {
          assert.deepEqual(record.addresses, [], `${daemon.name}'s peers.db`);
          assert.equal(record.broadcast, false);
        }
        if (record.addresses.length > 0) {
          assert.ok(
            !silentPorts.has(record.listenPort),
            `${daemon.name}'s peers.db: ${record.listenPort}`,
          );
        }
      }
    }
    if (!trackerUp) return;
    const observer = crypto.ed25519GenerateKeyPair();
    const client = new TrackerClient(tracker, {
      publicKey: observer.publicKey,
      sign: (message) => crypto.ed25519Sign(observer.secretKey, message),
    });
    const { records } = await client.discover();
    const registered = records.map((bytes) => {
      const decoded = decodePeerRecord(bytes);
      assert.ok(decoded.ok);
      return deviceIdOf(decoded.record);
    });
    const broadcasting = net.daemons.filter(
      (daemon) => daemon.broadcast && daemon.child.exitCode === null,
    );
    assert.deepEqual(registered.sort(), broadcasting.map((daemon) => daemon.deviceId).sort());
    for (const bytes of records) {
      const decoded = decodePeerRecord(bytes);
      assert.ok(decoded.ok);
      assert.ok(!silentIds.has(deviceIdOf(decoded.record)), 'a silent device at the tracker');
      assert.ok(!silentPorts.has(decoded.record.listenPort));
    }
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'peapod-gossip-work-'));
    net = await GossipNet.create();
    tracker = await net.startTracker();
    beacons = [];
    for (const name of ['beacon1', 'beacon2', 'beacon3']) {
      beacons.push(await net.add(name, ['--tracker', tracker, '--broadcast']));
    }
    quiet = [
      await net.add('quiet1', ['--tracker', tracker, '--silent']),
      await net.add('quiet2', ['--tracker', tracker]), // silent is the default
    ];
  });

  after(async () => {
    await net?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('broadcasting daemons learn each other with their addresses; silent ones learn every broadcasting one', async () => {
    const withAddress = (row: { address?: string }, other: NetDaemon) =>
      row.address === `127.0.0.1:${other.peerPort}`;
    for (const beacon of beacons) {
      await net.learns(
        beacon,
        beacons.filter((other) => other !== beacon),
        30_000,
        withAddress,
      );
    }
    for (const daemon of quiet) await net.learns(daemon, beacons, 30_000, withAddress);
    const rows = await net.gossipRows(quiet[0]!);
    for (const row of rows.filter((r) => beacons.some((b) => b.deviceId === r.deviceId))) {
      assert.equal(row.trust, 'stranger');
      assert.equal(row.broadcast, true);
      assert.ok(['tracker', 'gossip', 'link'].includes(row.source), row.source);
      assert.ok(row.score >= 0 && row.score <= 1);
    }
    const human = await peapod(quiet[0]!, ['peers']);
    assert.equal(human.status, 0, human.stderr);
    assert.match(
      human.stdout,
      /Beyond the pod \(gossip\): silent: this address is never passed on/,
    );
    assert.match(human.stdout, /PEER +SOURCE +LAST HEARD +SCORE +TRUST +ADDRESS/);
    for (const beacon of beacons) {
      assert.match(
        human.stdout,
        new RegExp(
          `beacon\\d \\(${beacon.deviceId.slice(0, 7)}\\) .* \\d+s ago .* stranger +127\\.0\\.0\\.1:${beacon.peerPort}`,
        ),
      );
    }
    assert.match(human.stdout, new RegExp(`Tracker ${tracker}: reachable\\n`));
  });

  test('address policy: without --allow-private-peers a daemon learns the beacons from the tracker but never dials their loopback addresses', async () => {
    const strict = await net.add('strict', ['--tracker', tracker, '--no-private-peers']);
    try {
      await net.learns(strict, beacons, 30_000, () => true);
      await waitFor(
        async () => /127\.0\.0\.1 is a loopback address/.test(strict.log()),
        30_000,
        "strict's refused dial",
      );
      const rows = await net.gossipRows(strict);
      assert.deepEqual(
        rows.filter((row) => row.linked).map((row) => row.name),
        [],
        'no link to any beacon: every learnt address is loopback',
      );
      for (const beacon of beacons) {
        const seen = await net.gossipRows(beacon);
        assert.ok(
          !seen.some((row) => row.deviceId === strict.deviceId && row.linked),
          `${beacon.name} has no link from strict`,
        );
      }
    } finally {
      await net.stopDaemon(strict);
    }
  });

  test('IP-sharing rule: the silent daemons are known, but their HOST:PORT is in no peers output, peers.db or tracker answer', async () => {
    // Not vacuous: every silent device is known to some beacon (it linked in), without address.
    for (const silent of quiet) {
      await waitFor(
        async () => {
          for (const beacon of beacons) {
            const rows = await net.gossipRows(beacon);
            if (rows.some((row) => row.deviceId === silent.deviceId && !row.broadcast)) return true;
          }
          return false;
        },
        30_000,
        `a beacon to know ${silent.name}`,
      );
    }
    await assertSilentAddressesNowhere(true);
  });

  test('content by ID from a stranger found through the tracker: share --publish on a beacon, fetch on a silent daemon of another pod, byte-exact', async () => {
    const file = join(work, 'talk.bin');
    const bytes = randomBytes(9 * MiB + 4321);
    await writeFile(file, bytes);
    const shared = await peapod(beacons[0]!, ['share', file, '--publish', '--json']);
    assert.equal(shared.status, 0, shared.stderr);
    const { contentId } = jsonOf<ShareAnswer>(shared);
    const out = join(work, 'fetched.bin');
    const fetched = await peapod(quiet[0]!, ['fetch', contentId, '-o', out, '--json', '-q']);
    assert.equal(
      fetched.status,
      0,
      `${fetched.stdout}\n${fetched.stderr}\n${quiet[0]!.log().slice(-4000)}`,
    );
    assert.equal(sha256(await readFile(out)), sha256(bytes));
    // From the stranger that shared it, not from this device or anyone else.
    const summary = jsonOf<{ bySource: Record<string, number> }>(fetched);
    assert.deepEqual(summary.bySource, { [beacons[0]!.deviceIdHex]: bytes.length });
  });

  test('tracker stopped: a new broadcasting daemon that knows one peer is announced to all; a newcomer with only --peer learns them all', async () => {
    await net.stopTracker();
    const late = await net.add('beacon4', [
      '--tracker',
      tracker, // down: the daemon runs anyway, and says so
      '--broadcast',
      '--public-address',
      '127.0.0.1',
      '--peer',
      `127.0.0.1:${beacons[0]!.peerPort}`,
    ]);
    await waitFor(
      async () => (await net.peers(late)).gossip?.trackers[0]?.state === 'unreachable',
      20_000,
      'beacon4 to report its tracker unreachable',
    );
    const status = (await net.peers(late)).gossip!.trackers[0]!;
    assert.match(status.detail ?? '', /\S/);
    for (const daemon of [...beacons, ...quiet]) {
      await net.learns(
        daemon,
        [late],
        30_000,
        (row) => row.address === `127.0.0.1:${late.peerPort}`,
      );
    }
    beacons.push(late);
    const newcomer = await net.add('newcomer', ['--peer', `127.0.0.1:${beacons[1]!.peerPort}`]);
    await net.learns(
      newcomer,
      beacons,
      30_000,
      (row, other) => row.address === `127.0.0.1:${other.peerPort}`,
    );
    assert.ok(
      (await net.gossipRows(newcomer)).some((row) => row.linked),
      'the newcomer holds a gossip link',
    );
  });

  test('restart with the tracker down: the daemon rejoins from peers.db', async () => {
    const before = peersDbRecords(quiet[1]!).map(deviceIdOf);
    for (const beacon of beacons)
      assert.ok(before.includes(beacon.deviceId), `${beacon.name} in peers.db`);
    const again = await net.restart(quiet[1]!);
    quiet[1] = again;
    await waitFor(
      async () => /gossip peers loaded from peers\.db/.test(again.log()),
      15_000,
      'quiet2 to load peers.db',
    );
    await net.learns(
      again,
      beacons,
      30_000,
      (row, other) => row.address === `127.0.0.1:${other.peerPort}`,
    );
    await waitFor(
      async () => (await net.gossipRows(again)).some((row) => row.linked),
      30_000,
      `quiet2 to hold a gossip link again\n${again.log().slice(-3000)}`,
    );
    await assertSilentAddressesNowhere(false);
  });
});
