/**
 * Stalls end, and bodies without a length download as curl would (issue 9 item 3), against
 * real raw servers on loopback and a real `peapod daemon` process run with `--stall-timeout 2`:
 * - an origin that sends its head and some bytes, then nothing: the single-source download,
 *   the pooled download (its own ranges) and a probe that never finishes its head each fail
 *   with one sentence naming the origin, the socket is closed (the server sees it), and the
 *   part file is kept;
 * - a 200 without Content-Length, close-delimited or chunked, is downloaded whole (SHA-256 of
 *   what the server sent), never pooled, with a note saying why, and `--json` reports the size;
 * - a chunked body cut off before its last chunk is an error, not a short file;
 * - the proxy streams a lengthless response: the client reads the first part while the origin
 *   still holds the rest back, waiting for the client's signal (an event, not a sleep); curl and
 *   wget through the proxy get the whole body.
 * The tests wait for the failure events; 2 s is only how long the daemon waits.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../src/local-pod.js';
import { PodFixture, type GetResult } from './support/pod-fixture.js';
import { rawServer } from './support/http.js';

const KiB = 1024;
/**
 * Each test waits for events; this only turns a regression (a download that hangs, a proxy
 * that buffers and so deadlocks with the streaming test's origin) into a failure, not a hang.
 */
const GUARD_MS = 60_000;

interface Summary {
  readonly ok: boolean;
  readonly error?: string;
  readonly pooled: boolean;
  readonly sha256: string;
  readonly totalBytes: number;
  readonly note: string;
  readonly bySource?: Readonly<Record<string, number>>;
}

function summaryOf(result: GetResult): Summary {
  const text = result.stdout.toString();
  try {
    return JSON.parse(text) as Summary;
  } catch {
    assert.fail(`no JSON summary (status ${result.status}): ${text}\n${result.stderr}`);
  }
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/**
 * A TCP server that writes exactly what `serve` writes to each connection (after reading the
 * request head); `sockets` lists every connection, to see that the client closed them.
 */
async function tcpOrigin(serve: (socket: Socket, head: string) => void): Promise<{
  url: string;
  port: number;
  sockets: Socket[];
  close(): Promise<void>;
}> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let head = '';
    const onData = (part: Buffer) => {
      head += part.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      serve(socket, head);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Resolves once `socket` is closed by its peer (or destroyed). */
function closed(socket: Socket): Promise<void> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.once('end', () => resolve());
  });
}

function chunked(body: Uint8Array, parts: number): Buffer {
  const out: Buffer[] = [];
  const step = Math.ceil(body.length / parts);
  for (let offset = 0; offset < body.length; offset += step) {
    const part = body.subarray(offset, offset + step);
    out.push(
      Buffer.from(`${part.length.toString(16)}\r\n`),
      Buffer.from(part),
      Buffer.from('\r\n'),
    );
  }
  return Buffer.concat(out);
}

/**
 * A range origin with a strong ETag: every request gets the 206 head of the range it asks for
 * (the whole object without Range), then `body` writes what it likes of [first, last].
 */
function rangeOrigin(size: number, body: (socket: Socket, first: number, last: number) => void) {
  return tcpOrigin((socket, head) => {
    const range = /\r\nrange: bytes=(\d+)-(\d+)/i.exec(head);
    const first = Number(range?.[1] ?? 0);
    const last = Number(range?.[2] ?? size - 1);
    socket.write(
      'HTTP/1.1 206 Partial Content\r\nETag: "v1"\r\n' +
        `Content-Range: bytes ${first}-${last}/${size}\r\n` +
        `Content-Length: ${last - first + 1}\r\n\r\n`,
    );
    body(socket, first, last);
  });
}

/** An origin that answers every request with `body` and no length, in `framing`. */
function lengthlessOrigin(framing: 'close-delimited' | 'chunked', body: Uint8Array) {
  return tcpOrigin((socket) => {
    if (framing === 'chunked') {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      socket.end(Buffer.concat([chunked(body, 7), Buffer.from('0\r\n\r\n')]));
    } else {
      socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
      socket.end(body);
    }
  });
}

function run(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number; stderr: string }> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (part: Buffer) => (stderr += part.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? -1, stderr }));
  });
}

describe('stalls and lengthless bodies, one daemon with --stall-timeout 2', () => {
  let pod: PodFixture;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    pod = await PodFixture.start({ daemons: 1, flags: { 0: ['--stall-timeout', '2'] } });
  });
  after(async () => {
    await pod?.stop();
    for (const close of closers) await close();
  });

  test(
    'single source: an origin that trickles then stalls fails, naming it; socket closed',
    { timeout: GUARD_MS },
    async () => {
      const size = 1024 * KiB;
      const origin = await tcpOrigin((socket) => {
        // No Range support, no validator: a single-source download. 64 KiB, then nothing.
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
        socket.write(randomBytes(64 * KiB));
      });
      closers.push(origin.close);
      const output = join(pod.root, 'trickle-single.bin');
      const result = await pod.get(0, [`${origin.url}/x`, '-o', output, '--json']);
      assert.equal(result.status, 1, result.stderr);
      const summary = summaryOf(result);
      assert.equal(summary.ok, false);
      assert.match(
        summary.error ?? '',
        new RegExp(
          `the origin \\(127\\.0\\.0\\.1:${origin.port}\\) sent no byte for 2 s after 65536 of ${size} bytes`,
        ),
      );
      assert.ok(await exists(`${output}.peapod-part`), 'the part file is kept');
      assert.equal(await exists(output), false);
      // Every connection the daemon opened (probe, download) was closed by it.
      await Promise.all(origin.sockets.map(closed));
    },
  );

  test(
    'pooled: an origin whose ranges trickle then stall fails with "stalled", naming it',
    { timeout: GUARD_MS },
    async () => {
      const size = 8 * 1024 * KiB;
      const origin = await rangeOrigin(size, (socket, first, last) => {
        // The probe's one byte comes whole; every real range gets 1000 bytes, then nothing.
        socket.write(Buffer.alloc(Math.min(1000, last - first + 1), 7));
      });
      closers.push(origin.close);
      const output = join(pod.root, 'trickle-pooled.bin');
      const result = await pod.get(0, [`${origin.url}/x`, '-o', output, '--json']);
      assert.equal(result.status, 1, result.stderr);
      const summary = summaryOf(result);
      assert.match(
        summary.error ?? '',
        new RegExp(
          `^the download made no progress for 2 s: the origin \\(127\\.0\\.0\\.1:${origin.port}\\) stopped sending bytes 0-`,
        ),
      );
      assert.ok(await exists(`${output}.peapod-part`), 'the part file is kept');
      await Promise.all(origin.sockets.map(closed));
    },
  );

  test(
    'a probe whose answer never completes fails within the stall timeout, naming the origin',
    { timeout: GUARD_MS },
    async () => {
      const origin = await tcpOrigin((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Ty'));
      closers.push(origin.close);
      const result = await pod.get(0, [`${origin.url}/x`, '-o', join(pod.root, 'p.bin')]);
      assert.equal(result.status, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `the origin \\(127\\.0\\.0\\.1:${origin.port}\\) sent no complete answer within 2 s`,
        ),
      );
      await Promise.all(origin.sockets.map(closed));
    },
  );

  const body = randomBytes(3 * 1024 * KiB + 17);
  for (const framing of ['close-delimited', 'chunked'] as const) {
    test(
      `a ${framing} body without a length is downloaded whole, never pooled`,
      { timeout: GUARD_MS },
      async () => {
        const origin = await lengthlessOrigin(framing, body);
        closers.push(origin.close);
        const output = join(pod.root, `lengthless-${framing}.bin`);
        const result = await pod.get(0, [`${origin.url}/x`, '-o', output, '--json']);
        assert.equal(result.status, 0, result.stderr + result.stdout.toString());
        const summary = summaryOf(result);
        assert.equal(summary.ok, true);
        assert.equal(summary.pooled, false);
        assert.match(summary.note, /without a length/);
        assert.equal(summary.totalBytes, body.length);
        assert.equal(summary.sha256, sha256(body));
        assert.equal(sha256(await readFile(output)), sha256(body));
      },
    );
  }

  test(
    'a chunked body cut off before its last chunk is an error, not a short file',
    { timeout: GUARD_MS },
    async () => {
      const origin = await tcpOrigin((socket) => {
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        socket.end(chunked(body.subarray(0, 512 * KiB), 4)); // no terminating chunk
      });
      closers.push(origin.close);
      const output = join(pod.root, 'cut-chunked.bin');
      const result = await pod.get(0, [`${origin.url}/x`, '-o', output, '--json']);
      assert.equal(result.status, 1, result.stderr);
      assert.match(
        summaryOf(result).error ?? '',
        /closed the connection after \d+ bytes, before the end of the body/,
      );
      assert.equal(await exists(output), false, 'no file claims to be the object');
    },
  );

  test(
    'the proxy streams a lengthless body: the client reads it before the origin sent the rest',
    { timeout: GUARD_MS },
    async () => {
      let clientGotFirstPart!: () => void;
      const firstPartRead = new Promise<void>((resolve) => (clientGotFirstPart = resolve));
      const first = randomBytes(200 * KiB);
      const rest = randomBytes(300 * KiB);
      const origin = await rawServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked, no length
        res.write(first);
        void firstPartRead.then(() => res.end(rest));
      });
      closers.push(origin.close);
      const api = pod.daemons[0]!.api;
      const response = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: api.port, path: `${origin.url}/stream` });
        req.once('response', resolve);
        req.once('error', reject);
        req.end();
      });
      assert.equal(response.statusCode, 200);
      const parts: Buffer[] = [];
      let received = 0;
      for await (const part of response) {
        parts.push(part as Buffer);
        received += (part as Buffer).length;
        // Until this, the origin holds `rest` back: the proxy cannot have buffered the body.
        if (received >= first.length) clientGotFirstPart();
      }
      assert.equal(sha256(Buffer.concat(parts)), sha256(Buffer.concat([first, rest])));
    },
  );

  test(
    'curl and wget through the proxy get a lengthless body whole',
    { timeout: GUARD_MS },
    async () => {
      for (const framing of ['close-delimited', 'chunked'] as const) {
        const origin = await lengthlessOrigin(framing, body);
        closers.push(origin.close);
        const env = {
          ...process.env,
          http_proxy: `http://127.0.0.1:${pod.daemons[0]!.api.port}`,
          no_proxy: '',
          NO_PROXY: '',
        };
        const viaCurl = join(pod.root, `proxy-curl-${framing}.bin`);
        const curl = await run('curl', ['-sS', '-o', viaCurl, `${origin.url}/x`], env);
        assert.equal(curl.status, 0, curl.stderr);
        assert.equal(sha256(await readFile(viaCurl)), sha256(body), `curl, ${framing}`);
        const viaWget = join(pod.root, `proxy-wget-${framing}.bin`);
        const wget = await run('wget', ['-q', '-O', viaWget, `${origin.url}/x`], env);
        assert.equal(wget.status, 0, wget.stderr);
        assert.equal(sha256(await readFile(viaWget)), sha256(body), `wget, ${framing}`);
      }
    },
  );

  test(
    'cancelling a download from an origin that stalls closes its socket at once',
    { timeout: GUARD_MS },
    async () => {
      // A second daemon whose stall timeout (10 min) cannot be what closes the socket. Last in
      // this suite: it joins the pod, and the tests above expect a daemon without peers.
      const patient = await pod.add(['--stall-timeout', '600']);
      const origin = await tcpOrigin((socket) => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${1024 * KiB}\r\n\r\n`);
        socket.write(randomBytes(64 * KiB));
      });
      closers.push(origin.close);
      const output = join(pod.root, 'cancelled-stall.bin');
      const run = pod.startGet(patient.index, [`${origin.url}/x`, '-o', output, '-q']);
      await waitFor(
        async () => ((await stat(`${output}.peapod-part`).catch(() => undefined))?.size ?? 0) > 0,
        10_000,
        'the first bytes to be written',
      );
      run.child.kill('SIGKILL'); // the CLI goes away: the daemon cancels the job
      await run.done;
      await Promise.all(origin.sockets.map(closed));
    },
  );
});

describe('a pooled download whose helper stalls, two daemons with --stall-timeout 30', () => {
  let pod: PodFixture;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    pod = await PodFixture.start({
      daemons: 2,
      flags: { 0: ['--stall-timeout', '30'], 1: ['--stall-timeout', '30'] },
    });
    await pod.connected(0, 1);
  });
  after(async () => {
    await pod?.stop();
    for (const close of closers) await close();
  });

  test(
    'the helper’s stalled range is taken over long before the stall timeout; the download completes',
    { timeout: GUARD_MS },
    async () => {
      const size = 16 * 1024 * KiB;
      const object = randomBytes(size);
      const stalledFor: string[] = [];
      const origin = await rangeOrigin(size, (socket, first, last) => {
        // The helper (daemon 2 fetches from 127.0.0.12) gets 1000 bytes of a range, then
        // nothing; the requester (127.0.0.11) gets what it asks for.
        if (socket.remoteAddress === '127.0.0.12') {
          stalledFor.push(`${first}-${last}`);
          socket.write(object.subarray(first, first + 1000));
        } else {
          socket.end(object.subarray(first, last + 1));
        }
      });
      closers.push(origin.close);
      const output = join(pod.root, 'helper-stalls.bin');
      const result = await pod.get(0, [`${origin.url}/x`, '-o', output, '--json']);
      assert.equal(result.status, 0, result.stderr + result.stdout.toString());
      const summary = summaryOf(result);
      assert.equal(summary.pooled, true);
      assert.equal(summary.sha256, sha256(object));
      assert.equal(sha256(await readFile(output)), sha256(object));
      assert.ok(stalledFor.length > 0, 'the helper was given a range, and stalled on it');
      // Every byte came from the requester's own fetches: nothing of the stalled helper's. (The
      // summary's counts are those of the last progress event, so only the keys are checked.)
      assert.deepEqual(Object.keys(summary.bySource ?? {}), ['self']);
    },
  );
});
