/**
 * The operator docs and the OpenAPI file stay true to the server: every refusal code the
 * server can answer is listed in both, and every path the OpenAPI file names is served (no
 * `not-found`) by a real tracker, while an undocumented one is not.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { REFUSAL_STATUS } from '../src/refusal.js';
import { createTracker } from '../src/tracker-server.js';
import { call } from './support/http.js';

const root = new URL('../../../../', import.meta.url);
const openapi = await readFile(new URL('docs/tracker-openapi.yaml', root), 'utf8');
const guide = await readFile(new URL('docs/tracker.md', root), 'utf8');

test('every refusal code is in the OpenAPI Error enum and in docs/tracker.md', () => {
  for (const code of [...Object.keys(REFUSAL_STATUS), 'internal']) {
    assert.match(openapi, new RegExp(`^ {12}- ${code}$`, 'm'), `${code} in the OpenAPI enum`);
    if (code !== 'internal' && code !== 'unavailable')
      assert.ok(guide.includes(`\`${code}\``), `${code} in docs/tracker.md`);
  }
});

test('every path in the OpenAPI file is served, with the methods it documents', async () => {
  const tracker = createTracker({ db: ':memory:', purgeIntervalMs: 0 });
  const url = await tracker.listen(0, '127.0.0.1');
  try {
    const paths = [...openapi.matchAll(/^ {2}(\/[^:]+):$/gm)].map((match) => match[1]!);
    assert.equal(paths.length, 7);
    for (const path of paths) {
      const concrete = path.replace('{deviceIdHex}', 'ab'.repeat(32));
      const section = openapi.slice(openapi.indexOf(`  ${path}:`)).split(/\n {2}\//)[0]!;
      const methods = [...section.matchAll(/^ {4}(get|post|put):$/gm)].map((m) =>
        m[1]!.toUpperCase(),
      );
      assert.ok(methods.length > 0, path);
      for (const method of methods) {
        const answer = await call(url, method, concrete, method === 'GET' ? {} : { body: '{}' });
        assert.notEqual(answer.json['code'], 'not-found', `${method} ${path}`);
        assert.notEqual(answer.status, 405, `${method} ${path}`);
      }
    }
    assert.equal((await call(url, 'GET', '/api/v1/peers')).json['code'], 'not-found');
  } finally {
    await tracker.close();
  }
});
