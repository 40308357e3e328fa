/** The `--json` summary that `peapod get` prints (commands/get.ts), read from a finished run. */
import assert from 'node:assert/strict';
import type { GetResult } from './pod-fixture.js';

export interface Summary {
  readonly ok: boolean;
  readonly error?: string;
  readonly pooled: boolean;
  readonly sha256: string;
  readonly totalBytes: number;
  readonly verified: readonly string[];
  readonly seconds: number;
  readonly note: string;
  readonly resumeOffset: number;
  readonly bySource: Readonly<Record<string, number>>;
  /** Which pinning held and what it guarantees (http/pin-plan.ts). */
  readonly pinning: { readonly level: string; readonly guarantee: string };
}

/** The summary on a run's stdout; fails the test, with what the run printed, when there is none. */
export function summaryOf(result: GetResult): Summary {
  const text = result.stdout.toString();
  try {
    return JSON.parse(text) as Summary;
  } catch {
    return assert.fail(`no JSON summary (status ${result.status}): ${text}\n${result.stderr}`);
  }
}
