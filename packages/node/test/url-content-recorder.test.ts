/**
 * Keeping a completed download as content (url-content.ts) in a real chunk store (SQLite, files
 * in a temp dir):
 * - a file is chunked in 4 MiB chunks to the content ID the core's Chunker gives its bytes; the
 *   store holds the manifest (origin `url`, not pinned), a verified reference to every chunk in
 *   the user's file (no second copy) and the URL mapping; the core hears `content-available`
 *   and `url-content`;
 * - property (fast-check): for arbitrary sizes around the chunk boundaries the kept content is
 *   the Chunker's, and every chunk reads back verified;
 * - a version the origin cannot revalidate (length-only) is not kept, nor a copy served from the
 *   pod that reads back as another content, nor an empty object, nor a URL over 8 KiB;
 * - a file the user changes afterwards is never served: the verified read drops the reference.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Chunker, CHUNK_SIZE_BYTES_DEFAULT, toHex, type CoreInput } from '@peapod/core';
import fc from 'fast-check';
import pino from 'pino';
import { encodePin, pinFromResponse } from '../src/http/origin-pin.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { ChunkStore } from '../src/store/chunk-store.js';
import { UrlContentRecorder } from '../src/url-content.js';

const crypto = createNodeCryptoProvider();
const logger = pino({ level: 'silent' });
const CHUNK = CHUNK_SIZE_BYTES_DEFAULT;
const URL = 'http://origin.test/object.bin';

function manifestOf(bytes: Uint8Array) {
  const chunker = new Chunker(crypto, { chunkSizeBytes: CHUNK });
  chunker.push(bytes);
  return chunker.finish();
}

describe('UrlContentRecorder', () => {
  let dir: string;
  let store: ChunkStore;
  let fed: CoreInput[];
  let recorder: UrlContentRecorder;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peapod-url-content-'));
    store = await ChunkStore.open({ dir: join(dir, 'store'), budgetBytes: 64 * CHUNK });
    fed = [];
    recorder = new UrlContentRecorder({ store, feed: (input) => fed.push(input), crypto, logger });
  });
  after(async () => {
    store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a copy served from the pod keeps its manifest, and its chunk files become references', async () => {
    const bytes = randomBytes(CHUNK + 999);
    const manifest = manifestOf(bytes);
    // As a pod-served get leaves it: the manifest recorded at download:manifest, every chunk
    // stored as a chunk file, then the output committed.
    store.addContent(manifest, { kind: 'fetched' }, { pinned: false });
    await store.putChunk(manifest.contentId, 0, bytes.subarray(0, CHUNK));
    await store.putChunk(manifest.contentId, 1, bytes.subarray(CHUNK));
    const before = store.usage().storedBytes;
    assert.ok(before >= bytes.length);
    const path = join(dir, 'pod-copy.bin');
    await writeFile(path, bytes);
    const validator = encodePin(pinFromResponse({ etag: '"pod1"' }, bytes.length));
    const url = 'http://origin.test/pod-copy.bin';
    const kept = await recorder.record({
      url,
      validator,
      path,
      headers: [],
      expectedContentId: manifest.contentId,
    });
    assert.equal(toHex(kept!.contentId), toHex(manifest.contentId));
    assert.equal(store.usage().storedBytes, before - bytes.length, 'chunk files freed');
    const row = store.list().find((content) => content.contentId === toHex(manifest.contentId));
    assert.deepEqual(row?.origin, { kind: 'url', url, validator });
    const last = await store.readChunk(manifest.contentId, 1);
    assert.ok(last !== undefined && Buffer.from(last).equals(bytes.subarray(CHUNK)));
  });

  test('a download becomes a referenced, mapped, announced content', async () => {
    const bytes = randomBytes(2 * CHUNK + 4321);
    const path = join(dir, 'object.bin');
    await writeFile(path, bytes);
    const validator = encodePin(pinFromResponse({ etag: '"v1"' }, bytes.length));
    fed.length = 0;
    const manifest = await recorder.record({ url: URL, validator, path, headers: [] });
    assert.ok(manifest !== undefined);
    assert.equal(toHex(manifest.contentId), toHex(manifestOf(bytes).contentId));
    assert.equal(manifest.files, undefined, 'a URL object is a bare content');
    const [row] = store.list().filter((content) => content.contentId === toHex(manifest.contentId));
    assert.deepEqual(row?.origin, { kind: 'url', url: URL, validator });
    assert.equal(row?.pinned, false);
    assert.equal(row?.complete, true);
    assert.equal(store.usage().storedBytes, 0, 'references, not a second copy');
    const second = await store.readChunk(manifest.contentId, 1);
    assert.ok(second !== undefined && Buffer.from(second).equals(bytes.subarray(CHUNK, 2 * CHUNK)));
    assert.deepEqual(
      store.urlContents(URL).map((entry) => [entry.validator, toHex(entry.contentId)]),
      [[validator, toHex(manifest.contentId)]],
    );
    assert.deepEqual(
      fed.map((input) => input.type),
      ['content-available', 'url-content'],
    );

    // The user rewrites the file: the reference fails its check and is dropped, never served.
    await writeFile(path, randomBytes(bytes.length));
    assert.equal(await store.readChunk(manifest.contentId, 0), undefined);
  });

  test('kept contents are the Chunker content of the bytes, for sizes at chunk boundaries', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.integer({ min: 1, max: 3 * CHUNK }),
          fc.constantFrom(1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK),
        ),
        async (size) => {
          const bytes = randomBytes(size);
          const path = join(dir, `sized-${run++}.bin`);
          await writeFile(path, bytes);
          const validator = encodePin(pinFromResponse({ etag: `"s${run}"` }, size));
          const url = `http://origin.test/sized-${run}.bin`;
          const manifest = await recorder.record({ url, validator, path, headers: [] });
          assert.equal(toHex(manifest!.contentId), toHex(manifestOf(bytes).contentId));
          const last = manifest!.chunkHashes.length - 1;
          const chunk = await store.readChunk(manifest!.contentId, last);
          assert.ok(chunk !== undefined && Buffer.from(chunk).equals(bytes.subarray(last * CHUNK)));
        },
      ),
      { numRuns: 12, verbose: true },
    );
  });

  test('what the origin cannot revalidate, an empty object, another content, a long URL: not kept', async () => {
    const bytes = randomBytes(1000);
    const path = join(dir, 'other.bin');
    await writeFile(path, bytes);
    const url = 'http://origin.test/other.bin';
    fed.length = 0;
    const lengthOnly = encodePin(pinFromResponse({}, bytes.length));
    assert.equal(
      await recorder.record({ url, validator: lengthOnly, path, headers: [] }),
      undefined,
    );
    const strong = encodePin(pinFromResponse({ etag: '"o1"' }, bytes.length));
    const expectedContentId = new Uint8Array(32).fill(9);
    assert.equal(
      await recorder.record({ url, validator: strong, path, expectedContentId, headers: [] }),
      undefined,
    );
    const long = `http://origin.test/${'x'.repeat(8192)}`;
    assert.equal(
      await recorder.record({ url: long, validator: strong, path, headers: [] }),
      undefined,
    );
    assert.deepEqual(store.urlContents(long), []);
    const empty = join(dir, 'empty.bin');
    await writeFile(empty, '');
    assert.equal(
      await recorder.record({ url, validator: strong, path: empty, headers: [] }),
      undefined,
    );
    assert.deepEqual(store.urlContents(url), []);
    assert.deepEqual(fed, []);
  });
});
