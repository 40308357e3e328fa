/**
 * A helper whose destination policy refuses the origin (DESIGN.md decision 14), between real
 * Cores in virtual time (mesh harness; the fake origin plays the helper host's policy as
 * 'refuses-peers'). The fetch for a peer is marked `forPeer`; the helper answers its one
 * FETCH_ASSIGN at once with STATUS error; the requester takes that piece itself or gives it to
 * another helper, without a strike, and assigns the refusing helper nothing more.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Capability } from '../src/wire/messages.js';
import { Mesh, type NodeOptions } from './support/mesh.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { testBytes } from './support/content-fixture.js';

const PIECE = 64 * 1024;
const podSecret = new Uint8Array(32).fill(9);
const helperCaps = Capability.serveChunks | Capability.fetchOrigin | Capability.rpc;
const crypto = deterministicCrypto(3);

function pod(helpers: readonly Partial<NodeOptions>[]): Mesh {
  const mesh = new Mesh([
    { podSecret, originDelayMs: 300 },
    ...helpers.map((h) => ({ podSecret, capabilities: helperCaps, originDelayMs: 300, ...h })),
  ]);
  mesh.star();
  mesh.drive();
  return mesh;
}

/** Runs one pooled download of `origin` to its end; returns the virtual time it took. */
function download(mesh: Mesh, origin: Uint8Array): number {
  mesh.origin = origin;
  const started = mesh.nowMs;
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: {
      kind: 'url',
      url: 'http://origin.example/object.bin',
      totalBytes: origin.length,
      validator: '"v1"',
      headers: [{ name: 'authorization', value: 'Bearer t' }],
      pieceSizeBytes: PIECE,
      sha256: crypto.sha256(origin),
    },
  });
  mesh.runUntil(
    () =>
      mesh.eventsOf(0, 'download:complete').length + mesh.eventsOf(0, 'download:failed').length > 0,
    60_000,
    10,
  );
  return mesh.nowMs - started;
}

test('a refusing helper: one assignment answered at once, every byte from the others, no strike', () => {
  const origin = testBytes(24 * PIECE + 5, 41);
  const mesh = pod([{ origin: 'refuses-peers' }, {}]);
  const tookMs = download(mesh, origin);
  assert.equal(mesh.eventsOf(0, 'download:failed').length, 0);
  assert.equal(mesh.eventsOf(0, 'download:complete').length, 1);
  assert.deepEqual(mesh.deliveredBytes(0, 1), origin);

  // The host is told who each fetch is for: the requester's own fetches may go anywhere.
  assert.ok(mesh.nodes[0]!.fetches.length > 0);
  assert.ok(mesh.nodes[0]!.fetches.every((fetch) => !fetch.forPeer));
  for (const helper of [1, 2]) {
    assert.ok(mesh.nodes[helper]!.fetches.every((fetch) => fetch.forPeer));
  }
  // The refusing helper got one assignment, fetched nothing, and was given nothing more.
  assert.equal(mesh.nodes[1]!.fetches.length, 1);
  assert.equal(mesh.nodes[1]!.originBytes, 0);
  // Its piece went to self or to the helper that fetches.
  assert.ok(mesh.nodes[2]!.originBytes >= PIECE, 'the other helper fetched a share');
  const [progress] = mesh.eventsOf(0, 'download:progress').slice(-1);
  assert.equal(progress?.bySource[mesh.nodes[1]!.deviceId.reduce(hex, '')] ?? 0, 0);
  // No strike, no ban, and the link stays up: the refusal is not misbehaviour.
  assert.equal(mesh.eventsOf(0, 'peer:banned').length, 0);
  assert.equal(mesh.eventsOf(0, 'peer:disconnect').length, 0);

  // Answered at once: not slower than the same pod without the refusing helper.
  const alone = pod([{}]);
  assert.ok(tookMs <= download(alone, origin), `took ${tookMs} ms`);
});

test('every helper refuses: self fetches the whole object, as promptly as with no helper', () => {
  const origin = testBytes(10 * PIECE, 42);
  const mesh = pod([{ origin: 'refuses-peers' }, { origin: 'refuses-peers' }]);
  const tookMs = download(mesh, origin);
  assert.deepEqual(mesh.deliveredBytes(0, 1), origin);
  assert.equal(mesh.nodes[0]!.originBytes, origin.length);
  for (const helper of [1, 2]) assert.equal(mesh.nodes[helper]!.fetches.length, 1);
  const alone = pod([]);
  // One origin round trip at most is lost to each refused first assignment.
  assert.ok(tookMs <= download(alone, origin) + 300, `took ${tookMs} ms`);
});

function hex(text: string, byte: number): string {
  return text + byte.toString(16).padStart(2, '0');
}
