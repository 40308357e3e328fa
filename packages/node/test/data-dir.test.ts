/**
 * The data directory (src/data-dir.ts) on the real file system, in fresh temporary directories:
 * permissions, first-use creation (also by two callers at once), corrupt files, and the order
 * defaults < config.json < environment < flags with errors that name the culprit.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { deriveDeviceId, equalBytes, toHex } from '@peapod/core';
import {
  DataDir,
  DataDirFiles,
  SETTINGS,
  configDefaults,
  resolveConfig,
  resolveDataDir,
} from '../src/data-dir.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { createPod, formatJoinCode } from '../src/pod.js';

const root = await mkdtemp(join(tmpdir(), 'peapod-data-dir-test-'));
after(() => rm(root, { recursive: true, force: true }));
let dirCount = 0;
/** A path for a data directory that does not exist yet. */
function freshPath(): string {
  return join(root, `home-${++dirCount}`, '.peapod');
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

function invalid(message: RegExp): { code: string; message: RegExp } {
  return { code: 'PEAPOD_ERR_INVALID_ARGUMENT', message };
}

describe('location and permissions', () => {
  test('PEAPOD_HOME overrides ~/.peapod and is made absolute', () => {
    assert.equal(resolveDataDir({}), join(homedir(), '.peapod'));
    assert.equal(resolveDataDir({ PEAPOD_HOME: '' }), join(homedir(), '.peapod'));
    assert.equal(resolveDataDir({ PEAPOD_HOME: '/srv/peapod' }), '/srv/peapod');
    assert.equal(resolveDataDir({ PEAPOD_HOME: 'rel/dir' }), join(process.cwd(), 'rel/dir'));
  });

  test('open creates the directory 0700 and tightens an existing one', async () => {
    const path = freshPath();
    const dir = await DataDir.open(path);
    assert.equal(dir.path, path);
    assert.equal(await modeOf(path), 0o700);
    await chmod(path, 0o755);
    await DataDir.open(path);
    assert.equal(await modeOf(path), 0o700);
  });
});

describe('device identity', () => {
  test('created on first use with mode 0600, then loaded unchanged', async () => {
    const crypto = createNodeCryptoProvider();
    const dir = await DataDir.open(freshPath());
    const first = await dir.loadIdentity(crypto);
    assert.equal(first.created, true);
    const keyPath = join(dir.path, DataDirFiles.identity);
    assert.equal(await modeOf(keyPath), 0o600);
    assert.equal(await readFile(keyPath, 'utf8'), `${toHex(first.keyPair.secretKey)}\n`);
    assert.ok(equalBytes(first.deviceId, deriveDeviceId(crypto, first.keyPair.publicKey)));

    await chmod(keyPath, 0o644);
    const second = await dir.loadIdentity(crypto);
    assert.equal(second.created, false);
    assert.equal(await modeOf(keyPath), 0o600);
    assert.equal(toHex(second.deviceId), toHex(first.deviceId));
    assert.equal(toHex(second.keyPair.publicKey), toHex(first.keyPair.publicKey));
  });

  test('two callers at once agree on one identity', async () => {
    const path = freshPath();
    const [a, b] = await Promise.all([
      DataDir.open(path).then((dir) => dir.loadIdentity()),
      DataDir.open(path).then((dir) => dir.loadIdentity()),
    ]);
    assert.equal(toHex(a.deviceId), toHex(b.deviceId));
    assert.equal(Number(a.created) + Number(b.created), 1);
  });

  test('a corrupt key file is refused with what to do', async () => {
    const dir = await DataDir.open(freshPath());
    await writeFile(join(dir.path, DataDirFiles.identity), 'not a key\n', { mode: 0o600 });
    await assert.rejects(
      dir.loadIdentity(),
      invalid(/device key file .*device\.key is corrupt: it must hold 64 hex digits\. Restore/),
    );
  });
});

describe('API key', () => {
  test('created on first use: 32 random bytes in base64url, mode 0600, then loaded unchanged', async () => {
    const dir = await DataDir.open(freshPath());
    const key = await dir.loadApiKey();
    assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(key, 'base64url').length, 32);
    const keyPath = join(dir.path, DataDirFiles.apiKey);
    assert.equal(await modeOf(keyPath), 0o600);
    assert.equal(await readFile(keyPath, 'utf8'), `${key}\n`);
    await chmod(keyPath, 0o644);
    assert.equal(await dir.loadApiKey(), key);
    assert.equal(await modeOf(keyPath), 0o600);
    assert.notEqual(await (await DataDir.open(freshPath())).loadApiKey(), key);
  });

  test('two callers at once (the daemon starting, the CLI) agree on one key', async () => {
    const path = freshPath();
    const [a, b] = await Promise.all([
      DataDir.open(path).then((dir) => dir.loadApiKey()),
      DataDir.open(path).then((dir) => dir.loadApiKey()),
    ]);
    assert.equal(a, b);
  });

  test("a key of the user's own is kept; a corrupt one is refused with what to do", async () => {
    const dir = await DataDir.open(freshPath());
    const keyPath = join(dir.path, DataDirFiles.apiKey);
    const own = 'my-own-key_0123456789abcdefghijklmnop';
    await writeFile(keyPath, `  ${own}\n`, { mode: 0o600 });
    assert.equal(await dir.loadApiKey(), own);
    for (const text of ['', 'short\n', 'has spaces inside the key, which is not base64url\n']) {
      await writeFile(keyPath, text, { mode: 0o600 });
      await assert.rejects(
        dir.loadApiKey(),
        invalid(/API key file .*api\.key is corrupt: .* Delete it and restart `peapod daemon`/),
      );
    }
  });
});

describe('pod secret', () => {
  test('absent, written 0600 as a join code, read back, removed', async () => {
    const dir = await DataDir.open(freshPath());
    assert.equal(await dir.readPodSecret(), undefined);
    const secret = createPod();
    await dir.writePodSecret(secret);
    const podPath = join(dir.path, DataDirFiles.pod);
    assert.equal(await modeOf(podPath), 0o600);
    assert.equal(await readFile(podPath, 'utf8'), `${formatJoinCode(secret)}\n`);
    assert.ok(equalBytes((await dir.readPodSecret())!, secret));
    const other = createPod();
    await dir.writePodSecret(other);
    assert.ok(equalBytes((await dir.readPodSecret())!, other));
    await dir.removePodSecret();
    assert.equal(await dir.readPodSecret(), undefined);
    await dir.removePodSecret();
  });

  test('a damaged pod file names the file and the problem', async () => {
    const dir = await DataDir.open(freshPath());
    const code = formatJoinCode(createPod());
    const damaged = code.slice(0, -1) + (code.endsWith('A') ? 'B' : 'A');
    await writeFile(join(dir.path, DataDirFiles.pod), damaged, { mode: 0o600 });
    await assert.rejects(
      dir.readPodSecret(),
      invalid(/pod file .*pod\.secret is corrupt \(Invalid join code: group 8 of 8 has a typo/),
    );
  });
});

describe('settings', () => {
  test('TSDoc example of resolveConfig', () => {
    assert.equal(resolveConfig({ env: { PEAPOD_PEER_PORT: '9100' } }).config.peerPort, 9100);
    assert.throws(
      () => resolveConfig({ env: { PEAPOD_PEER_PORT: 'abc' } }),
      invalid(
        /^Invalid configuration: environment variable PEAPOD_PEER_PORT must be a port number from 1 to 65535, got "abc"\.$/,
      ),
    );
  });

  test('defaults; config.json is never written (absent, or as the user wrote it)', async () => {
    const defaults = configDefaults();
    assert.deepEqual(
      { ...defaults, deviceName: undefined },
      {
        peerPort: 9000,
        discoveryPort: 9001,
        apiPort: 8080,
        bindAddress: '127.0.0.1',
        deviceName: undefined,
        maxUploadBytesPerSecond: 0,
        maxDownloadBytesPerSecond: 0,
        allowPrivateOrigins: false,
        stallTimeout: 60,
        storeBudget: 20 * 1024 ** 3,
        tracker: [],
        broadcast: false,
        publicAddress: undefined,
        peer: [],
        allowPrivatePeers: false,
      },
    );
    assert.ok(defaults.deviceName.length > 0);
    const dir = await DataDir.open(freshPath());
    const { config, sources } = await dir.loadConfig();
    assert.deepEqual(config, defaults);
    assert.ok(Object.values(sources).every((source) => source === 'default'));
    const configPath = join(dir.path, DataDirFiles.config);
    await assert.rejects(stat(configPath), { code: 'ENOENT' });
    // The user's file, with its own order, spacing and a trailing newline: read, never rewritten.
    const mine = '{\n    "deviceName":   "laptop",\n  "peerPort": 9100\n}\n';
    await writeFile(configPath, mine);
    const loaded = await dir.loadConfig({ flags: { peerPort: '9200' } });
    assert.equal(loaded.config.deviceName, 'laptop');
    assert.equal(loaded.config.peerPort, 9200);
    assert.equal(await readFile(configPath, 'utf8'), mine);
  });

  test('defaults < config.json < environment < flags, setting by setting', async () => {
    const dir = await DataDir.open(freshPath());
    await writeFile(
      join(dir.path, DataDirFiles.config),
      JSON.stringify({ peerPort: 9100, apiPort: 8100, discoveryPort: 9101 }),
    );
    const { config, sources } = await dir.loadConfig({
      env: {
        PEAPOD_PEER_PORT: '9200',
        PEAPOD_DISCOVERY_PORT: '9201',
        PEAPOD_HOME: '/ignored',
        PEAPOD_STALL_TIMEOUT: '5',
      },
      flags: { peerPort: '9300', maxUploadBytesPerSecond: 1_000_000, allowPrivateOrigins: true },
    });
    assert.deepEqual(
      { ...config, deviceName: undefined },
      {
        peerPort: 9300,
        apiPort: 8100,
        discoveryPort: 9201,
        bindAddress: '127.0.0.1',
        deviceName: undefined,
        maxUploadBytesPerSecond: 1_000_000,
        maxDownloadBytesPerSecond: 0,
        allowPrivateOrigins: true,
        stallTimeout: 5,
        storeBudget: 20 * 1024 ** 3,
        tracker: [],
        broadcast: false,
        publicAddress: undefined,
        peer: [],
        allowPrivatePeers: false,
      },
    );
    assert.deepEqual(sources, {
      peerPort: 'flag',
      discoveryPort: 'env',
      apiPort: 'file',
      bindAddress: 'default',
      deviceName: 'default',
      maxUploadBytesPerSecond: 'flag',
      maxDownloadBytesPerSecond: 'default',
      allowPrivateOrigins: 'flag',
      stallTimeout: 'env',
      storeBudget: 'default',
      tracker: 'default',
      broadcast: 'default',
      publicAddress: 'default',
      allowPrivatePeers: 'default',
      peer: 'default',
    });
  });

  test('every setting has its own variable and flag', () => {
    for (const [name, setting] of Object.entries(SETTINGS)) {
      const snake = name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
      assert.equal(setting.env, `PEAPOD_${snake}`);
      assert.equal(setting.flag, `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    }
  });

  test('a corrupt config file says which file, why, and what to do', async () => {
    const dir = await DataDir.open(freshPath());
    const configPath = join(dir.path, DataDirFiles.config);
    await writeFile(configPath, '{"peerPort": 9000,');
    await assert.rejects(
      dir.loadConfig(),
      invalid(
        /^Invalid configuration: .*config\.json is not valid JSON: line 1, column 19: .*\. Fix it, or delete it/,
      ),
    );
    // A trailing comma on line 3, and a missing colon (V8 gives no position for some errors).
    await writeFile(configPath, '{\n  "peerPort": 9000,\n}\n');
    await assert.rejects(
      dir.loadConfig(),
      invalid(/config\.json is not valid JSON: line 3, column 1: Expected double-quoted property/),
    );
    await writeFile(configPath, '{\n  "peerPort": }');
    await assert.rejects(
      dir.loadConfig(),
      invalid(/config\.json is not valid JSON: line 2, column 15: Unexpected token '}'\. Fix it/),
    );
    await writeFile(configPath, '[9000]');
    await assert.rejects(dir.loadConfig(), invalid(/config\.json must hold a JSON object/));
  });

  test('bad values name the file and setting, the variable or the flag, and the value', () => {
    const file = (text: string) => ({ file: { path: '/etc/peapod/config.json', text } });
    const cases: [Parameters<typeof resolveConfig>[0], RegExp][] = [
      [
        file('{"peerPort": "abc"}'),
        /"peerPort" in \/etc\/peapod\/config\.json must be a port number from 1 to 65535, got "abc"\./,
      ],
      [file('{"peerPort": 9000.5}'), /"peerPort" in .* got 9000\.5\./],
      [file('{"apiPort": 0}'), /"apiPort" in .* got 0\./],
      [
        file('{"peerport": 9000}'),
        /unknown setting "peerport"\. Known settings: peerPort, discoveryPort/,
      ],
      [file('{"bindAddress": "localhost"}'), /"bindAddress" in .* must be an IPv4 or IPv6 address/],
      [
        file(`{"deviceName": "${'x'.repeat(65)}"}`),
        /"deviceName" in .* must be a name of 1 to 64 bytes/,
      ],
      [file('{"deviceName": ""}'), /"deviceName" in .* got ""\./],
      [
        { env: { PEAPOD_API_PORT: '80a' } },
        /environment variable PEAPOD_API_PORT must be a port number .* got "80a"\./,
      ],
      [
        { env: { PEAPOD_MAX_DOWNLOAD_BYTES_PER_SECOND: '-5' } },
        /PEAPOD_MAX_DOWNLOAD_BYTES_PER_SECOND must be a whole number of bytes per second \(0 for no limit\), got "-5"\./,
      ],
      [
        { flags: { discoveryPort: '65536' } },
        /^Invalid configuration: flag --discovery-port must be a port number from 1 to 65535, got "65536"\.$/,
      ],
      [
        { flags: { bindAddress: '300.1.1.1' } },
        /flag --bind-address must be an IPv4 or IPv6 address/,
      ],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => resolveConfig(options), invalid(message), message.source);
    }
  });

  test('allowPrivateOrigins: off by default; true/false from the file, 1/0 yes/no from the environment', () => {
    assert.equal(resolveConfig().config.allowPrivateOrigins, false);
    const file = (text: string) => ({ file: { path: '/c.json', text } });
    assert.equal(
      resolveConfig(file('{"allowPrivateOrigins": true}')).config.allowPrivateOrigins,
      true,
    );
    for (const [value, expected] of [
      ['1', true],
      ['yes', true],
      ['TRUE', true],
      ['0', false],
      ['no', false],
    ] as const) {
      const { config } = resolveConfig({ env: { PEAPOD_ALLOW_PRIVATE_ORIGINS: value } });
      assert.equal(config.allowPrivateOrigins, expected, value);
    }
    assert.throws(
      () => resolveConfig({ env: { PEAPOD_ALLOW_PRIVATE_ORIGINS: 'maybe' } }),
      invalid(
        /environment variable PEAPOD_ALLOW_PRIVATE_ORIGINS must be true or false, got "maybe"\./,
      ),
    );
    assert.throws(
      () => resolveConfig(file('{"allowPrivateOrigins": "on"}')),
      invalid(/"allowPrivateOrigins" in \/c\.json must be true or false, got "on"\./),
    );
  });

  test('a config.json that cannot be read is reported as it is', async () => {
    const dir = await DataDir.open(freshPath());
    await mkdir(join(dir.path, DataDirFiles.config));
    await assert.rejects(dir.loadConfig(), { code: 'EISDIR' });
  });
});
