/**
 * Pooled URL downloads between real Cores (mesh harness with a fake origin): self plus pod
 * helpers, spot checks catching a corrupting helper, helpers that leave or stall, origin
 * changes, the end-to-end SHA-256, and the memory window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Capability } from '../src/wire/messages.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import { Mesh, type NodeOptions } from './support/mesh.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { testBytes } from './support/content-fixture.js';
import type { CryptoProvider } from '../src/crypto-provider.js';

const PIECE = 64 * 1024;
const podSecret = new Uint8Array(32).fill(9);
const helperCaps = Capability.serveChunks | Capability.fetchOrigin | Capability.rpc;
const crypto = deterministicCrypto(3);

function pod(helpers: readonly Partial<NodeOptions>[], requester: Partial<NodeOptions> = {}): Mesh {
  const mesh = new Mesh([
    { podSecret, ...requester },
    ...helpers.map((h) => ({ podSecret, capabilities: helperCaps, ...h })),
  ]);
  mesh.star();
  mesh.drive();
  return mesh;
}

function startUrl(
  mesh: Mesh,
  downloadId: number,
  extra: {
    sha256?: Uint8Array;
    validator?: string;
    attempt?: number;
    pooled?: boolean;
    startOffset?: number;
  } = {},
): void {
  const { sha256, attempt, pooled, startOffset } = extra;
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId,
    source: {
      kind: 'url',
      url: 'https://origin.example/object.bin',
      totalBytes: mesh.origin.length,
      validator: extra.validator ?? '"v1"',
      headers: [{ name: 'authorization', value: 'Bearer t' }],
      pieceSizeBytes: PIECE,
      ...(sha256 === undefined ? {} : { sha256 }),
      ...(attempt === undefined ? {} : { attempt }),
      ...(pooled === undefined ? {} : { pooled }),
      ...(startOffset === undefined ? {} : { startOffset }),
    },
  });
}

/**
 * A crypto provider that counts the bytes it hashes with SHA-256 in inputs of at least 4 KiB:
 * pieces and delivered slices, not the handshakes' short transcripts (so the objects below
 * have no piece shorter than that).
 */
function countingCrypto(seed: number): { crypto: CryptoProvider; hashedBytes: () => number } {
  const inner = deterministicCrypto(seed);
  let hashed = 0;
  const count = (data: Uint8Array): void => {
    if (data.length >= 4096) hashed += data.length;
  };
  const crypto: CryptoProvider = {
    ...inner,
    sha256: (data) => {
      count(data);
      return inner.sha256(data);
    },
    createSha256: () => {
      const hasher = inner.createSha256();
      return {
        update: (data) => {
          count(data);
          hasher.update(data);
        },
        digest: () => hasher.digest(),
      };
    },
  };
  return { crypto, hashedBytes: () => hashed };
}

const finished = (mesh: Mesh, id: number) => (): boolean =>
  mesh.eventsOf(0, 'download:complete').some((e) => e.downloadId === id) ||
  mesh.eventsOf(0, 'download:failed').some((e) => e.downloadId === id);

test('pooled URL with self and three helpers is byte-exact and every helper fetched a share', () => {
  const mesh = pod([{}, {}, {}]);
  mesh.origin = testBytes(40 * PIECE + 777, 1);
  startUrl(mesh, 1, { sha256: crypto.sha256(mesh.origin) });
  mesh.runUntil(finished(mesh, 1));
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.ok(done, 'completed');
  assert.deepEqual(done.sha256, crypto.sha256(mesh.origin));
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
  for (const helper of [1, 2, 3]) {
    assert.ok(mesh.nodes[helper]!.originBytes >= PIECE, `helper ${helper} fetched a share`);
  }
  // Self fetched pieces plus the spot-check samples, and not the whole object.
  assert.ok(mesh.nodes[0]!.originBytes < mesh.origin.length);
  assert.equal(mesh.nodes[0]!.core.downloadMemoryBytes(1), 0);
});

test('every helper fetch carries the validator and headers', () => {
  const mesh = pod([{}]);
  mesh.origin = testBytes(6 * PIECE, 2);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1));
  const fetches = [...mesh.nodes[0]!.fetches, ...mesh.nodes[1]!.fetches];
  assert.ok(fetches.length > 0);
  for (const fetch of fetches) {
    assert.equal(fetch.validator, '"v1"');
    assert.deepEqual(fetch.headers, [{ name: 'authorization', value: 'Bearer t' }]);
  }
});

test('a helper that returns corrupted origin bytes is caught by spot checks and banned', () => {
  const mesh = pod([{}, { origin: 'corrupt' }, {}]);
  mesh.origin = testBytes(30 * PIECE, 3);
  startUrl(mesh, 1, { sha256: crypto.sha256(mesh.origin) });
  mesh.runUntil(finished(mesh, 1));
  assert.equal(mesh.eventsOf(0, 'download:failed').length, 0);
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
  const [banned] = mesh.eventsOf(0, 'peer:banned');
  assert.deepEqual(banned?.deviceId, mesh.nodes[2]!.deviceId);
  const gone = mesh.eventsOf(0, 'peer:disconnect').find((e) => e.linkId === Mesh.linkId(2));
  assert.equal(gone?.reason, ReasonCode.banned);
});

test('a helper that leaves mid-piece: its pieces are reassigned', () => {
  const mesh = pod([{ originDelayMs: 2_000 }, {}]);
  mesh.origin = testBytes(20 * PIECE, 4);
  startUrl(mesh, 1);
  mesh.advance(500);
  mesh.cut(0, 1);
  mesh.runUntil(finished(mesh, 1));
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
});

test('a helper whose origin stalls is timed out and its pieces reassigned', () => {
  const mesh = pod([{ origin: 'stall' }, {}], { stallFloorMs: 1_000 });
  mesh.origin = testBytes(20 * PIECE, 5);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1), 60_000);
  assert.ok(mesh.eventsOf(0, 'download:complete').length === 1, 'completed');
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
});

test('with no helpers at all the download falls back to self', () => {
  const mesh = pod([]);
  mesh.origin = testBytes(5 * PIECE + 3, 6);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1));
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
});

test('origin changed at a helper fails the download with origin-changed', () => {
  const mesh = pod([{ origin: 'changed' }], { origin: 'ok', originDelayMs: 1_000 });
  mesh.origin = testBytes(10 * PIECE, 7);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1));
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'origin-changed');
  assert.equal(mesh.eventsOf(0, 'download:complete').length, 0);
});

test('origin changed at self fails the download with origin-changed', () => {
  const mesh = pod([], { origin: 'changed' });
  mesh.origin = testBytes(3 * PIECE, 8);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1));
  assert.equal(mesh.eventsOf(0, 'download:failed')[0]?.reason, 'origin-changed');
});

test('a SHA-256 mismatch at the end fails the download clearly', () => {
  const mesh = pod([{}]);
  mesh.origin = testBytes(4 * PIECE, 9);
  startUrl(mesh, 1, { sha256: new Uint8Array(32) });
  mesh.runUntil(finished(mesh, 1));
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'sha256-mismatch');
  assert.match(failed?.detail ?? '', /discard/);
});

test('memory bound: without delivered acknowledgements the core holds at most window + pipeline', () => {
  const window = 4 * PIECE;
  const mesh = pod([{}, {}], { autoAck: false, reorderWindowBytes: window });
  mesh.origin = testBytes(40 * PIECE, 10);
  startUrl(mesh, 1);
  let peak = 0;
  for (let i = 0; i < 50; i++) {
    mesh.advance(100);
    peak = Math.max(peak, mesh.nodes[0]!.core.downloadMemoryBytes(1));
  }
  const delivered = mesh.deliveredBytes(0, 1).length;
  assert.ok(delivered <= window + PIECE, `delivered ${delivered} without acknowledgements`);
  assert.ok(peak <= window + 3 * 2 * PIECE, `peak ${peak}`);
  // Acknowledge everything from now on: the download finishes.
  let acked = 0;
  mesh.runUntil(() => {
    const total = mesh.deliveredBytes(0, 1).length;
    if (total > acked) {
      mesh.input(0, {
        type: 'delivered',
        nowMs: mesh.nowMs,
        downloadId: 1,
        byteCount: total - acked,
      });
      acked = total;
    }
    peak = Math.max(peak, mesh.nodes[0]!.core.downloadMemoryBytes(1));
    return finished(mesh, 1)();
  });
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
  assert.ok(peak <= window + 3 * 2 * PIECE, `peak ${peak}`);
});

test('progress events come at most every 250 ms per download', () => {
  const mesh = pod([{ originDelayMs: 30 }, { originDelayMs: 30 }], { originDelayMs: 30 });
  mesh.origin = testBytes(60 * PIECE, 11);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1), 600_000, 10);
  const times: number[] = [];
  // Progress events carry no time; count them against the virtual duration instead.
  const progress = mesh.eventsOf(0, 'download:progress');
  times.push(progress.length);
  assert.ok(progress.length >= 1);
  // The last byte's event is never held back (it carries the final per-source shares): one more.
  assert.ok(
    progress.length <= Math.floor(mesh.nowMs / 250) + 2,
    `${progress.length} events in ${mesh.nowMs} ms`,
  );
  const last = progress.at(-1)!;
  assert.equal(last.verifiedBytes, last.totalBytes);
  const shares = Object.values(last.bySource).reduce((sum, bytes) => sum + bytes, 0);
  assert.equal(shares, last.totalBytes, 'the final event carries every source share');
});

// --- repairs: a helper caught lying after some of its pieces were delivered ---

/** True once the requester's output differs from the origin (a sparse lie got through). */
const lieDelivered = (mesh: Mesh) => (): boolean => {
  const out = mesh.deliveredBytes(0, 1);
  return out.some((byte, i) => byte !== mesh.origin[i]);
};

/** Runs a pod where helper 2 lies sparsely until one of its lies was delivered, then densely. */
function lieThenGetCaught(
  extra: { sha256?: Uint8Array } = {},
  requester: Partial<NodeOptions> = {},
): Mesh {
  // Origin latency spreads the download over time, so the switch below lands mid-way.
  const slow = { originDelayMs: 50 };
  const mesh = pod([slow, { ...slow, origin: 'corrupt-sparse' }, slow], { ...slow, ...requester });
  mesh.origin = testBytes(40 * PIECE + 123, 12);
  startUrl(mesh, 1, extra);
  mesh.runUntil(() => lieDelivered(mesh)() || finished(mesh, 1)(), 60_000, 10);
  assert.ok(lieDelivered(mesh)(), 'a sparsely corrupted piece passed its spot check');
  assert.equal(mesh.eventsOf(0, 'peer:banned').length, 0);
  mesh.nodes[2]!.originMode = 'corrupt';
  mesh.runUntil(finished(mesh, 1));
  return mesh;
}

function repairsOf(mesh: Mesh): Array<{ offset: number; bytes: Uint8Array }> {
  return (mesh.nodes[0]!.delivered.get(1) ?? []).filter((d) => d.repair);
}

test('a helper caught after its lies were delivered: those ranges are repaired in place', () => {
  const expected = crypto.sha256(testBytes(40 * PIECE + 123, 12));
  const mesh = lieThenGetCaught({ sha256: expected });
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.ok(done, `completed: ${JSON.stringify(mesh.eventsOf(0, 'download:failed'))}`);
  // The output (deliveries, then repairs written over them) is the object, byte for byte.
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
  assert.deepEqual(done.sha256, expected);
  const repairs = repairsOf(mesh);
  assert.ok(repairs.length > 0, 'some delivered range was repaired');
  for (const repair of repairs) {
    assert.equal(repair.offset % PIECE, 0, 'a repair covers a whole piece');
    assert.deepEqual(
      repair.bytes,
      mesh.origin.subarray(repair.offset, repair.offset + repair.bytes.length),
    );
  }
  const [banned] = mesh.eventsOf(0, 'peer:banned');
  assert.deepEqual(banned?.deviceId, mesh.nodes[2]!.deviceId);
  // Every delivered byte (repairs included) was acknowledged: nothing is held.
  assert.equal(mesh.nodes[0]!.core.downloadMemoryBytes(1), 0);
});

test('after repairs without a known digest, download:complete carries the read-back digest', () => {
  const mesh = lieThenGetCaught();
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.ok(done, 'completed');
  assert.ok(repairsOf(mesh).length > 0);
  // The running digest covered the lie; only a digest of the output read back is right.
  assert.deepEqual(done.sha256, crypto.sha256(mesh.origin));
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
});

test('a host that cannot read its output back fails a repaired download clearly', () => {
  const mesh = lieThenGetCaught({}, { readDelivered: false });
  assert.equal(mesh.eventsOf(0, 'download:complete').length, 0);
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'output-unreadable');
  assert.match(failed?.detail ?? '', /read back/);
});

test('progress never counts a byte twice, and drops a banned helper’s share', () => {
  const mesh = lieThenGetCaught({}, { progressIntervalMs: 1 });
  const liar = Buffer.from(mesh.nodes[2]!.deviceId).toString('hex');
  const progress = mesh.eventsOf(0, 'download:progress');
  const banAt = mesh.nodes[0]!.events.findIndex((e) => e.type === 'peer:banned');
  assert.ok(banAt > 0);
  for (const event of progress) {
    const sum = Object.values(event.bySource).reduce((a, b) => a + b, 0);
    assert.equal(sum, event.verifiedBytes);
    assert.ok(event.verifiedBytes <= event.totalBytes);
  }
  const after = mesh.nodes[0]!.events.slice(banAt).filter((e) => e.type === 'download:progress');
  assert.ok(after.length > 0, 'progress after the ban');
  for (const event of after) assert.equal(event.bySource[liar], undefined);
});

test('a liar that passes every spot check: a digest mismatch starts an audit that convicts it', () => {
  for (const withDigest of [true, false]) {
    const mesh = pod([{}, { origin: 'corrupt-sparse' }, {}]);
    mesh.origin = testBytes(40 * PIECE, 13);
    const expected = crypto.sha256(mesh.origin);
    startUrl(mesh, 1, withDigest ? { sha256: expected } : {});
    mesh.runUntil(finished(mesh, 1));
    const [done] = mesh.eventsOf(0, 'download:complete');
    if (withDigest) {
      // The audit refetches every helper piece itself, finds the differing ones, bans the liar
      // and repairs its pieces: exact output, a ban, no failure.
      assert.equal(mesh.eventsOf(0, 'peer:banned').length, 1, 'the audit convicts the liar');
      assert.deepEqual(done?.sha256, expected);
      assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
    } else {
      assert.equal(mesh.eventsOf(0, 'peer:banned').length, 0, 'the sparse liar passed every check');
      assert.notDeepEqual(done?.sha256, expected, 'the documented limit: no digest, no detection');
    }
  }
});

test('a spot-check sample is fetched while the helper fetches its piece, not after', () => {
  const helperDelayMs = 1_000;
  const mesh = pod([{ originDelayMs: helperDelayMs }]);
  mesh.origin = testBytes(8 * PIECE, 11);
  // Every fetch-origin output, with the virtual time it was issued.
  const issued: Array<{ node: number; atMs: number; rangeStart: number; rangeEnd: number }> = [];
  for (const node of mesh.nodes) {
    const push = node.fetches.push.bind(node.fetches);
    node.fetches.push = (...items) => {
      for (const f of items)
        issued.push({
          node: node.index,
          atMs: mesh.nowMs,
          rangeStart: f.rangeStart,
          rangeEnd: f.rangeEnd,
        });
      return push(...items);
    };
  }
  startUrl(mesh, 1, { sha256: crypto.sha256(mesh.origin) });
  mesh.runUntil(finished(mesh, 1));
  assert.equal(mesh.eventsOf(0, 'download:complete').length, 1);
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin);
  const helperPieces = issued.filter((f) => f.node === 1);
  assert.ok(helperPieces.length > 0, 'the helper fetched pieces');
  for (const piece of helperPieces) {
    const samples = issued.filter(
      (f) =>
        f.node === 0 &&
        f.rangeStart >= piece.rangeStart &&
        f.rangeEnd <= piece.rangeEnd &&
        f.rangeEnd - f.rangeStart < piece.rangeEnd - piece.rangeStart,
    );
    assert.ok(samples.length > 0, `no sample of [${piece.rangeStart}, ${piece.rangeEnd})`);
    // Requested before the helper's origin could have answered: not after the piece arrived.
    assert.ok(
      samples.some((s) => s.atMs < piece.atMs + helperDelayMs),
      `the sample of [${piece.rangeStart}, ${piece.rangeEnd}) waited for the piece`,
    );
  }
});

// --- digest responsibility: one SHA-256 pass per delivered byte (transfer-api.ts) ---

test('without a known digest every delivered byte is hashed once, helper pieces included', () => {
  const counting = countingCrypto(100);
  const mesh = pod([{}, {}, {}], { crypto: counting.crypto });
  mesh.origin = testBytes(24 * PIECE + 5_000, 21);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1));
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.deepEqual(done?.sha256, crypto.sha256(mesh.origin));
  const shares = mesh.eventsOf(0, 'download:progress').at(-1)!.bySource;
  assert.ok(Object.keys(shares).length > 1, 'helpers gave pieces');
  // The running digest only: no per-helper piece hash without a digest to audit against.
  assert.equal(counting.hashedBytes(), mesh.origin.length);
});

test('with a known digest, helper pieces are hashed once more (for an audit), nothing else', () => {
  const counting = countingCrypto(100);
  const mesh = pod([{}, {}, {}], { crypto: counting.crypto });
  mesh.origin = testBytes(24 * PIECE + 5_000, 22);
  startUrl(mesh, 1, { sha256: crypto.sha256(mesh.origin) });
  mesh.runUntil(finished(mesh, 1));
  assert.equal(mesh.eventsOf(0, 'download:complete').length, 1);
  const shares = mesh.eventsOf(0, 'download:progress').at(-1)!.bySource;
  const helperBytes = Object.entries(shares)
    .filter(([source]) => source !== 'self')
    .reduce((sum, [, bytes]) => sum + bytes, 0);
  assert.ok(helperBytes > 0, 'helpers gave pieces');
  assert.equal(counting.hashedBytes(), mesh.origin.length + helperBytes);
});

test('a resumed download hashes nothing and completes without a digest', () => {
  const counting = countingCrypto(100);
  const mesh = pod([{}, {}], { crypto: counting.crypto });
  mesh.origin = testBytes(12 * PIECE + 5, 23);
  const startOffset = 3 * PIECE + 17;
  startUrl(mesh, 1, { startOffset });
  mesh.runUntil(finished(mesh, 1));
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.ok(done, 'completed');
  assert.equal(done.sha256, undefined);
  assert.equal(done.totalBytes, mesh.origin.length - startOffset);
  assert.deepEqual(mesh.deliveredBytes(0, 1), mesh.origin.subarray(startOffset));
  assert.equal(counting.hashedBytes(), 0);
});

test('after repairs the output is read back once, and the running digest stops', () => {
  const counting = countingCrypto(100);
  const mesh = lieThenGetCaught({}, { crypto: counting.crypto });
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.deepEqual(done?.sha256, crypto.sha256(mesh.origin));
  assert.ok(repairsOf(mesh).length > 0);
  // One read-back of the whole output, plus the running digest of what was delivered before
  // the first repair: less than two passes.
  assert.ok(counting.hashedBytes() >= mesh.origin.length);
  assert.ok(counting.hashedBytes() < 2 * mesh.origin.length);
});

// --- fallback decisions (fallback-policy.ts) in download:failed ---

test('origin changed on a first pooled try: the core asks the host to repin', () => {
  const mesh = pod([], { origin: 'changed' });
  mesh.origin = testBytes(3 * PIECE, 24);
  startUrl(mesh, 1);
  mesh.runUntil(finished(mesh, 1));
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'origin-changed');
  assert.equal(failed?.fallback.action, 'repin');
});

test('origin changed again after a repin: origin only; unpooled: none', () => {
  for (const [extra, action] of [
    [{ attempt: 1 }, 'origin-only'],
    [{ pooled: false }, 'none'],
  ] as const) {
    const mesh = pod([], { origin: 'changed' });
    mesh.origin = testBytes(3 * PIECE, 25);
    startUrl(mesh, 1, extra);
    mesh.runUntil(finished(mesh, 1));
    const [failed] = mesh.eventsOf(0, 'download:failed');
    assert.equal(failed?.reason, 'origin-changed');
    assert.equal(failed?.fallback.action, action);
  }
});

test('a SHA-256 mismatch of a pooled download: origin only, with a reason', () => {
  const mesh = pod([{}]);
  mesh.origin = testBytes(4 * PIECE, 26);
  startUrl(mesh, 1, { sha256: new Uint8Array(32) });
  mesh.runUntil(finished(mesh, 1));
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'sha256-mismatch');
  const fallback = failed?.fallback;
  assert.ok(fallback?.action === 'origin-only' && fallback.reason.length > 0, 'origin only');
});

test('a cancelled download falls back to nothing', () => {
  const mesh = pod([{}]);
  mesh.origin = testBytes(40 * PIECE, 27);
  startUrl(mesh, 1);
  mesh.input(0, { type: 'cancel-download', nowMs: mesh.nowMs, downloadId: 1 });
  mesh.runUntil(finished(mesh, 1));
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'cancelled');
  assert.deepEqual(failed?.fallback, { action: 'none' });
});
