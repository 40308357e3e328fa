/**
 * `npm start`: PeaPod's link layer, end to end, on one machine with nothing to set up.
 *
 * Two PeaPod nodes in two processes share a freshly generated pod secret. The sender listens on a
 * loopback port; the receiver (a child process) dials it. They run the Noise XXpsk3 handshake
 * over real TCP, exchange HELLO, and the sender streams N MiB of random bytes as DATA frames
 * (AEAD-sealed records, paced by the send window), then STATUS, which never overtakes DATA. The
 * receiver hashes what arrives and, on STATUS, sends the SHA-256 it computed in an RPC; the
 * sender checks it against its own. Printed: each
 * side's Device ID, handshake time, throughput and the verdict.
 *
 * This is a demonstration of the secure link, not the pooled download: `peapod demo` (next
 * issue) will show that.
 *
 * Usage: node packages/node/dist/src/demo-link.js [--mib N] [--json]
 */
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { formatDeviceId, toHex, type CoreEvent } from '@peapod/core';
import { NodeHost } from './node-host.js';
import { createNodeCryptoProvider } from './node-crypto-provider.js';

const REQUEST_ID = 1;
const PROGRESS_STEP = 8 * 1024 * 1024;

interface Args {
  readonly mib: number;
  readonly json: boolean;
  readonly role: 'sender' | 'receiver';
}

function parseArgs(argv: readonly string[]): Args {
  let mib = 256;
  let json = false;
  let role: Args['role'] = 'sender';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--mib') {
      mib = Number(argv[++i]);
      if (!Number.isInteger(mib) || mib < 1 || mib > 4096)
        usage(`--mib needs a whole number from 1 to 4096`);
    } else if (arg === '--json') json = true;
    else if (arg === '--receiver') role = 'receiver';
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return { mib, json, role };
}

function usage(problem?: string): never {
  if (problem !== undefined) console.error(`demo-link: ${problem}\n`);
  console.error('Usage: npm start -- [--mib N] [--json]\n');
  console.error('Runs two PeaPod nodes on loopback, connects them over an encrypted link and');
  console.error('streams N MiB (default 256) from one to the other, verifying the SHA-256.');
  process.exit(problem === undefined ? 0 : 2);
}

function once<E extends CoreEvent['type']>(
  host: NodeHost,
  type: E,
): Promise<Extract<CoreEvent, { type: E }>> {
  return new Promise((resolve) => host.once(type, resolve as never));
}

/** The child process: dials the sender, hashes DATA, answers the sender's RPC with the digest. */
async function runReceiver(port: number, podSecret: Uint8Array): Promise<void> {
  const crypto = createNodeCryptoProvider();
  const host = new NodeHost({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret,
    deviceName: 'receiver',
  });
  const hash = createHash('sha256');
  let received = 0;
  host.on('peer:message', ({ linkId, message }) => {
    if (message.type === 'data' && message.requestId === REQUEST_ID) {
      hash.update(message.bytes);
      const before = received;
      received += message.bytes.length;
      if (Math.floor(before / PROGRESS_STEP) !== Math.floor(received / PROGRESS_STEP)) {
        process.send?.({ received });
      }
    } else if (message.type === 'status' && message.requestId === REQUEST_ID) {
      // STATUS travels behind the request's DATA, so every byte has arrived: report the digest.
      const body = new Uint8Array(hash.digest());
      host.send(linkId, { type: 'rpc-request', callId: 1, method: 'digest', body });
      process.send?.({ received });
    }
  });
  host.on('peer:disconnect', () => void host.close().then(() => process.exit(0)));
  await host.dial(port);
}

async function runSender(args: Args): Promise<void> {
  const crypto = createNodeCryptoProvider();
  const podSecret = randomBytes(32);
  const identity = crypto.ed25519GenerateKeyPair();
  const host = new NodeHost({ crypto, identity, podSecret, deviceName: 'sender' });
  const { port } = await host.listen(0);
  const log = (line: string) => args.json || console.log(line);
  log(
    `sender   ${formatDeviceId(crypto.sha256(identity.publicKey))}  listening on 127.0.0.1:${port}`,
  );

  const startedAt = performance.now();
  const child = fork(fileURLToPath(import.meta.url), ['--receiver'], {
    env: { ...process.env, PEAPOD_DEMO_PORT: String(port), PEAPOD_DEMO_SECRET: toHex(podSecret) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const connected = await once(host, 'peer:connect');
  const handshakeMs = performance.now() - startedAt;
  log(
    `receiver ${formatDeviceId(connected.remote.deviceId)}  connected (process start + Noise XXpsk3 + HELLO: ${handshakeMs.toFixed(1)} ms)`,
  );

  const total = args.mib * 1024 * 1024;
  const payload = randomBytes(total);
  const expected = createHash('sha256').update(payload).digest('hex');
  const sendStart = performance.now();
  host.send(connected.linkId, { type: 'data', requestId: REQUEST_ID, offset: 0, bytes: payload });
  host.send(connected.linkId, {
    type: 'status',
    requestId: REQUEST_ID,
    status: 0,
    length: total,
    message: '',
  });
  child.on('message', (report: { received: number }) => {
    if (args.json || !process.stderr.isTTY) return;
    const percent = Math.floor((100 * report.received) / total);
    const bar = '#'.repeat(Math.floor(percent / 4)).padEnd(25, '.');
    process.stderr.write(`\r[${bar}] ${percent}% of ${args.mib} MiB`);
    if (report.received === total) process.stderr.write('\n');
  });
  const answer = await new Promise<Uint8Array>((resolve) =>
    host.on('peer:message', ({ message }) => {
      if (message.type === 'rpc-request' && message.method === 'digest') resolve(message.body);
    }),
  );
  const seconds = (performance.now() - sendStart) / 1000;
  const actual = toHex(answer);
  const ok = actual === expected;
  const mbPerSecond = total / 1e6 / seconds;
  if (args.json) {
    console.log(
      JSON.stringify({
        ok,
        bytes: total,
        seconds,
        mbPerSecond,
        handshakeMs,
        sha256: expected,
        receiverSha256: actual,
      }),
    );
  } else {
    log(
      `sent ${args.mib} MiB in ${seconds.toFixed(2)} s: ${mbPerSecond.toFixed(0)} MB/s over one encrypted link`,
    );
    log(`sha256 sent     ${expected}`);
    log(`sha256 received ${actual}  ${ok ? 'MATCH' : 'MISMATCH'}`);
  }
  await host.close();
  await new Promise((resolve) =>
    child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
  );
  process.exitCode = ok ? 0 : 1;
}

const args = parseArgs(process.argv.slice(2));
if (args.role === 'receiver') {
  const port = Number(process.env['PEAPOD_DEMO_PORT']);
  const secret = Buffer.from(process.env['PEAPOD_DEMO_SECRET'] ?? '', 'hex');
  await runReceiver(port, new Uint8Array(secret));
} else {
  await runSender(args);
}
