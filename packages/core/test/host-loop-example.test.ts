/**
 * The host loop of docs/architecture.md ("A host loop"), compiled and run. The doc quotes the
 * code between the `#region host-loop` markers below; the first test checks that the quote is
 * identical to it, the second runs two such hosts (two real Cores over real loopback TCP) that
 * learn of each other, link through the peer table's dial rule, and leave with GOODBYE.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// #region host-loop
import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import {
  Core,
  HostDriver,
  createNobleCryptoProvider,
  deriveDeviceId,
  unreachableOutput,
  type CoreEvent,
  type CoreOutput,
} from '@peapod/core';

/** A running host: its driver (and core), its Device ID, the port it accepts links on. */
export interface Host {
  readonly driver: HostDriver;
  readonly deviceId: Uint8Array;
  readonly port: number;
  /** Says GOODBYE on every link and waits until every socket closed. */
  stop(): Promise<void>;
}

/** One Core over TCP on 127.0.0.1, with one timer. It serves and downloads nothing. */
export async function startHost(
  podSecret: Uint8Array,
  onEvent: (event: CoreEvent) => void,
): Promise<Host> {
  const crypto = createNobleCryptoProvider({ randomBytes: (n) => new Uint8Array(randomBytes(n)) });
  const identity = crypto.ed25519GenerateKeyPair();
  const now = () => performance.now(); // monotonic: the core's clock
  const sockets = new Map<number, Socket>();
  let nextLinkId = 1;
  let timer: NodeJS.Timeout | undefined;

  const server = createServer((socket) => adopt(socket, 'inbound'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const core = new Core({
    crypto,
    identity,
    seed: randomInt(2 ** 31),
    podSecret,
    listenPort: port,
    handleTransfers: false, // transfer messages go up as events; no transfer output comes
  });

  // The adapter: one exhaustive switch over every output, and the one timer.
  const driver: HostDriver = new HostDriver(core, {
    perform(output: CoreOutput): void {
      switch (output.type) {
        case 'send':
          write(output.linkId, output.bytes); // handed over: see "Byte ownership"
          return;
        case 'disconnect':
          sockets.get(output.linkId)?.end(); // after the bytes written before it
          return;
        case 'connect': {
          // The peer table chose to dial: report `link-opened` with this dialId, or `dial-failed`.
          const { dialId } = output;
          const socket = connect(output.port, output.address);
          const failed = (error: Error) =>
            driver.handle({ type: 'dial-failed', nowMs: now(), dialId, detail: error.message });
          socket.once('error', failed);
          socket.once('connect', () => {
            socket.off('error', failed);
            adopt(socket, 'outbound', dialId);
          });
          return;
        }
        case 'event':
          onEvent(output.event);
          return;
        case 'fetch-origin':
        case 'cancel-fetch':
        case 'read-chunk':
        case 'deliver':
        case 'read-delivered':
        case 'store-chunk':
          return; // transfers (see "Transfers"): none with handleTransfers false
        default:
          unreachableOutput(output);
      }
    },
    setTimer(deadlineMs: number | undefined): void {
      clearTimeout(timer);
      timer = undefined;
      if (deadlineMs === undefined) return;
      timer = setTimeout(() => driver.timerFired(now()), Math.max(0, deadlineMs - now()));
    },
  });

  function write(linkId: number, bytes: Uint8Array): void {
    const byteCount = bytes.length;
    sockets.get(linkId)?.write(bytes, () => {
      driver.handle({ type: 'bytes-flushed', nowMs: now(), linkId, byteCount });
    });
  }

  function adopt(socket: Socket, direction: 'inbound' | 'outbound', dialId?: number): void {
    const linkId = nextLinkId++;
    sockets.set(linkId, socket);
    // Each 'data' Buffer is fresh: the core may keep a view of it (see "Byte ownership").
    socket.on('data', (bytes: Buffer) =>
      driver.handle({ type: 'bytes-received', nowMs: now(), linkId, bytes }),
    );
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      sockets.delete(linkId);
      driver.handle({ type: 'link-closed', nowMs: now(), linkId });
    });
    driver.handle({
      type: 'link-opened',
      nowMs: now(),
      linkId,
      direction,
      remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`,
      ...(dialId === undefined ? {} : { dialId }),
    });
  }

  return {
    driver,
    deviceId: deriveDeviceId(crypto, identity.publicKey),
    port,
    async stop() {
      const closed = once(server, 'close');
      server.close(); // closes once every inbound socket closed
      const open = [...sockets.values()].map((socket) => once(socket, 'close'));
      driver.handle({ type: 'shutdown', nowMs: now() });
      await Promise.all([closed, ...open]);
      clearTimeout(timer);
    },
  };
}
// #endregion host-loop

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/** The lines between `// #region NAME` and `// #endregion NAME` of a source text. */
function region(source: string, name: string): string {
  const lines = source.split('\n');
  const start = lines.indexOf(`// #region ${name}`);
  const end = lines.indexOf(`// #endregion ${name}`);
  assert.ok(start >= 0 && end > start, `region ${name}`);
  return lines.slice(start + 1, end).join('\n');
}

/** The fenced code block that follows `marker` in a Markdown text. */
function fencedAfter(markdown: string, marker: string): string {
  const at = markdown.indexOf(marker);
  assert.ok(at >= 0, `the marker ${marker}`);
  const match = /```ts\n([\s\S]*?)\n```/.exec(markdown.slice(at));
  assert.ok(match !== null, `a ts block after ${marker}`);
  return match[1]!;
}

test('docs/architecture.md quotes the host loop exactly as this file compiles it', () => {
  const root = packageRoot();
  const source = readFileSync(join(root, 'test', 'host-loop-example.test.ts'), 'utf8');
  const doc = readFileSync(join(root, '..', '..', 'docs', 'architecture.md'), 'utf8');
  const quoted = fencedAfter(
    doc,
    '<!-- host-loop: packages/core/test/host-loop-example.test.ts -->',
  );
  assert.equal(quoted, region(source, 'host-loop'));
});

/** Events of one host, and a promise for the first one a test waits on. */
class Events {
  readonly seen: CoreEvent[] = [];
  private readonly waiters: { match: (event: CoreEvent) => boolean; resolve(): void }[] = [];

  readonly push = (event: CoreEvent): void => {
    this.seen.push(event);
    for (const waiter of [...this.waiters]) {
      if (!waiter.match(event)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };

  until(match: (event: CoreEvent) => boolean): Promise<void> {
    if (this.seen.some(match)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

test('two hosts of the example learn of each other, link over TCP and leave with GOODBYE', async () => {
  const podSecret = new Uint8Array(randomBytes(32));
  const [aEvents, bEvents] = [new Events(), new Events()];
  const a = await startHost(podSecret, aEvents.push);
  const b = await startHost(podSecret, bEvents.push);
  // Each learns of the other (as from a LAN beacon); the peer table decides who dials.
  for (const [self, other] of [
    [a, b],
    [b, a],
  ] as const) {
    self.driver.handle({
      type: 'peer-discovered',
      nowMs: performance.now(),
      deviceId: other.deviceId,
      address: '127.0.0.1',
      port: other.port,
      source: 'manual',
    });
  }
  await Promise.all([
    aEvents.until((event) => event.type === 'peer:connect'),
    bEvents.until((event) => event.type === 'peer:connect'),
  ]);
  const dialer = Buffer.compare(a.deviceId, b.deviceId) < 0 ? a : b;
  for (const [self, other] of [
    [a, b],
    [b, a],
  ] as const) {
    const rows = self.driver.core.peers();
    assert.equal(rows.length, 1);
    assert.deepEqual(
      { deviceId: rows[0]!.deviceId, state: rows[0]!.state, direction: rows[0]!.direction },
      {
        deviceId: other.deviceId,
        state: 'connected',
        direction: self === dialer ? 'outbound' : 'inbound',
      },
    );
  }
  assert.equal(a.driver.core.openLinkCount, 1, 'one link per pair');

  const left = bEvents.until((event) => event.type === 'peer:disconnect');
  await a.stop();
  await left;
  const goodbye = bEvents.seen.find((event) => event.type === 'peer:disconnect');
  assert.equal(goodbye?.type === 'peer:disconnect' && goodbye.by, 'remote');
  await b.stop();
  assert.equal(a.driver.core.openLinkCount, 0);
  assert.equal(b.driver.core.openLinkCount, 0);
});
