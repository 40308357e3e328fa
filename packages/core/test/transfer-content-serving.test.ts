/**
 * The chunk server's serving rules, driven directly through a fake engine context: the upload
 * queue (one chunk sent at a time; accepted requests wait their turn, links not being served
 * and peers holding the fewest chunks first; a full queue refuses `busy` or displaces a
 * pipelined request; a link that stops draining gives its slot up), manifests (no slot), and
 * seeding (a chunk a seed sent to one peer is refused to the others as `notFound`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Capability, TransferStatus, type WireMessage } from '../src/wire/messages.js';
import { Availability } from '../src/transfer/availability.js';
import {
  ChunkServer,
  SEND_STALL_MS,
  UPLOAD_SLOTS,
  UPLOAD_WAIT_MAX_MS,
  UPLOAD_WAITING_BYTES,
} from '../src/transfer/chunk-server.js';
import { Prng } from '../src/prng.js';
import type { TransferContext } from '../src/transfer/transfer-context.js';
import type { LinkPort } from '../src/transfer/link-port.js';
import type { Manifest } from '../src/content/manifest.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';

const crypto = deterministicCrypto(11);

/** A link that records what the server sends and holds queued streams until `drain()`. */
class FakeLink {
  readonly statuses: Array<{ requestId: number; status: TransferStatus }> = [];
  readonly queued = new Set<number>();
  send(message: WireMessage): void {
    if (message.type === 'status')
      this.statuses.push({ requestId: message.requestId, status: message.status });
  }
  isStreamQueued(requestId: number): boolean {
    return this.queued.has(requestId);
  }
  /** Everything queued was sent. */
  drain(): void {
    this.queued.clear();
  }
  statusOf(requestId: number): TransferStatus | undefined {
    return this.statuses.find((s) => s.requestId === requestId)?.status;
  }
}

/** The link port over fake links: every link is ready. */
function fakePort(links: Map<number, FakeLink>): LinkPort {
  return {
    send: (linkId, message) => {
      links.get(linkId)?.send(message);
      return links.has(linkId);
    },
    stream: (linkId, requestId) => {
      links.get(linkId)?.queued.add(requestId);
    },
    drop: (linkId, requestId) => ({
      dropped: links.get(linkId)?.queued.delete(requestId) ?? false,
      sentBytes: 0,
    }),
    isQueued: (linkId, requestId) => links.get(linkId)?.queued.has(requestId) ?? false,
    ready: () => [...links.keys()],
    peer: (linkId) =>
      links.has(linkId)
        ? {
            deviceId: new Uint8Array(32).fill(linkId),
            deviceIdHex: linkId.toString(16).padStart(2, '0').repeat(32),
            deviceName: `link-${linkId}`,
            capabilities: Capability.serveChunks,
            rttMs: undefined,
            direction: 'inbound',
            trust: 'pod',
            throughputBps: 0,
          }
        : undefined,
  };
}

function setUp(linkCount: number, data: Uint8Array, chunkSizeBytes = CHUNK) {
  const links = new Map<number, FakeLink>();
  for (let id = 1; id <= linkCount; id++) links.set(id, new FakeLink());
  const reads: Array<{ readId: number; chunkIndex: number }> = [];
  const availability = new Availability();
  const ctx = {
    crypto,
    settings: { capabilities: Capability.serveChunks, servingPerLinkMax: 16 },
    availability,
    prng: new Prng(5),
    links: fakePort(links),
    mayAnnounce: () => true,
    output: (o: { type: string; readId: number; chunkIndex: number }) => {
      if (o.type === 'read-chunk') reads.push({ readId: o.readId, chunkIndex: o.chunkIndex });
    },
  } as unknown as TransferContext;
  const server = new ChunkServer(ctx);
  const manifest = manifestOf(data, chunkSizeBytes);
  server.addChunks(manifest, undefined);
  let nextRequestId = 2;
  const request = (linkId: number, index: number, nowMs = 0): number => {
    const requestId = nextRequestId;
    nextRequestId += 2;
    server.onRequest(
      linkId,
      { type: 'chunk-request', requestId, chunkHash: manifest.chunkHashes[index]!, priority: 0 },
      nowMs,
    );
    return requestId;
  };
  /** Answers every pending read from `data` (the link then queues the DATA). */
  const answerReads = (nowMs = 0): void => {
    for (const read of reads.splice(0)) {
      const start = read.chunkIndex * chunkSizeBytes;
      server.onChunkRead(read.readId, data.subarray(start, start + chunkSizeBytes), false, nowMs);
    }
  };
  /** Chunk indices the server asked the host to read and that are not answered yet. */
  const pendingReads = (): number[] => reads.map((r) => r.chunkIndex);
  /** Link `linkId` sent everything queued, and reported it flushed at `nowMs`. */
  const drain = (linkId: number, nowMs: number): void => {
    links.get(linkId)!.drain();
    server.onFlushed(linkId, nowMs);
  };
  return {
    server,
    links,
    manifest: manifest as Manifest,
    availability,
    request,
    answerReads,
    drain,
    reads,
    pendingReads,
  };
}

test('upload queue: one chunk is sent at a time; the next waits and starts when its DATA is cut', () => {
  assert.equal(UPLOAD_SLOTS, 1);
  const data = testBytes(16 * CHUNK, 3);
  const { links, request, answerReads, drain, reads, pendingReads } = setUp(3, data);
  const first = request(1, 1);
  assert.deepEqual(pendingReads(), [1]);
  answerReads();
  assert.ok(links.get(1)!.isStreamQueued(first));
  // Two more links ask: they are accepted (no STATUS) but wait; nothing is read for them yet.
  const second = request(2, 2);
  const third = request(3, 3);
  assert.equal(links.get(2)!.statusOf(second), undefined);
  assert.equal(links.get(3)!.statusOf(third), undefined);
  assert.equal(reads.length, 0);
  // Link 1's DATA is all cut and flushed: the next job starts, one at a time.
  drain(1, 10);
  assert.equal(reads.length, 1);
  answerReads();
  drain(2, 20);
  answerReads();
  assert.ok(links.get(2)!.isStreamQueued(second) === false);
  assert.ok(links.get(3)!.isStreamQueued(third));
});

test('upload queue: a full queue refuses busy, but a link not served yet displaces a pipelined request', () => {
  // Chunks of half the waiting budget: two may wait.
  const chunkSizeBytes = UPLOAD_WAITING_BYTES / 2;
  const data = testBytes(6 * chunkSizeBytes, 4);
  const { links, request, answerReads } = setUp(4, data, chunkSizeBytes);
  request(1, 0);
  answerReads();
  const pipelined = request(1, 1);
  const other = request(2, 2);
  assert.equal(links.get(1)!.statusOf(pipelined), undefined, 'link 1 pipelines a second chunk');
  assert.equal(links.get(2)!.statusOf(other), undefined, 'link 2 waits');
  // The queue is full. Link 3 is not being served: it takes the place of link 1's second.
  const newcomer = request(3, 3);
  assert.equal(links.get(3)!.statusOf(newcomer), undefined);
  assert.equal(links.get(1)!.statusOf(pipelined), TransferStatus.busy);
  // Link 4 ranks no better than anyone waiting: refused.
  assert.equal(links.get(4)!.statusOf(request(4, 4)), TransferStatus.busy);
  // Link 1, still being served, cannot displace anyone either.
  assert.equal(links.get(1)!.statusOf(request(1, 5)), TransferStatus.busy);
});

test('upload queue: a turn goes to the waiting peer that holds the fewest chunks', () => {
  const data = testBytes(16 * CHUNK, 5);
  const { links, request, answerReads, drain, availability, manifest, pendingReads } = setUp(
    3,
    data,
  );
  request(1, 0);
  answerReads();
  const rich = request(2, 1);
  const poor = request(3, 2);
  availability.announce(2, manifest.contentId, [{ start: 8, end: 14 }]);
  drain(1, 10);
  assert.deepEqual(pendingReads(), [2]);
  answerReads();
  assert.ok(links.get(3)!.isStreamQueued(poor));
  assert.ok(!links.get(2)!.isStreamQueued(rich));
});

test('upload queue: a link that stops draining gives its slot to the next job', () => {
  const data = testBytes(16 * CHUNK, 6);
  const { server, links, request, answerReads, reads } = setUp(2, data);
  request(1, 0, 90);
  answerReads(100);
  const waiting = request(2, 1, 150);
  assert.equal(reads.length, 0);
  // Link 1 never flushes: at the deadline the waiting job starts.
  const deadline = server.nextDeadlineMs();
  assert.equal(deadline, 100 + SEND_STALL_MS);
  server.onTimer(deadline! - 1);
  assert.equal(reads.length, 0);
  server.onTimer(deadline!);
  assert.equal(reads.length, 1);
  answerReads(deadline!);
  assert.ok(links.get(2)!.isStreamQueued(waiting));
  assert.equal(server.nextDeadlineMs(), undefined, 'nothing waits: no deadline');
});

test('upload queue: a request passed over for too long is refused busy (its requester asks elsewhere)', () => {
  const data = testBytes(16 * CHUNK, 9);
  const {
    server,
    links,
    request,
    answerReads,
    drain,
    reads,
    availability,
    manifest,
    pendingReads,
  } = setUp(4, data);
  request(1, 0, 0);
  answerReads(0);
  // Link 2 holds many chunks: link 3, arriving later, goes first.
  availability.announce(2, manifest.contentId, [{ start: 8, end: 14 }]);
  const passed = request(2, 1, 10);
  request(3, 2, 20);
  drain(1, 100);
  assert.deepEqual(pendingReads(), [2]);
  answerReads(100);
  // Link 3 keeps draining, slowly: its job never counts as stalled.
  for (let t = 500; t < 10 + UPLOAD_WAIT_MAX_MS; t += 500) server.onFlushed(3, t);
  assert.equal(links.get(2)!.statusOf(passed), undefined);
  assert.equal(server.nextDeadlineMs(), 10 + UPLOAD_WAIT_MAX_MS);
  server.onFlushed(3, 10 + UPLOAD_WAIT_MAX_MS);
  assert.equal(links.get(2)!.statusOf(passed), TransferStatus.busy);
  assert.equal(reads.length, 0, 'the refused job is never read');
  assert.equal(server.nextDeadlineMs(), undefined);
});

test('upload queue: a request that was not passed over waits as long as the chunk ahead takes', () => {
  const data = testBytes(16 * CHUNK, 10);
  const { server, links, request, answerReads, drain, pendingReads } = setUp(2, data);
  request(1, 0, 0);
  answerReads(0);
  const next = request(2, 1, 10);
  // A slow uplink: the chunk ahead takes longer than the waiting limit, draining all along.
  for (let t = 500; t <= 2 * UPLOAD_WAIT_MAX_MS; t += 500) server.onFlushed(1, t);
  assert.equal(links.get(2)!.statusOf(next), undefined);
  drain(1, 2 * UPLOAD_WAIT_MAX_MS + 100);
  assert.deepEqual(pendingReads(), [1]);
});

test('upload queue: a waiting request that is cancelled answers cancelled and never starts', () => {
  const data = testBytes(16 * CHUNK, 8);
  const { server, links, request, answerReads, drain, pendingReads } = setUp(3, data);
  request(1, 0);
  answerReads();
  const cancelled = request(2, 1);
  const kept = request(3, 2);
  assert.ok(server.onCancel(2, cancelled, 0));
  assert.equal(links.get(2)!.statusOf(cancelled), TransferStatus.cancelled);
  drain(1, 10);
  assert.deepEqual(pendingReads(), [2]);
  answerReads();
  assert.ok(links.get(3)!.isStreamQueued(kept));
});

test('upload slots: manifest requests need no slot', () => {
  const data = testBytes(64 * CHUNK, 4);
  const { server, links, manifest, request, answerReads } = setUp(UPLOAD_SLOTS + 2, data);
  // Every slot is taken and a request waits.
  for (let link = 1; link <= UPLOAD_SLOTS + 1; link++) request(link, link * 2);
  answerReads();
  const last = links.get(UPLOAD_SLOTS + 2)!;
  server.onRequest(
    UPLOAD_SLOTS + 2,
    { type: 'chunk-request', requestId: 1000, chunkHash: manifest.contentId, priority: 0 },
    0,
  );
  assert.equal(last.statusOf(1000), TransferStatus.ok);
  assert.ok(last.isStreamQueued(1000));
});

test('seeding: while the upload has other chunks to send, a chunk sent to one peer is refused to another as notFound, not busy', () => {
  const data = testBytes(8 * CHUNK, 7);
  const { links, request, availability, manifest } = setUp(3, data);
  request(1, 0, 0);
  request(3, 1, 0); // the upload has chunk 1 to send too
  const second = request(2, 0, 100);
  assert.equal(links.get(2)!.statusOf(second), TransferStatus.notFound);
  // Once the first peer announces it, the second is referred there once, then served.
  availability.announce(1, manifest.contentId, [{ start: 0, end: 1 }]);
  assert.equal(links.get(2)!.statusOf(request(2, 0, 200)), TransferStatus.notFound);
  assert.equal(links.get(2)!.statusOf(request(2, 0, 300)), undefined);
});

test('seeding: an upload with no other chunk to send sends a chunk again instead of referring', () => {
  const data = testBytes(8 * CHUNK, 7);
  const { links, request, availability, manifest, answerReads, drain, pendingReads } = setUp(
    3,
    data,
  );
  request(1, 0, 0);
  // Only chunk 0 is being sent: a second copy waits behind it, no longer than a relay would.
  const second = request(2, 0, 100);
  assert.equal(links.get(2)!.statusOf(second), undefined);
  answerReads();
  drain(1, 150);
  // The chunk was read once: the second copy is sent from that read.
  assert.deepEqual(pendingReads(), [], 'no second read of the chunk');
  assert.equal(links.get(2)!.statusOf(second), TransferStatus.ok);
  drain(2, 160);
  // Announced by a peer, and the upload idle: still served, not referred.
  availability.announce(1, manifest.contentId, [{ start: 0, end: 1 }]);
  assert.notEqual(links.get(3)!.statusOf(request(3, 0, 200)), TransferStatus.notFound);
});
