/**
 * Cache sharing between the gateways of one pod (issue 13 item 4), with three real `peapod
 * daemon --gateway` processes on loopback, each routing `/o` to one origin and sending its
 * origin traffic from its own address (127.0.0.11, .12, .13), so the origin's log says which
 * daemon fetched what. Each test names what it asserts:
 * - an object read through A is then served to B and C from A's copy: the origin sends it once;
 * - three gateways missing one object at the same moment cost one origin fetch;
 * - a changed object (new ETag) is fetched fresh, and the next member revalidates it with a
 *   bodyless 304 and takes the new copy from a member;
 * - a private object (fetched with credentials) held by a member reaches no client of another
 *   gateway without valid credentials: the origin refuses its request first;
 * - with the key's owner gone, the next in the rendezvous ranking fills it;
 * - an owner killed mid-fill: the member streaming its segments resumes from the origin with a
 *   range pinned by If-Range, and its client gets every byte;
 * - `/metrics` counts the bytes each member sent.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { parseDeviceId, toHex } from '@peapod/core';
import { getPeers } from '../src/api-client.js';
import { freeTcpPort, waitFor } from '../src/local-pod.js';
import { OBJECT_CHUNK_BYTES, SEGMENT_CHUNKS } from '../src/gateway/segment-feed.js';
import { PodFixture } from './support/pod-fixture.js';

interface Version {
  body: Buffer;
  etag: string;
  cacheControl: string;
  /** Requests without `Authorization: <this>` get 401. */
  authorization?: string;
}

/** An origin of in-memory objects that logs who fetched what (a plain static server's answers). */
class CountingOrigin {
  readonly objects = new Map<string, Version>();
  readonly log: Array<{ client: string; path: string; status: number; bytes: number }> = [];
  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    readonly url: string,
  ) {}

  static async start(): Promise<CountingOrigin> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const origin = new CountingOrigin(
      server,
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    );
    server.on('request', (req, res) => origin.handle(req, res));
    return origin;
  }

  put(name: string, body: Buffer, cacheControl = 'max-age=3600', authorization?: string): void {
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
    this.objects.set(`/${name}`, {
      body,
      etag,
      cacheControl,
      ...(authorization === undefined ? {} : { authorization }),
    });
  }

  /** The responses with a body, or all of them, for `name`. */
  fetches(name: string): Array<{ client: string; status: number; bytes: number }> {
    return this.log.filter((entry) => entry.path === `/${name}`);
  }

  private readonly holds = new Map<string, { afterBytes: number; released: Promise<void> }>();

  /** The next full GET of `name` stops after `afterBytes` until `release` is called. */
  hold(name: string, afterBytes: number): { release: () => void } {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    this.holds.set(`/${name}`, { afterBytes, released });
    return { release };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const object = this.objects.get(req.url ?? '');
    const client = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const entry = { client, path: req.url ?? '', status: 404, bytes: 0 };
    this.log.push(entry);
    if (object === undefined) return void res.writeHead(404, { 'content-length': 0 }).end();
    if (object.authorization !== undefined && req.headers.authorization !== object.authorization) {
      entry.status = 401;
      return void res.writeHead(401, { 'content-length': 0 }).end();
    }
    const head = { etag: object.etag, 'cache-control': object.cacheControl };
    const ifNoneMatch = (req.headers['if-none-match'] ?? '').split(',').map((tag) => tag.trim());
    if (ifNoneMatch.includes(object.etag)) {
      entry.status = 304;
      return void res.writeHead(304, head).end();
    }
    const from = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1];
    const ifRange = req.headers['if-range'];
    if (from !== undefined && (ifRange === undefined || ifRange === object.etag)) {
      const start = Number(from);
      entry.status = 206;
      entry.bytes = object.body.length - start;
      res.writeHead(206, {
        ...head,
        'content-range': `bytes ${start}-${object.body.length - 1}/${object.body.length}`,
        'content-length': object.body.length - start,
      });
      return void res.end(object.body.subarray(start));
    }
    entry.status = 200;
    entry.bytes = object.body.length;
    res.writeHead(200, {
      ...head,
      'content-type': 'application/octet-stream',
      'content-length': object.body.length,
    });
    const hold = this.holds.get(req.url ?? '');
    if (hold === undefined) return void res.end(object.body);
    this.holds.delete(req.url ?? '');
    res.write(object.body.subarray(0, hold.afterBytes));
    void hold.released.then(() => res.end(object.body.subarray(hold.afterBytes)));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

let origin: CountingOrigin;
let pod: PodFixture;
const gatewayPorts: number[] = [];
const deviceIds: Uint8Array[] = [];
const ADDRESS = (daemon: number) => `127.0.0.${11 + daemon}`;

before(async () => {
  origin = await CountingOrigin.start();
  for (let i = 0; i < 3; i++) gatewayPorts.push(await freeTcpPort());
  pod = await PodFixture.start({
    daemons: 3,
    flags: Object.fromEntries(
      gatewayPorts.map((port, i) => [
        i,
        ['--gateway', `127.0.0.1:${port}`, '--route', `/o=${origin.url}`],
      ]),
    ),
  });
  for (let i = 0; i < 3; i++) {
    await pod.connected(i, 2);
    deviceIds.push(parseDeviceId((await getPeers(pod.daemons[i]!.api)).deviceId));
  }
});
after(async () => {
  await pod?.stop();
  await origin?.close();
});

async function get(
  daemon: number,
  name: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer }> {
  const response = await fetch(`http://127.0.0.1:${gatewayPorts[daemon]}/o/${name}`, { headers });
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

/** The daemons (indices) ranked for `key` by SHA-256(device ID || key), highest first. */
function ranking(key: string, among: readonly number[]): number[] {
  const score = (i: number) =>
    createHash('sha256').update(deviceIds[i]!).update(key, 'utf8').digest();
  return [...among].sort((a, b) => Buffer.compare(score(b), score(a)));
}

/** The daemons' log lines at warn level and above, for a failing assertion's message. */
function warnings(): string {
  return pod.daemons
    .flatMap((daemon) =>
      daemon
        .log()
        .split('\n')
        .filter((line) => /"level":(4|5|6)0/.test(line))
        .map((line) => `daemon ${daemon.index + 1}: ${line}`),
    )
    .join('\n');
}

async function metric(daemon: number, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gatewayPorts[daemon]}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => pattern.test(line))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

test('an object read through A is served to B and C from the pod: the origin sends it once', async () => {
  const body = randomBytes(3 * 1024 * 1024 + 17);
  // A name whose rendezvous owner is A, so A is the one that fetches (any other owner would
  // fill A's miss itself: the next test shows that).
  let name = 'a0.bin';
  for (let n = 1; ranking(`${origin.url}/${name}`, [0, 1, 2])[0] !== 0; n++) name = `a${n}.bin`;
  origin.put(name, body);
  const a = await get(0, name);
  assert.equal(a.status, 200);
  assert.ok(a.body.equals(body));
  for (const daemon of [1, 2]) {
    const got = await get(daemon, name);
    assert.equal(got.status, 200, `daemon ${daemon + 1}`);
    assert.ok(got.body.equals(body), `daemon ${daemon + 1} got the object's exact bytes`);
  }
  assert.deepEqual(
    origin.fetches(name),
    [{ client: ADDRESS(0), path: `/${name}`, status: 200, bytes: body.length }],
    'the origin served the object once, to A',
  );
  // B fetched it from A: /metrics names A and counts at least the object's bytes from members.
  const fromA = await metric(
    1,
    new RegExp(`^peapod_gateway_peer_bytes_total\\{peer="${toHex(deviceIds[0]!)}"\\}`),
  );
  assert.ok(fromA > 0, 'B counts bytes fetched from A');
  const fromMembers =
    (await metric(1, /^peapod_gateway_peer_bytes_total\{/)) +
    (await metric(2, /^peapod_gateway_peer_bytes_total\{/));
  assert.equal(fromMembers, 2 * body.length, 'B and C each fetched the whole object from members');
  assert.equal(await metric(1, /^peapod_gateway_bytes_total\{source="origin"\}/), 0);
});

test('three gateways missing one object at once cost one origin fetch', async () => {
  const body = randomBytes(20 * 1024 * 1024 + 5); // 11 segments: members fetch while the owner fills
  origin.put('b.bin', body);
  const got = await Promise.all([0, 1, 2].map((daemon) => get(daemon, 'b.bin')));
  for (const [daemon, answer] of got.entries()) {
    assert.equal(answer.status, 200, `daemon ${daemon + 1}`);
    assert.ok(answer.body.equals(body), `daemon ${daemon + 1} got the object's exact bytes`);
  }
  const fetches = origin.fetches('b.bin');
  assert.equal(
    fetches.length,
    1,
    `one origin request, got ${JSON.stringify(fetches)}; the daemons warned: ${warnings()}`,
  );
  const [owner] = ranking(`${origin.url}/b.bin`, [0, 1, 2]);
  assert.equal(fetches[0]!.client, ADDRESS(owner!), "the key's rendezvous owner fetched it");
  // A member's copy is built from the verified segments with no second hash pass: the next read
  // on every gateway is a hit of its own copy (each chunk checked again), no origin or member byte.
  const peerBytes = (daemon: number) => metric(daemon, /^peapod_gateway_peer_bytes_total\{/);
  const before = await Promise.all([0, 1, 2].map(peerBytes));
  for (const daemon of [0, 1, 2]) {
    const again = await get(daemon, 'b.bin');
    assert.equal(again.status, 200, `daemon ${daemon + 1}, again`);
    assert.ok(again.body.equals(body), `daemon ${daemon + 1} served its copy's exact bytes`);
  }
  assert.deepEqual(await Promise.all([0, 1, 2].map(peerBytes)), before, 'no bytes from members');
  assert.equal(origin.fetches('b.bin').length, 1, 'no second origin request');
});

test('a changed object (new ETag) is fetched fresh; the next member revalidates with a 304 and takes the copy from the pod', async () => {
  const first = randomBytes(1024 * 1024);
  origin.put('c.bin', first, 'no-cache');
  assert.ok((await get(0, 'c.bin')).body.equals(first));
  const second = randomBytes(1024 * 1024 + 1);
  origin.put('c.bin', second, 'no-cache');
  const since = origin.log.length;
  const b = await get(1, 'c.bin');
  assert.ok(b.body.equals(second), 'B got the new version, not the copy A holds');
  assert.deepEqual(
    origin.log.slice(since).map(({ client, status, bytes }) => ({ client, status, bytes })),
    [{ client: ADDRESS(1), status: 200, bytes: second.length }],
    "B's revalidation of A's copy got the new version",
  );
  const c = await get(2, 'c.bin');
  assert.ok(c.body.equals(second), 'C got the new version');
  assert.deepEqual(
    origin.log.slice(since + 1).map(({ client, status, bytes }) => ({ client, status, bytes })),
    [{ client: ADDRESS(2), status: 304, bytes: 0 }],
    "C revalidated B's copy (no-cache) with a bodyless 304, and took its bytes from the pod",
  );
});

test('an object the origin says not to store is served from the origin; one refused owner stops the asking', async () => {
  const body = randomBytes(256 * 1024);
  let name = 'n0.bin';
  // A name whose owner is not daemon 3 and whose second is not daemon 3 either: daemon 3 ranks last.
  for (let n = 1; ranking(`${origin.url}/${name}`, [0, 1, 2])[2] !== 2; n++) name = `n${n}.bin`;
  origin.put(name, body, 'no-store');
  const got = await get(2, name);
  assert.equal(got.status, 200);
  assert.ok(got.body.equals(body));
  const [owner] = ranking(`${origin.url}/${name}`, [0, 1, 2]);
  assert.deepEqual(
    origin.fetches(name).map(({ client }) => client),
    [ADDRESS(owner!), ADDRESS(2)],
    "the owner's fill found nothing to store; the second in the ranking was not asked",
  );
});

test('a client that leaves mid-response neither stalls nor ends the fill: the next request is served from the cache', async () => {
  const body = randomBytes(16 * 1024 * 1024 + 1);
  let name = 'l0.bin';
  for (let n = 1; ranking(`${origin.url}/${name}`, [0, 1, 2])[0] !== 0; n++) name = `l${n}.bin`;
  origin.put(name, body);
  const gate = origin.hold(name, 1024 * 1024);
  const controller = new AbortController();
  const response = await fetch(`http://127.0.0.1:${gatewayPorts[0]}/o/${name}`, {
    signal: controller.signal,
  });
  const reader = response.body!.getReader();
  await reader.read();
  controller.abort();
  gate.release();
  const again = await get(0, name);
  assert.equal(again.status, 200);
  assert.ok(again.body.equals(body), 'the next client got the exact bytes');
  assert.equal(
    origin.fetches(name).length,
    1,
    'the fill went on without its client, so the next one was served from the cache',
  );
});

test("a member's private copy reaches no client without valid credentials; a valid one gets it from the pod after a 304", async () => {
  const body = randomBytes(512 * 1024 + 9);
  origin.put('p.bin', body, 'max-age=3600', 'Bearer right');
  const first = await get(0, 'p.bin', { authorization: 'Bearer right' });
  assert.equal(first.status, 200);
  assert.ok(first.body.equals(body));
  for (const authorization of ['Bearer wrong', undefined]) {
    const denied = await get(1, 'p.bin', authorization === undefined ? {} : { authorization });
    assert.equal(denied.status, 401, `${authorization ?? 'no credentials'}: the origin's answer`);
    assert.equal(denied.body.length, 0, 'no byte of the private object');
  }
  const since = origin.log.length;
  const allowed = await get(2, 'p.bin', { authorization: 'Bearer right' });
  assert.equal(allowed.status, 200);
  assert.ok(allowed.body.equals(body));
  assert.deepEqual(
    origin.log.slice(since).map(({ client, status, bytes }) => ({ client, status, bytes })),
    [{ client: ADDRESS(2), status: 304, bytes: 0 }],
    "the valid client's request was revalidated (a bodyless 304), the bytes came from the pod",
  );
});

test("with the key's owner gone, the next in the ranking fills it", async () => {
  const body = randomBytes(1024 * 1024 + 3);
  origin.put('d.bin', body);
  const [owner, next, last] = ranking(`${origin.url}/d.bin`, [0, 1, 2]) as [number, number, number];
  const gone = pod.daemons[owner]!.child;
  gone.kill('SIGTERM');
  await once(gone, 'exit');
  // Until the one left sees only the other (the owner's link closed).
  await waitFor(
    async () =>
      (await getPeers(pod.daemons[last]!.api)).peers.filter((p) => p.state === 'connected')
        .length === 1,
    15_000,
    'the owner to be gone',
  );
  const got = await get(last, 'd.bin');
  assert.equal(got.status, 200);
  assert.ok(got.body.equals(body));
  assert.deepEqual(
    origin.fetches('d.bin').map(({ client, status }) => ({ client, status })),
    [{ client: ADDRESS(next), status: 200 }],
    'the second in the ranking fetched it, once',
  );
});

test('an owner killed mid-fill: the member resumes from the origin where it was cut, pinned by If-Range', async () => {
  const alive = [0, 1, 2].filter(
    (i) => pod.daemons[i]!.child.exitCode === null && pod.daemons[i]!.child.signalCode === null,
  );
  assert.equal(alive.length, 2);
  const body = randomBytes(20 * 1024 * 1024 + 11);
  const [requester] = alive.slice(1);
  let name = 'e0.bin';
  for (let n = 1; ranking(`${origin.url}/${name}`, alive)[0] !== alive[0]; n++) name = `e${n}.bin`;
  const owner = alive[0]!;
  origin.put(name, body);
  // The owner's fill stops halfway through its sixth segment: five are whole.
  const whole = 5 * SEGMENT_CHUNKS * OBJECT_CHUNK_BYTES;
  const gate = origin.hold(name, whole + (SEGMENT_CHUNKS * OBJECT_CHUNK_BYTES) / 2);
  const response = await fetch(`http://127.0.0.1:${gatewayPorts[requester!]}/o/${name}`);
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const parts: Buffer[] = [];
  let received = 0;
  while (received < whole) {
    const { value, done } = await reader.read();
    assert.equal(done, false, 'the stream ended before the whole segments');
    parts.push(Buffer.from(value));
    received += value.length;
  }
  const killed = pod.daemons[owner]!.child;
  killed.kill('SIGKILL');
  await once(killed, 'exit');
  gate.release();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(Buffer.from(value));
  }
  assert.ok(Buffer.concat(parts).equals(body), "the member's client got the object's exact bytes");
  assert.deepEqual(
    origin.fetches(name).map(({ client, status, bytes }) => ({ client, status, bytes })),
    [
      { client: ADDRESS(owner), status: 200, bytes: body.length },
      { client: ADDRESS(requester!), status: 206, bytes: body.length - whole },
    ],
    "the owner's fill (cut), then the member's range request for the rest, after the whole segments",
  );
});
