/**
 * The gossip settings of `peapod daemon` (src/data-dir.ts, src/cli.ts, src/gossip-service.ts):
 * defaults (silent, no tracker: gossip off), the layers file < environment < flag for the list
 * settings, errors that name the culprit, HOST:PORT parsing (properties), and the CLI's own
 * checks (--broadcast and --silent exclude each other) and help.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseHostPort, resolveConfig } from '../src/data-dir.js';
import { gossipEnabled } from '../src/gossip-service.js';
import { CLI_PATH } from '../src/local-pod.js';

function cli(args: readonly string[], home: string) {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: { ...process.env, PEAPOD_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (part: Buffer) => (stdout += part.toString()));
  child.stderr.on('data', (part: Buffer) => (stderr += part.toString()));
  return new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ status: code ?? -1, stdout, stderr })),
  );
}

function settingsOf(config: ReturnType<typeof resolveConfig>['config']) {
  return {
    trackers: config.tracker,
    broadcast: config.broadcast,
    publicAddress: config.publicAddress,
    peers: config.peer.map((peer) => parseHostPort(peer)!),
  };
}

const invalid = (message: RegExp) => ({ code: 'PEAPOD_ERR_INVALID_ARGUMENT', message });

describe('gossip settings', () => {
  test('by default the daemon is silent, knows no tracker and no peer: gossip is off', () => {
    const { config } = resolveConfig();
    assert.deepEqual(
      [config.tracker, config.broadcast, config.publicAddress, config.peer],
      [[], false, undefined, []],
    );
    assert.equal(gossipEnabled(settingsOf(config)), false);
  });

  test('any of a tracker, a peer or broadcast turns gossip on', () => {
    for (const flags of [
      { tracker: ['http://127.0.0.1:7000'] },
      { peer: ['127.0.0.1:9000'] },
      { broadcast: 'true' },
    ]) {
      assert.equal(gossipEnabled(settingsOf(resolveConfig({ flags }).config)), true);
    }
  });

  test('lists come from a JSON string or array, a comma-separated variable, or repeated flags; later layers win', () => {
    const file = (text: string) => ({ path: '/c.json', text });
    assert.deepEqual(
      resolveConfig({
        file: file('{"tracker": "https://t.example.org/", "peer": ["[2001:db8::7]:9000"]}'),
      }).config.tracker,
      ['https://t.example.org'],
    );
    const { config, sources } = resolveConfig({
      file: file('{"tracker": ["http://a.example"], "peer": "a.example:1", "broadcast": true}'),
      env: { PEAPOD_TRACKER: 'http://b.example, http://c.example:8000', PEAPOD_BROADCAST: 'no' },
      flags: { peer: ['198.51.100.1:9000', '[2001:db8::1]:9001'], publicAddress: 'me.example' },
    });
    assert.deepEqual(config.tracker, ['http://b.example', 'http://c.example:8000']);
    assert.equal(config.broadcast, false);
    assert.equal(config.publicAddress, 'me.example');
    assert.deepEqual(settingsOf(config).peers, [
      { host: '198.51.100.1', port: 9000 },
      { host: '2001:db8::1', port: 9001 },
    ]);
    assert.deepEqual(
      [sources.tracker, sources.broadcast, sources.publicAddress, sources.peer],
      ['env', 'env', 'flag', 'flag'],
    );
  });

  test('bad values name the variable, flag or file and what was expected', () => {
    const cases: [Parameters<typeof resolveConfig>[0], RegExp][] = [
      [
        { env: { PEAPOD_TRACKER: 'ftp://t.example' } },
        /environment variable PEAPOD_TRACKER must be http\(s\) URLs of trackers/,
      ],
      [{ flags: { tracker: ['http://u:p@t.example'] } }, /flag --tracker must be .*no credentials/],
      [{ flags: { tracker: ['not a url'] } }, /flag --tracker must be http\(s\) URLs/],
      [{ flags: { peer: ['203.0.113.7'] } }, /flag --peer must be HOST:PORT of peers/],
      [{ flags: { peer: ['203.0.113.7:0'] } }, /flag --peer must be HOST:PORT/],
      [{ flags: { peer: ['[not-v6]:9000'] } }, /flag --peer must be HOST:PORT/],
      [
        { env: { PEAPOD_PUBLIC_ADDRESS: 'a b' } },
        /PEAPOD_PUBLIC_ADDRESS must be an IP address or a DNS name/,
      ],
      [
        { file: { path: '/c.json', text: '{"peer": [9000]}' } },
        /"peer" in \/c\.json must be HOST:PORT/,
      ],
      [{ env: { PEAPOD_BROADCAST: 'loud' } }, /PEAPOD_BROADCAST must be true or false/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => resolveConfig(options), invalid(message), message.source);
    }
  });

  test('parseHostPort never throws, and reads back every HOST:PORT it is given', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        const parsed = parseHostPort(text);
        return parsed === undefined || (parsed.port >= 1 && parsed.port <= 65535);
      }),
    );
    const host = fc.oneof(
      fc.ipV4(),
      fc.domain(),
      fc.ipV6().map((v6) => `[${v6}]`),
    );
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65535 }), (h, port) => {
        const parsed = parseHostPort(`${h}:${port}`);
        return parsed?.host === h.replace(/^\[|\]$/g, '') && parsed.port === port;
      }),
    );
  });
});

const home = await mkdtemp(join(tmpdir(), 'peapod-gossip-cli-'));
after(() => rm(home, { recursive: true, force: true }));

describe('peapod daemon flags', () => {
  test('--broadcast and --silent together are a usage error (exit 2) naming both', async () => {
    assert.equal((await cli(['init'], home)).status, 0);
    const both = await cli(['daemon', '--broadcast', '--silent'], home);
    assert.equal(both.status, 2);
    assert.match(
      both.stderr,
      /--broadcast.*cannot be used with.*--silent|--silent.*cannot be used with.*--broadcast/,
    );
  });

  test('a bad --tracker or --peer fails before anything starts, naming the flag (exit 1)', async () => {
    const tracker = await cli(['daemon', '--tracker', 'gopher://x'], home);
    assert.equal(tracker.status, 1);
    assert.match(
      tracker.stderr,
      /^peapod: Invalid configuration: flag --tracker must be http\(s\) URLs/,
    );
    const peer = await cli(['daemon', '--peer', 'nowhere'], home);
    assert.equal(peer.status, 1);
    assert.match(
      peer.stderr,
      /flag --peer must be HOST:PORT of peers, such as 203\.0\.113\.7:9000/,
    );
  });

  test('daemon --help explains trackers, broadcast vs silent (silent the default) and --peer', async () => {
    const help = await cli(['daemon', '--help'], home);
    assert.equal(help.status, 0);
    for (const pattern of [
      /--tracker <url>/,
      /--broadcast /,
      /--silent .*\(the default\)/,
      /--public-address <host>/,
      /--peer <host:port>/,
      /Beyond one LAN/,
      /Silent\s+\(the default\) means strangers learn that this device exists but never its address/,
    ]) {
      assert.match(help.stdout, pattern);
    }
  });
});
