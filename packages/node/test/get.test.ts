/**
 * `peapod get` and the daemon's proxy end to end: real `peapod daemon` processes (PodFixture),
 * `peapod get`, curl and wget as real processes, and the real dev origin (in this process, with
 * its fault switches) on loopback.
 *
 * What each test pins down:
 * - an origin that cannot be pooled (no Range support) still gives a byte-exact, verified file,
 *   single source, and the reason in one line on stderr and in the `--json` summary;
 * - an origin with no ETag or a weak ETag is pooled, pinned by Last-Modified, and says so;
 * - an object that changes during a pooled download is downloaded again, pooled, on its new
 *   version;
 * - `--sha256`: a right digest is listed as verified; a wrong one fails with exit status 1 and
 *   leaves no file and no part file behind;
 * - interrupting `peapod get` and re-running it resumes from the part file's checkpoint;
 * - the HTTP proxy: pooled and pass-through GETs are byte-identical to the origin's, with its
 *   header fields;
 * - `--max-download`: the measured rate is printed (never asserted tightly: the machines are
 *   shared), and must not be far above the limit.
 * The child processes run asynchronously (never spawnSync): the origin lives in this process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDevOrigin, type DevOrigin, type OriginFaults } from '../src/dev-origin.js';
import { waitFor } from '../src/local-pod.js';
import { TokenBucket } from '../src/rate-limit.js';
import { summaryOf } from './support/get-summary.js';
import { PodFixture } from './support/pod-fixture.js';

const MiB = 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Runs a command (curl, wget) asynchronously; resolves with its status and output. */
function run(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number; stdout: string; stderr: string }> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (part: Buffer) => (stdout += part.toString()));
  child.stderr.on('data', (part: Buffer) => (stderr += part.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

/** Fields that describe one hop or one connection, not the response (RFC 9110 7.6.1). */
const HOP_OR_CONNECTION_FIELDS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'date', // pass-through adds none; a pooled response keeps the origin's; the clocks differ
]);

/** A header block as `curl -D` writes it: lower-case field names, and `:status`. */
function headerFields(text: string): Map<string, string> {
  const [statusLine = '', ...lines] = text.trim().split('\r\n');
  const fields = new Map([[':status', statusLine.split(' ')[1] ?? '']]);
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    fields.set(name, fields.has(name) ? `${fields.get(name)!}, ${value}` : value);
  }
  return fields;
}

/**
 * Waits until every response the origin started has closed (answered in full, or cut off by a
 * client that went away); returns its total body bytes then.
 */
async function quiescent(origin: DevOrigin): Promise<number> {
  await origin.untilIdle();
  return originBytes(origin);
}

/** Total body bytes the origin sent, over every client address. */
function originBytes(origin: DevOrigin): number {
  let total = 0;
  for (const stats of origin.clients().values()) total += stats.bodyBytes;
  return total;
}

describe('peapod get through a pod of 3 daemons', () => {
  let pod: PodFixture;
  const origins: DevOrigin[] = [];

  /** A dev origin with one synthesized object `object.bin`; closed after the suite. */
  async function origin(
    sizeBytes: number,
    options: { rateBytesPerSec?: number; faults?: OriginFaults; seed?: number } = {},
  ): Promise<DevOrigin> {
    const started = await startDevOrigin({
      rateBytesPerSec: options.rateBytesPerSec,
      objects: [{ name: 'object.bin', sizeBytes, seed: options.seed ?? sizeBytes }],
      ...(options.faults === undefined ? {} : { faults: options.faults }),
    });
    origins.push(started);
    return started;
  }

  before(async () => {
    pod = await PodFixture.start({ daemons: 3 });
    await pod.connected(0, 2);
  });
  after(async () => {
    await pod?.stop();
    for (const started of origins) await started.close();
  });

  const unpoolable: Array<{ name: string; faults: OriginFaults; reason: RegExp }> = [
    {
      name: 'no Range support',
      faults: { ranges: false },
      reason: /not pooled: the origin does not support byte ranges/,
    },
  ];
  for (const { name, faults, reason } of unpoolable) {
    test(`${name}: a single-source download, byte-exact, that says why in one line`, async () => {
      const served = await origin(3 * MiB, { faults });
      const url = `${served.url}/object.bin`;
      const json = join(pod.root, `unpoolable-${faults.ranges ?? faults.etag}.json.bin`);
      const result = await pod.get(0, [url, '-o', json, '--json']);
      assert.equal(result.status, 0, result.stderr + result.stdout.toString());
      const summary = summaryOf(result);
      assert.equal(summary.ok, true);
      assert.equal(summary.pooled, false);
      assert.match(summary.note, reason);
      assert.equal(summary.note.includes('\n'), false);
      assert.equal(summary.sha256, served.sha256('object.bin'));
      assert.equal(await sha256File(json), served.sha256('object.bin'));
      // The origin states Repr-Digest even here: the download is verified end to end.
      assert.ok(summary.verified.some((source) => source.includes('Repr-Digest')));

      const plain = join(pod.root, `unpoolable-${faults.ranges ?? faults.etag}.bin`);
      const human = await pod.get(0, [url, '-o', plain, '-q']);
      assert.equal(human.status, 0, human.stderr);
      const lines = human.stderr.split('\n').filter((line) => /not pooled/.test(line));
      assert.equal(lines.length, 1, human.stderr);
      assert.match(lines[0]!, /^peapod: not pooled: /);
      assert.match(lines[0]!, reason);
      assert.match(human.stderr, /single source/);
      assert.equal(await sha256File(plain), served.sha256('object.bin'));
    });
  }

  // Pinned by Last-Modified (DESIGN.md decision 6): pooled, with the level reported.
  for (const etag of ['none', 'weak'] as const) {
    test(`${etag === 'none' ? 'no ETag' : 'a weak ETag'}: pooled, pinned by Last-Modified`, async () => {
      const served = await origin(12 * MiB, { faults: { etag }, rateBytesPerSec: 8e6 });
      const output = join(pod.root, `pinned-${etag}.bin`);
      const result = await pod.get(0, [`${served.url}/object.bin`, '-o', output, '--json']);
      assert.equal(result.status, 0, result.stderr + result.stdout.toString());
      const summary = summaryOf(result);
      assert.equal(summary.pooled, true, summary.note);
      assert.equal(summary.pinning.level, 'last-modified');
      assert.match(summary.pinning.guarantee, /Repr-Digest, the strongest guarantee/);
      assert.equal(await sha256File(output), served.sha256('object.bin'));
      assert.ok(
        Object.keys(summary.bySource).some((name) => name !== 'self'),
        JSON.stringify(summary.bySource),
      );
    });
  }

  test('the object changes mid-way through a pooled download', async () => {
    const size = 16 * MiB;
    const served = await origin(size, {
      rateBytesPerSec: 8e6,
      faults: { changeAfterBytes: 6 * MiB },
    });
    const oldSha256 = served.sha256('object.bin');
    const output = join(pod.root, 'changed.bin');
    const result = await pod.get(0, [`${served.url}/object.bin`, '-o', output, '--json']);
    const newSha256 = served.sha256('object.bin');
    assert.notEqual(newSha256, oldSha256, 'the origin did not change the object');
    assert.equal(result.status, 0, result.stderr + result.stdout.toString());
    const summary = summaryOf(result);
    // Re-probed and downloaded again pooled, pinned to the new version (it changes once).
    assert.equal(summary.pooled, true, summary.note);
    assert.match(
      summary.note,
      // This device or a helper may be the first to see the change.
      /^the object changed during the pooled download \((the origin object changed|a helper saw the origin object change): .*\); downloading its new version pooled, pinned by strong-etag$/,
    );
    assert.equal(summary.sha256, newSha256);
    assert.equal(await sha256File(output), newSha256);
    assert.equal((await stat(output)).size, size);
    // The new version is checked against what its own response states, not the old digest.
    assert.ok(
      summary.verified.some((source) => source.includes('Repr-Digest')),
      summary.note,
    );
  });

  test('--sha256: a right digest is verified; a wrong one fails at once and leaves no file', async () => {
    const served = await origin(4 * MiB);
    const url = `${served.url}/object.bin`;
    const right = served.sha256('object.bin');
    const good = join(pod.root, 'sha-good.bin');
    const ok = await pod.get(0, [url, '-o', good, '--sha256', right.toUpperCase(), '--json']);
    assert.equal(ok.status, 0, ok.stderr + ok.stdout.toString());
    const summary = summaryOf(ok);
    assert.ok(
      summary.verified.some((source) => source.includes('--sha256')),
      summary.verified.join(),
    );
    assert.equal(await sha256File(good), right);

    const servedBefore = await quiescent(served);
    const wrong = `${right.slice(0, 63)}${right[63] === '0' ? '1' : '0'}`;
    const bad = join(pod.root, 'sha-bad.bin');
    const failed = await pod.get(0, [url, '-o', bad, '--sha256', wrong, '-q']);
    assert.equal(failed.status, 1, failed.stderr);
    // The origin states a Repr-Digest: the wrong --sha256 fails before any byte is fetched,
    // naming both digests and where the origin's came from.
    assert.match(
      failed.stderr,
      new RegExp(
        `--sha256 ${wrong} disagrees with the sha-256 the origin states in Repr-Digest \\(${right}\\)`,
      ),
    );
    assert.ok(originBytes(served) - servedBefore <= 1, 'only the probe (one byte) was served');
    assert.equal(await exists(bad), false, 'the output file exists');
    assert.equal(await exists(`${bad}.peapod-part`), false, 'the part file was kept');
    assert.equal(await exists(`${bad}.peapod-part.json`), false, 'the sidecar was kept');
  });

  test('interrupted and re-run, a download resumes from its checkpoint', async () => {
    const size = 32 * MiB;
    const served = await origin(size, { rateBytesPerSec: 4e6 });
    const url = `${served.url}/object.bin`;
    const output = join(pod.root, 'resumed.bin');
    const first = pod.startGet(0, [url, '-o', output]);
    await waitFor(
      async () =>
        (await exists(`${output}.peapod-part.json`)) &&
        (await stat(`${output}.peapod-part`)).size >= 16 * MiB,
      30_000,
      'the first checkpoint (16 MiB)',
    );
    first.child.kill('SIGINT');
    const interrupted = await first.done;
    assert.notEqual(interrupted.status, 0);
    const sidecar = JSON.parse(await readFile(`${output}.peapod-part.json`, 'utf8')) as {
      verifiedBytes: number;
    };
    assert.ok(sidecar.verifiedBytes >= 16 * MiB, JSON.stringify(sidecar));
    const servedAtKill = originBytes(served);
    const servedFirst = await quiescent(served);
    console.log(
      `resume: ${((servedFirst - servedAtKill) / MiB).toFixed(1)} MiB more after the kill`,
    );

    const second = await pod.get(0, [url, '-o', output, '-q']);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /^peapod: resuming at \d+\.\d MiB$/m);
    assert.equal(await sha256File(output), served.sha256('object.bin'));
    assert.equal(await exists(`${output}.peapod-part`), false);
    assert.equal(await exists(`${output}.peapod-part.json`), false);
    const servedTotal = originBytes(served);
    console.log(
      `resume: first run ${(servedFirst / MiB).toFixed(1)} MiB from the origin, ` +
        `second ${((servedTotal - servedFirst) / MiB).toFixed(1)} MiB, object ${size / MiB} MiB`,
    );
    assert.ok(servedTotal < 2 * size, `the origin served ${servedTotal} bytes for ${size}`);
    assert.ok(servedTotal - servedFirst < size, 'the second run fetched the whole object');
  });

  test('interrupting a single-source download stops it and keeps its part file', async () => {
    const size = 16 * MiB;
    const served = await origin(size, { rateBytesPerSec: 4e6, faults: { ranges: false } });
    const output = join(pod.root, 'interrupted.bin');
    const run = pod.startGet(1, [`${served.url}/object.bin`, '-o', output, '-q']);
    await waitFor(
      async () => ((await stat(`${output}.peapod-part`).catch(() => undefined))?.size ?? 0) > MiB,
      20_000,
      'the download to pass 1 MiB',
    );
    run.child.kill('SIGKILL');
    await run.done;
    const sent = await quiescent(served);
    assert.ok(sent < size / 2, `the origin went on sending: ${sent} of ${size} bytes`);
    assert.equal(await exists(output), false, 'the daemon finished the download anyway');
    assert.ok(await exists(`${output}.peapod-part`), 'the part file is gone');
  });

  test('the proxy: pooled and pass-through GETs are byte-identical to the origin', async () => {
    const served = await origin(16 * MiB, { rateBytesPerSec: 20e6 });
    await served.addObject({ name: 'small.bin', sizeBytes: 256 * 1024, seed: 5 });
    const daemon = pod.daemons[1]!;
    const direct = { ...process.env, http_proxy: '', HTTP_PROXY: '' };
    const proxied = {
      ...process.env,
      http_proxy: `http://127.0.0.1:${daemon.api.port}`,
      no_proxy: '',
      NO_PROXY: '',
    };
    // 16 MiB is the daemon's pooling threshold (PROXY_POOL_MIN_BYTES); 256 KiB passes through.
    for (const name of ['object.bin', 'small.bin']) {
      const url = `${served.url}/${name}`;
      const fields = async (env: NodeJS.ProcessEnv, label: string) => {
        const body = join(pod.root, `proxy-${label}-${name}`);
        const curl = await run('curl', ['-sS', '-D', `${body}.head`, '-o', body, url], env);
        assert.equal(curl.status, 0, curl.stderr);
        assert.equal(await sha256File(body), served.sha256(name), `${label} ${name}`);
        return headerFields(await readFile(`${body}.head`, 'utf8'));
      };
      const origin = await fields(direct, 'direct');
      const through = await fields(proxied, 'proxied');
      assert.equal(through.get(':status'), '200');
      assert.match(through.get('etag') ?? '', /^"[0-9a-f]+"$/);
      assert.equal(through.get('content-type'), 'application/octet-stream');
      const sha256 = Buffer.from(served.sha256(name), 'hex').toString('base64');
      assert.equal(through.get('repr-digest'), `sha-256=:${sha256}:`);
      // Every end-to-end field of the origin's response, with its value.
      const differing = [...origin]
        .filter(([field]) => !HOP_OR_CONNECTION_FIELDS.has(field))
        .filter(([field, value]) => through.get(field) !== value)
        .map(([field]) => field);
      if (name === 'object.bin') {
        // The pooled response carries the Content-Digest of a full 200.
        assert.equal(through.get('content-digest'), through.get('repr-digest'));
        // The one field the proxy adds: which pinning held the pooled ranges to one version.
        assert.equal(through.get('x-peapod-pinning'), 'strong-etag');
        // Content-Digest is checked above, against Repr-Digest.
        assert.deepEqual(
          differing.filter((field) => field !== 'content-digest'),
          [],
          `pooled: ${differing.join()}`,
        );
      } else {
        assert.deepEqual(differing, [], `pass-through: ${differing.join()}`);
        assert.equal(through.get('x-peapod-pinning'), undefined);
      }

      const wgetBody = join(pod.root, `proxy-wget-${name}`);
      const wget = await run('wget', ['-q', '-O', wgetBody, url], proxied);
      assert.equal(wget.status, 0, wget.stderr);
      assert.equal(await sha256File(wgetBody), served.sha256(name));
    }
    const pooledLines = daemon
      .log()
      .split('\n')
      .filter((line) => line.includes('proxy: pooled GET'));
    assert.equal(pooledLines.length, 2, 'curl and wget of object.bin are pooled, small.bin not');
    assert.ok(pooledLines.every((line) => line.includes('object.bin')));
    // The log says which pinning held, and what it guarantees.
    assert.ok(
      pooledLines.every((line) => line.includes('strong-etag') && line.includes('If-Match')),
    );
  });

  test('--max-download: a single-source download keeps to the limit', async () => {
    const limitBytesPerSec = 2e6;
    const limited = await pod.add(['--max-download', '2MB']);
    const size = 12 * MiB;
    const served = await origin(size);
    const output = join(pod.root, 'limited.bin');
    const result = await pod.get(limited.index, [
      `${served.url}/object.bin`,
      '-o',
      output,
      '--no-pool',
      '--json',
    ]);
    assert.equal(result.status, 0, result.stderr + result.stdout.toString());
    const summary = summaryOf(result);
    assert.equal(summary.pooled, false);
    assert.equal(await sha256File(output), served.sha256('object.bin'));
    // The token bucket's guarantee (rate-limit.ts): over any interval, at most rate x interval
    // + burst bytes, plus the one read that drove the balance negative (at most 1 MiB here).
    // A busy machine only makes the download slower, so this lower bound cannot flake; the
    // figure against the limit is measured by bench/rate-limits.ts.
    const burstBytes = new TokenBucket(limitBytesPerSec).burstBytes;
    const fastestSeconds = (size - burstBytes - MiB) / limitBytesPerSec;
    assert.ok(
      summary.seconds >= fastestSeconds,
      `${size} bytes in ${summary.seconds} s: faster than the limit allows (${fastestSeconds} s)`,
    );
  });
});
