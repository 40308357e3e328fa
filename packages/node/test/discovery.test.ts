/**
 * LanDiscovery over real UDP multicast on 127.0.0.1 (DESIGN.md, "Real parts in tests"): three
 * instances of one pod (one of them in a child process), and one of another pod that must see
 * nothing and be seen by nobody. The discovery latency is printed, never asserted (shared, noisy
 * machines). Every wait is for an event, bounded by the test timeout.
 *
 * If this machine cannot deliver multicast on loopback, the tests skip and say so.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { shortDeviceId } from '@peapod/core';
import { LanDiscovery, type DiscoveredPeer, type RejectedBeacon } from '../src/discovery.js';

const GROUP = '239.255.80.65';
/** A port of its own per run, so parallel test runs on one machine do not hear each other. */
const PORT = 20_000 + (process.pid % 20_000);
const TIMEOUT_MS = 10_000;

/** Sends one datagram to the group on 127.0.0.1 and waits up to 1 s to hear it back. */
async function multicastOnLoopbackWorks(): Promise<string | undefined> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(PORT, '0.0.0.0', resolve);
    });
    socket.addMembership(GROUP, '127.0.0.1');
    socket.setMulticastInterface('127.0.0.1');
    socket.setMulticastLoopback(true);
    const heard = once(socket, 'message');
    socket.send('probe', PORT, GROUP);
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(resolve, 1000, 'timeout'));
    if ((await Promise.race([heard, timeout])) === 'timeout') {
      return 'a datagram sent to the group on 127.0.0.1 did not come back within 1 s';
    }
    return undefined;
  } catch (error) {
    return `multicast on 127.0.0.1 failed: ${(error as Error).message}`;
  } finally {
    socket.close();
  }
}

/** Everything one instance heard, and promises for what a test waits on. */
class Recorder {
  readonly peers: DiscoveredPeer[] = [];
  readonly rejected: RejectedBeacon[] = [];
  private readonly waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(
    readonly name: string,
    readonly deviceId: Uint8Array,
  ) {}

  addPeer(peer: DiscoveredPeer): void {
    this.peers.push(peer);
    this.poke();
  }

  addRejected(rejected: RejectedBeacon): void {
    this.rejected.push(rejected);
    this.poke();
  }

  /** Device IDs (short form) this instance has discovered. */
  seen(): Set<string> {
    return new Set(this.peers.map((peer) => shortDeviceId(peer.deviceId)));
  }

  until(check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ check, resolve }));
  }

  untilSees(other: Recorder): Promise<void> {
    return this.until(() => this.seen().has(shortDeviceId(other.deviceId)));
  }

  private poke(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.check()) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }
}

function startInProcess(
  recorder: Recorder,
  podSecret: Uint8Array,
  peerPort: number,
): { discovery: LanDiscovery; started: Promise<void> } {
  const discovery = new LanDiscovery({
    podSecret,
    deviceId: recorder.deviceId,
    peerPort,
    group: GROUP,
    port: PORT,
  });
  discovery.on('peer', (peer) => recorder.addPeer(peer));
  discovery.on('beacon:rejected', (rejected) => recorder.addRejected(rejected));
  discovery.on('error', (error) => assert.fail(`${recorder.name}: ${error.message}`));
  return { discovery, started: discovery.start() };
}

/** Runs a LanDiscovery in a child process; its events arrive as JSON lines on stdout. */
function startChild(recorder: Recorder, podSecret: Uint8Array, peerPort: number): ChildProcess {
  const moduleUrl = new URL('../src/discovery.js', import.meta.url).href;
  const script = `
    import { LanDiscovery } from ${JSON.stringify(moduleUrl)};
    const hex = (text) => Uint8Array.from(Buffer.from(text, 'hex'));
    const discovery = new LanDiscovery({
      podSecret: hex(process.argv[1]), deviceId: hex(process.argv[2]), peerPort: ${peerPort},
      group: ${JSON.stringify(GROUP)}, port: ${PORT},
    });
    const print = (type, event) => console.log(JSON.stringify({ type, ...event,
      deviceId: event.deviceId && Buffer.from(event.deviceId).toString('hex') }));
    discovery.on('peer', (peer) => print('peer', peer));
    discovery.on('beacon:rejected', (rejected) => print('rejected', rejected));
    discovery.on('error', (error) => { console.error(error); process.exit(1); });
    process.stdin.on('end', () => discovery.close());
    process.stdin.resume();
    await discovery.start();
  `;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      script,
      Buffer.from(podSecret).toString('hex'),
      Buffer.from(recorder.deviceId).toString('hex'),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('.', import.meta.url)) },
  );
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = JSON.parse(line) as { type: string; deviceId?: string } & DiscoveredPeer &
      RejectedBeacon;
    if (event.type === 'peer') {
      recorder.addPeer({
        ...event,
        deviceId: Uint8Array.from(Buffer.from(event.deviceId!, 'hex')),
      });
    } else {
      recorder.addRejected(event);
    }
  });
  return child;
}

const skipReason = await multicastOnLoopbackWorks();
if (skipReason !== undefined) {
  console.log(`SKIP discovery tests: ${skipReason}. Multicast on loopback is unavailable here.`);
}

describe('LanDiscovery over UDP multicast on 127.0.0.1', { skip: skipReason }, () => {
  const podSecret = new Uint8Array(randomBytes(32));
  const otherPodSecret = new Uint8Array(randomBytes(32));
  const a = new Recorder('a', new Uint8Array(randomBytes(32)));
  const b = new Recorder('b', new Uint8Array(randomBytes(32)));
  const c = new Recorder('c (child process)', new Uint8Array(randomBytes(32)));
  const x = new Recorder('x (other pod)', new Uint8Array(randomBytes(32)));
  const instances: LanDiscovery[] = [];
  let child: ChildProcess | undefined;
  /** The in-process instances of a and x (c runs in a child process). */
  let aDiscovery: LanDiscovery;
  let xDiscovery: LanDiscovery;

  // Every test reads what these four heard; none changes them (the restart test restarts a
  // device of its own, in a pod of its own), so each test depends on this hook only, not on
  // the tests before it.
  before(async () => {
    const other = startInProcess(x, otherPodSecret, 9999);
    xDiscovery = other.discovery;
    instances.push(xDiscovery);
    await other.started;

    const first = startInProcess(a, podSecret, 9101);
    aDiscovery = first.discovery;
    instances.push(aDiscovery);
    await first.started;

    const bStart = performance.now();
    const second = startInProcess(b, podSecret, 9102);
    instances.push(second.discovery);
    await Promise.all([
      second.started,
      b
        .untilSees(a)
        .then(() =>
          console.log(
            `  b found a (reply to its query) after ${(performance.now() - bStart).toFixed(1)} ms`,
          ),
        ),
      a
        .untilSees(b)
        .then(() =>
          console.log(
            `  a found b (its announce) after ${(performance.now() - bStart).toFixed(1)} ms`,
          ),
        ),
    ]);

    const cStart = performance.now();
    child = startChild(c, podSecret, 9103);
    await Promise.all([c.untilSees(a), c.untilSees(b), a.untilSees(c), b.untilSees(c)]);
    console.log(
      `  child process c and a, b all found each other ${(performance.now() - cStart).toFixed(1)} ms after spawn (includes Node start-up)`,
    );
  });

  after(async () => {
    for (const discovery of instances) await discovery.close();
    if (child !== undefined && child.exitCode === null) {
      child.stdin!.end();
      await once(child, 'exit');
    }
  });

  test(
    'peers of one pod find each other at start, across processes',
    { timeout: TIMEOUT_MS },
    () => {
      const expectSeen = (recorder: Recorder, ...others: Recorder[]): void =>
        assert.deepEqual(
          [...recorder.seen()].sort(),
          others.map((other) => shortDeviceId(other.deviceId)).sort(),
          `${recorder.name} sees exactly ${others.map((other) => other.name).join(', ')}`,
        );
      expectSeen(a, b, c);
      expectSeen(b, a, c);
      expectSeen(c, a, b);
      const aSeesB = a.peers.find(
        (peer) => shortDeviceId(peer.deviceId) === shortDeviceId(b.deviceId),
      );
      assert.deepEqual(
        { address: aSeesB?.address, port: aSeesB?.port, firstSeen: aSeesB?.firstSeen },
        { address: '127.0.0.1', port: 9102, firstSeen: true },
      );
    },
  );

  test('another pod sees nothing and is seen by nobody', { timeout: TIMEOUT_MS }, async () => {
    // x hears the pod's beacons (so the datagrams did arrive) and cannot open them...
    await x.until(() => x.rejected.length >= 3);
    assert.equal(x.peers.length, 0);
    assert.ok(
      x.rejected.every((r) => r.reason === 'wrong-pod-or-tampered'),
      JSON.stringify(x.rejected),
    );
    // ...and the pod drops x's beacons the same way (x started first, so it queries again now).
    xDiscovery.query();
    await Promise.all([a, b, c].map((r) => r.until(() => r.rejected.length >= 1)));
    for (const recorder of [a, b, c]) {
      assert.ok(!recorder.seen().has(shortDeviceId(x.deviceId)), `${recorder.name} saw x`);
      assert.ok(
        recorder.rejected.every((r) => r.reason === 'wrong-pod-or-tampered'),
        `${recorder.name}: ${JSON.stringify(recorder.rejected)}`,
      );
    }
  });

  test(
    'a query brings replies marked as repeats; a restarted peer is new again',
    { timeout: TIMEOUT_MS },
    async () => {
      const before = a.peers.length;
      aDiscovery.query();
      await a.until(
        () => a.peers.slice(before).filter((peer) => peer.kind === 'reply').length >= 2,
      );
      const replies = a.peers.slice(before).filter((peer) => peer.kind === 'reply');
      assert.ok(
        replies.every((peer) => !peer.firstSeen),
        JSON.stringify(replies),
      );

      // d restarts on another peer port: e reports it as first seen at its new endpoint. Both
      // are this test's own, in a pod of their own, so what a, b, c and x heard stays as the
      // other tests expect it (for them, d and e are another pod's beacons, dropped).
      const restartPod = new Uint8Array(randomBytes(32));
      const d = new Recorder('d', new Uint8Array(randomBytes(32)));
      const e = new Recorder('e', new Uint8Array(randomBytes(32)));
      const observer = startInProcess(e, restartPod, 9105);
      instances.push(observer.discovery);
      await observer.started;
      const first = startInProcess(d, restartPod, 9104);
      instances.push(first.discovery);
      await first.started;
      await e.untilSees(d);
      await first.discovery.close();
      const restartStart = performance.now();
      const restarted = startInProcess(new Recorder('d restarted', d.deviceId), restartPod, 9204);
      instances.push(restarted.discovery);
      await restarted.started;
      await e.until(() => e.peers.some((peer) => peer.port === 9204));
      console.log(`  e saw d's restart after ${(performance.now() - restartStart).toFixed(1)} ms`);
      const seenAgain = e.peers.find((peer) => peer.port === 9204)!;
      assert.equal(seenAgain.firstSeen, true);
      assert.equal(shortDeviceId(seenAgain.deviceId), shortDeviceId(d.deviceId));
    },
  );

  test('no instance ever reports itself', () => {
    for (const recorder of [a, b, c, x]) {
      assert.ok(!recorder.seen().has(shortDeviceId(recorder.deviceId)), recorder.name);
    }
  });
});

describe('LanDiscovery API', () => {
  test('rejects bad options, naming them', () => {
    const base = { podSecret: new Uint8Array(32), deviceId: new Uint8Array(32), peerPort: 9000 };
    const cases: [object, RegExp][] = [
      [{ podSecret: new Uint8Array(16) }, /^podSecret: /],
      [{ deviceId: new Uint8Array(31) }, /^deviceId: /],
      [{ peerPort: 0 }, /^peerPort: /],
      [{ port: 70000 }, /^port: /],
      [{ announceIntervalMs: 0 }, /^announceIntervalMs: /],
      [{ replyJitterMsMax: -1 }, /^replyJitterMsMax: /],
    ];
    for (const [patch, message] of cases) {
      assert.throws(() => new LanDiscovery({ ...base, ...patch }), {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
        message,
      });
    }
  });

  test(
    'start twice, or after close, is an invalid state; close is idempotent',
    { skip: skipReason },
    async () => {
      const discovery = new LanDiscovery({
        podSecret: new Uint8Array(32),
        deviceId: new Uint8Array(32),
        peerPort: 9000,
        port: PORT,
      });
      await discovery.start();
      await assert.rejects(discovery.start(), { code: 'PEAPOD_ERR_INVALID_STATE' });
      await discovery.close();
      await discovery.close();
      await assert.rejects(discovery.start(), { code: 'PEAPOD_ERR_INVALID_STATE' });
    },
  );
});
