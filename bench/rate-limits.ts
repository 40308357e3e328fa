/**
 * Bandwidth limits as measured throughput, each next to an unlimited baseline of the same run
 * (the tests assert only what a limit guarantees, a lower bound on time; see
 * packages/node/test/link-limits.test.ts and dev-origin.test.ts).
 *
 * - link: two `NodeHost`s (the real Core, Noise XXpsk3) over loopback TCP with `limitLan`, the
 *   sender queueing `--mib` MiB of DATA: unlimited (the baseline), then `--max-upload RATE` on
 *   the sender, then `--max-download RATE` on the receiver. The clock runs from the first DATA
 *   queued to the last byte received.
 * - origin: the dev origin (dev-origin.ts), unlimited (the baseline) and limited to RATE per
 *   client source address: one address alone, two addresses at once (each its own budget), two
 *   connections from one address (one budget shared).
 * Rounds alternate the modes, so drift on a shared machine hits all of them; the report gives
 * medians. MB/s is 10^6 bytes per second.
 *
 * Usage: npx tsc -b && node bench/dist/rate-limits.js [--rate BYTES_PER_SEC] [--mib N] [--runs N]
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createNodeCryptoProvider, NodeHost } from '@peapod/node';
import type * as DevOriginModule from '../packages/node/dist/src/dev-origin.js';
import type * as RateLimit from '../packages/node/dist/src/rate-limit.js';

// `@peapod/node` does not export these, so the bench loads the compiled modules by path.
const NODE_DIST = new URL('../../packages/node/dist/src/', import.meta.url);
const { createLimits } = (await import(
  new URL('rate-limit.js', NODE_DIST).href
)) as typeof RateLimit;
const { startDevOrigin } = (await import(
  new URL('dev-origin.js', NODE_DIST).href
)) as typeof DevOriginModule;

const MiB = 1024 * 1024;

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: a positive number`);
  return value;
}

const rate = option('rate', 4e6);
const mib = option('mib', 8);
const runs = option('runs', 3);
const crypto = createNodeCryptoProvider();

/** Bytes per second over one link; `limited` says which side, if any, has the limit. */
async function linkRate(limited: 'none' | 'upload' | 'download'): Promise<number> {
  const total = mib * MiB;
  const secret = randomBytes(32);
  const limits =
    limited === 'upload'
      ? createLimits({ maxUploadBytesPerSec: rate, limitLan: true })
      : createLimits({ maxDownloadBytesPerSec: rate, limitLan: true });
  const sender = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    ...(limited === 'upload' ? { limits } : {}),
  });
  const receiver = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    ...(limited === 'download' ? { limits } : {}),
  });
  const { port } = await receiver.listen(0);
  let received = 0;
  const done = new Promise<number>((resolve) =>
    receiver.on('peer:message', ({ message }) => {
      if (message.type !== 'data') return;
      received += message.bytes.length;
      if (received >= total) resolve(performance.now());
    }),
  );
  const connected = new Promise<number>((resolve) =>
    sender.once('peer:connect', ({ linkId }) => resolve(linkId)),
  );
  await sender.dial(port);
  const linkId = await connected;
  const chunk = randomBytes(MiB);
  const startedMs = performance.now();
  for (let offset = 0; offset < total; offset += MiB) {
    sender.send(linkId, { type: 'data', requestId: 1, offset, bytes: chunk });
  }
  const elapsedMs = (await done) - startedMs;
  await sender.close();
  await receiver.close();
  return received / (elapsedMs / 1000);
}

/** GETs `url` from `localAddress`; resolves with the body's length and when it ended. */
function download(url: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, localAddress }, (res) => {
      let bytes = 0;
      res.on('data', (part: Buffer) => (bytes += part.length));
      res.on('end', () => resolve(bytes));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bytes per second of each of `addresses` downloading the object at once. */
async function originRates(url: string, addresses: readonly string[]): Promise<number[]> {
  return Promise.all(
    addresses.map(async (address) => {
      const startedMs = performance.now();
      const bytes = await download(url, address);
      return bytes / ((performance.now() - startedMs) / 1000);
    }),
  );
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const mb = (bytesPerSec: number): string => `${(bytesPerSec / 1e6).toFixed(2)} MB/s`;
const x = (bytesPerSec: number): string => `${(bytesPerSec / rate).toFixed(3)}x the limit`;

const link = { none: [] as number[], upload: [] as number[], download: [] as number[] };
const originSize = Math.max(1, Math.round((mib * MiB) / 2));
const free = await startDevOrigin({ objects: [{ name: 'o.bin', sizeBytes: originSize, seed: 1 }] });
const limited = await startDevOrigin({
  rateBytesPerSec: rate,
  objects: [{ name: 'o.bin', sizeBytes: originSize, seed: 1 }],
});
const origin = {
  free: [] as number[],
  alone: [] as number[],
  twoAddresses: [] as number[],
  oneAddressTwice: [] as number[],
};
try {
  for (let run = 0; run < runs; run++) {
    for (const mode of ['none', 'upload', 'download'] as const)
      link[mode].push(await linkRate(mode));
    origin.free.push(...(await originRates(`${free.url}/o.bin`, ['127.0.0.2'])));
    origin.alone.push(...(await originRates(`${limited.url}/o.bin`, ['127.0.0.2'])));
    const [a, b] = await originRates(`${limited.url}/o.bin`, ['127.0.0.3', '127.0.0.4']);
    origin.twoAddresses.push(a!, b!);
    const shared = await originRates(`${limited.url}/o.bin`, ['127.0.0.5', '127.0.0.5']);
    origin.oneAddressTwice.push(shared[0]! + shared[1]!);
  }
} finally {
  await free.close();
  await limited.close();
}

console.log(`limit ${mb(rate)}, ${runs} runs, medians`);
console.log(`link, ${mib} MiB of DATA over loopback TCP:`);
console.log(`  unlimited (baseline)   ${mb(median(link.none))}`);
console.log(`  --max-upload           ${mb(median(link.upload))}  ${x(median(link.upload))}`);
console.log(`  --max-download         ${mb(median(link.download))}  ${x(median(link.download))}`);
console.log(`dev origin, ${(originSize / MiB).toFixed(1)} MiB per GET:`);
console.log(`  unlimited (baseline)   ${mb(median(origin.free))}`);
console.log(`  one address alone      ${mb(median(origin.alone))}  ${x(median(origin.alone))}`);
console.log(
  `  two addresses at once  ${mb(median(origin.twoAddresses))} each  ${x(median(origin.twoAddresses))}`,
);
console.log(
  `  one address, two GETs  ${mb(median(origin.oneAddressTwice))} together  ${x(median(origin.oneAddressTwice))}`,
);
