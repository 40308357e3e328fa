/**
 * Tree manifests (manifest version 2, docs/content.md "Trees"):
 * 1. golden vectors (test/vectors/content-tree-v1.json, computed with Python hashlib from the
 *    spec): bytes -> Chunker.finish(files) -> ID and encoding; encoding -> decodeManifest;
 *    fileRanges and chunksOfFiles; chunk proofs against a tree's ID;
 * 2. every file table rule, each checked twice: createManifest throws invalid argument, and the
 *    same table written by hand makes decodeManifest fail with the expected reason;
 * 3. fast-check: create/encode/decode round trip; decode never throws on arbitrary bytes or on
 *    mutations of valid encodings (and what it accepts re-encodes identically); chunksOfFiles
 *    against a brute-force model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { fromHex, toHex, utf8Encode } from '../src/bytes.js';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import { Chunker } from '../src/content/chunker.js';
import { computeContentId, verifyChunkProof } from '../src/content/content-id.js';
import {
  chunksOfFiles,
  FILE_COUNT_MAX,
  FILE_TABLE_BYTES_MAX,
  fileRanges,
  treePathProblem,
  type ManifestFile,
} from '../src/content/file-table.js';
import {
  createManifest,
  decodeManifest,
  encodeManifest,
  MANIFEST_BYTES_MAX,
  type Manifest,
} from '../src/content/manifest.js';
import { buildMerkleTree } from '../src/content/merkle.js';
import type { IndexRange } from '../src/wire/messages.js';

const noble = createNobleCryptoProvider({
  randomBytes: () => {
    throw new Error('the content layer must not draw randomness');
  },
});
const node: CryptoProvider = {
  ...noble,
  name: 'node:crypto sha256 (test)',
  sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
  createSha256() {
    const hash = createHash('sha256');
    return {
      update: (data) => void hash.update(data),
      digest: () => new Uint8Array(hash.digest()),
    };
  },
};
const crypto = noble;
const KIB64 = 65_536;

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  assert.ok(bytes !== undefined, `bad hex: ${text}`);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. Golden vectors

interface TreeVector {
  readonly name: string;
  readonly totalBytes: number;
  readonly chunkSizeBytes: number;
  readonly files: ManifestFile[];
  readonly chunkHashes: string[];
  readonly treeRoot: string;
  readonly fileTableHex: string;
  readonly fileTableHash: string;
  readonly contentId: string;
  readonly bareContentId: string;
  readonly manifestHex: string;
  readonly fileRanges: Array<[string, number, number]>;
  readonly selections: Array<{ files: string[]; chunks: IndexRange[] }>;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const vectors = (
  JSON.parse(
    readFileSync(join(packageRoot(), 'test', 'vectors', 'content-tree-v1.json'), 'utf8'),
  ) as { trees: TreeVector[] }
).trees;

/** The vectors' content: byte i is ((i * 2654435761) mod 2^32) >> 24. */
function pattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.imul(i, 2654435761) >>> 24;
  return out;
}

test('tree vectors: the file has the agreed cases', () => {
  assert.deepEqual(
    vectors.map((v) => v.name),
    ['small-tree', 'single-file'],
  );
});

for (const provider of [noble, node]) {
  for (const v of vectors) {
    test(`tree vectors (${provider.name}): ${v.name}`, () => {
      const data = pattern(v.totalBytes);
      // Bytes -> manifest, pushed file by file as a sharing host does.
      const chunker = new Chunker(provider, { chunkSizeBytes: v.chunkSizeBytes });
      let at = 0;
      for (const file of v.files) {
        chunker.push(data.subarray(at, at + file.sizeBytes));
        at += file.sizeBytes;
      }
      const manifest = chunker.finish(v.files);
      assert.deepEqual(manifest.chunkHashes.map(toHex), v.chunkHashes);
      assert.equal(toHex(manifest.contentId), v.contentId);
      assert.equal(toHex(encodeManifest(manifest)), v.manifestHex);
      assert.deepEqual(manifest.files, v.files);
      assert.ok(Object.isFrozen(manifest.files) && Object.isFrozen(manifest.files?.[0]));

      // The same bytes as a bare object keep a version 1 ID of their own.
      const layout = { totalBytes: v.totalBytes, chunkSizeBytes: v.chunkSizeBytes };
      const hashes = v.chunkHashes.map(hex);
      assert.equal(toHex(computeContentId(provider, layout, hashes)), v.bareContentId);
      const tableHash = hex(v.fileTableHash);
      assert.equal(toHex(provider.sha256(hex(v.fileTableHex))), v.fileTableHash);
      assert.equal(toHex(computeContentId(provider, layout, hashes, tableHash)), v.contentId);

      // Encoding -> manifest, pinned to the ID.
      const decoded = decodeManifest(provider, hex(v.manifestHex), hex(v.contentId));
      assert.ok(decoded.ok, decoded.ok ? '' : decoded.detail);
      assert.deepEqual(decoded.manifest.files, v.files);
      const wrong = decodeManifest(provider, hex(v.manifestHex), hex(v.bareContentId));
      assert.ok(!wrong.ok && wrong.reason === 'content-id-mismatch');
      const trailing = decodeManifest(provider, concat(hex(v.manifestHex), Uint8Array.of(0)));
      assert.ok(!trailing.ok && trailing.reason === 'trailing-bytes');

      // Where the files are, and which chunks hold them.
      assert.deepEqual(
        fileRanges(manifest).map((r) => [r.file.path, r.start, r.end]),
        v.fileRanges,
      );
      for (const selection of v.selections) {
        assert.deepEqual(chunksOfFiles(manifest, selection.files), selection.chunks);
        const entries: ManifestFile[] = manifest.files!.filter((f) =>
          selection.files.includes(f.path),
        );
        assert.deepEqual(chunksOfFiles(manifest, entries), selection.chunks);
      }

      // A chunk proof verifies against a tree's ID only with its file table hash.
      const tree = buildMerkleTree(provider, hashes);
      hashes.forEach((chunkHash, index) => {
        const claim = { ...layout, contentId: hex(v.contentId), index, chunkHash };
        const proof = tree.proof(index);
        assert.ok(verifyChunkProof(provider, { ...claim, proof, fileTableHash: tableHash }));
        assert.ok(!verifyChunkProof(provider, { ...claim, proof }));
      });
    });
  }
}

test('MANIFEST_BYTES_MAX: header, 2^20 hashes and a 16 MiB file table', () => {
  assert.equal(MANIFEST_BYTES_MAX, 21 + 2 ** 20 * 32 + 16 * 2 ** 20);
});

// ---------------------------------------------------------------------------------------------
// 2. Rules: create throws, decode of the same table fails

interface RawEntry {
  readonly path: string | Uint8Array;
  readonly size: number;
  readonly flags?: number;
}

/** A file table written without any check (the wire layout of file-table.ts). */
function rawTable(entries: readonly RawEntry[], count = entries.length): Uint8Array {
  const parts: Uint8Array[] = [];
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, count);
  parts.push(head);
  for (const entry of entries) {
    const path = typeof entry.path === 'string' ? utf8Encode(entry.path) : entry.path;
    const fixed = new Uint8Array(2 + path.length + 9);
    const view = new DataView(fixed.buffer);
    view.setUint16(0, path.length);
    fixed.set(path, 2);
    view.setUint32(2 + path.length, Math.floor(entry.size / 2 ** 32));
    view.setUint32(6 + path.length, entry.size >>> 0);
    fixed[10 + path.length] = entry.flags ?? 0;
    parts.push(fixed);
  }
  return concat(...parts);
}

/** A version 2 manifest of `totalBytes` at 64 KiB with stand-in hashes and this table. */
function rawManifest(totalBytes: number, table: Uint8Array): Uint8Array {
  const count = Math.ceil(totalBytes / KIB64);
  const header = new Uint8Array(21 + 32 * count);
  const view = new DataView(header.buffer);
  header.set([0x50, 0x45, 0x41, 0x4d, 2]);
  view.setUint32(5, Math.floor(totalBytes / 2 ** 32));
  view.setUint32(9, totalBytes >>> 0);
  view.setUint32(13, KIB64);
  view.setUint32(17, count);
  hashesOf(count).forEach((hash, i) => header.set(hash, 21 + 32 * i));
  return concat(header, table);
}

function hashesOf(count: number, seed = 0): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    crypto.sha256(Uint8Array.of(seed, i & 0xff, i >> 8)),
  );
}

const files = (...paths: string[]): ManifestFile[] =>
  paths.map((path) => ({ path, sizeBytes: 1, executable: false }));

const seg255 = 'x'.repeat(255);
/** A valid path of exactly `bytes` UTF-8 bytes (segments of at most 255). */
function longPath(bytes: number, lead = 'p'): string {
  let path = lead;
  while (path.length < bytes) {
    const room = bytes - path.length - 1;
    path += '/' + seg255.slice(0, Math.min(255, Math.max(1, room)));
  }
  return path.slice(0, bytes);
}

const badTables: ReadonlyArray<readonly [string, ManifestFile[], string]> = [
  ['no files', [], 'holds 0 files'],
  ['absolute path', files('/etc'), 'empty segment'],
  ['doubled slash', files('a//b'), 'empty segment'],
  ['trailing slash', files('a/'), 'empty segment'],
  ['"." segment', files('a/./b'), '"." or ".."'],
  ['".." segment', files('../a'), '"." or ".."'],
  ['".." alone', files('..'), '"." or ".."'],
  ['256-byte segment', files(`a/${'s'.repeat(256)}`), 'segment of 256'],
  ['4097-byte path', files(longPath(4097)), 'above 4096'],
  ['NUL', files('a\u0000b'), 'control character 0x00'],
  ['newline', files('a\nb'), 'control character 0x0a'],
  ['DEL', files('a\u007fb'), 'control character 0x7f'],
  ['backslash', files('a\\b'), 'backslash'],
  ['descending', files('b', 'a'), 'does not sort after'],
  ['duplicate', files('a', 'a'), 'does not sort after'],
  ['UTF-16 order is not UTF-8 order', files('\u{1f600}', '\uffff'), 'does not sort after'],
  [
    'a file is a directory of a later one',
    files('a', 'a.txt', 'a/b'),
    '"a" is a file and a directory',
  ],
];

for (const [name, table, detail] of badTables) {
  test(`file table rule: ${name}`, () => {
    const totalBytes = table.length;
    const fields = {
      totalBytes,
      chunkSizeBytes: KIB64,
      chunkHashes: hashesOf(Math.ceil(totalBytes / KIB64)),
    };
    assert.throws(
      () => createManifest(crypto, { ...fields, files: table }),
      (error: { code?: string; message?: string }) =>
        error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' && String(error.message).includes(detail),
    );
    const raw = rawTable(table.map((f) => ({ path: f.path, size: f.sizeBytes })));
    const result = decodeManifest(crypto, rawManifest(totalBytes, raw));
    assert.ok(!result.ok, 'decoded');
    assert.equal(result.reason, 'invalid-file-table', result.detail);
  });
}

test('file table rule: the sizes must add up to totalBytes', () => {
  const fields = { totalBytes: 3, chunkSizeBytes: KIB64, chunkHashes: hashesOf(1) };
  for (const sizes of [[1, 1], [2, 2], [4]]) {
    const table = sizes.map((sizeBytes, i) => ({ path: `f${i}`, sizeBytes, executable: false }));
    assert.throws(() => createManifest(crypto, { ...fields, files: table }), /add up to/);
    const raw = rawTable(table.map((f) => ({ path: f.path, size: f.sizeBytes })));
    const result = decodeManifest(crypto, rawManifest(3, raw));
    assert.ok(!result.ok && result.reason === 'invalid-file-table' && /add up/.test(result.detail));
  }
});

test('file table rule: wrong types from a caller are refused, naming the entry', () => {
  const fields = { totalBytes: 1, chunkSizeBytes: KIB64, chunkHashes: hashesOf(1) };
  const cases: Array<[unknown, string]> = [
    ['a', 'must be an array'],
    [[null], '[0] is not an object'],
    [[{ path: 1, sizeBytes: 1, executable: false }], '[0].path is not a string'],
    [[{ path: 'a', sizeBytes: 0.5, executable: false }], '[0].sizeBytes'],
    [[{ path: 'a', sizeBytes: -1, executable: false }], '[0].sizeBytes'],
    [[{ path: 'a', sizeBytes: 1, executable: 1 }], '[0].executable'],
    [[{ path: 'a\ud800', sizeBytes: 1, executable: false }], 'lone UTF-16 surrogate'],
  ];
  for (const [table, detail] of cases) {
    assert.throws(
      () => createManifest(crypto, { ...fields, files: table as ManifestFile[] }),
      (error: { code?: string; message?: string }) =>
        error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' && String(error.message).includes(detail),
      detail,
    );
  }
});

test('file table rule: more than 2^20 files', () => {
  const many = Array.from({ length: FILE_COUNT_MAX + 1 }, () => ({
    path: 'a',
    sizeBytes: 0,
    executable: false,
  }));
  const fields = { totalBytes: 0, chunkSizeBytes: KIB64, chunkHashes: [] };
  assert.throws(() => createManifest(crypto, { ...fields, files: many }), /1 to 1048576/);
  const result = decodeManifest(crypto, rawManifest(0, rawTable([], FILE_COUNT_MAX + 1)));
  assert.ok(!result.ok && result.reason === 'invalid-file-table' && /count/.test(result.detail));
});

test('file table rule: a table above 16 MiB', () => {
  // 4100 distinct 4096-byte paths: each entry 4107 bytes, 16.8 MB in all.
  const table = Array.from({ length: 4100 }, (_, i) => ({
    path: longPath(4096, String(i).padStart(6, '0')),
    sizeBytes: 0,
    executable: false,
  }));
  const fields = { totalBytes: 0, chunkSizeBytes: KIB64, chunkHashes: [] };
  assert.throws(() => createManifest(crypto, { ...fields, files: table }), /more than 16777216/);
  const raw = rawTable(table.map((f) => ({ path: f.path, size: 0 })));
  assert.ok(raw.length > FILE_TABLE_BYTES_MAX);
  const result = decodeManifest(crypto, rawManifest(0, raw));
  assert.ok(
    !result.ok && result.reason === 'invalid-file-table' && /longer than/.test(result.detail),
  );
  // Just under the limit is fine.
  const fits = table.slice(0, 4000);
  const manifest = createManifest(crypto, { ...fields, files: fits });
  assert.ok(decodeManifest(crypto, encodeManifest(manifest), manifest.contentId).ok);
});

test('decode only: flags, UTF-8, size above 2^53, truncation', () => {
  const cases: Array<[string, Uint8Array, number, string]> = [
    ['flag bit 1', rawTable([{ path: 'a', size: 1, flags: 2 }]), 1, 'invalid-file-table'],
    [
      'invalid UTF-8',
      rawTable([{ path: Uint8Array.of(0xc3, 0x28), size: 1 }]),
      1,
      'invalid-file-table',
    ],
    ['size 2^53', rawTable([{ path: 'a', size: 2 ** 53 }]), 1, 'invalid-file-table'],
    ['empty path', rawTable([{ path: '', size: 1 }]), 1, 'invalid-file-table'],
    ['no file count', new Uint8Array(2), 1, 'truncated'],
    ['fewer entries than counted', rawTable([{ path: 'a', size: 1 }], 2), 1, 'truncated'],
    ['entry cut short', rawTable([{ path: 'abc', size: 1 }]).subarray(0, 10), 1, 'truncated'],
  ];
  for (const [name, table, totalBytes, reason] of cases) {
    const result = decodeManifest(crypto, rawManifest(totalBytes, table));
    assert.ok(!result.ok, name);
    assert.equal(result.reason, reason, `${name}: ${result.detail}`);
  }
  const ok = decodeManifest(crypto, rawManifest(1, rawTable([{ path: 'a', size: 1, flags: 1 }])));
  assert.ok(ok.ok && ok.manifest.files?.[0]?.executable === true);
});

test('treePathProblem: accepted and refused paths', () => {
  for (const good of [
    'a',
    'photos/2024/beach.jpg',
    '.hidden',
    'a/..b',
    '...',
    'é/😀',
    '\ufeffx',
    longPath(4096),
  ]) {
    assert.equal(treePathProblem(good), undefined, good);
  }
  for (const bad of [
    '',
    '/',
    'a/',
    './a',
    'a/.',
    'a\\b',
    'a\tb',
    longPath(4097),
    `${'s'.repeat(256)}`,
  ]) {
    assert.notEqual(treePathProblem(bad), undefined, JSON.stringify(bad));
  }
  assert.match(treePathProblem(7 as unknown as string)!, /not a string/);
});

test('Chunker.finish(files): a table that does not fit the bytes throws and the chunker stays open', () => {
  const chunker = new Chunker(crypto, { chunkSizeBytes: KIB64 });
  chunker.push(new Uint8Array(5));
  assert.throws(() => chunker.finish(files('a', 'b')), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  const manifest = chunker.finish([{ path: 'a', sizeBytes: 5, executable: true }]);
  assert.equal(manifest.files?.length, 1);
  assert.throws(() => chunker.finish(), { code: 'PEAPOD_ERR_INVALID_STATE' });
});

test('chunksOfFiles: refuses a bare object and a path not in the tree', () => {
  const bare = createManifest(crypto, {
    totalBytes: 1,
    chunkSizeBytes: KIB64,
    chunkHashes: hashesOf(1),
  });
  assert.throws(() => chunksOfFiles(bare, ['a']), /no file table/);
  assert.deepEqual(fileRanges(bare), []);
  const tree = createManifest(crypto, { ...bare, chunkHashes: hashesOf(1), files: files('a') });
  assert.throws(() => chunksOfFiles(tree, ['b']), /"b" is not in the tree/);
  assert.deepEqual(chunksOfFiles(tree, []), []);
});

test('encodeManifest refuses a hand-made manifest whose table breaks a rule', () => {
  const good = createManifest(crypto, {
    totalBytes: 2,
    chunkSizeBytes: KIB64,
    chunkHashes: hashesOf(1),
    files: files('a', 'b'),
  });
  const bad: Manifest = { ...good, files: files('b', 'a') };
  assert.throws(() => encodeManifest(bad), /manifest\.files/);
});

// ---------------------------------------------------------------------------------------------
// 3. Properties

const NUM_RUNS = 2_000;

const segmentArb = fc.constantFrom('a', 'b', 'c.txt', 'é', '😀', '\uffff', '.x', 'a b', 'Z');
/** A valid file table: random paths, sorted by UTF-8 bytes, directory clashes dropped. */
const treeArb = fc
  .array(
    fc.tuple(
      fc.array(segmentArb, { minLength: 1, maxLength: 4 }),
      fc.oneof(fc.constant(0), fc.nat(3 * KIB64), fc.nat(300)),
      fc.boolean(),
    ),
    { minLength: 1, maxLength: 24 },
  )
  .map((raw) => {
    const byPath = new Map<string, ManifestFile>();
    for (const [segments, sizeBytes, executable] of raw) {
      const path = segments.join('/');
      byPath.set(path, { path, sizeBytes, executable });
    }
    const paths = [...byPath.keys()];
    const keep = paths.filter((p) => !paths.some((q) => q.startsWith(`${p}/`)));
    const sorted = keep
      .map((p) => byPath.get(p)!)
      .sort((a, b) => compareBytes(utf8Encode(a.path), utf8Encode(b.path)));
    return sorted;
  });

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

const chunkSizeArb = fc.constantFrom(KIB64, 2 * KIB64, 4 * KIB64);

function treeManifest(table: ManifestFile[], chunkSizeBytes: number, seed: number): Manifest {
  const totalBytes = table.reduce((n, f) => n + f.sizeBytes, 0);
  return createManifest(crypto, {
    totalBytes,
    chunkSizeBytes,
    chunkHashes: hashesOf(Math.ceil(totalBytes / chunkSizeBytes), seed & 0xff),
    files: table,
  });
}

test(`properties: create -> encode -> decode round-trips, canonically (${NUM_RUNS} runs)`, () => {
  fc.assert(
    fc.property(treeArb, chunkSizeArb, fc.nat(255), (table, chunkSizeBytes, seed) => {
      const manifest = treeManifest(table, chunkSizeBytes, seed);
      const bytes = encodeManifest(manifest);
      const decoded = decodeManifest(crypto, bytes, manifest.contentId);
      assert.ok(decoded.ok, decoded.ok ? '' : decoded.detail);
      assert.deepEqual(decoded.manifest.files, table);
      assert.deepEqual(encodeManifest(decoded.manifest), bytes);
      // Any change of the table changes the ID.
      const renamed = table.map((f, i) => (i === 0 ? { ...f, executable: !f.executable } : f));
      assert.notDeepEqual(
        treeManifest(renamed, chunkSizeBytes, seed).contentId,
        manifest.contentId,
      );
    }),
    { numRuns: NUM_RUNS },
  );
});

test(`properties: decodeManifest never throws on arbitrary bytes after a v2 header (${NUM_RUNS * 5} runs)`, () => {
  fc.assert(
    fc.property(
      fc.nat(3 * KIB64),
      fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 3000, size: 'max' })),
      fc.boolean(),
      (totalBytes, tail, withCount) => {
        const count = withCount
          ? Uint8Array.of(0, 0, 0, 1 + ((tail[0] ?? 0) % 4))
          : new Uint8Array(0);
        const bytes = rawManifest(totalBytes, concat(count, tail));
        const result = decodeManifest(crypto, bytes);
        if (result.ok) assert.deepEqual(encodeManifest(result.manifest), bytes);
        else assert.equal(typeof result.detail, 'string');
      },
    ),
    { numRuns: NUM_RUNS * 5 },
  );
});

test(`properties: mutated tree encodings never make decodeManifest throw (${NUM_RUNS * 5} runs)`, () => {
  fc.assert(
    fc.property(
      treeArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(3)), {
        minLength: 1,
        maxLength: 4,
      }),
      (table, mutations) => {
        const manifest = treeManifest(table, KIB64, 1);
        let bytes = encodeManifest(manifest);
        for (const [position, value, kind] of mutations) {
          // Mostly inside the file table, where the new rules live.
          const tableStart = 21 + 32 * manifest.chunkHashes.length;
          const span = Math.max(1, bytes.length - tableStart);
          const at = kind === 3 ? position % bytes.length : tableStart + (position % span);
          if (kind === 0 || kind === 3) {
            bytes = bytes.slice();
            if (at < bytes.length) bytes[at] = value;
          } else if (kind === 1) bytes = bytes.subarray(0, at);
          else bytes = concat(bytes.subarray(0, at), Uint8Array.of(value), bytes.subarray(at));
        }
        const result = decodeManifest(crypto, bytes);
        if (result.ok) assert.deepEqual(encodeManifest(result.manifest), bytes);
        else assert.equal(typeof result.detail, 'string');
      },
    ),
    { numRuns: NUM_RUNS * 5 },
  );
});

/** The model: chunk i is wanted when some chosen non-empty file has a byte in it. */
function chunksModel(manifest: Manifest, chosen: ReadonlySet<string>): IndexRange[] {
  const count = manifest.chunkHashes.length;
  const size = manifest.chunkSizeBytes;
  const wanted: boolean[] = [];
  for (let i = 0; i < count; i++) {
    const lo = i * size;
    const hi = Math.min(manifest.totalBytes, lo + size);
    wanted.push(
      fileRanges(manifest).some(
        (r) => chosen.has(r.file.path) && r.end > r.start && r.start < hi && r.end > lo,
      ),
    );
  }
  const ranges: IndexRange[] = [];
  wanted.forEach((yes, i) => {
    if (!yes) return;
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.end === i)
      ranges[ranges.length - 1] = { start: last.start, end: i + 1 };
    else ranges.push({ start: i, end: i + 1 });
  });
  return ranges;
}

test(`properties: chunksOfFiles covers exactly the chunks overlapping the chosen files (${NUM_RUNS} runs)`, () => {
  fc.assert(
    fc.property(treeArb, chunkSizeArb, fc.array(fc.nat()), (table, chunkSizeBytes, picks) => {
      const manifest = treeManifest(table, chunkSizeBytes, 2);
      const chosen = picks.map((p) => table[p % table.length]!.path);
      const got = chunksOfFiles(manifest, chosen);
      assert.deepEqual(got, chunksModel(manifest, new Set(chosen)));
      // Also the ranges' files partition the content.
      const ranges = fileRanges(manifest);
      assert.equal(ranges[ranges.length - 1]!.end, manifest.totalBytes);
    }),
    { numRuns: NUM_RUNS },
  );
});

/** The path rules written plainly, as the model for `treePathProblem`. */
function pathIsValid(path: string): boolean {
  if (/\p{Surrogate}/u.test(path)) return false;
  const length = utf8Encode(path).length;
  if (length < 1 || length > 4096) return false;
  if ([...path].some((c) => c < ' ' || c === '\u007f' || c === '\\')) return false;
  return path
    .split('/')
    .every((s) => s !== '' && s !== '.' && s !== '..' && utf8Encode(s).length <= 255);
}

test(`properties: treePathProblem never throws and agrees with a plain model (${NUM_RUNS * 5} runs)`, () => {
  const unit = fc.constantFrom(
    'a',
    '/',
    '.',
    '\\',
    '\u0000',
    '\u001f',
    '\u007f',
    'é',
    '😀',
    '\ud800',
    ' ',
  );
  const pathArb = fc.oneof(
    fc.string({ unit, maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc
      .tuple(fc.integer({ min: 250, max: 260 }), fc.integer({ min: 4090, max: 4100 }))
      .map(([segment, total]) => longPath(total).slice(0, total - segment) + 's'.repeat(segment)),
  );
  fc.assert(
    fc.property(pathArb, (path) => {
      assert.equal(treePathProblem(path) === undefined, pathIsValid(path), JSON.stringify(path));
    }),
    { numRuns: NUM_RUNS * 5 },
  );
});
