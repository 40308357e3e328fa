/**
 * SecureSession transport throughput against raw node:crypto AEAD, measured in the same run.
 *
 * Both sides seal and open the same bytes (default 1 GiB) in frames of the largest plaintext a
 * record takes (65535 - 16 = 65519 bytes):
 * - session: two open SecureSessions on the Node provider; per frame `sealParts` (the zero-copy
 *   seal a peer link uses for DATA), the pieces gathered into a reused wire buffer as a socket
 *   would, `receiveRecord` on the other side, `poll` the message. This is everything a peer link
 *   does per record apart from framing and the socket, plus a copy standing in for the socket.
 *   (Before `sealParts`, `send` returned ciphertext and tag joined by the provider, a copy Node
 *   forces; that path measured session/raw 0.85 for ChaChaPoly and 0.80 for AESGCM.)
 * - raw: per frame `createCipheriv` with a counter nonce, `update`, `final`, `getAuthTag`, then
 *   `createDecipheriv`, `setAuthTag`, `update`, `final`. No copy to join ciphertext and tag, so
 *   this is the cheapest way node:crypto can do the same work: a strict baseline.
 * - provider: the Node provider's `aeadSeal`/`aeadOpen` called directly with the same nonces.
 *   It sits between the two: provider/raw is the cost of `aeadSeal` returning ciphertext and tag
 *   as one array (a copy Node forces, which the link's path avoids).
 * Each suite (ChaChaPoly, AESGCM) is warmed up, then measured `--runs` times (default 3),
 * alternating session and raw so drift hits both; the report uses the median and the best run.
 * The design goal is session/raw >= 0.90 (at most 10% overhead over raw AEAD).
 *
 * Usage: npx tsc -b && node bench/dist/session-aead.js [--json] [--mib N] [--runs N]
 * MB/s means 10^6 bytes per second of plaintext sealed and opened.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  SESSION_MAX_PLAINTEXT_BYTES,
  SecureSession,
  type AeadCipher,
  type CryptoProvider,
  type NoiseSuiteName,
} from '@peapod/core';
import { createNodeCryptoProvider } from '@peapod/node';

interface Options {
  readonly json: boolean;
  readonly totalBytes: number;
  readonly runs: number;
}

function parseArgs(argv: readonly string[]): Options {
  const value = (flag: string, fallback: number): number => {
    const index = argv.indexOf(flag);
    if (index < 0) return fallback;
    const parsed = Number(argv[index + 1]);
    if (!Number.isInteger(parsed) || parsed <= 0)
      throw new Error(`${flag} needs a positive integer`);
    return parsed;
  };
  return {
    json: argv.includes('--json'),
    totalBytes: value('--mib', 1024) * 2 ** 20,
    runs: value('--runs', 3),
  };
}

const FRAME_BYTES = SESSION_MAX_PLAINTEXT_BYTES;

/** Frame lengths covering exactly `totalBytes`: full frames and one shorter last frame. */
function frameLengths(totalBytes: number): number[] {
  const lengths = new Array<number>(Math.floor(totalBytes / FRAME_BYTES)).fill(FRAME_BYTES);
  if (totalBytes % FRAME_BYTES !== 0) lengths.push(totalBytes % FRAME_BYTES);
  return lengths;
}

function openPair(suite: NoiseSuiteName): [SecureSession, SecureSession] {
  const crypto = createNodeCryptoProvider();
  const psk = suite.includes('psk') ? { psk: crypto.randomBytes(32) } : {};
  const a = new SecureSession({
    role: 'initiator',
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    suite,
    ...psk,
  });
  const b = new SecureSession({
    role: 'responder',
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    allowedSuites: [suite],
    ...psk,
  });
  a.start();
  for (let moved = true; moved;) {
    moved = false;
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      for (let event = from.poll(); event !== undefined; event = from.poll()) {
        if (event.type === 'transmit') {
          to.receiveRecord(event.record);
          moved = true;
        }
      }
    }
  }
  if (a.state !== 'open' || b.state !== 'open') throw new Error(`handshake failed for ${suite}`);
  return [a, b];
}

/**
 * Seconds to seal and open every frame through the sessions, as a peer link does it: `sealParts`
 * (the record comes back as Node's ciphertext buffer and the tag, never joined in JavaScript),
 * the pieces gathered into one reused wire buffer (the stand-in for the socket, which copies
 * them anyway), `receiveRecord`, `poll` the message. Checks every byte count.
 */
function runSession(
  sender: SecureSession,
  receiver: SecureSession,
  source: Uint8Array,
  lengths: readonly number[],
): number {
  // The "socket": a reused buffer the record's pieces are gathered into, as the kernel gathers
  // a writev into one byte stream that the receiver reads contiguously.
  const wire = new Uint8Array(SESSION_MAX_PLAINTEXT_BYTES + 16);
  const start = performance.now();
  let received = 0;
  for (const length of lengths) {
    const pieces = sender.sealParts([source.subarray(0, length)]);
    let recordLength = 0;
    for (const piece of pieces) {
      wire.set(piece, recordLength);
      recordLength += piece.length;
    }
    receiver.receiveRecord(wire.subarray(0, recordLength));
    const message = receiver.poll();
    if (message?.type !== 'message') throw new Error('expected a message');
    received += message.plaintext.length;
  }
  const seconds = (performance.now() - start) / 1000;
  if (received !== lengths.reduce((sum, length) => sum + length, 0)) throw new Error('bytes lost');
  return seconds;
}

/** Seconds for the same work with node:crypto directly (see the module comment). */
function runRaw(
  cipher: 'chacha20-poly1305' | 'aes-256-gcm',
  source: Uint8Array,
  lengths: readonly number[],
): number {
  const key = new Uint8Array(32).fill(0x42);
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  const littleEndian = cipher === 'chacha20-poly1305';
  const start = performance.now();
  let received = 0;
  let counter = 0;
  for (const length of lengths) {
    // Noise nonce layout: 4 zero bytes, then the counter (LE for ChaChaPoly, BE for AESGCM).
    view.setUint32(littleEndian ? 4 : 8, counter, littleEndian);
    counter++;
    const sealer = createCipheriv(cipher as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
    const ciphertext = sealer.update(source.subarray(0, length));
    sealer.final();
    const tag = sealer.getAuthTag();
    const opener = createDecipheriv(cipher as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
    opener.setAuthTag(tag);
    const plaintext = opener.update(ciphertext);
    opener.final();
    received += plaintext.length;
  }
  const seconds = (performance.now() - start) / 1000;
  if (received !== lengths.reduce((sum, length) => sum + length, 0)) throw new Error('bytes lost');
  return seconds;
}

/** Seconds for the same work through the provider's AEAD calls, without the session. */
function runProvider(
  crypto: CryptoProvider,
  cipher: AeadCipher,
  source: Uint8Array,
  lengths: readonly number[],
): number {
  const key = new Uint8Array(32).fill(0x42);
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  const littleEndian = cipher === 'ChaChaPoly';
  const ad = new Uint8Array(0);
  const start = performance.now();
  let received = 0;
  let counter = 0;
  for (const length of lengths) {
    view.setUint32(littleEndian ? 4 : 8, counter, littleEndian);
    counter++;
    const sealed = crypto.aeadSeal(cipher, key, nonce, ad, source.subarray(0, length));
    const opened = crypto.aeadOpen(cipher, key, nonce, ad, sealed);
    if (opened === undefined) throw new Error('provider failed to open its own record');
    received += opened.length;
  }
  const seconds = (performance.now() - start) / 1000;
  if (received !== lengths.reduce((sum, length) => sum + length, 0)) throw new Error('bytes lost');
  return seconds;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

interface SuiteResult {
  readonly suite: NoiseSuiteName;
  readonly sessionMBps: { readonly median: number; readonly best: number; readonly runs: number[] };
  readonly providerMBps: {
    readonly median: number;
    readonly best: number;
    readonly runs: number[];
  };
  readonly rawMBps: { readonly median: number; readonly best: number; readonly runs: number[] };
  /** session / raw, medians: the figure the design goal is about. */
  readonly ratio: number;
  /** session / raw, best runs. */
  readonly ratioBest: number;
  /** session / provider, medians: the session's own overhead. */
  readonly ratioSessionToProvider: number;
  /** provider / raw, medians: the provider's overhead. */
  readonly ratioProviderToRaw: number;
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const source = new Uint8Array(FRAME_BYTES).map((_, i) => (i * 2654435761) >>> 24);
  const lengths = frameLengths(options.totalBytes);
  const warmupLengths = frameLengths(Math.min(options.totalBytes, 128 * 2 ** 20));
  const suites = [
    ['Noise_XX_25519_ChaChaPoly_SHA256', 'ChaChaPoly', 'chacha20-poly1305'],
    ['Noise_XX_25519_AESGCM_SHA256', 'AESGCM', 'aes-256-gcm'],
  ] as const;
  const crypto = createNodeCryptoProvider();
  const results: SuiteResult[] = [];
  for (const [suite, cipher, rawCipher] of suites) {
    const [a, b] = openPair(suite);
    runSession(a, b, source, warmupLengths);
    runProvider(crypto, cipher, source, warmupLengths);
    runRaw(rawCipher, source, warmupLengths);
    const session: number[] = [];
    const provider: number[] = [];
    const raw: number[] = [];
    const mbps = (seconds: number) => options.totalBytes / seconds / 1e6;
    for (let run = 0; run < options.runs; run++) {
      session.push(mbps(runSession(a, b, source, lengths)));
      provider.push(mbps(runProvider(crypto, cipher, source, lengths)));
      raw.push(mbps(runRaw(rawCipher, source, lengths)));
    }
    const summary = (runs: number[]) => ({ median: median(runs), best: Math.max(...runs), runs });
    const sessionMBps = summary(session);
    const providerMBps = summary(provider);
    const rawMBps = summary(raw);
    results.push({
      suite,
      sessionMBps,
      providerMBps,
      rawMBps,
      ratio: sessionMBps.median / rawMBps.median,
      ratioBest: sessionMBps.best / rawMBps.best,
      ratioSessionToProvider: sessionMBps.median / providerMBps.median,
      ratioProviderToRaw: providerMBps.median / rawMBps.median,
    });
  }

  if (options.json) {
    const report = {
      benchmark: 'session-aead',
      node: process.version,
      totalBytes: options.totalBytes,
      frameBytes: FRAME_BYTES,
      runs: options.runs,
      goal: 'session/raw >= 0.90',
      results,
    };
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const mib = options.totalBytes / 2 ** 20;
  console.log(
    `SecureSession vs raw node:crypto AEAD: ${mib} MiB sealed + opened in ${FRAME_BYTES}-byte frames, ` +
      `${options.runs} runs (Node ${process.version})`,
  );
  const f = (n: number) => n.toFixed(0).padStart(5);
  for (const result of results) {
    console.log(result.suite);
    for (const [label, figures] of [
      ['session', result.sessionMBps],
      ['provider', result.providerMBps],
      ['raw node:crypto', result.rawMBps],
    ] as const) {
      console.log(
        `  ${label.padEnd(16)} ${f(figures.median)} MB/s median, ${f(figures.best)} best`,
      );
    }
    console.log(
      `  session/raw ${result.ratio.toFixed(3)} (best/best ${result.ratioBest.toFixed(3)}); ` +
        `session/provider ${result.ratioSessionToProvider.toFixed(3)}, ` +
        `provider/raw ${result.ratioProviderToRaw.toFixed(3)}`,
    );
  }
  console.log('goal: session/raw >= 0.90 (at most 10% overhead)');
}

main();
