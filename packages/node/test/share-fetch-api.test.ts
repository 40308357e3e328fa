/**
 * The content API's entry points (BRIEF interface F) and its small parsers.
 *
 * What each test pins down:
 * - fast-check over the request parsers (`parseShareRequest`, `parseFetchRequest`,
 *   `parseContentUpdate`, `contentIdOfPath`) and the link parser: any input gives a valid
 *   request or an Error with a sentence, never another throw; valid requests and links
 *   round-trip; `publish` and `published` take booleans only;
 * - the `--only` matcher: `*` and `?` stay within a segment, `**` spans segments, a directory
 *   picks what is under it, regex characters are literal; `selectFiles` names a glob that
 *   matches nothing;
 * - on a real daemon: every content route refuses a request without the key (403) and does
 *   nothing (no content recorded); with the key, bad bodies and paths (a `published` that is
 *   not a boolean among them) get a 400 that says what
 *   is wrong, random bodies (a property over real HTTP) never get a 500, and the daemon keeps
 *   serving; the data directory (or a tree holding it) is never shared; a share whose client goes away (Ctrl-C) mid-hash stops and records nothing.
 */
import assert from 'node:assert/strict';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createManifest, type Manifest } from '@peapod/core';
import { listContents } from '../src/api-client.js';
import {
  contentIdOfPath,
  parseContentUpdate,
  parseFetchRequest,
  parseShareRequest,
} from '../src/api-request.js';
import { contentLink, parseContentRef } from '../src/content-link.js';
import { matchesGlob, selectFiles } from '../src/fetch-select.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { waitFor } from '../src/local-pod.js';
import { apiRequest, sendApiRequest, serves } from './support/api-jobs.js';
import { PodFixture } from './support/pod-fixture.js';

const HEX = /^[0-9a-f]{64}$/;
const hex64 = fc.stringMatching(HEX);

/** Runs `parse`; an Error with a non-empty sentence is a refusal, anything else thrown fails. */
function outcome<T>(parse: () => T): { ok: true; value: T } | { ok: false; message: string } {
  try {
    return { ok: true, value: parse() };
  } catch (error) {
    assert.ok(error instanceof Error, `threw a ${typeof error}`);
    assert.ok(error.message.length > 10, `a sentence: ${error.message}`);
    return { ok: false, message: error.message };
  }
}

const anyJson = fc.oneof(
  fc.jsonValue(),
  fc.record(
    {
      id: fc.oneof(hex64, fc.string(), fc.integer()),
      output: fc.oneof(fc.constant('/tmp/x'), fc.string(), fc.constant(null)),
      directory: fc.oneof(fc.constant('/tmp'), fc.string()),
      name: fc.oneof(fc.string(), fc.integer()),
      only: fc.oneof(fc.array(fc.string()), fc.string(), fc.constant([])),
      force: fc.oneof(fc.boolean(), fc.string()),
      publish: fc.oneof(fc.boolean(), fc.string(), fc.integer(), fc.constant(null)),
      published: fc.oneof(fc.boolean(), fc.string(), fc.integer(), fc.constant(null)),
      path: fc.oneof(
        fc.constant('/nonexistent/peapod-shared'),
        fc.string(),
        fc.constant('relative/x'),
      ),
    },
    { requiredKeys: [] },
  ),
);

describe('request parsers', () => {
  test('any body: a valid request or one sentence, never another throw (3000 runs)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          anyJson.map((value) => JSON.stringify(value)),
        ),
        (body) => {
          const share = outcome(() => parseShareRequest(body));
          if (share.ok) {
            assert.ok(share.value.path.startsWith('/'));
            assert.ok(share.value.publish === undefined || share.value.publish === true);
          }
          const update = outcome(() => parseContentUpdate(body));
          if (update.ok) {
            assert.equal(typeof update.value.published, 'boolean');
            assert.deepEqual(Object.keys(update.value), ['published']);
          }
          const fetch = outcome(() => parseFetchRequest(body));
          if (fetch.ok) {
            assert.match(fetch.value.id, HEX);
            assert.ok(fetch.value.output !== undefined || fetch.value.directory !== undefined);
            for (const glob of fetch.value.only ?? []) assert.ok(glob.length > 0);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('valid fetch requests round-trip', () => {
    fc.assert(
      fc.property(
        hex64,
        fc.option(fc.stringMatching(/^\/[a-z/]{0,20}$/), { nil: undefined }),
        fc.option(fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 4 }), {
          nil: undefined,
        }),
        fc.boolean(),
        (id, output, only, force) => {
          const request = {
            id,
            ...(output === undefined ? { directory: '/work' } : { output }),
            ...(only === undefined ? {} : { only }),
            force,
          };
          assert.deepEqual(parseFetchRequest(JSON.stringify(request)), request);
        },
      ),
    );
  });

  test('a content update is {published: boolean} and nothing else', () => {
    fc.assert(
      fc.property(fc.boolean(), (published) => {
        assert.deepEqual(parseContentUpdate(JSON.stringify({ published })), { published });
      }),
    );
    fc.assert(
      fc.property(
        fc.jsonValue().filter((value) => typeof value !== 'boolean'),
        (published) => {
          assert.throws(
            () => parseContentUpdate(JSON.stringify({ published })),
            /^Error: published must be true or false$/,
          );
        },
      ),
    );
    assert.throws(() => parseContentUpdate('{}'), /published must be true or false/);
    assert.throws(
      () => parseContentUpdate('{"published":true,"pinned":false}'),
      /unknown field "pinned": a content update takes only published/,
    );
    assert.throws(
      () => parseShareRequest('{"path":"/x","publish":"yes"}'),
      /publish must be a boolean/,
    );
  });

  test('content paths: only /api/contents/<64 lower-case hex>', () => {
    fc.assert(
      fc.property(fc.string(), (tail) => {
        const id = contentIdOfPath(`/api/contents/${tail}`);
        assert.equal(id, HEX.test(tail) ? tail : undefined);
      }),
    );
    assert.equal(contentIdOfPath(`/api/contents/${'A'.repeat(64)}`), undefined);
  });

  test('links: any name round-trips; junk is no reference, never a throw', () => {
    fc.assert(
      fc.property(hex64, fc.string({ unit: 'binary' }), (id, name) => {
        const ref = parseContentRef(contentLink(id, name));
        assert.equal(ref?.contentIdHex, id);
        assert.equal(ref?.name, name === '' ? undefined : name);
      }),
    );
    fc.assert(
      fc.property(fc.string(), (text) => {
        const ref = parseContentRef(text);
        if (ref !== undefined) assert.match(ref.contentIdHex, HEX);
      }),
    );
    assert.equal(parseContentRef(`peapod://${'ab'.repeat(32)}?dn=a%20b.txt`)?.name, 'a b.txt');
    assert.equal(parseContentRef(`  ${'AB'.repeat(32)}\n`)?.contentIdHex, 'ab'.repeat(32));
    assert.equal(parseContentRef(`peapod://${'ab'.repeat(31)}`), undefined);
  });
});

describe('--only globs', () => {
  test('segments, ** across them, directories, literal characters', () => {
    const cases: Array<[string, string, boolean]> = [
      ['*.jpg', 'a.jpg', true],
      ['*.jpg', '2024/a.jpg', false],
      ['**/*.jpg', '2024/a.jpg', true],
      ['**/*.jpg', 'a.jpg', true],
      ['2024/**', '2024/x/y/z.txt', true],
      ['2024', '2024/a.jpg', true],
      ['2024', '2024x/a.jpg', false],
      ['a?c', 'abc', true],
      ['a?c', 'a/c', false],
      ['a+b(1).txt', 'a+b(1).txt', true],
      ['a.b', 'aXb', false],
      ['**', 'anything/at/all', true],
      ['x/**/y', 'x/y', true],
      ['x/**/y', 'x/1/2/y', true],
      ['x/**/y', 'x/1/2/yy', false],
    ];
    for (const [glob, path, expected] of cases) {
      assert.equal(matchesGlob(glob, path), expected, `${glob} on ${path}`);
    }
  });

  test('property: * never crosses a directory; ** matches every path', () => {
    // Segments a tree manifest allows: '.' and '..' never appear in its paths (docs/content.md §12).
    const segment = fc.stringMatching(/^[a-z.]{1,6}$/).filter((s) => s !== '.' && s !== '..');
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const path = segments.join('/');
        assert.equal(matchesGlob('*', path), true, 'a top-level entry, or its directory');
        assert.equal(matchesGlob('**', path), true);
        assert.equal(matchesGlob(segments.map(() => '*').join('/'), path), true);
        if (segments.length > 1) assert.equal(matchesGlob(`*${segments.at(-1)}x`, path), false);
      }),
    );
  });

  test('selectFiles: relative to the root, the chunks of the chosen files, a typo named', () => {
    const crypto = createNodeCryptoProvider();
    const chunk = 65536;
    const files = [
      { path: 'photos/a.jpg', sizeBytes: chunk * 2, executable: false },
      { path: 'photos/b.txt', sizeBytes: 10, executable: false },
      { path: 'photos/sub/c.jpg', sizeBytes: chunk, executable: false },
    ];
    const totalBytes = chunk * 3 + 10;
    const chunkHashes = Array.from({ length: 4 }, (_, i) => crypto.sha256(Uint8Array.of(i)));
    const manifest: Manifest = createManifest(crypto, {
      totalBytes,
      chunkSizeBytes: chunk,
      chunkHashes,
      files,
    });
    assert.deepEqual(selectFiles(manifest, ['*.txt']), {
      files: [1],
      chunks: [{ start: 2, end: 3 }],
    });
    assert.deepEqual(selectFiles(manifest, ['sub']).files, [2]);
    assert.throws(
      () => selectFiles(manifest, ['*.jpg', 'nope*']),
      /--only "nope\*" matches no file/,
    );
  });
});

describe('the content API on a real daemon', () => {
  let pod: PodFixture;

  before(async () => {
    // A fetch of an unknown content waits the stall timeout for its manifest: 1 s here.
    pod = await PodFixture.start({ daemons: 1, flags: { 0: ['--stall-timeout', '1'] } });
  });

  after(async () => {
    await pod?.stop();
  });

  test('every content route refuses a request without the key, and does nothing', async () => {
    const api = pod.daemons[0]!.api;
    const keyless = { ...api, apiKey: '' };
    const routes: Array<[string, string, unknown]> = [
      ['POST', '/api/share', { path: pod.daemons[0]!.home }],
      ['POST', '/api/fetch', { id: 'ab'.repeat(32), directory: '/tmp' }],
      ['GET', '/api/contents', undefined],
      ['DELETE', `/api/contents/${'ab'.repeat(32)}`, undefined],
      ['PATCH', `/api/contents/${'ab'.repeat(32)}`, { published: true }],
    ];
    for (const [method, path, body] of routes) {
      const res = await apiRequest(keyless, method, path, body);
      res.resume();
      assert.equal(res.statusCode, 403, `${method} ${path}`);
    }
    assert.deepEqual(await listContents(api), []);
  });

  test('bad bodies and paths: 400 with the reason', async () => {
    const api = pod.daemons[0]!.api;
    const cases: Array<[string, string, object | undefined, RegExp]> = [
      ['POST', '/api/share', { path: 'relative/dir' }, /path must be an absolute path/],
      ['POST', '/api/fetch', { id: 'xyz', directory: '/tmp' }, /id must be a content ID/],
      ['POST', '/api/fetch', { id: 'ab'.repeat(32) }, /give output, or directory/],
      ['POST', '/api/fetch', { id: 'ab'.repeat(32), output: '/x', only: 'a*' }, /only must be/],
      ['POST', '/api/fetch', { id: 'ab'.repeat(32), output: '/x', force: 'yes' }, /force must be/],
      ['DELETE', '/api/contents/nothex', undefined, /name a content by its ID/],
      ['PATCH', '/api/contents/nothex', { published: true }, /name a content by its ID/],
      ['PATCH', `/api/contents/${'ab'.repeat(32)}`, { published: 'no' }, /published must be/],
      ['PATCH', `/api/contents/${'ab'.repeat(32)}`, { published: 1 }, /published must be/],
      ['PATCH', `/api/contents/${'ab'.repeat(32)}`, {}, /published must be true or false/],
      ['POST', '/api/share', { path: '/tmp', publish: 'yes' }, /publish must be a boolean/],
    ];
    for (const [method, path, body, reason] of cases) {
      const res = await apiRequest(api, method, path, body);
      let text = '';
      for await (const part of res) text += (part as Buffer).toString();
      assert.equal(res.statusCode, 400, `${method} ${path}: ${text}`);
      assert.match((JSON.parse(text) as { error: string }).error, reason);
    }
  });

  test("the daemon's data directory, a tree holding it and one inside it are refused", async () => {
    const daemon = pod.daemons[0]!;
    for (const path of [daemon.home, pod.root, join(daemon.home, 'store'), `${daemon.home}/x/..`]) {
      const res = await apiRequest(daemon.api, 'POST', '/api/share', { path, hidden: true });
      let text = '';
      for await (const part of res) text += (part as Buffer).toString();
      assert.equal(res.statusCode, 409, `${path}: ${text}`);
      assert.match(
        (JSON.parse(text) as { error: string }).error,
        /the daemon's data directory .*share a directory that does not contain it/,
      );
    }
    assert.deepEqual(await listContents(daemon.api), []);
  });

  test('a client that goes away stops the share: nothing is recorded, nothing pinned', async () => {
    const daemon = pod.daemons[0]!;
    const root = join(pod.root, 'big-tree');
    await mkdir(root);
    // 8 sparse files of 1 GiB: hashing them takes seconds, reading them costs no disk.
    for (let i = 0; i < 8; i++) {
      await writeFile(join(root, `part-${i}.bin`), '');
      await truncate(join(root, `part-${i}.bin`), 2 ** 30);
    }
    const req = sendApiRequest(daemon.api, 'POST', '/api/share', { path: root });
    req.on('error', () => undefined); // the socket destroyed below
    const logged = (line: string) => () => Promise.resolve(daemon.log().includes(line));
    await waitFor(logged('share: hashing'), 20_000, 'the share to start');
    req.destroy();
    await waitFor(
      logged('share stopped: the client went away'),
      30_000,
      'the daemon to stop the share',
    );
    const rows = await listContents(daemon.api);
    assert.deepEqual(
      rows.filter((row) => row.origin.kind === 'shared' && row.origin.path === root),
      [],
    );
    assert.doesNotMatch(daemon.log(), /"msg":"content shared"/);
  });

  test('an update of a content the store does not hold is a 404 with a sentence', async () => {
    const res = await apiRequest(pod.daemons[0]!.api, 'PATCH', `/api/contents/${'cd'.repeat(32)}`, {
      published: false,
    });
    let text = '';
    for await (const part of res) text += (part as Buffer).toString();
    assert.equal(res.statusCode, 404, text);
    assert.match((JSON.parse(text) as { error: string }).error, /the store holds no content cdcd/);
  });

  test('property: random bodies never make a 500, and the daemon keeps serving (60 runs)', async () => {
    const api = pod.daemons[0]!.api;
    const routes = [
      ['POST', '/api/share'],
      ['POST', '/api/fetch'],
      ['PATCH', `/api/contents/${'ef'.repeat(32)}`],
    ] as const;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), anyJson, async ([method, path], body) => {
        const res = await apiRequest(api, method, path, body);
        let text = '';
        for await (const part of res) text += (part as Buffer).toString();
        assert.ok(res.statusCode !== 500 && res.statusCode !== undefined, `${path} ${text}`);
        if (res.statusCode !== 200) assert.match(text, /"error":"/);
      }),
      { numRuns: 60 },
    );
    assert.ok(await serves(api));
    assert.doesNotMatch(pod.daemons[0]!.log(), /internal error/);
  });
});
