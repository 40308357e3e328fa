/**
 * The `peapod` command line as a curl or aria2 user meets it: real `peapod daemon` processes
 * (PodFixture), `peapod get` / `peers` / `daemon` as real processes, real origins on loopback
 * (the dev origin, a plain node:http server that records request headers, a node:https server
 * with a self-signed certificate from openssl), and a real pseudo-terminal (util-linux
 * `script`) where the terminal matters.
 *
 * What each test pins down:
 * - the progress line fits any width, never wraps, and keeps what matters first (fast-check);
 * - options anywhere on the line, `-H` repeated and before the URL;
 * - on a terminal the progress line redraws in place (`\r`, clear to end of line), fits the
 *   terminal's columns, and the final line is never glued to it;
 * - sources are named `name (SHORTID)` in the daemon's events and the `--json` summary;
 * - `-o -` with stderr not a terminal: the bytes on stdout, nothing at all on stderr;
 * - Ctrl-C: exit 130 and a sentence saying how to resume; the re-run resumes;
 * - errors are sentences: an origin's 404 as curl says it, a self-signed certificate with the
 *   `NODE_EXTRA_CA_CERTS` hint, no daemon with exit 3; never raw JSON or a stack trace;
 * - `peapod peers` shows the pod, this device, the members; `--json` has the same facts;
 * - daemon logs: readable lines with `--log-format pretty`, JSON lines off a TTY by default;
 * - `daemon --help` lists every setting's variable and config.json key; a malformed
 *   config.json stops the daemon with the file, line and column named.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { jsonProblem, SETTINGS } from '../src/data-dir.js';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { explainError } from '../src/error-text.js';
import { CLI_PATH, freeTcpPort, waitFor } from '../src/local-pod.js';
import { renderPeers } from '../src/commands/peers.js';
import { prettyLine } from '../src/log-format.js';
import { formatBytes } from '../src/rate-limit.js';
import { podId } from '../src/pod.js';
import { renderProgress, type ProgressSnapshot } from '../src/progress.js';
import { PodFixture } from './support/pod-fixture.js';
import { hasOpenssl, selfSignedCertificate } from './support/tls.js';

const MiB = 1024 * 1024;

/** Runs the CLI (asynchronously: origins may live in this process). */
function cli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (part: Buffer) => (stdout += part.toString()));
  child.stderr.on('data', (part: Buffer) => (stderr += part.toString()));
  return new Promise((resolve) =>
    child.once('close', (code) => resolve({ status: code ?? -1, stdout, stderr })),
  );
}

/**
 * Runs a shell command in a real pseudo-terminal (util-linux `script`), with `PEAPOD_HOME`;
 * resolves with its status and everything the terminal showed.
 */
function inTerminal(command: string, home: string): Promise<{ status: number; text: string }> {
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    env: { ...process.env, PEAPOD_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (part: Buffer) => (text += part.toString()));
  return new Promise((resolve) =>
    child.once('close', (code) => resolve({ status: code ?? -1, text })),
  );
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('the progress line (pure rendering)', () => {
  const snapshot = fc.record({
    verifiedBytes: fc.integer({ min: 0, max: 2 ** 40 }),
    totalBytes: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
    rateBytesPerSec: fc.option(fc.double({ min: 0, max: 1e10, noNaN: true }), { nil: undefined }),
    elapsedSec: fc.double({ min: 0, max: 1e6, noNaN: true }),
    bySource: fc.dictionary(
      fc.oneof(
        fc.constant('self'),
        fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }),
      ),
      fc.integer({ min: 0, max: 2 ** 40 }),
      { maxKeys: 12 },
    ),
    labels: fc.option(fc.dictionary(fc.string(), fc.string({ maxLength: 80 })), { nil: undefined }),
  });

  test('never wider than the terminal minus one column, one line, for any width', () => {
    fc.assert(
      fc.property(snapshot, fc.integer({ min: 0, max: 400 }), (s, columns) => {
        const line = renderProgress(s as ProgressSnapshot, columns);
        assert.ok([...line].length <= Math.max(1, columns - 1), `${columns}: ${line}`);
        assert.equal(/[\r\n]/.test(line), false);
      }),
    );
  });

  test('what matters first: percent and bytes, then rate, ETA, elapsed, sources, bar', () => {
    const s: ProgressSnapshot = {
      verifiedBytes: 64 * MiB,
      totalBytes: 256 * MiB,
      rateBytesPerSec: 16 * MiB,
      elapsedSec: 4,
      bySource: { self: 40 * MiB, ['ab'.repeat(32)]: 24 * MiB },
      labels: { self: 'laptop (MFQWCYL)', ['ab'.repeat(32)]: 'phone (VOVWXYZ)' },
    };
    const wide = renderProgress(s, 200);
    assert.match(
      wide,
      /^\[#+\.+\] 25\.0% 64\.0 MiB \/ 256\.0 MiB {2}16\.0 MiB\/s {2}ETA 0:12 {2}elapsed 0:04 {2}laptop \(MFQWCYL\) 63% · phone \(VOVWXYZ\) 38%$/,
    );
    // Narrower: the bar goes first, then the sources one by one, then elapsed, ETA, rate.
    assert.equal(
      renderProgress(s, 96),
      '25.0% 64.0 MiB / 256.0 MiB  16.0 MiB/s  ETA 0:12  elapsed 0:04  laptop (MFQWCYL) 63% · +1 more',
    );
    assert.equal(renderProgress(s, 50), '25.0% 64.0 MiB / 256.0 MiB  16.0 MiB/s  ETA 0:12');
    assert.equal(renderProgress(s, 30), '25.0% 64.0 MiB / 256.0 MiB');
    assert.equal(renderProgress(s, 12), '25.0% 64.0…');
  });

  test('a source the daemon did not name still shows as its short Device ID', () => {
    const line = renderProgress(
      {
        verifiedBytes: 1,
        totalBytes: undefined,
        rateBytesPerSec: undefined,
        elapsedSec: 0,
        bySource: { ['00'.repeat(32)]: 1 },
      },
      80,
    );
    assert.match(line, /\(AAAAAAA\) 100%$/);
  });
});

describe('sentences for people (pure)', () => {
  test('TLS and network codes get the next step; other messages stay as they are', () => {
    assert.match(
      explainError('127.0.0.1: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)'),
      /^127\.0\.0\.1: self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\)\. .*self-signed.*NODE_EXTRA_CA_CERTS=/,
    );
    assert.match(
      explainError('x: certificate has expired (CERT_HAS_EXPIRED)'),
      /has expired.*clock/,
    );
    assert.match(
      explainError(
        "Hostname/IP does not match certificate's altnames (ERR_TLS_CERT_ALTNAME_INVALID)",
      ),
      /another host name/,
    );
    assert.equal(
      explainError('the origin answered 404 Not Found for http://x/'),
      'the origin answered 404 Not Found for http://x/',
    );
  });

  test('peers: members by name and short ID; refused devices of another pod, when reported', () => {
    const base = {
      deviceId: 'MFQWCYL-BMFQWCB-YLBMFQW-CYLBMFZ-QWCYLBM-FQWCYLQ-BMFQWCY-LBMFQQE',
      deviceName: 'laptop',
      pod: 'DL4K-QD7M',
      peers: [],
    };
    // A daemon without the `refused` field (older, or none to report) still renders.
    assert.deepEqual(renderPeers(base), [
      'Pod:         DL4K-QD7M',
      `This device: laptop (MFQWCYL)  ${base.deviceId}`,
      '',
      'No pod members seen yet. Is `peapod daemon` running on the others, in this pod?',
    ]);
    const lines = renderPeers({
      ...base,
      refused: [
        {
          address: '192.0.2.7',
          reason: 'not in this pod',
          lastAt: '2026-12-01T20:00:00.000Z',
          count: 3,
        },
      ],
    });
    assert.match(
      lines.join('\n'),
      /\nRefused: 3 connection attempts from devices not in this pod .*peapod join CODE/,
    );
    assert.equal(lines.at(-1), '  192.0.2.7  3      2026-12-01T20:00:00.000Z  not in this pod');
  });

  test('a JSON syntax error is placed on a line and column of the text, for any text', () => {
    const jsonish = fc.string({ unit: fc.constantFrom(...'{}[]:,"\n 1a-tn\\'), maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(jsonish, fc.string({ maxLength: 40 })), (text) => {
        let message: string | undefined;
        try {
          JSON.parse(text);
        } catch (error) {
          message = (error as Error).message;
        }
        if (message === undefined) return;
        const where = /^line (\d+), column (\d+): ./.exec(jsonProblem(text, message));
        assert.ok(where !== null, `${JSON.stringify(text)}: ${jsonProblem(text, message)}`);
        const lines = text.split('\n');
        const line = Number(where[1]);
        assert.ok(line >= 1 && line <= lines.length);
        assert.ok(Number(where[2]) >= 1 && Number(where[2]) <= lines[line - 1]!.length + 1);
      }),
    );
  });

  test('a pino record as a line a person reads', () => {
    const line = prettyLine(
      JSON.stringify({
        level: 30,
        time: Date.UTC(2026, 0, 1, 12, 0, 0, 5),
        pid: 1,
        msg: 'peer connected',
        peer: 'laptop (MFQWCYL)',
        port: 9000,
      }),
    );
    assert.match(
      line,
      /^\d\d:\d\d:\d\d\.005 INFO  peer connected {2}peer="laptop \(MFQWCYL\)" port=9000\n$/,
    );
    assert.equal(prettyLine('not json'), 'not json\n');
  });
});

describe('peapod get, peers and daemon as processes', () => {
  let pod: PodFixture;
  let origin: DevOrigin;
  let slow: DevOrigin;
  const closers: Array<() => Promise<unknown>> = [];

  before(async () => {
    // device2 logs in the pretty format; device1 in the default (JSON: its stdout is a pipe).
    pod = await PodFixture.start({ daemons: 2, flags: { 1: ['--log-format', 'pretty'] } });
    await pod.connected(0, 1);
    origin = await startDevOrigin({
      objects: [{ name: 'object.bin', sizeBytes: 6 * MiB, seed: 7 }],
    });
    // Slow enough that the progress line is drawn a few times and Ctrl-C comes mid-way.
    slow = await startDevOrigin({
      rateBytesPerSec: 6e6,
      objects: [{ name: 'slow.bin', sizeBytes: 24 * MiB, seed: 8 }],
    });
  });
  after(async () => {
    await pod?.stop();
    await origin?.close();
    await slow?.close();
    for (const close of closers) await close();
  });

  test('options anywhere on the line; -H repeated, before the URL', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const body = Buffer.alloc(4096, 7);
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/plain.bin`;
    const output = join(pod.root, 'anywhere.bin');
    const result = await pod.get(0, [
      '-H',
      'X-One: 1',
      url,
      '-o',
      output,
      '-H',
      'X-Two: 2',
      '--json',
    ]);
    assert.equal(result.status, 0, result.stderr);
    const summary = JSON.parse(result.stdout.toString()) as { ok: boolean; output: string };
    assert.equal(summary.ok, true);
    assert.equal(summary.output, output);
    assert.deepEqual(await readFile(output), body);
    assert.ok(seen.length > 0);
    for (const headers of seen) {
      assert.equal(headers['x-one'], '1');
      assert.equal(headers['x-two'], '2');
    }
  });

  test('a bad option value is a usage error (exit 2) with a sentence', async () => {
    const result = await pod.get(0, [
      'http://127.0.0.1:9/x',
      '-H',
      'no colon',
      '-o',
      join(pod.root, 'x'),
    ]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /^peapod: bad --header "no colon": expected "Name: value"\n/);
    const unknown = await pod.get(0, ['http://127.0.0.1:9/x', '--bogus']);
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr, /^peapod: unknown option '--bogus'\n\(add --help to the command/);
    const ftp = await pod.get(0, ['ftp://example.com/x', '-o', join(pod.root, 'x')]);
    assert.equal(ftp.status, 2, ftp.stderr);
    assert.match(
      ftp.stderr,
      /^peapod: not an http\(s\) URL: "ftp:\/\/example\.com\/x"; give the whole URL/,
    );
  });

  test('pooled: the summary names each source `name (SHORTID)`', async () => {
    const output = join(pod.root, 'named.bin');
    const result = await pod.get(0, [`${origin.url}/object.bin`, '-o', output, '--json', '-q']);
    assert.equal(result.status, 0, result.stderr);
    const summary = JSON.parse(result.stdout.toString()) as {
      pooled: boolean;
      sha256: string;
      seconds: number;
      verified: string[];
      bySource: Record<string, number>;
      sourceNames: Record<string, string>;
    };
    // bench/pooled.ts reads these fields: they stay.
    for (const field of ['ok', 'seconds', 'sha256', 'pooled', 'verified', 'bySource'])
      assert.ok(field in summary, field);
    assert.equal(summary.sha256, origin.sha256('object.bin'));
    assert.deepEqual(Object.keys(summary.sourceNames).sort(), Object.keys(summary.bySource).sort());
    for (const [key, name] of Object.entries(summary.sourceNames)) {
      assert.match(
        name,
        key === 'self' ? /^device1 \([A-Z2-7]{7}\)$/ : /^device2 \([A-Z2-7]{7}\)$/,
      );
    }
  });

  test(
    'on a terminal: redrawn in place, as wide as the terminal, final line on its own',
    {
      skip: hasCommand('script')
        ? false
        : 'util-linux `script` (a pseudo-terminal) is not installed',
    },
    async () => {
      const output = join(pod.root, 'tty.bin');
      const command = `stty cols 64 rows 20; exec '${process.execPath}' '${CLI_PATH}' get '${slow.url}/slow.bin' -o '${output}' --no-pool`;
      const run = await inTerminal(command, pod.daemons[0]!.home);
      assert.equal(run.status, 0, run.text);
      const draws = run.text
        .split('\r')
        .filter((part) => part.endsWith('\x1b[K') && part.length > 3);
      assert.ok(
        draws.length >= 2,
        `progress drawn ${draws.length} times: ${JSON.stringify(run.text)}`,
      );
      for (const draw of draws) {
        const line = draw.slice(0, -3);
        assert.ok([...line].length <= 63, `wider than 63 columns: ${JSON.stringify(line)}`);
        assert.match(line, /^(\[[#.]+\] )?\d+\.\d% \d/);
      }
      assert.ok(
        draws.some((draw) => /elapsed \d+:\d\d/.test(draw)),
        JSON.stringify(draws),
      );
      // The final line comes after the line was cleared: `\r` + clear, then the message.
      assert.match(run.text, /\r\x1b\[Kpeapod: .*tty\.bin: 24\.0 MiB in /);
      assert.equal(await sha256(output), slow.sha256('slow.bin'));
    },
  );

  test(
    '-o - with stderr a terminal: the bytes on stdout, the notes on the terminal',
    {
      skip: hasCommand('script')
        ? false
        : 'util-linux `script` (a pseudo-terminal) is not installed',
    },
    async () => {
      const output = join(pod.root, 'stdout-tty.bin');
      const command = `exec '${process.execPath}' '${CLI_PATH}' get '${origin.url}/object.bin' -o - > '${output}'`;
      const run = await inTerminal(command, pod.daemons[0]!.home);
      assert.equal(run.status, 0, run.text);
      // The daemon states the size (x-peapod-total-bytes): the line has a percent and total.
      assert.match(run.text, /\r(\[[#.]+\] )?\d+\.\d% [\d.]+ (B|KiB|MiB) \/ 6\.0 MiB/);
      assert.match(run.text, /\r\x1b\[Kpeapod: -: 6\.0 MiB to stdout; sha256=[0-9a-f]{64}\r\n$/);
      assert.equal(await sha256(output), origin.sha256('object.bin'));
    },
  );

  test('-o - with stderr not a terminal: the bytes on stdout, nothing on stderr', async () => {
    const result = await pod.get(0, [`${origin.url}/object.bin`, '-o', '-']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.equal(
      createHash('sha256').update(result.stdout).digest('hex'),
      origin.sha256('object.bin'),
    );
  });

  test('-o - into a reader that leaves early: a sentence, exit 1', async () => {
    const run = pod.startGet(0, [`${slow.url}/slow.bin`, '-o', '-']);
    run.child.stdout!.once('data', () => run.child.stdout!.destroy());
    const result = await run.done;
    assert.equal(result.status, 1, result.stderr);
    assert.equal(
      result.stderr,
      'peapod: stdout was closed before the download ended (the reading program exited)\n',
    );
  });

  test('Ctrl-C: exit 130, a sentence on how to resume; the re-run resumes', async () => {
    const output = join(pod.root, 'interrupted.bin');
    const run = pod.startGet(0, [`${slow.url}/slow.bin`, '-o', output, '--no-pool']);
    // The part file's first checkpoint (its sidecar, output-file.ts) is where a re-run resumes.
    await waitFor(
      async () => (await stat(`${output}.peapod-part.json`).catch(() => undefined)) !== undefined,
      20_000,
      'the first checkpoint',
    );
    run.child.kill('SIGINT');
    const interrupted = await run.done;
    assert.equal(interrupted.status, 130, interrupted.stderr);
    const said =
      /(?:^|\n)peapod: interrupted at \d+\.\d MiB; re-run the same command to resume from (\d+\.\d MiB) \(the part file is kept\)\n$/.exec(
        interrupted.stderr,
      );
    assert.ok(said !== null, interrupted.stderr);
    const again = await pod.get(0, [`${slow.url}/slow.bin`, '-o', output, '--no-pool', '--json']);
    assert.equal(again.status, 0, again.stderr);
    const summary = JSON.parse(again.stdout.toString()) as { resumeOffset: number };
    assert.ok(summary.resumeOffset > 0, `resumed at ${summary.resumeOffset}`);
    assert.equal(formatBytes(summary.resumeOffset), said[1]);
    assert.equal(await sha256(output), slow.sha256('slow.bin'));
  });

  test("an origin's 404 reads as curl would say it: no JSON, no 'daemon refused'", async () => {
    const url = `${origin.url}/missing.bin`;
    const result = await pod.get(0, [url, '-o', join(pod.root, 'missing.bin')]);
    assert.equal(result.status, 1, result.stderr);
    assert.equal(result.stderr, `peapod: the origin answered 404 Not Found for ${url}\n`);
    const json = await pod.get(0, [url, '-o', join(pod.root, 'missing.bin'), '--json']);
    assert.equal(json.status, 1);
    assert.deepEqual(JSON.parse(json.stdout.toString()), {
      ok: false,
      url,
      error: `the origin answered 404 Not Found for ${url}`,
    });
  });

  test(
    'a self-signed origin certificate: the sentence says how to trust it',
    { skip: hasOpenssl() ? false : 'openssl is not installed' },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'peapod-cli-tls-'));
      closers.push(() => rm(dir, { recursive: true, force: true }));
      const server = createHttpsServer(await selfSignedCertificate(dir), (_req, res) =>
        res.end('never'),
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      closers.push(() => new Promise((resolve) => server.close(resolve)));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/x.bin`;
      const result = await pod.get(0, [url, '-o', join(pod.root, 'tls.bin')]);
      assert.equal(result.status, 1, result.stderr);
      assert.match(
        result.stderr,
        /^peapod: .*self-signed.*NODE_EXTRA_CA_CERTS=\/path\/to\/ca\.pem peapod daemon\.\n$/,
      );
    },
  );

  test('no daemon: exit 3 and how to start one', async () => {
    const home = await mkdtemp(join(tmpdir(), 'peapod-cli-nodaemon-'));
    closers.push(() => rm(home, { recursive: true, force: true }));
    const env = { PEAPOD_HOME: home, PEAPOD_API_PORT: String(await freeTcpPort()) };
    const get = await cli(['get', 'http://127.0.0.1:9/x', '-o', join(home, 'x')], env);
    assert.equal(get.status, 3, get.stderr);
    assert.match(
      get.stderr,
      /^peapod: no PeaPod daemon answers on 127\.0\.0\.1:\d+ \(ECONNREFUSED\)\. Start one with `peapod daemon`/,
    );
    const peers = await cli(['peers'], env);
    assert.equal(peers.status, 3, peers.stderr);
    assert.doesNotMatch(peers.stderr, /\n\s+at /); // no stack trace
  });

  test('peapod peers: the pod, this device, the members by name and short ID', async () => {
    const env = { PEAPOD_HOME: pod.daemons[0]!.home };
    const text = await cli(['peers'], env);
    assert.equal(text.status, 0, text.stderr);
    const pid = podId(pod.secret);
    assert.match(
      text.stdout,
      new RegExp(`^Pod: +${pid}\\nThis device: device1 \\(([A-Z2-7]{7})\\)  \\1-`),
    );
    assert.match(
      text.stdout,
      /\nMEMBER +STATE +ADDRESS +RTT\ndevice2 \([A-Z2-7]{7}\) +connected +127\.0\.0\.1:\d+ +(\d+\.\d ms|-)\n/,
    );
    const json = await cli(['peers', '--json'], env);
    const answer = JSON.parse(json.stdout) as {
      pod: string;
      deviceName: string;
      peers: Array<{ name: string; state: string }>;
    };
    assert.equal(answer.pod, pid);
    assert.equal(answer.deviceName, 'device1');
    assert.deepEqual(
      answer.peers.map((p) => [p.name, p.state]),
      [['device2', 'connected']],
    );
  });

  test('daemon logs: pretty lines on request, JSON lines by default off a terminal', () => {
    const pretty = pod.daemons[1]!.log()
      .split('\n')
      .filter((line) => line !== '');
    assert.ok(
      pretty.some((line) =>
        /^\d\d:\d\d:\d\d\.\d{3} INFO  daemon started {2}device="device2 \([A-Z2-7]{7}\)" deviceId=/.test(
          line,
        ),
      ),
      pretty.join('\n'),
    );
    assert.ok(
      pretty.every((line) => !line.startsWith('{')),
      pretty.join('\n'),
    );
    const json = pod.daemons[0]!.log()
      .split('\n')
      .filter((line) => line !== '');
    assert.ok(
      json.length > 0 &&
        json.every((line) => typeof (JSON.parse(line) as { msg: unknown }).msg === 'string'),
    );
    // One form of device name in logs too.
    assert.ok(
      json.some((line) => /"peer":"device2 \([A-Z2-7]{7}\)"/.test(line)),
      json.join('\n'),
    );
  });

  test('daemon --help lists every setting; a malformed config.json names file, line, column', async () => {
    const help = await cli(['daemon', '--help'], {});
    assert.equal(help.status, 0);
    for (const [key, setting] of Object.entries(SETTINGS)) {
      assert.match(help.stdout, new RegExp(`\\n  ${setting.env} +${key}\\n`));
    }
    assert.match(help.stdout, /PEAPOD_HOME/);
    const home = await mkdtemp(join(tmpdir(), 'peapod-cli-config-'));
    closers.push(() => rm(home, { recursive: true, force: true }));
    await cli(['init'], { PEAPOD_HOME: home });
    await writeFile(join(home, 'config.json'), '{\n  "deviceName": "laptop",\n}\n');
    const daemon = await cli(['daemon'], { PEAPOD_HOME: home });
    assert.equal(daemon.status, 1);
    assert.equal(
      daemon.stderr,
      `peapod: Invalid configuration: ${join(home, 'config.json')} is not valid JSON: line 3, ` +
        'column 1: Expected double-quoted property name. Fix it, or delete it to get the defaults back.\n',
    );
  });
});

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}
