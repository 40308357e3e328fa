/**
 * The piece scheduler against a simple reference model (fast-check): under random completions,
 * failures, integrity rejections, departures and bans, every piece is eventually completed
 * exactly once, no source holds more than its pipeline bound, and banned sources get nothing.
 * Plus unit checks of the window, the seed preference and the endgame.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../src/prng.js';
import {
  PieceScheduler,
  SELF_SOURCE,
  SchedulerDefaults,
  type AssignContext,
} from '../src/transfer/scheduler.js';

const SIZE = 1000;

function make(
  pieceCount: number,
  mode: 'in-order' | 'rarest-first' = 'in-order',
  seed = 1,
  justInTime = false,
): PieceScheduler {
  return new PieceScheduler({
    pieceCount,
    pieceStart: (i) => Math.min(i, pieceCount) * SIZE,
    mode,
    prng: new Prng(seed),
    justInTime,
  });
}

const open = (canServe: AssignContext['canServe'] = () => true): AssignContext => ({
  windowEndBytes: Number.MAX_SAFE_INTEGER,
  windowStartBytes: 0,
  canServe,
});

type Op =
  | { kind: 'assign' }
  | { kind: 'complete'; pick: number; elapsed: number }
  | { kind: 'reject'; pick: number }
  | { kind: 'fail'; pick: number; failure: 'error' | 'busy' | 'not-found' | 'stall' | 'cancelled' }
  | { kind: 'leave'; source: number }
  | { kind: 'join'; source: number }
  | { kind: 'ban'; source: number }
  | { kind: 'time'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Op>({ kind: 'assign' }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('complete' as const),
      pick: fc.nat(),
      elapsed: fc.integer({ min: 1, max: 500 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reject' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('fail' as const),
      pick: fc.nat(),
      failure: fc.constantFrom('error', 'busy', 'not-found', 'stall', 'cancelled') as fc.Arbitrary<
        'error' | 'busy' | 'not-found' | 'stall' | 'cancelled'
      >,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('leave' as const),
      source: fc.integer({ min: 1, max: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('join' as const),
      source: fc.integer({ min: 1, max: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('ban' as const),
      source: fc.integer({ min: 1, max: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('time' as const),
      ms: fc.integer({ min: 1, max: 40_000 }),
    }),
  },
);

test('model: every piece completes exactly once; pipelines bounded; banned sources get nothing', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.constantFrom('in-order', 'rarest-first') as fc.Arbitrary<'in-order' | 'rarest-first'>,
      fc.array(opArb, { maxLength: 200 }),
      fc.boolean(),
      (pieceCount, seed, mode, ops, justInTime) => {
        const scheduler = make(pieceCount, mode, seed, justInTime && mode === 'in-order');
        const done = new Set<number>();
        const banned = new Set<number>();
        let nowMs = 0;
        scheduler.upsertSource(SELF_SOURCE);
        for (const id of [1, 2, 3]) scheduler.upsertSource(id);
        const check = (): void => {
          for (const { piece, source } of scheduler.assignments()) {
            assert.ok(!done.has(piece), `done piece ${piece} still assigned`);
            assert.ok(!banned.has(source), `banned source ${source} holds piece ${piece}`);
          }
          for (const id of [SELF_SOURCE, 1, 2, 3, 4, 5]) {
            assert.ok(
              scheduler.inflightOf(id) <= SchedulerDefaults.pipelineMax,
              `source ${id} over its pipeline`,
            );
          }
        };
        const completeOne = (pick: number, elapsed: number): void => {
          const all = scheduler.assignments();
          if (all.length === 0) return;
          const { piece, source } = all[pick % all.length]!;
          nowMs += elapsed;
          scheduler.progress(piece, source, SIZE, nowMs);
          const losers = scheduler.received(piece, source, nowMs);
          for (const loser of losers) assert.ok(!scheduler.isAssigned(piece, loser));
          assert.ok(!done.has(piece), `piece ${piece} completed twice`);
          scheduler.accept(piece);
          done.add(piece);
        };
        for (const op of ops) {
          switch (op.kind) {
            case 'assign':
              for (const a of scheduler.assign(nowMs, open())) {
                assert.ok(!banned.has(a.source), 'assigned to a banned source');
                assert.ok(!done.has(a.piece), 'assigned a done piece');
              }
              break;
            case 'complete':
              completeOne(op.pick, op.elapsed);
              break;
            case 'reject': {
              // Only a source's bytes are judged (a helper's spot check, a peer's chunk): this
              // device's own origin fetches are never rejected, so the model rejects others only
              // (rejecting self would exclude the one source that is always there).
              const all = scheduler.assignments().filter((a) => a.source !== SELF_SOURCE);
              if (all.length === 0) break;
              const { piece, source } = all[op.pick % all.length]!;
              scheduler.received(piece, source, nowMs);
              if (scheduler.reject(piece, source, 1, nowMs).banned) banned.add(source);
              break;
            }
            case 'fail': {
              const all = scheduler.assignments();
              if (all.length === 0) break;
              const { piece, source } = all[op.pick % all.length]!;
              scheduler.fail(piece, source, op.failure, nowMs);
              break;
            }
            case 'leave':
              scheduler.removeSource(op.source, nowMs);
              break;
            case 'join':
              if (!banned.has(op.source)) scheduler.upsertSource(op.source);
              break;
            case 'ban':
              scheduler.ban(op.source, nowMs);
              banned.add(op.source);
              break;
            case 'time':
              nowMs += op.ms;
              for (const source of scheduler.stalled(nowMs)) {
                for (const a of scheduler.assignments())
                  if (a.source === source) scheduler.fail(a.piece, source, 'stall', nowMs);
              }
              break;
          }
          check();
        }
        // Liveness: with self always available, driving assign/complete finishes every piece.
        for (let round = 0; round < 10_000 && !scheduler.complete; round++) {
          scheduler.assign(nowMs, open());
          if (scheduler.assignments().length === 0)
            nowMs += 1_000; // wait out backoffs
          else completeOne(round, 10);
          check();
        }
        assert.ok(scheduler.complete, 'every piece completed');
        assert.equal(done.size, pieceCount);
      },
    ),
    { numRuns: 300, verbose: 1 },
  );
});

test('the window: nothing past windowEnd is assigned, except the piece holding the delivery point', () => {
  const scheduler = make(10);
  scheduler.upsertSource(SELF_SOURCE);
  scheduler.upsertSource(1);
  scheduler.upsertSource(2);
  const out = scheduler.assign(0, {
    windowEndBytes: 3 * SIZE,
    windowStartBytes: 0,
    canServe: () => true,
  });
  assert.ok(
    out.every((a) => a.piece < 3),
    JSON.stringify(out),
  );
  const tiny = make(4);
  tiny.upsertSource(SELF_SOURCE);
  const head = tiny.assign(0, {
    windowEndBytes: SIZE / 2,
    windowStartBytes: 0,
    canServe: () => true,
  });
  assert.deepEqual(
    head.map((a) => a.piece),
    [0],
  );
});

test('rarest-first prefers non-seed sources when both have the chunk', () => {
  const scheduler = make(4, 'rarest-first');
  scheduler.upsertSource(1, { isSeed: true });
  scheduler.upsertSource(2, { isSeed: false });
  const out = scheduler.assign(0, { ...open(), holders: () => 2 });
  assert.ok(out.length > 0);
  for (const a of out.filter((x) => x.source === 1)) {
    // The seed only gets pieces once the non-seed's pipeline is full.
    assert.equal(
      scheduler.inflightOf(2),
      SchedulerDefaults.pipelineMin,
      `seed got piece ${a.piece} early`,
    );
  }
  assert.equal(out.filter((a) => a.source === 2).length, SchedulerDefaults.pipelineMin);
});

test('endgame: an idle fast source duplicates a slow piece; the first copy wins, the loser is returned', () => {
  const scheduler = make(2);
  scheduler.upsertSource(1);
  scheduler.upsertSource(2);
  // Measure both: source 1 fast, source 2 slow.
  let now = 0;
  const first = scheduler.assign(now, open());
  assert.equal(first.length, 2);
  const bySource = new Map(first.map((a) => [a.source, a.piece]));
  const fastPiece = bySource.get(1)!;
  now += 10;
  scheduler.progress(fastPiece, 1, SIZE, now);
  scheduler.received(fastPiece, 1, now);
  scheduler.accept(fastPiece);
  // Source 1 is idle; source 2's piece is active with no bytes: source 1 copies it.
  const copies = scheduler.assign(now, open());
  assert.deepEqual(
    copies.map((c) => [c.source, c.duplicate]),
    [[1, true]],
  );
  const slowPiece = copies[0]!.piece;
  now += 10;
  scheduler.progress(slowPiece, 1, SIZE, now);
  assert.deepEqual(scheduler.received(slowPiece, 1, now), [2]);
  scheduler.accept(slowPiece);
  assert.ok(scheduler.complete);
});

test('integrity strikes ban at the threshold; a banned source is never assigned again', () => {
  const scheduler = make(5);
  scheduler.upsertSource(1);
  let banned = false;
  for (let i = 0; i < SchedulerDefaults.banThreshold; i++) {
    const [a] = scheduler.assign(i, open());
    assert.ok(a);
    scheduler.received(a.piece, 1, i);
    banned = scheduler.reject(a.piece, 1, 1, i).banned;
  }
  assert.ok(banned);
  assert.deepEqual(scheduler.assign(100, open()), []);
});

test('just in time: a busy source gets its next piece only when the current one is about to end', () => {
  const eager = make(4);
  eager.upsertSource(1);
  assert.equal(eager.assign(0, open()).length, SchedulerDefaults.pipelineMin);

  const scheduler = make(4, 'in-order', 1, true);
  scheduler.upsertSource(1);
  const [first, ...more] = scheduler.assign(0, open());
  assert.ok(first !== undefined && first.source === 1);
  assert.deepEqual(more, []);
  // First byte after 10 ms: the lead is 2 x 10 + leadFloorMs = 70 ms.
  scheduler.progress(first.piece, 1, 100, 10);
  // 900 bytes left at 100 bytes per 10 ms: 90 ms, more than the lead.
  assert.deepEqual(scheduler.assign(10, open()), []);
  scheduler.progress(first.piece, 1, 200, 20);
  // 700 bytes left at 300 bytes per 20 ms: about 47 ms, within the lead.
  const next = scheduler.assign(20, open());
  assert.deepEqual(
    next.map((a) => [a.piece, a.source, a.duplicate]),
    [[first.piece + 1, 1, false]],
  );
  // The pipeline bound still holds: no third piece however close the first is to its end.
  scheduler.progress(first.piece, 1, 699, 30);
  assert.deepEqual(scheduler.assign(30, open()), []);
});

test('a back-off stays due at its end until endBackoffs, so the timer that fires then wakes the caller', () => {
  const scheduler = make(1, 'rarest-first');
  scheduler.upsertSource(7);
  const [first] = scheduler.assign(0, open());
  assert.equal(first?.source, 7);
  scheduler.fail(first!.piece, 7, 'busy', 100);
  const end = scheduler.nextDeadlineMs();
  assert.equal(end, 600);
  // The timer fires at 600: the back-off is still reported (due), and the source is usable.
  assert.equal(scheduler.nextDeadlineMs(), 600);
  scheduler.endBackoffs(600);
  assert.equal(scheduler.nextDeadlineMs(), undefined);
  assert.deepEqual(
    scheduler.assign(600, open()).map((a) => a.source),
    [7],
  );
});

test('queue allowance: a content download does not count a source stalled while its own queue drains', () => {
  const PIECE = 1_000_000;
  const build = (queueAllowance: boolean): PieceScheduler =>
    new PieceScheduler({
      pieceCount: 8,
      pieceStart: (i) => Math.min(i, 8) * PIECE,
      mode: 'in-order',
      prng: new Prng(1),
      queueAllowance,
    });
  for (const queueAllowance of [false, true]) {
    const scheduler = build(queueAllowance);
    scheduler.upsertSource(1);
    scheduler.assign(0, open());
    // Source 1 delivers its first piece in 10 s: 100 kB/s, all this device's downlink gives.
    scheduler.progress(0, 1, PIECE, 10_000);
    scheduler.received(0, 1, 10_000);
    scheduler.accept(0);
    scheduler.upsertSource(2);
    scheduler.assign(10_000, open());
    assert.ok(scheduler.inflightOf(2) > 0, 'source 2 got work');
    const outstanding = scheduler.assignments().length * PIECE;
    const expected = queueAllowance
      ? Math.min(60_000, Math.ceil((outstanding * 1000) / scheduler.throughputOf(1)))
      : SchedulerDefaults.stallFloorMs;
    assert.equal(scheduler.stallTimeoutMs(2), expected);
    assert.equal(scheduler.stalled(10_000 + 6_000).includes(2), !queueAllowance);
    assert.ok(scheduler.stalled(10_000 + expected).includes(2), 'stalled once the allowance ends');
  }
});
