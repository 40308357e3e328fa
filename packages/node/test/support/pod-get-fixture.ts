/**
 * The setup the pod-served `get` tests share (pod-get.test.ts, pod-trust.test.ts): two real
 * daemons in one pod (device 2 gives up on a pod copy nobody can serve after 3 s, then asks
 * the origin), a revalidating origin over a temporary directory, the summary of a `get` that
 * must have succeeded, and objects written with a chosen modification time (the origin's
 * ETag and Last-Modified come from it).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summaryOf, type Summary } from './get-summary.js';
import { PodFixture, type GetResult } from './pod-fixture.js';
import { RevalidatingOrigin, type RevalidatingOriginOptions } from './revalidating-origin.js';

export const MiB = 1024 * 1024;
/** Each daemon's origin source address (local-pod.ts): 127.0.0.(11 + index). */
export const DEVICE_1 = '127.0.0.11';
export const DEVICE_2 = '127.0.0.12';

export type PodSummary = Summary & {
  readonly servedFrom?: string;
  readonly revalidation?: string;
};

/** The `get --json` summary of `result`, which must have succeeded. */
export function podSummary(result: GetResult): PodSummary {
  const summary = summaryOf(result) as PodSummary;
  assert.equal(summary.ok, true, `${summary.error ?? ''}\n${result.stderr}`);
  return summary;
}

/** Writes `bytes` as `name` with a modification time `seconds` after 2024-01-01. */
export async function writeObject(
  dir: string,
  name: string,
  bytes: Buffer,
  seconds: number,
): Promise<void> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  const when = new Date(Date.UTC(2024, 0, 1) + seconds * 1000);
  await utimes(path, when, when);
}

export interface PodAndOrigin {
  readonly pod: PodFixture;
  readonly origin: RevalidatingOrigin;
  /** The test's temporary directory. */
  readonly dir: string;
  /** What the origin serves. */
  readonly www: string;
  stop(): Promise<void>;
}

/** Two linked daemons and a revalidating origin (`options` for it), in a fresh directory. */
export async function startPodAndOrigin(
  prefix: string,
  options: RevalidatingOriginOptions = {},
): Promise<PodAndOrigin> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const www = join(dir, 'www');
  await mkdir(www);
  const origin = await RevalidatingOrigin.start(www, options);
  const pod = await PodFixture.start({ daemons: 2, flags: { 1: ['--stall-timeout', '3'] } });
  await pod.connected(0, 1);
  await pod.connected(1, 1);
  return {
    pod,
    origin,
    dir,
    www,
    stop: async () => {
      await pod.stop();
      await origin.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
