/**
 * Memory per idle peer link (`npm run bench:link-idle`): one dialer process opens `--links` links
 * (default 200) to one listener process on loopback and leaves them idle; each process reports
 * its memory growth per link, next to the same figure for raw TCP sockets and `node:tls` 1.3
 * connections measured in the same run.
 *
 * Each process takes its baseline after a full GC, once it is listening (or before dialing), and
 * measures again after every link is up (for PeaPod: `peer:connect`, i.e. handshake and HELLO
 * done; for tls: `secureConnect`), after 300 ms of quiet and another full GC. Figures per link:
 * heap (V8 heap used), external (ArrayBuffers and other off-heap memory V8 knows of) and RSS
 * (everything, including OpenSSL and kernel-side allocations of the process; noisy).
 *
 * Usage: npx tsc -b && node --expose-gc bench/dist/link-idle.js [--links N] [--json]
 * Measured here (200 links): PeaPod ~10 KiB of V8 heap + 0.6 KiB external and ~38 KiB RSS per
 * link on each side; node:tls ~5 KiB heap + 2 KiB external and 44-66 KiB RSS.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as tls from 'node:tls';
import { createNodeCryptoProvider } from '@peapod/node';
import type { NodeHost as NodeHostClass } from '../packages/node/dist/src/node-host.js';
import { makeCertificate, tlsCredentials } from './tls-cert.js';

// As in bench/link.ts: `@peapod/node` does not export the host yet, so load it by path.
const { NodeHost } = (await import(
  new URL('../../packages/node/dist/src/node-host.js', import.meta.url).href
)) as { NodeHost: typeof NodeHostClass };

const MODES = ['tcp', 'tls', 'peapod'] as const;
type Mode = (typeof MODES)[number];

interface Memory {
  readonly heap: number;
  readonly external: number;
  readonly rss: number;
}

type ChildReport =
  | { readonly kind: 'listening'; readonly port: number }
  | { readonly kind: 'memory'; readonly perLink: Memory }
  | { readonly kind: 'failed'; readonly message: string };

async function settledMemory(): Promise<Memory> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, external: usage.external + usage.arrayBuffers, rss: usage.rss };
}

function perLink(before: Memory, after: Memory, links: number): Memory {
  return {
    heap: (after.heap - before.heap) / links,
    external: (after.external - before.external) / links,
    rss: (after.rss - before.rss) / links,
  };
}

function report(message: ChildReport): void {
  process.send?.(message);
}

function podHost(secretHex: string): NodeHostClass {
  const crypto = createNodeCryptoProvider();
  return new NodeHost({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: new Uint8Array(Buffer.from(secretHex, 'hex')),
    // Every link comes from 127.0.0.1 on purpose; the per-address handshake limit would refuse it.
    inboundGuard: false,
  });
}

async function runListener(mode: Mode, links: number, secretHex: string, certDir: string) {
  const kept: Socket[] = [];
  let connected = 0;
  let host: NodeHostClass | undefined;
  let port: number;
  if (mode === 'peapod') {
    host = podHost(secretHex);
    host.on('peer:connect', () => connected++);
    port = (await host.listen(0)).port;
  } else {
    const onSocket = (socket: Socket) => {
      kept.push(socket);
      connected++;
    };
    const server =
      mode === 'tcp'
        ? createServer(onSocket)
        : tls.createServer({ ...tlsCredentials(certDir), minVersion: 'TLSv1.3' }, onSocket);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  }
  const before = await settledMemory();
  report({ kind: 'listening', port });
  process.on('message', async () => {
    // The dialer saw every link up; wait until this side has them all too.
    while (connected < links) await new Promise((resolve) => setTimeout(resolve, 10));
    report({ kind: 'memory', perLink: perLink(before, await settledMemory(), links) });
  });
  process.on('disconnect', () => process.exit(0));
}

async function runDialer(
  mode: Mode,
  links: number,
  port: number,
  secretHex: string,
  certDir: string,
) {
  const kept: Socket[] = [];
  const before = await settledMemory();
  if (mode === 'peapod') {
    const host = podHost(secretHex);
    let connected = 0;
    const all = new Promise<void>((resolve) =>
      host.on('peer:connect', () => ++connected === links && resolve()),
    );
    for (let i = 0; i < links; i++) await host.dial(port);
    await all;
  } else {
    for (let i = 0; i < links; i++) {
      const socket =
        mode === 'tcp'
          ? connect({ port, host: '127.0.0.1' })
          : tls.connect({
              port,
              host: '127.0.0.1',
              servername: 'localhost',
              ca: tlsCredentials(certDir).cert,
              minVersion: 'TLSv1.3',
            });
      await new Promise((resolve) =>
        socket.once(mode === 'tcp' ? 'connect' : 'secureConnect', resolve),
      );
      kept.push(socket);
    }
  }
  report({ kind: 'memory', perLink: perLink(before, await settledMemory(), links) });
  process.on('disconnect', () => process.exit(0));
}

function nextReport(child: ChildProcess): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    child.once('message', (message: ChildReport) =>
      message.kind === 'failed' ? reject(new Error(message.message)) : resolve(message),
    );
    child.once('exit', (code) => reject(new Error(`a bench child exited (code ${code})`)));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const linksIndex = argv.indexOf('--links');
  const links = linksIndex < 0 ? 200 : Number(argv[linksIndex + 1]);
  const certDir = makeCertificate();
  if (certDir === undefined) throw new Error('openssl is needed for the node:tls baseline');
  const secretHex = Buffer.from(createNodeCryptoProvider().randomBytes(32)).toString('hex');
  const results: { mode: Mode; dialer: Memory; listener: Memory }[] = [];
  try {
    for (const mode of MODES) {
      const env = { ...process.env, IDLE_MODE: mode, IDLE_LINKS: String(links) };
      const args = (role: string) => ['--role', role, secretHex, certDir];
      const options = {
        env,
        execArgv: ['--expose-gc'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as ['ignore', 'inherit', 'inherit', 'ipc'],
      };
      const listener = fork(fileURLToPath(import.meta.url), args('listen'), options);
      const listening = await nextReport(listener);
      if (listening.kind !== 'listening') throw new Error('listener did not listen');
      const dialer = fork(fileURLToPath(import.meta.url), args('dial'), {
        ...options,
        env: { ...env, IDLE_PORT: String(listening.port) },
      });
      const dialerReport = await nextReport(dialer);
      listener.send('measure');
      const listenerReport = await nextReport(listener);
      if (dialerReport.kind !== 'memory' || listenerReport.kind !== 'memory') {
        throw new Error('no memory report');
      }
      results.push({ mode, dialer: dialerReport.perLink, listener: listenerReport.perLink });
      dialer.kill();
      listener.kill();
    }
  } finally {
    rmSync(certDir, { recursive: true, force: true });
  }
  if (argv.includes('--json')) {
    console.log(JSON.stringify({ benchmark: 'link-idle', links, results }, null, 2));
    return;
  }
  console.log(`Memory per idle link, ${links} links between two processes (bytes per link)`);
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1).padStart(6)} KiB`;
  const tlsResult = results.find((result) => result.mode === 'tls');
  for (const { mode, dialer, listener } of results) {
    const total = (m: Memory) => m.heap + m.external;
    const ratio =
      tlsResult === undefined
        ? ''
        : `  heap+external ${(total(dialer) / total(tlsResult.dialer)).toFixed(2)}x tls`;
    console.log(
      `  ${mode.padEnd(7)} dialer: heap ${kib(dialer.heap)} external ${kib(dialer.external)} ` +
        `rss ${kib(dialer.rss)} | listener: heap ${kib(listener.heap)} external ` +
        `${kib(listener.external)} rss ${kib(listener.rss)}${ratio}`,
    );
  }
}

const roleIndex = process.argv.indexOf('--role');
if (roleIndex < 0) {
  await main();
} else {
  const [role, secretHex, certDir] = process.argv.slice(roleIndex + 1);
  const mode = process.env['IDLE_MODE'] as Mode;
  const links = Number(process.env['IDLE_LINKS']);
  const run =
    role === 'listen'
      ? runListener(mode, links, secretHex!, certDir!)
      : runDialer(mode, links, Number(process.env['IDLE_PORT']), secretHex!, certDir!);
  run.catch((error: unknown) => {
    report({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
  });
}
