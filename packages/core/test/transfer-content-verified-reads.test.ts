/**
 * `chunk-read.verified` (DESIGN.md decision 15, one SHA-256 pass): a host whose store verifies
 * every read says so, and the core then neither hashes the bytes again before serving them nor
 * before delivering a stored chunk; without the flag it checks them itself. Counted with a
 * crypto provider that tallies the bytes each node's SHA-256 sees, between real Cores (mesh).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { Mesh } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

/** A provider that counts the bytes hashed with SHA-256 (one-shot and incremental). */
function countingCrypto(seed: number): { crypto: CryptoProvider; hashed: () => number } {
  const inner = deterministicCrypto(seed);
  let bytes = 0;
  const crypto: CryptoProvider = {
    ...inner,
    sha256: (data) => {
      bytes += data.length;
      return inner.sha256(data);
    },
    createSha256: () => {
      const hasher = inner.createSha256();
      return {
        update: (data) => {
          bytes += data.length;
          hasher.update(data);
        },
        digest: () => hasher.digest(),
      };
    },
  };
  return { crypto, hashed: () => bytes };
}

/** SHA-256 bytes the seed (node 1) hashed while serving the whole content once to node 0. */
function servingHashBytes(verifiedReads: boolean): number {
  const data = testBytes(4 * CHUNK + 77, 9);
  const manifest = manifestOf(data);
  const seed = countingCrypto(901);
  const mesh = new Mesh([{}, { crypto: seed.crypto, verifiedReads }]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  const before = seed.hashed();
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId, manifest },
  });
  mesh.runUntil(
    () => mesh.eventsOf(0, 'download:complete').some((e) => e.downloadId === 1),
    60_000,
  );
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  return seed.hashed() - before;
}

test('a read the host verified is served without a second SHA-256 pass; one it did not, is checked', () => {
  const size = 4 * CHUNK + 77;
  const trusted = servingHashBytes(true);
  const checked = servingHashBytes(false);
  // Without the flag the seed hashes every chunk it serves (at least the content once); with it,
  // far less than one chunk (the handshake's and the records' own hashing only).
  assert.ok(checked >= size, `unflagged reads hashed ${checked} bytes, less than the ${size}`);
  assert.ok(trusted < CHUNK, `verified reads still hashed ${trusted} bytes`);
});
