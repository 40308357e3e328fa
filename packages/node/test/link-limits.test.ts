/**
 * `--max-upload` / `--max-download` on a real encrypted peer link between two Node hosts over
 * loopback TCP (`limitLan`, since loopback counts as LAN and is otherwise exempt). The measured
 * rate is printed beside the limit; the assertions only catch a limit that is not applied at all
 * or that starves the link (the machine is shared, so no tight timing bounds).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { NodeHost } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { createLimits, isLanAddress } from '../src/rate-limit.js';

const crypto = createNodeCryptoProvider();
const MiB = 1024 * 1024;

async function measure(direction: 'upload' | 'download', rate: number): Promise<number> {
  const total = 8 * MiB;
  const secret = randomBytes(32);
  const limits = createLimits(
    direction === 'upload'
      ? { maxUploadBytesPerSec: rate, limitLan: true }
      : { maxDownloadBytesPerSec: rate, limitLan: true },
  );
  const sender = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    ...(direction === 'upload' ? { limits } : {}),
  });
  const receiver = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: secret,
    ...(direction === 'download' ? { limits } : {}),
  });
  const { port } = await receiver.listen(0);
  let received = 0;
  let firstMs = 0;
  const done = new Promise<number>((resolve) =>
    receiver.on('peer:message', ({ message }) => {
      if (message.type !== 'data') return;
      if (received === 0) firstMs = performance.now();
      received += message.bytes.length;
      if (received >= total) resolve(performance.now() - firstMs);
    }),
  );
  const connected = new Promise<number>((resolve) =>
    sender.once('peer:connect', ({ linkId }) => resolve(linkId)),
  );
  await sender.dial(port);
  const linkId = await connected;
  const chunk = randomBytes(MiB);
  for (let offset = 0; offset < total; offset += MiB) {
    sender.send(linkId, { type: 'data', requestId: 1, offset, bytes: chunk });
  }
  const elapsedMs = await done;
  await sender.close();
  await receiver.close();
  const measured = received / (elapsedMs / 1000);
  console.log(
    `${direction} limit ${(rate / 1e6).toFixed(2)} MB/s: measured ${(measured / 1e6).toFixed(3)} MB/s ` +
      `(${(measured / rate).toFixed(3)}x) over ${(elapsedMs / 1000).toFixed(1)} s`,
  );
  return measured / rate;
}

test('--max-upload limits what a peer link sends', async () => {
  const ratio = await measure('upload', 4e6);
  assert.ok(ratio < 1.5 && ratio > 0.5, `upload at ${ratio.toFixed(2)}x the limit`);
});

test('--max-download limits what a peer link receives', async () => {
  const ratio = await measure('download', 4e6);
  assert.ok(ratio < 1.5 && ratio > 0.5, `download at ${ratio.toFixed(2)}x the limit`);
});

test('LAN addresses are exempt by default (Syncthing rule)', () => {
  for (const lan of ['127.0.0.1', '10.1.2.3', '172.16.0.9', '192.168.1.20', '169.254.3.4', '::1'])
    assert.equal(isLanAddress(lan), true, lan);
  for (const wan of ['8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:1.1.1.1'])
    assert.equal(isLanAddress(wan), false, wan);
  assert.equal(isLanAddress('::ffff:192.168.0.1'), true);
});
