/**
 * The fallback policy (transfer/fallback-policy.ts) is one pure table: every row checked, then
 * a property over arbitrary cases that the answer is the row's and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fallbackFor, type FallbackCase } from '../src/transfer/fallback-policy.js';

const url = (reason: string, attempt = 0, pooled = true): FallbackCase => ({
  kind: 'url',
  pooled,
  attempt,
  reason,
});

test('the table, row by row', () => {
  const rows: Array<[FallbackCase, 'none' | 'repin' | 'origin-only']> = [
    [url('origin-changed', 0), 'repin'],
    [url('origin-changed', 1), 'origin-only'],
    [url('origin-changed', 7), 'origin-only'],
    [url('sha256-mismatch', 0), 'origin-only'],
    [url('sha256-mismatch', 1), 'origin-only'],
    [url('origin-changed', 0, false), 'none'],
    [url('sha256-mismatch', 0, false), 'none'],
    [url('stalled'), 'none'],
    [url('origin-error'), 'none'],
    [url('output-unreadable'), 'none'],
    [url('cancelled'), 'none'],
    [{ kind: 'content', pooled: true, attempt: 0, reason: 'origin-changed' }, 'none'],
    [{ kind: 'content', pooled: false, attempt: 0, reason: 'sha256-mismatch' }, 'none'],
  ];
  for (const [failure, action] of rows) {
    const fallback = fallbackFor(failure);
    assert.equal(fallback.action, action, JSON.stringify(failure));
    if (fallback.action !== 'none') assert.ok(fallback.reason.length > 0, 'a reason is given');
  }
});

test('property: only a pooled URL download falls back, and only after the two reasons', () => {
  const reason = fc.oneof(
    fc.constantFrom('origin-changed', 'sha256-mismatch', 'stalled', 'cancelled', 'origin-error'),
    fc.string(),
  );
  fc.assert(
    fc.property(
      fc.constantFrom('content' as const, 'url' as const),
      fc.boolean(),
      fc.nat(),
      reason,
      (kind, pooled, attempt, why) => {
        const { action } = fallbackFor({ kind, pooled, attempt, reason: why });
        const eligible = kind === 'url' && pooled;
        if (!eligible || (why !== 'origin-changed' && why !== 'sha256-mismatch'))
          assert.equal(action, 'none');
        else if (why === 'sha256-mismatch') assert.equal(action, 'origin-only');
        else assert.equal(action, attempt === 0 ? 'repin' : 'origin-only');
      },
    ),
  );
});
