/**
 * The peers cache (peer-book.ts): peers.json is read back as the rows it was saved with, and any
 * text at all in it (torn, edited, hostile) gives only well-formed rows, never an error: the
 * daemon feeds each row to its core as `peer-discovered`, so a bad row must not get that far.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { loadPeersCache, savePeersCache } from '../src/peer-book.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-peer-book-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const own = 'aa'.repeat(32);

test('saved rows load back; this device and malformed rows are left out', async () => {
  const dir = await mkdtemp(join(root, 'save-'));
  const peer = { deviceId: new Uint8Array(32).fill(0xbb), address: '192.0.2.7', port: 9000 };
  const self = { deviceId: new Uint8Array(32).fill(0xaa), address: '192.0.2.8', port: 9000 };
  await savePeersCache(dir, [peer, self]);
  assert.deepEqual(await loadPeersCache(dir, own), [peer]);
});

test('property: any peers.json text gives well-formed rows, never an error', async () => {
  const dir = await mkdtemp(join(root, 'fuzz-'));
  const row = fc.record({
    deviceId: fc.oneof(fc.string(), fc.constant('bb'.repeat(32)), fc.constant(own)),
    address: fc.oneof(fc.string(), fc.integer()),
    port: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.double(), fc.string()),
  });
  const text = fc.oneof(
    fc.string(),
    fc.json(),
    fc.array(fc.oneof(row, fc.anything())).map((rows) => JSON.stringify(rows)),
  );
  await fc.assert(
    fc.asyncProperty(text, async (contents) => {
      await writeFile(join(dir, 'peers.json'), contents);
      const rows = await loadPeersCache(dir, own);
      for (const { deviceId, address, port } of rows) {
        assert.equal(deviceId.length, 32);
        assert.notEqual(Buffer.from(deviceId).toString('hex'), own);
        assert.equal(typeof address, 'string');
        assert.ok(Number.isInteger(port) && port > 0 && port < 65536);
      }
    }),
    { numRuns: 300 },
  );
});
