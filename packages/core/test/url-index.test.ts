/**
 * URL lookups through real Cores (test/support/mesh.ts: real handshakes over in-memory links,
 * a virtual clock): `url-content` mappings, URL_QUERY / URL_ANSWER between pod members, and
 * the one `url:lookup` event per `lookup-url` (every asked link answered, or closed, or the
 * deadline passed, or nobody to ask). Also: only pod links are asked or answered, only held
 * contents are answered, `content-removed` forgets a whole content's mappings, unsolicited and
 * duplicate answers are ignored, and the table keeps its bounds (least recently used first).
 * A fast-check model test compares lookups with a simple model of the mappings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import type { CoreEvent, CoreInput } from '../src/core.js';
import type { Manifest } from '../src/content/manifest.js';
import { Capability, type WireMessage } from '../src/wire/messages.js';
import { URL_LOOKUP_TIMEOUT_MS } from '../src/transfer/transfer-api.js';
import { URL_INDEX_URLS_MAX, URL_VERSIONS_MAX } from '../src/transfer/url-index.js';
import { Mesh, type NodeOptions } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';

const POD_SECRET = new Uint8Array(32).fill(0x5a);
const pod: NodeOptions = { podSecret: POD_SECRET };
const URL = 'https://origin.example/big.iso';
const ETAG = '"v1"';

type Lookup = Extract<CoreEvent, { type: 'url:lookup' }>;

const data = testBytes(2 * CHUNK + 10, 3);
const content = manifestOf(data);
const other = manifestOf(testBytes(CHUNK, 4));

/** A core input without its time (the mesh's clock supplies it). */
type Untimed<T> = T extends unknown ? Omit<T, 'nowMs'> : never;

function feed(mesh: Mesh, node: number, input: Untimed<CoreInput>): void {
  mesh.input(node, { ...input, nowMs: mesh.nowMs } as CoreInput);
  mesh.drive();
}

function mapUrl(
  mesh: Mesh,
  node: number,
  url: string,
  validator: string,
  manifest: Manifest,
): void {
  feed(mesh, node, { type: 'url-content', url, validator, contentId: manifest.contentId });
}

function lookup(mesh: Mesh, node: number, lookupId: number, url = URL): void {
  feed(mesh, node, { type: 'lookup-url', lookupId, url });
}

function lookups(mesh: Mesh, node: number): Lookup[] {
  return mesh.eventsOf(node, 'url:lookup');
}

/** Holders as comparable rows: [device hex, validator, content hex]. */
function rows(event: Lookup | undefined): string[][] {
  assert.ok(event !== undefined, 'no url:lookup event');
  return event.holders.map((h) => [toHex(h.deviceId), h.validator, toHex(h.contentId)]);
}

/** A mesh of pod members, node 0 linked to every other one, the handshakes done. */
function podStar(count: number, extra: Record<number, NodeOptions> = {}): Mesh {
  const mesh = new Mesh(Array.from({ length: count }, (_, i) => ({ ...pod, ...extra[i] })));
  mesh.star();
  mesh.drive();
  assert.equal(mesh.eventsOf(0, 'peer:connect').length, count - 1, 'links ready');
  return mesh;
}

/** Messages a node without transfer handling saw from its links. */
function seen(mesh: Mesh, node: number, type: WireMessage['type']): WireMessage[] {
  return mesh
    .eventsOf(node, 'peer:message')
    .map((e) => e.message)
    .filter((m) => m.type === type);
}

test('url lookup: B finds the content A holds for the URL, with A’s device ID and validator', () => {
  const mesh = podStar(2);
  mesh.seedContent(1, content, data);
  mapUrl(mesh, 1, URL, ETAG, content);
  lookup(mesh, 0, 7);
  const events = lookups(mesh, 0);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.lookupId, 7);
  assert.equal(events[0]!.url, URL);
  assert.deepEqual(rows(events[0]), [
    [toHex(mesh.nodes[1]!.deviceId), ETAG, toHex(content.contentId)],
  ]);
  // It ended because the one asked link answered: no time passed, and nothing more comes.
  assert.equal(mesh.nowMs, 0);
  mesh.advance(3 * URL_LOOKUP_TIMEOUT_MS);
  assert.equal(lookups(mesh, 0).length, 1);
});

test('url lookup: several members; only those holding a chunk answer with an entry', () => {
  const mesh = podStar(4);
  mesh.seedContent(1, content, data, [2]); // one chunk is enough
  mapUrl(mesh, 1, URL, ETAG, content);
  mapUrl(mesh, 2, URL, '"v0"', other); // mapped, but node 2 holds none of it
  mesh.seedContent(3, other, testBytes(CHUNK, 4));
  mapUrl(mesh, 3, URL, '"v0"', other);
  lookup(mesh, 0, 1);
  const got = rows(lookups(mesh, 0)[0]).sort();
  const want = [
    [toHex(mesh.nodes[1]!.deviceId), ETAG, toHex(content.contentId)],
    [toHex(mesh.nodes[3]!.deviceId), '"v0"', toHex(other.contentId)],
  ].sort();
  assert.deepEqual(got, want);
});

test('url lookup: nobody holds it: the lookup ends with no holders once all answered', () => {
  const mesh = podStar(3);
  lookup(mesh, 0, 2);
  assert.deepEqual(rows(lookups(mesh, 0)[0]), []);
  assert.equal(mesh.nowMs, 0);
});

test('url lookup: no link to ask: the event comes at once', () => {
  const mesh = new Mesh([pod]);
  lookup(mesh, 0, 3);
  assert.deepEqual(rows(lookups(mesh, 0)[0]), []);
});

test('url lookup: a link that closes mid-lookup ends the lookup with what the others said', () => {
  const mesh = podStar(3);
  mesh.seedContent(1, content, data);
  mapUrl(mesh, 1, URL, ETAG, content);
  mesh.mute(2, 0); // node 2's answer never arrives
  lookup(mesh, 0, 4);
  assert.equal(lookups(mesh, 0).length, 0, 'still waiting for node 2');
  mesh.cut(0, 2);
  mesh.drive();
  const events = lookups(mesh, 0);
  assert.equal(events.length, 1);
  assert.deepEqual(rows(events[0]), [
    [toHex(mesh.nodes[1]!.deviceId), ETAG, toHex(content.contentId)],
  ]);
});

test('url lookup: a silent link: the lookup ends at URL_LOOKUP_TIMEOUT_MS with the answers it has', () => {
  const mesh = podStar(3);
  mesh.seedContent(2, content, data);
  mapUrl(mesh, 2, URL, ETAG, content);
  mesh.mute(1, 0);
  lookup(mesh, 0, 5);
  const start = mesh.nowMs;
  mesh.advance(URL_LOOKUP_TIMEOUT_MS - 1);
  assert.equal(lookups(mesh, 0).length, 0, 'not before the deadline');
  mesh.advance(1);
  const events = lookups(mesh, 0);
  assert.equal(events.length, 1);
  assert.equal(mesh.nowMs - start, URL_LOOKUP_TIMEOUT_MS);
  assert.deepEqual(rows(events[0]), [
    [toHex(mesh.nodes[2]!.deviceId), ETAG, toHex(content.contentId)],
  ]);
  // The muted link's late answer (were it unmuted) would be for a finished lookup: ignored.
  mesh.advance(3 * URL_LOOKUP_TIMEOUT_MS);
  assert.equal(lookups(mesh, 0).length, 1);
});

test('url lookup: concurrent lookups each end once, with their own URL', () => {
  const mesh = podStar(2);
  mesh.seedContent(1, content, data);
  mapUrl(mesh, 1, URL, ETAG, content);
  mesh.input(0, { type: 'lookup-url', nowMs: 0, lookupId: 1, url: URL });
  mesh.input(0, { type: 'lookup-url', nowMs: 0, lookupId: 2, url: `${URL}?other` });
  mesh.drive();
  const events = lookups(mesh, 0).sort((a, b) => a.lookupId - b.lookupId);
  assert.deepEqual(
    events.map((e) => [e.lookupId, e.url, e.holders.length]),
    [
      [1, URL, 1],
      [2, `${URL}?other`, 0],
    ],
  );
});

test('url lookup: non-pod links are neither asked nor answered', () => {
  // Without a pod secret, links are not pod links: a lookup asks nobody.
  const open = new Mesh([{}, {}]);
  open.connect(0, 1);
  open.drive();
  open.seedContent(1, content, data);
  mapUrl(open, 1, URL, ETAG, content);
  lookup(open, 0, 1);
  assert.deepEqual(rows(lookups(open, 0)[0]), []);

  // A URL_QUERY sent anyway on a non-pod link gets no answer; on a pod link it does.
  for (const [options, answers] of [
    [{}, 0],
    [pod, 1],
  ] as const) {
    const mesh = new Mesh([{ ...options, handleTransfers: false }, options]);
    mesh.connect(0, 1);
    mesh.drive();
    mesh.seedContent(1, content, data);
    mapUrl(mesh, 1, URL, ETAG, content);
    const message = { type: 'url-query', queryId: 9, url: URL } as const;
    feed(mesh, 0, { type: 'send-message', linkId: Mesh.linkId(1), message });
    const got = seen(mesh, 0, 'url-answer');
    assert.equal(got.length, answers, `pod secret ${options.podSecret !== undefined}`);
    if (answers === 1) {
      assert.deepEqual(got[0], {
        type: 'url-answer',
        queryId: 9,
        entries: [{ validator: ETAG, contentId: content.contentId }],
      });
    }
  }
});

test('url lookup: links whose peer does not serve chunks are not asked', () => {
  const mesh = podStar(3, { 2: { capabilities: Capability.rpc, handleTransfers: false } });
  lookup(mesh, 0, 1);
  assert.equal(seen(mesh, 2, 'url-query').length, 0);
  assert.equal(lookups(mesh, 0).length, 1, 'ended when node 1 answered');
});

test('url lookup: unsolicited and duplicate answers are ignored', () => {
  // Node 1 answers by hand; node 2 stays silent, so the lookup is still open when node 1's
  // second answer arrives.
  const mesh = podStar(3, { 1: { handleTransfers: false } });
  mesh.mute(2, 0);
  const answer = (queryId: number, contentId: Uint8Array): void => {
    const entries = [{ validator: ETAG, contentId }];
    const message = { type: 'url-answer', queryId, entries } as const;
    feed(mesh, 1, { type: 'send-message', linkId: Mesh.linkId(0), message });
  };
  answer(12345, content.contentId); // nobody asked
  lookup(mesh, 0, 1);
  const [query] = seen(mesh, 1, 'url-query');
  assert.ok(query?.type === 'url-query' && query.url === URL);
  answer(query.queryId + 1, other.contentId); // a query ID never used
  answer(query.queryId, content.contentId);
  answer(query.queryId, other.contentId); // a second answer from the same link
  assert.equal(lookups(mesh, 0).length, 0, 'node 2 has not answered');
  mesh.advance(URL_LOOKUP_TIMEOUT_MS);
  const events = lookups(mesh, 0);
  assert.equal(events.length, 1);
  assert.deepEqual(rows(events[0]), [
    [toHex(mesh.nodes[1]!.deviceId), ETAG, toHex(content.contentId)],
  ]);
  assert.equal(mesh.eventsOf(0, 'peer:disconnect').length, 0, 'ignored, not a protocol error');
});

test('url mappings: removing a whole content forgets them; removing some chunks does not', () => {
  const mesh = podStar(2);
  mesh.seedContent(1, content, data);
  mapUrl(mesh, 1, URL, ETAG, content);
  feed(mesh, 1, { type: 'content-removed', contentId: content.contentId, chunkIndices: [0, 1] });
  lookup(mesh, 0, 1);
  assert.equal(rows(lookups(mesh, 0)[0]).length, 1, 'chunk 2 is still held');
  feed(mesh, 1, { type: 'content-removed', contentId: content.contentId });
  lookup(mesh, 0, 2);
  assert.equal(rows(lookups(mesh, 0)[1]).length, 0);
  // The content comes back, but the mapping was forgotten, not just hidden.
  mesh.seedContent(1, content, data);
  mesh.drive();
  lookup(mesh, 0, 3);
  assert.equal(rows(lookups(mesh, 0)[2]).length, 0);
});

test('url mappings: at most URL_VERSIONS_MAX validators per URL, most recent first; a newer mapping replaces the same validator', () => {
  const mesh = podStar(2);
  mesh.seedContent(1, content, data);
  mesh.seedContent(1, other, testBytes(CHUNK, 4));
  for (let v = 0; v <= URL_VERSIONS_MAX; v++) mapUrl(mesh, 1, URL, `"v${v}"`, content);
  mapUrl(mesh, 1, URL, '"v2"', other); // replaces "v2", now the most recent
  lookup(mesh, 0, 1);
  assert.deepEqual(
    lookups(mesh, 0)[0]!.holders.map((h) => [h.validator, toHex(h.contentId)]),
    [
      ['"v2"', toHex(other.contentId)],
      ['"v4"', toHex(content.contentId)],
      ['"v3"', toHex(content.contentId)],
      ['"v1"', toHex(content.contentId)],
    ],
  );
});

test('url mappings: at most URL_INDEX_URLS_MAX URLs, the least recently used dropped first', () => {
  const mesh = podStar(2);
  mesh.seedContent(1, content, data);
  const url = (i: number): string => `https://origin.example/object/${i}`;
  for (let i = 0; i < URL_INDEX_URLS_MAX; i++) {
    mesh.input(1, {
      type: 'url-content',
      nowMs: 0,
      url: url(i),
      validator: ETAG,
      contentId: content.contentId,
    });
  }
  lookup(mesh, 0, 1, url(0)); // answering url(0) makes it the most recently used
  assert.equal(lookups(mesh, 0)[0]!.holders.length, 1);
  mapUrl(mesh, 1, `${url(0)}/new`, ETAG, content); // one URL too many: url(1) goes
  const found = (id: number, u: string): number => {
    lookup(mesh, 0, id, u);
    return lookups(mesh, 0).find((e) => e.lookupId === id)!.holders.length;
  };
  assert.equal(found(2, url(1)), 0);
  assert.equal(found(3, url(0)), 1);
  assert.equal(found(4, url(2)), 1);
  assert.equal(found(5, `${url(0)}/new`), 1);
});

test('url inputs: host mistakes throw with the field named', () => {
  const mesh = podStar(2);
  const core = mesh.nodes[0]!.core;
  const cases: Array<[CoreInput, string]> = [
    [
      { type: 'url-content', nowMs: 0, url: '', validator: ETAG, contentId: content.contentId },
      'url-content.url',
    ],
    [
      {
        type: 'url-content',
        nowMs: 0,
        url: 'u'.repeat(8193),
        validator: '',
        contentId: content.contentId,
      },
      'url-content.url',
    ],
    [
      {
        type: 'url-content',
        nowMs: 0,
        url: URL,
        validator: 'v'.repeat(257),
        contentId: content.contentId,
      },
      'url-content.validator',
    ],
    [
      { type: 'url-content', nowMs: 0, url: URL, validator: ETAG, contentId: new Uint8Array(31) },
      'url-content.contentId',
    ],
    [{ type: 'lookup-url', nowMs: 0, lookupId: 1, url: '' }, 'lookup-url.url'],
    [{ type: 'lookup-url', nowMs: 0, lookupId: 0.5, url: URL }, 'lookup-url.lookupId'],
  ];
  for (const [input, field] of cases) {
    assert.throws(
      () => core.handle(input),
      (error: { code?: string; message?: string }) =>
        error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' && String(error.message).includes(field),
      field,
    );
  }
  mesh.mute(1, 0);
  core.handle({ type: 'lookup-url', nowMs: 0, lookupId: 1, url: URL });
  assert.throws(() => core.handle({ type: 'lookup-url', nowMs: 0, lookupId: 1, url: URL }), {
    code: 'PEAPOD_ERR_INVALID_STATE',
  });
});

test('url lookup (fast-check model): holders are the held, most recent mappings of the URL', () => {
  const urls = ['https://a.example/x', 'https://a.example/y', 'https://b.example/x'];
  const contents = [content, other, manifestOf(testBytes(CHUNK + 5, 9))];
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('map' as const),
      url: fc.nat(urls.length - 1),
      validator: fc.nat(5),
      content: fc.nat(contents.length - 1),
    }),
    fc.record({ kind: fc.constant('hold' as const), content: fc.nat(contents.length - 1) }),
    fc.record({ kind: fc.constant('remove' as const), content: fc.nat(contents.length - 1) }),
    fc.record({ kind: fc.constant('lookup' as const), url: fc.nat(urls.length - 1) }),
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 30 }), (ops) => {
      const mesh = podStar(2);
      const model = new Map<string, Array<{ validator: string; content: number }>>();
      const held = new Set<number>();
      let lookupId = 0;
      for (const o of ops) {
        if (o.kind === 'map') {
          const validator = `"${o.validator}"`;
          mapUrl(mesh, 1, urls[o.url]!, validator, contents[o.content]!);
          const list = (model.get(urls[o.url]!) ?? []).filter((m) => m.validator !== validator);
          list.unshift({ validator, content: o.content });
          model.set(urls[o.url]!, list.slice(0, URL_VERSIONS_MAX));
        } else if (o.kind === 'hold') {
          const manifest = contents[o.content]!;
          mesh.seedContent(1, manifest, testBytes(manifest.totalBytes, o.content));
          mesh.drive();
          held.add(o.content);
        } else if (o.kind === 'remove') {
          feed(mesh, 1, { type: 'content-removed', contentId: contents[o.content]!.contentId });
          held.delete(o.content);
          for (const [url, list] of model) {
            model.set(
              url,
              list.filter((m) => m.content !== o.content),
            );
          }
        } else {
          lookup(mesh, 0, ++lookupId, urls[o.url]);
          const event = lookups(mesh, 0).find((e) => e.lookupId === lookupId);
          const want = (model.get(urls[o.url]!) ?? [])
            .filter((m) => held.has(m.content))
            .map((m) => [m.validator, toHex(contents[m.content]!.contentId)]);
          assert.deepEqual(
            event?.holders.map((h) => [h.validator, toHex(h.contentId)]),
            want,
          );
        }
      }
    }),
    { numRuns: 60 },
  );
});
