/**
 * One PeaPod peer link between two processes on loopback, against raw TCP and `node:tls` measured
 * in the same run between two processes (`npm run bench:link`).
 *
 * What runs, per trial (every trial forks a fresh receiver process and a fresh sender process, so
 * no mode inherits another's heap or JIT state; the parent only orchestrates and never touches the
 * data):
 * - tcp: the sender writes N MiB in 1 MiB writes to a `node:net` socket, honouring `write()`'s
 *   backpressure, from the same 64 MiB source buffer as the PeaPod sender; the receiver counts
 *   bytes. The ceiling of any protocol on top.
 * - tls: the same over `node:tls`, TLS 1.3, with a self-signed P-256 certificate generated in
 *   this run by the `openssl` CLI; the client verifies it (it is the only CA, and the name must
 *   match). Node picks TLS_AES_256_GCM_SHA384.
 * - peapod-aesgcm / peapod-chachapoly: two `NodeHost`s (the real Core) with a pod secret, so the
 *   link runs Noise XXpsk3 with identity proofs, key confirmation and HELLO; then the sender
 *   queues N MiB as DATA (64 MiB streams over one buffer) followed by STATUS, which never
 *   overtakes DATA. The receiver checks that DATA arrives in order without gaps and spot-checks
 *   bytes of every frame against the sender's pattern (the AEAD already authenticated them), and
 *   stops the clock at STATUS.
 * The receiver's clock runs from the first payload byte to the last, so process start-up and
 * handshakes are outside the figure. MB/s is 10^6 bytes of payload per second.
 *
 * Also measured: handshake time, the median over `--handshakes` sequential links from one dialer
 * process to one listener process (TCP connect to `peer:connect`, i.e. Noise XXpsk3 + key
 * confirmation + HELLO; for tls: connect to `secureConnect`).
 *
 * Trials alternate modes (tcp, tls, peapod...) round by round, so drift on this shared machine
 * hits all of them; the report gives medians and ratios of medians. Run it with the glibc
 * tunables of bench/session-aead.ts (the npm script sets them): with them, 64 KiB buffers stop
 * round-tripping through the kernel and runs are steadier.
 *
 * Usage: npx tsc -b && node bench/dist/link.js [--mib N] [--runs N] [--handshakes N] [--json]
 *   [--modes tcp,tls,peapod-aesgcm,peapod-chachapoly] [--window BYTES]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as tls from 'node:tls';
import { createNodeCryptoProvider } from '@peapod/node';
import type { AeadCipher } from '@peapod/core';
import type { NodeHost as NodeHostClass } from '../packages/node/dist/src/node-host.js';
import { makeCertificate, tlsCredentials } from './tls-cert.js';

// `@peapod/node` does not export the host yet (its index is another issue's), so the bench loads
// the compiled module by path: from bench/dist/ at run time, typed from the .d.ts at build time.
const { NodeHost } = (await import(
  new URL('../../packages/node/dist/src/node-host.js', import.meta.url).href
)) as { NodeHost: typeof NodeHostClass };

const MODES = ['tcp', 'tls', 'peapod-aesgcm', 'peapod-chachapoly'] as const;
type Mode = (typeof MODES)[number];

const STREAM_BYTES = 64 * 2 ** 20;
const SOCKET_CHUNK_BYTES = 2 ** 20;
const REQUEST_ID = 1;

interface Options {
  readonly json: boolean;
  readonly totalBytes: number;
  readonly runs: number;
  readonly handshakes: number;
  readonly modes: readonly Mode[];
  readonly windowBytes: number | undefined;
}

function parseArgs(argv: readonly string[]): Options {
  const value = (flag: string, fallback: number): number => {
    const index = argv.indexOf(flag);
    if (index < 0) return fallback;
    const parsed = Number(argv[index + 1]);
    if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`${flag} needs an integer >= 0`);
    return parsed;
  };
  const modesIndex = argv.indexOf('--modes');
  const modes =
    modesIndex < 0 ? MODES : (argv[modesIndex + 1] ?? '').split(',').map((name) => name.trim());
  for (const mode of modes) {
    if (!(MODES as readonly string[]).includes(mode)) throw new Error(`unknown mode ${mode}`);
  }
  const window = value('--window', 0);
  return {
    json: argv.includes('--json'),
    totalBytes: value('--mib', 1024) * 2 ** 20,
    runs: value('--runs', 3),
    handshakes: value('--handshakes', 50),
    modes: modes as Mode[],
    windowBytes: window === 0 ? undefined : window,
  };
}

/** The byte the sender puts at payload offset `offset` (cheap to check at the receiver). */
function patternByte(offset: number): number {
  return (offset * 31 + (offset >>> 11)) & 0xff;
}

function patternBuffer(length: number, baseOffset: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) buffer[i] = patternByte(baseOffset + i);
  return buffer;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

// --- child roles ----------------------------------------------------------------------------

/** What a child tells the parent over IPC. */
type ChildReport =
  | { readonly kind: 'listening'; readonly port: number }
  | { readonly kind: 'received'; readonly bytes: number; readonly seconds: number }
  | { readonly kind: 'handshakes'; readonly ms: number[] }
  | { readonly kind: 'failed'; readonly message: string };

function report(message: ChildReport): void {
  process.send?.(message);
}

interface ChildEnv {
  readonly mode: Mode;
  readonly totalBytes: number;
  readonly port: number;
  readonly secretHex: string;
  readonly certDir: string;
  readonly handshakes: number;
  readonly windowBytes: number | undefined;
}

function readChildEnv(): ChildEnv {
  const env = process.env;
  const window = Number(env['BENCH_WINDOW'] ?? '0');
  return {
    mode: env['BENCH_MODE'] as Mode,
    totalBytes: Number(env['BENCH_BYTES']),
    port: Number(env['BENCH_PORT'] ?? '0'),
    secretHex: env['BENCH_SECRET'] ?? '',
    certDir: env['BENCH_CERT_DIR'] ?? '',
    handshakes: Number(env['BENCH_HANDSHAKES'] ?? '0'),
    windowBytes: window === 0 ? undefined : window,
  };
}

/** Counts bytes on a plain or TLS socket; reports once all have arrived. */
function receiveStream(socket: Socket, totalBytes: number): void {
  let received = 0;
  let startedAt = 0;
  socket.on('data', (bytes: Buffer) => {
    if (received === 0) startedAt = performance.now();
    received += bytes.length;
    if (received >= totalBytes) {
      report({ kind: 'received', bytes: received, seconds: (performance.now() - startedAt) / 1e3 });
      socket.end();
    }
  });
}

/**
 * Writes `totalBytes` in 1 MiB writes, walking through the same 64 MiB source buffer as the
 * PeaPod sender (a source that fits in the CPU cache would flatter the baselines).
 */
async function sendStream(socket: Socket, totalBytes: number): Promise<void> {
  const source = patternBuffer(STREAM_BYTES, 0);
  for (let sent = 0; sent < totalBytes;) {
    const take = Math.min(SOCKET_CHUNK_BYTES, totalBytes - sent);
    const start = sent % STREAM_BYTES;
    sent += take;
    if (!socket.write(source.subarray(start, start + take))) {
      await new Promise((resolve) => socket.once('drain', resolve));
    }
  }
  await new Promise((resolve) => socket.once('close', resolve));
}

function tlsDial(port: number, certDir: string): tls.TLSSocket {
  return tls.connect({
    port,
    host: '127.0.0.1',
    servername: 'localhost',
    ca: tlsCredentials(certDir).cert,
    minVersion: 'TLSv1.3',
  });
}

async function runReceiver(env: ChildEnv): Promise<void> {
  if (env.mode === 'tcp' || env.mode === 'tls') {
    const onSocket = (socket: Socket) => {
      socket.setNoDelay(true);
      receiveStream(socket, env.totalBytes);
    };
    const server =
      env.mode === 'tcp'
        ? createServer(onSocket)
        : tls.createServer({ ...tlsCredentials(env.certDir), minVersion: 'TLSv1.3' }, onSocket);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      report({
        kind: 'listening',
        port: typeof address === 'object' && address ? address.port : 0,
      });
    });
    process.on('disconnect', () => process.exit(0));
    return;
  }
  const crypto = createNodeCryptoProvider();
  const host = new NodeHost({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: new Uint8Array(Buffer.from(env.secretHex, 'hex')),
    deviceName: 'bench-receiver',
    // The handshake-latency phase dials it 50 times from 127.0.0.1, past the per-address limit.
    inboundGuard: false,
  });
  let expectedOffset = 0;
  let startedAt = 0;
  let problem: string | undefined;
  host.on('peer:message', ({ message }) => {
    if (message.type === 'data') {
      if (expectedOffset === 0) startedAt = performance.now();
      const { offset, bytes } = message;
      if (problem === undefined && offset !== expectedOffset) {
        problem = `DATA at offset ${offset}, expected ${expectedOffset}`;
      }
      const last = bytes.length - 1;
      if (
        problem === undefined &&
        (bytes[0] !== patternByte(offset % STREAM_BYTES) ||
          bytes[last] !== patternByte((offset + last) % STREAM_BYTES))
      ) {
        problem = `DATA at offset ${offset} holds the wrong bytes`;
      }
      expectedOffset = offset + bytes.length;
    } else if (message.type === 'status' && message.requestId === REQUEST_ID) {
      const seconds = (performance.now() - startedAt) / 1e3;
      if (problem === undefined && expectedOffset !== env.totalBytes) {
        problem = `STATUS after ${expectedOffset} of ${env.totalBytes} bytes`;
      }
      report(
        problem === undefined
          ? { kind: 'received', bytes: expectedOffset, seconds }
          : { kind: 'failed', message: problem },
      );
      void host.close();
    }
  });
  const { port } = await host.listen(0);
  report({ kind: 'listening', port });
  process.on('disconnect', () => void host.close().then(() => process.exit(0)));
}

async function runSender(env: ChildEnv): Promise<void> {
  if (env.mode === 'tcp' || env.mode === 'tls') {
    const socket =
      env.mode === 'tcp'
        ? connect({ port: env.port, host: '127.0.0.1', noDelay: true })
        : tlsDial(env.port, env.certDir);
    await new Promise((resolve, reject) => {
      socket.once(env.mode === 'tcp' ? 'connect' : 'secureConnect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    await sendStream(socket, env.totalBytes);
    return;
  }
  const crypto = createNodeCryptoProvider();
  const cipher: AeadCipher = env.mode === 'peapod-aesgcm' ? 'AESGCM' : 'ChaChaPoly';
  const host = new NodeHost({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: new Uint8Array(Buffer.from(env.secretHex, 'hex')),
    cipher,
    deviceName: 'bench-sender',
    ...(env.windowBytes === undefined ? {} : { sendWindowBytes: env.windowBytes }),
  });
  const payload = patternBuffer(STREAM_BYTES, 0);
  const connected = new Promise<number>((resolve) =>
    host.once('peer:connect', ({ linkId }) => resolve(linkId)),
  );
  const closed = new Promise((resolve) => host.once('peer:disconnect', resolve));
  await host.dial(env.port);
  const linkId = await connected;
  for (let offset = 0; offset < env.totalBytes; offset += STREAM_BYTES) {
    const take = Math.min(STREAM_BYTES, env.totalBytes - offset);
    const bytes = take === STREAM_BYTES ? payload : payload.subarray(0, take);
    host.send(linkId, { type: 'data', requestId: REQUEST_ID, offset, bytes });
  }
  host.send(linkId, {
    type: 'status',
    requestId: REQUEST_ID,
    status: 0,
    length: env.totalBytes,
    message: '',
  });
  await closed;
  await host.close();
}

/** Dials `env.handshakes` links one after the other; reports each handshake's duration. */
async function runHandshakes(env: ChildEnv): Promise<void> {
  const ms: number[] = [];
  if (env.mode === 'tls') {
    for (let i = 0; i < env.handshakes; i++) {
      const startedAt = performance.now();
      const socket = tlsDial(env.port, env.certDir);
      await new Promise((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      ms.push(performance.now() - startedAt);
      socket.destroy();
    }
    report({ kind: 'handshakes', ms });
    return;
  }
  const crypto = createNodeCryptoProvider();
  const host = new NodeHost({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: new Uint8Array(Buffer.from(env.secretHex, 'hex')),
    cipher: env.mode === 'peapod-aesgcm' ? 'AESGCM' : 'ChaChaPoly',
  });
  for (let i = 0; i < env.handshakes; i++) {
    const startedAt = performance.now();
    const connected = new Promise<number>((resolve) =>
      host.once('peer:connect', ({ linkId }) => resolve(linkId)),
    );
    await host.dial(env.port);
    const linkId = await connected;
    ms.push(performance.now() - startedAt);
    host.closeLink(linkId);
  }
  report({ kind: 'handshakes', ms });
  await host.close();
}

// --- the parent -----------------------------------------------------------------------------

function spawnChild(role: string, env: Record<string, string>): ChildProcess {
  return fork(fileURLToPath(import.meta.url), ['--role', role], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

function nextReport(child: ChildProcess): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`a bench child exited (code ${code}) before reporting`));
    child.once('exit', onExit);
    child.once('message', (message: ChildReport) => {
      child.off('exit', onExit);
      if (message.kind === 'failed') reject(new Error(message.message));
      else resolve(message);
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve()
      : child.once('exit', () => resolve()),
  );
}

async function trial(
  mode: Mode,
  options: Options,
  shared: Record<string, string>,
  role: 'send' | 'handshakes',
): Promise<ChildReport> {
  const env = { ...shared, BENCH_MODE: mode, BENCH_BYTES: String(options.totalBytes) };
  const receiver = spawnChild('receive', env);
  const listening = await nextReport(receiver);
  if (listening.kind !== 'listening') throw new Error('receiver did not listen');
  const sender = spawnChild(role, { ...env, BENCH_PORT: String(listening.port) });
  const result = await nextReport(role === 'send' ? receiver : sender);
  await exited(sender);
  receiver.disconnect();
  await exited(receiver);
  return result;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const certDir = makeCertificate();
  const modes = options.modes.filter((mode) => mode !== 'tls' || certDir !== undefined);
  if (certDir === undefined && options.modes.includes('tls')) {
    console.error('bench:link: the openssl CLI is missing or failed, so tls is skipped');
  }
  const shared: Record<string, string> = {
    BENCH_SECRET: Buffer.from(createNodeCryptoProvider().randomBytes(32)).toString('hex'),
    BENCH_CERT_DIR: certDir ?? '',
    BENCH_HANDSHAKES: String(options.handshakes),
    BENCH_WINDOW: String(options.windowBytes ?? 0),
  };
  const throughput = new Map<Mode, number[]>(modes.map((mode) => [mode, []]));
  const handshakeMs = new Map<Mode, number>();
  try {
    for (let run = 0; run < options.runs; run++) {
      for (const mode of modes) {
        const result = await trial(mode, options, shared, 'send');
        if (result.kind !== 'received') throw new Error(`${mode}: no throughput report`);
        throughput.get(mode)!.push(result.bytes / result.seconds / 1e6);
        if (!options.json) {
          const mbps = (result.bytes / result.seconds / 1e6).toFixed(0);
          console.error(`run ${run + 1} ${mode.padEnd(18)} ${mbps.padStart(5)} MB/s`);
        }
      }
    }
    if (options.handshakes > 0) {
      for (const mode of modes) {
        if (mode === 'tcp') continue;
        const result = await trial(mode, options, shared, 'handshakes');
        if (result.kind !== 'handshakes') throw new Error(`${mode}: no handshake report`);
        handshakeMs.set(mode, median(result.ms));
      }
    }
  } finally {
    if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
  }

  const medians = new Map([...throughput].map(([mode, runs]) => [mode, median(runs)]));
  const tcp = medians.get('tcp');
  const tlsMedian = medians.get('tls');
  const results = [...throughput].map(([mode, runs]) => ({
    mode,
    mbPerSecond: { median: median(runs), runs },
    ratioToTcp: tcp === undefined ? undefined : median(runs) / tcp,
    ratioToTls: tlsMedian === undefined ? undefined : median(runs) / tlsMedian,
    handshakeMsMedian: handshakeMs.get(mode),
  }));
  if (options.json) {
    console.log(
      JSON.stringify(
        {
          benchmark: 'link',
          node: process.version,
          totalBytes: options.totalBytes,
          runs: options.runs,
          handshakes: options.handshakes,
          glibcTunables: process.env['GLIBC_TUNABLES'] ?? null,
          goal: 'peapod / tls >= 0.75',
          results,
        },
        null,
        2,
      ),
    );
    return;
  }
  console.log(
    `One link between two processes on loopback: ${options.totalBytes / 2 ** 20} MiB, ` +
      `${options.runs} runs, medians (Node ${process.version})`,
  );
  for (const result of results) {
    const ratio = (value: number | undefined, name: string) =>
      value === undefined ? '' : `  ${value.toFixed(2)}x ${name}`;
    const handshake =
      result.handshakeMsMedian === undefined
        ? ''
        : `  handshake ${result.handshakeMsMedian.toFixed(2)} ms`;
    console.log(
      `  ${result.mode.padEnd(18)} ${result.mbPerSecond.median.toFixed(0).padStart(5)} MB/s` +
        `${ratio(result.ratioToTcp, 'tcp')}${ratio(result.ratioToTls, 'tls')}${handshake}`,
    );
  }
  console.log('goal: peapod / tls >= 0.75');
}

const roleIndex = process.argv.indexOf('--role');
if (roleIndex < 0) {
  await main();
} else {
  const role = process.argv[roleIndex + 1];
  const env = readChildEnv();
  const run = role === 'receive' ? runReceiver : role === 'send' ? runSender : runHandshakes;
  run(env).catch((error: unknown) => {
    report({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
  });
}
