/**
 * The data directory: where a device keeps its identity, its pod and its settings (DESIGN.md
 * decision 3 and "Defaults a user will meet").
 *
 * Theory of operation
 * - Location: `~/.peapod`, or `PEAPOD_HOME` when set (`resolveDataDir`). `DataDir.open` creates
 *   it with mode 0700 and tightens an existing one to 0700: it holds secrets.
 * - Files, each written to a temporary name with mode 0600, fsynced, then moved into place, so a
 *   crash never leaves a half-written key (and group/other permission bits found on them are
 *   removed when read):
 *   - `device.key`: the device's Ed25519 seed, 64 hex digits and a newline. Created on first use
 *     with the crypto provider's `ed25519GenerateKeyPair`; creation uses `link`, which fails if
 *     another process created the file first, so two processes starting at once agree on one
 *     identity. The Device ID is `deriveDeviceId` of its public key (identity.ts).
 *   - `pod.secret`: the pod's join code and a newline (pod.ts), so a corrupted file is detected
 *     by the join code's checks. Absent until the device creates or joins a pod.
 *   - `api.key`: the local API key (DESIGN.md decision 13; api-guard.ts), 32 random bytes in
 *     base64url and a newline. Created on first use (the daemon's start, or the first CLI call)
 *     the same exclusive way as `device.key`, so the daemon and the CLI always agree on it. A
 *     user may put a key of their own there (32 to 128 base64url characters); deleting the file
 *     and restarting the daemon rotates it.
 *   - `config.json`: settings the user chose; optional. PeaPod reads it and never writes it (it
 *     used to write the defaults on first use, which froze them, the host name among them, into
 *     a file that then looked like the user's choices). A file that is not JSON is an error that
 *     names the file, the line and the column.
 *   - `peers.db`: the gossip peer table (peer-store.ts), SQLite in WAL mode: signed peer records
 *     of devices beyond the pod, so a restarted daemon rejoins without a tracker. Not a secret
 *     (every row is a record its device signed for passing on), and safe to delete.
 * - Settings (`PeapodConfig`) come from four layers, later ones winning: built-in defaults <
 *   `config.json` < environment variables `PEAPOD_<SETTING>` (e.g. `PEAPOD_PEER_PORT`) < flags
 *   (e.g. `--peer-port`). `resolveConfig` merges them, and names the file, variable or flag and
 *   the bad value in every error, because a person has to find and fix it. The table `SETTINGS`
 *   defines every setting once; code, errors and tests read it.
 * - Errors: PeapodError PEAPOD_ERR_INVALID_ARGUMENT with a message for a person, starting
 *   "Invalid configuration:" or naming the corrupt file, and saying what to do. File system
 *   errors other than a missing file propagate as they are (their message names the path).
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname, homedir } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import {
  PeapodError,
  deriveDeviceId,
  fromHex,
  toHex,
  type CryptoProvider,
  type KeyPair,
} from '@peapod/core';
import { createNodeCryptoProvider } from './node-crypto-provider.js';
import { DISCOVERY_PORT } from './discovery.js';
import { formatJoinCode, parseJoinCode } from './pod.js';
import { parseSize } from './rate-limit.js';

/** File names inside the data directory. */
export const DataDirFiles = {
  identity: 'device.key',
  pod: 'pod.secret',
  apiKey: 'api.key',
  config: 'config.json',
  /** The gossip peer table (peer-store.ts), SQLite. */
  peerTable: 'peers.db',
} as const;

/** Every setting of a PeaPod device. */
export interface PeapodConfig {
  /** TCP port for peer links (default 9000). */
  readonly peerPort: number;
  /** UDP port of LAN discovery beacons (default 9001). */
  readonly discoveryPort: number;
  /** HTTP port of the proxy, gateway, API and dashboard (default 8080). */
  readonly apiPort: number;
  /** Address to listen on and send multicast from (default 127.0.0.1). */
  readonly bindAddress: string;
  /** Name shown to peers, 1-64 bytes of UTF-8 (default: the host name). */
  readonly deviceName: string;
  /** Upload limit in bytes per second; 0 means no limit (default 0). */
  readonly maxUploadBytesPerSecond: number;
  /** Download limit in bytes per second; 0 means no limit (default 0). */
  readonly maxDownloadBytesPerSecond: number;
  /**
   * Fetch for pod peers from loopback, link-local and private addresses too (default false:
   * public addresses only, DESIGN.md decision 14). For test pods and a LAN origin everyone trusts.
   */
  readonly allowPrivateOrigins: boolean;
  /**
   * Seconds without progress after which a download fails, naming the origin or peer that
   * stalled (default 60). Named without a unit so that its variable is `PEAPOD_STALL_TIMEOUT`
   * and its flag `--stall-timeout`, as `daemon --stall-timeout SECONDS` reads. Below the
   * scheduler's 5 s per-source stall floor, a pooled download whose helper stalls can fail
   * before that helper's piece is reassigned (tests use 2 s against origins only).
   */
  readonly stallTimeout: number;
  /**
   * Bytes of chunk files the chunk store may keep (default 20 GiB): past it the least recently
   * used chunks of unpinned contents are evicted. What `peapod share` shares is referenced in
   * the user's files and costs nothing here. In config.json a number of bytes or a size such as
   * "20GiB"; `--store-budget` and `PEAPOD_STORE_BUDGET` read the same.
   */
  readonly storeBudget: number;
  /**
   * Bootstrap trackers to find peers beyond this LAN (docs/guide.md, "Beyond one LAN"): http(s)
   * URLs. Named in the singular for its flag (`--tracker URL`, repeatable); in config.json a
   * URL or a list of them, in `PEAPOD_TRACKER` a comma-separated list. Default: none.
   */
  readonly tracker: readonly string[];
  /**
   * Let gossip and trackers pass this device's address on to strangers, so they can dial it
   * (`--broadcast`; `--silent` sets false). Default false (silent): strangers learn that this
   * device exists, never where it is; it still dials out and fetches by content ID.
   */
  readonly broadcast: boolean;
  /**
   * The host strangers should dial when this device broadcasts (an IP literal or DNS name).
   * Default: the address the tracker sees this device's requests come from.
   */
  readonly publicAddress: string | undefined;
  /**
   * Devices beyond the pod to dial at start, `HOST:PORT` (`[v6]:PORT` for IPv6): a newcomer
   * that knows one peer joins the gossip through it, with no tracker. Flag `--peer`
   * (repeatable); config.json a string or a list; `PEAPOD_PEER` comma-separated.
   */
  readonly peer: readonly string[];
  /**
   * Dial addresses learnt from gossip, trackers or peers.db that are loopback, private or
   * link-local too (default false: public only, dial-policy.ts). For LANs and tests; `--peer`
   * addresses are always dialled.
   */
  readonly allowPrivatePeers: boolean;
}

/** Where a setting's value came from. */
export type ConfigSource = 'default' | 'file' | 'env' | 'flag';

/** Merged settings and, for each, the layer it came from (for `peapod config` and logs). */
export interface ResolvedConfig {
  readonly config: PeapodConfig;
  readonly sources: { readonly [K in keyof PeapodConfig]: ConfigSource };
}

/** Flags as a CLI parser hands them over: strings (or numbers), by setting name. */
export type ConfigFlags = {
  readonly [K in keyof PeapodConfig]?: string | number | boolean | readonly string[];
};

type Parsed =
  | { ok: true; value: number | string | boolean | readonly string[] | undefined }
  | { ok: false; expected: string };

/** The chunk store's default budget: 20 GiB. */
export const STORE_BUDGET_DEFAULT_BYTES = 20 * 1024 ** 3;

const DEVICE_NAME_BYTES_MAX = 64; // HELLO's deviceName limit (docs/protocol.md section 6.1)

function parsePort(raw: unknown): Parsed {
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535
    ? { ok: true, value: value as number }
    : { ok: false, expected: 'a port number from 1 to 65535' };
}

function parseRate(raw: unknown): Parsed {
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
  return Number.isSafeInteger(value) && (value as number) >= 0
    ? { ok: true, value: value as number }
    : { ok: false, expected: 'a whole number of bytes per second (0 for no limit)' };
}

function parseSeconds(raw: unknown): Parsed {
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
  return Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= 86_400
    ? { ok: true, value: value as number }
    : { ok: false, expected: 'a whole number of seconds from 1 to 86400' };
}

function parseStoreBudget(raw: unknown): Parsed {
  const value = typeof raw === 'string' ? parseSize(raw) : raw;
  return Number.isSafeInteger(value) && (value as number) >= 1
    ? { ok: true, value: value as number }
    : { ok: false, expected: 'a size such as 20GiB, 500MB or a whole number of bytes' };
}

function parseAddress(raw: unknown): Parsed {
  return typeof raw === 'string' && isIP(raw.trim()) !== 0
    ? { ok: true, value: raw.trim() }
    : { ok: false, expected: 'an IPv4 or IPv6 address such as 127.0.0.1' };
}

function parseSwitch(raw: unknown): Parsed {
  const text = typeof raw === 'string' ? raw.trim().toLowerCase() : raw;
  if (text === true || text === 'true' || text === '1' || text === 'yes')
    return { ok: true, value: true };
  if (text === false || text === 'false' || text === '0' || text === 'no')
    return { ok: true, value: false };
  return { ok: false, expected: 'true or false' };
}

/** A list setting: a JSON array of strings, or one string holding a comma-separated list. */
function listOf(raw: unknown): string[] | undefined {
  if (typeof raw === 'string')
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
  if (Array.isArray(raw) && raw.every((item) => typeof item === 'string'))
    return (raw as string[]).map((item) => item.trim()).filter(Boolean);
  return undefined;
}

function parseTrackerUrls(raw: unknown): Parsed {
  const expected = 'http(s) URLs of trackers, such as https://tracker.example.org';
  const urls = listOf(raw);
  if (urls === undefined) return { ok: false, expected };
  for (const text of urls) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return { ok: false, expected };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, expected };
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '')
      return { ok: false, expected: `${expected} (no credentials, query or fragment)` };
  }
  return { ok: true, value: urls.map((url) => url.replace(/\/+$/, '')) };
}

/** A host a peer record may carry (peer-record.ts: an IP literal or a DNS name). */
const HOST = /^[A-Za-z0-9.:-]{1,253}$/;

function parseHost(raw: unknown): Parsed {
  const host = typeof raw === 'string' ? raw.trim() : '';
  if (host === '') return { ok: true, value: undefined };
  return HOST.test(host) && (isIP(host) !== 0 || !host.includes(':'))
    ? { ok: true, value: host }
    : { ok: false, expected: 'an IP address or a DNS name, such as 203.0.113.7' };
}

/**
 * `HOST:PORT` or `[IPv6]:PORT`, as the daemon dials it. Exported for the daemon, which splits
 * the setting's values with it.
 */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (match === null) return undefined;
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port < 1 || port > 65535 || host.length > 253) return undefined;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

function parsePeers(raw: unknown): Parsed {
  const expected = 'HOST:PORT of peers, such as 203.0.113.7:9000 or [2001:db8::7]:9000';
  const peers = listOf(raw);
  if (peers === undefined || peers.some((peer) => parseHostPort(peer) === undefined))
    return { ok: false, expected };
  return { ok: true, value: peers };
}

function parseDeviceName(raw: unknown): Parsed {
  const bytes = typeof raw === 'string' ? Buffer.byteLength(raw.trim()) : 0;
  return typeof raw === 'string' && bytes >= 1 && bytes <= DEVICE_NAME_BYTES_MAX
    ? { ok: true, value: raw.trim() }
    : { ok: false, expected: `a name of 1 to ${DEVICE_NAME_BYTES_MAX} bytes` };
}

/** The host name, cut to the device name limit at a character boundary. */
function defaultDeviceName(): string {
  let name = '';
  for (const char of hostname()) {
    if (Buffer.byteLength(name + char) > DEVICE_NAME_BYTES_MAX) break;
    name += char;
  }
  return name === '' ? 'peapod' : name;
}

/**
 * Every setting: its environment variable, flag, parser and default. The single source of truth
 * for `resolveConfig`, the CLI's help, and the tests.
 */
export const SETTINGS: {
  readonly [K in keyof PeapodConfig]: {
    readonly env: string;
    readonly flag: string;
    readonly parse: (raw: unknown) => Parsed;
    readonly defaultValue: () => PeapodConfig[K];
  };
} = {
  peerPort: {
    env: 'PEAPOD_PEER_PORT',
    flag: '--peer-port',
    parse: parsePort,
    defaultValue: () => 9000,
  },
  discoveryPort: {
    env: 'PEAPOD_DISCOVERY_PORT',
    flag: '--discovery-port',
    parse: parsePort,
    defaultValue: () => DISCOVERY_PORT,
  },
  apiPort: {
    env: 'PEAPOD_API_PORT',
    flag: '--api-port',
    parse: parsePort,
    defaultValue: () => 8080,
  },
  bindAddress: {
    env: 'PEAPOD_BIND_ADDRESS',
    flag: '--bind-address',
    parse: parseAddress,
    defaultValue: () => '127.0.0.1',
  },
  deviceName: {
    env: 'PEAPOD_DEVICE_NAME',
    flag: '--device-name',
    parse: parseDeviceName,
    defaultValue: defaultDeviceName,
  },
  maxUploadBytesPerSecond: {
    env: 'PEAPOD_MAX_UPLOAD_BYTES_PER_SECOND',
    flag: '--max-upload-bytes-per-second',
    parse: parseRate,
    defaultValue: () => 0,
  },
  maxDownloadBytesPerSecond: {
    env: 'PEAPOD_MAX_DOWNLOAD_BYTES_PER_SECOND',
    flag: '--max-download-bytes-per-second',
    parse: parseRate,
    defaultValue: () => 0,
  },
  allowPrivateOrigins: {
    env: 'PEAPOD_ALLOW_PRIVATE_ORIGINS',
    flag: '--allow-private-origins',
    parse: parseSwitch,
    defaultValue: () => false,
  },
  stallTimeout: {
    env: 'PEAPOD_STALL_TIMEOUT',
    flag: '--stall-timeout',
    parse: parseSeconds,
    defaultValue: () => 60,
  },
  storeBudget: {
    env: 'PEAPOD_STORE_BUDGET',
    flag: '--store-budget',
    parse: parseStoreBudget,
    defaultValue: () => STORE_BUDGET_DEFAULT_BYTES,
  },
  tracker: {
    env: 'PEAPOD_TRACKER',
    flag: '--tracker',
    parse: parseTrackerUrls,
    defaultValue: () => [],
  },
  broadcast: {
    env: 'PEAPOD_BROADCAST',
    flag: '--broadcast',
    parse: parseSwitch,
    defaultValue: () => false,
  },
  publicAddress: {
    env: 'PEAPOD_PUBLIC_ADDRESS',
    flag: '--public-address',
    parse: parseHost,
    defaultValue: () => undefined,
  },
  peer: {
    env: 'PEAPOD_PEER',
    flag: '--peer',
    parse: parsePeers,
    defaultValue: () => [],
  },
  allowPrivatePeers: {
    env: 'PEAPOD_ALLOW_PRIVATE_PEERS',
    flag: '--allow-private-peers',
    parse: parseSwitch,
    defaultValue: () => false,
  },
};

const SETTING_NAMES = Object.keys(SETTINGS) as (keyof PeapodConfig)[];

/** The built-in defaults. */
export function configDefaults(): PeapodConfig {
  const config: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) config[name] = SETTINGS[name].defaultValue();
  return config as unknown as PeapodConfig;
}

function invalidConfig(problem: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', `Invalid configuration: ${problem}`);
}

/** Options of `resolveConfig`: the layers above the defaults. */
export interface ResolveConfigOptions {
  /** The config file: its path (for messages) and its text; omit when there is none. */
  readonly file?: { readonly path: string; readonly text: string };
  /** Environment variables (default: none; pass `process.env` to use the real ones). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Flags from the command line. */
  readonly flags?: ConfigFlags;
}

/**
 * Merges defaults < config file < environment < flags and checks every value.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT, "Invalid configuration: ...", when the file is
 *   not a JSON object, names an unknown setting, or a file, variable or flag holds a bad value;
 *   the message names the file (and setting), the variable or the flag, and the bad value.
 * @example
 * resolveConfig({ env: { PEAPOD_PEER_PORT: '9100' } }).config.peerPort; // => 9100
 * resolveConfig({ env: { PEAPOD_PEER_PORT: 'abc' } });
 * // throws: 'Invalid configuration: environment variable PEAPOD_PEER_PORT must be a port
 * // number from 1 to 65535, got "abc".'
 */
export function resolveConfig(options: ResolveConfigOptions = {}): ResolvedConfig {
  const config: Record<string, unknown> = { ...configDefaults() };
  const sources: Record<string, ConfigSource> = {};
  for (const name of SETTING_NAMES) sources[name] = 'default';

  const apply = (name: keyof PeapodConfig, raw: unknown, source: ConfigSource, where: string) => {
    const parsed = SETTINGS[name].parse(raw);
    if (!parsed.ok)
      invalidConfig(`${where} must be ${parsed.expected}, got ${JSON.stringify(raw)}.`);
    config[name] = parsed.value;
    sources[name] = source;
  };

  if (options.file !== undefined) {
    const { path, text } = options.file;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      invalidConfig(
        `${path} is not valid JSON: ${jsonProblem(text, (error as Error).message)}. Fix it, or ` +
          'delete it to get the defaults back.',
      );
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      invalidConfig(`${path} must hold a JSON object of settings, like {"peerPort": 9000}.`);
    }
    for (const [key, value] of Object.entries(json)) {
      if (!Object.hasOwn(SETTINGS, key)) {
        invalidConfig(
          `${path} has an unknown setting "${key}". Known settings: ${SETTING_NAMES.join(', ')}.`,
        );
      }
      apply(key as keyof PeapodConfig, value, 'file', `"${key}" in ${path}`);
    }
  }
  for (const name of SETTING_NAMES) {
    const value = options.env?.[SETTINGS[name].env];
    if (value !== undefined) {
      apply(name, value, 'env', `environment variable ${SETTINGS[name].env}`);
    }
  }
  for (const name of SETTING_NAMES) {
    const value = options.flags?.[name];
    if (value !== undefined) apply(name, value, 'flag', `flag ${SETTINGS[name].flag}`);
  }
  return {
    config: config as unknown as PeapodConfig,
    sources: sources as ResolvedConfig['sources'],
  };
}

/**
 * Where and what the JSON syntax error in `text` is, e.g. "line 3, column 1: Expected
 * double-quoted property name". V8 gives a position for most errors ("... in JSON at position
 * 11"); for the others (an unexpected token, the end of the input) the position is the first
 * prefix of `text` that fails other than by ending early (config files are small).
 */
export function jsonProblem(text: string, message: string): string {
  const match = /^(.*?)(?: in JSON)? at position (\d+)/.exec(message);
  let position = match === null ? undefined : Number(match[2]);
  let what = match?.[1] ?? message.replace(/, ".*" is not valid JSON$/s, '');
  if (position === undefined && text.length <= 1 << 16) {
    position = text.length;
    for (let end = 1; end <= text.length; end++) {
      try {
        JSON.parse(text.slice(0, end));
      } catch (error) {
        const text = (error as Error).message;
        const at = /at position (\d+)/.exec(text);
        const early = text === 'Unexpected end of JSON input' || Number(at?.[1] ?? -1) >= end;
        if (!early) {
          position = at === null ? end - 1 : Number(at[1]);
          break;
        }
      }
    }
    if (position === text.length) what = 'the file ends before the JSON value does';
  }
  if (position === undefined) return what;
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `line ${line}, column ${column}: ${what}`;
}

/**
 * The data directory's path: `PEAPOD_HOME` (made absolute) when set and not empty, else
 * `~/.peapod`.
 */
export function resolveDataDir(
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const home = env['PEAPOD_HOME'];
  return home !== undefined && home !== '' ? resolve(home) : join(homedir(), '.peapod');
}

/** This device's identity, as loaded from (or first created in) the data directory. */
export interface DeviceIdentity {
  /** The Ed25519 key pair; `secretKey` is the 32-byte seed. */
  readonly keyPair: KeyPair;
  /** The raw 32-byte Device ID. */
  readonly deviceId: Uint8Array;
  /** True when this call created the key. */
  readonly created: boolean;
}

/** What `api.key` may hold: base64url, at least 32 characters (192 bits). */
const API_KEY = /^[A-Za-z0-9_-]{32,128}$/;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/** Removes group and other permission bits from `path` if it has any. */
async function tighten(path: string, mode: number): Promise<void> {
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, mode);
}

/**
 * Writes `text` to `path` with mode 0600 via a fsynced temporary file. With `exclusive` the
 * file is only created if `path` does not exist yet (returns false if it did); otherwise it
 * replaces `path`.
 */
async function writeFileSafely(path: string, text: string, exclusive: boolean): Promise<boolean> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (!exclusive) {
      await rename(temporary, path);
      return true;
    }
    try {
      await link(temporary, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  } finally {
    if (exclusive) await unlink(temporary);
  }
}

/**
 * A device's data directory.
 * @example
 * const dir = await DataDir.open(); // ~/.peapod or $PEAPOD_HOME
 * const { deviceId } = await dir.loadIdentity();
 * const { config } = await dir.loadConfig({ env: process.env, flags: { peerPort: '9100' } });
 * const secret = await dir.readPodSecret(); // undefined until the device is in a pod
 */
export class DataDir {
  private constructor(readonly path: string) {}

  /**
   * Opens (creating it with mode 0700 if needed) the data directory at `path`, by default
   * `resolveDataDir()`. An existing directory loses any group and other permissions.
   */
  static async open(path: string = resolveDataDir()): Promise<DataDir> {
    const absolute = resolve(path);
    await mkdir(absolute, { recursive: true, mode: 0o700 });
    await tighten(absolute, 0o700);
    return new DataDir(absolute);
  }

  /**
   * Loads the device identity, creating it on first use.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `device.key` is not 64 hex digits; the
   *   message names the file and what moving it away means.
   */
  async loadIdentity(crypto: CryptoProvider = createNodeCryptoProvider()): Promise<DeviceIdentity> {
    const path = join(this.path, DataDirFiles.identity);
    let created = false;
    let text = await this.readSecretFile(path);
    if (text === undefined) {
      const fresh = crypto.ed25519GenerateKeyPair();
      created = await writeFileSafely(path, `${toHex(fresh.secretKey)}\n`, true);
      text = await this.readSecretFile(path);
    }
    const seed = /^[0-9a-f]{64}$/i.test(text?.trim() ?? '') ? fromHex(text!.trim()) : undefined;
    if (seed === undefined) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_ARGUMENT',
        `The device key file ${path} is corrupt: it must hold 64 hex digits. Restore it from a ` +
          'backup, or move it away to create a new identity (peers will see a new Device ID).',
      );
    }
    const keyPair = { publicKey: crypto.ed25519PublicKey(seed), secretKey: seed };
    return { keyPair, deviceId: deriveDeviceId(crypto, keyPair.publicKey), created };
  }

  /**
   * The local API key, created on first use (32 random bytes, base64url; mode 0600). The daemon
   * loads it at start and refuses API requests that do not present it; the CLI sends it.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `api.key` does not hold 32 to 128
   *   base64url characters; the message names the file and says how to get a new key.
   * @example
   * const key = await (await DataDir.open()).loadApiKey(); // e.g. 'q3Vh...' (43 characters)
   */
  async loadApiKey(): Promise<string> {
    const path = join(this.path, DataDirFiles.apiKey);
    let text = await this.readSecretFile(path);
    if (text === undefined) {
      await writeFileSafely(path, `${randomBytes(32).toString('base64url')}\n`, true);
      text = await this.readSecretFile(path);
    }
    const key = text?.trim() ?? '';
    if (!API_KEY.test(key)) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_ARGUMENT',
        `The API key file ${path} is corrupt: it must hold 32 to 128 characters of A-Z, a-z, ` +
          '0-9, "-" and "_". Delete it and restart `peapod daemon`, which creates a new one.',
      );
    }
    return key;
  }

  /**
   * The pod secret, or `undefined` when this device is in no pod.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `pod.secret` does not hold a valid join
   *   code; the message names the file.
   */
  async readPodSecret(): Promise<Uint8Array | undefined> {
    const path = join(this.path, DataDirFiles.pod);
    const text = await this.readSecretFile(path);
    if (text === undefined) return undefined;
    try {
      return parseJoinCode(text);
    } catch (error) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_ARGUMENT',
        `The pod file ${path} is corrupt (${(error as Error).message}). Join the pod again ` +
          'with its join code.',
        { cause: error },
      );
    }
  }

  /**
   * Stores the pod secret (mode 0600), replacing any previous one.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `secret` is not 32 bytes.
   */
  async writePodSecret(secret: Uint8Array): Promise<void> {
    await writeFileSafely(join(this.path, DataDirFiles.pod), `${formatJoinCode(secret)}\n`, false);
  }

  /** Forgets the pod secret (leaves the pod). Does nothing when there is none. */
  async removePodSecret(): Promise<void> {
    try {
      await unlink(join(this.path, DataDirFiles.pod));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  /**
   * Reads `config.json`, if there is one (it is never written here), and merges it with
   * `options.env` and `options.flags` (see `resolveConfig`).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT as `resolveConfig` does.
   */
  async loadConfig(options: Omit<ResolveConfigOptions, 'file'> = {}): Promise<ResolvedConfig> {
    const path = join(this.path, DataDirFiles.config);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (!isMissing(error)) throw error;
      return resolveConfig(options);
    }
    return resolveConfig({ ...options, file: { path, text } });
  }

  /** Reads a secret file after removing group/other permissions; `undefined` if missing. */
  private async readSecretFile(path: string): Promise<string | undefined> {
    try {
      await tighten(path, 0o600);
      return await readFile(path, 'utf8');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }
}
