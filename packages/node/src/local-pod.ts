/**
 * Helpers for running several PeaPod nodes on one machine (the demo, tests, benchmarks): a pod
 * of `peapod daemon` processes, free ports picked by the kernel, polling until a condition holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataDir } from './data-dir.js';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A UDP port that was free a moment ago (for a pod's discovery beacons). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 50 ms until it resolves true; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = `(last error: ${(error as Error).message})`;
    }
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what} ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One `peapod daemon` process of a local pod. */
export interface LocalDaemon {
  readonly index: number;
  /** Its data directory (`PEAPOD_HOME`). */
  readonly home: string;
  /** Its API, with the key from its data directory (the CLI would read the same). */
  readonly api: { readonly host: string; readonly port: number; readonly apiKey: string };
  readonly peerPort: number;
  readonly child: ChildProcess;
}

/**
 * Starts device number `index` (0-based) of a local pod as a `peapod daemon` process: its own
 * data directory under `root` holding a fresh identity, the pod `secret` and an API key, free
 * ports on 127.0.0.1, the shared `discoveryPort`, and origin traffic from its own address
 * 127.0.0.(11 + index), so a rate-limited origin sees each device as a separate internet link.
 */
export async function spawnLocalDaemon(options: {
  readonly root: string;
  readonly index: number;
  readonly secret: Uint8Array;
  readonly discoveryPort: number;
  readonly logLevel: string;
  readonly flags?: readonly string[];
  readonly stdio: 'pipe' | 'ignore';
  /** Pass `--allow-private-origins` (default true). */
  readonly allowPrivateOrigins?: boolean;
}): Promise<LocalDaemon> {
  const { root, index } = options;
  const home = join(root, `pod-${options.discoveryPort}-device${index + 1}`);
  const dir = await DataDir.open(home);
  await dir.loadIdentity();
  await dir.writePodSecret(options.secret);
  const apiKey = await dir.loadApiKey(); // created here; the daemon loads the same file
  const apiPort = await freeTcpPort();
  const peerPort = await freeTcpPort();
  const args = [
    CLI_PATH,
    'daemon',
    ...['--peer-port', String(peerPort), '--api-port', String(apiPort)],
    ...['--discovery-port', String(options.discoveryPort)],
    ...['--origin-address', `127.0.0.${11 + index}`, '--name', `device${index + 1}`],
    // The local origins are on loopback, which a helper refuses to fetch for others by default.
    ...(options.allowPrivateOrigins === false ? [] : ['--allow-private-origins']),
    ...['--log-level', options.logLevel, ...(options.flags ?? [])],
  ];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, PEAPOD_HOME: home },
    stdio: ['ignore', options.stdio, options.stdio === 'pipe' ? 'pipe' : 'inherit'],
  });
  return { index, home, api: { host: '127.0.0.1', port: apiPort, apiKey }, peerPort, child };
}

/** The `peapod` CLI's entry file, next to this module. */
export const CLI_PATH = fileURLToPath(new URL('./cli.js', import.meta.url));
