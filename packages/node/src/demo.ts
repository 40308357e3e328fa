/**
 * `peapod demo` (and `npm start`): PeaPod's main job on one machine, with no setup.
 *
 * 1. A local origin serves one synthetic object and limits each client *source address* to
 *    `rate`, as separate internet links would (dev-origin.ts).
 * 2. N daemons start as separate processes, each with its own data directory, all in one new
 *    pod, each sending its origin traffic from its own loopback address (127.0.0.11, .12, ...)
 *    so each has its own "link". They find each other by multicast on 127.0.0.1.
 * 3. Device 1 downloads the object alone (`--no-pool`), then pooled; the demo prints both times,
 *    the speedup, the physical limit (size / sum of link rates) and checks both files' SHA-256.
 * Everything lives in a temporary directory that is removed at the end.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getEvents, getPeers, type ApiTarget } from './api-client.js';
import { freeUdpPort, spawnLocalDaemon, waitFor } from './local-pod.js';
import { startDevOrigin } from './dev-origin.js';
import type { JobEvent } from './download-job.js';
import { createPod } from './pod.js';
import { ProgressLine } from './progress.js';
import { formatBytes } from './rate-limit.js';

export interface DemoOptions {
  readonly sizeBytes: number;
  readonly rateBytesPerSec: number;
  readonly daemons: number;
  readonly json: boolean;
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const say = (line: string) => {
    if (!options.json) process.stderr.write(`${line}\n`);
  };
  const root = await mkdtemp(join(tmpdir(), 'peapod-demo-'));
  const children: ChildProcess[] = [];
  const origin = await startDevOrigin({
    host: '127.0.0.1',
    port: 0,
    rateBytesPerSec: options.rateBytesPerSec,
    objects: [{ name: 'demo.bin', sizeBytes: options.sizeBytes, seed: 1 }],
  });
  try {
    const url = `${origin.url}/demo.bin`;
    say(
      `origin ${url}: ${formatBytes(options.sizeBytes)}, each device's link limited to ` +
        `${((options.rateBytesPerSec * 8) / 1e6).toFixed(0)} Mbit/s`,
    );
    const secret = createPod();
    const discoveryPort = await freeUdpPort();
    const targets: ApiTarget[] = [];
    for (let index = 0; index < options.daemons; index++) {
      const daemon = await spawnLocalDaemon({
        root,
        index,
        secret,
        discoveryPort,
        logLevel: 'warn',
        stdio: 'ignore',
      });
      children.push(daemon.child);
      targets.push(daemon.api);
    }
    const first = targets[0]!;
    const startedMs = performance.now();
    await waitFor(
      async () => {
        const { peers } = await getPeers(first);
        return peers.filter((peer) => peer.state === 'connected').length >= options.daemons - 1;
      },
      20_000,
      'the daemons did not all connect within 20 s',
    );
    say(
      `${options.daemons} daemons up and connected in one pod ` +
        `(${((performance.now() - startedMs) / 1000).toFixed(1)} s)`,
    );
    const alone = await download(first, url, join(root, 'alone.bin'), false, options.json);
    const pooled = await download(first, url, join(root, 'pooled.bin'), true, options.json);
    const limitSeconds = options.sizeBytes / (options.rateBytesPerSec * options.daemons);
    const summary = {
      sizeBytes: options.sizeBytes,
      daemons: options.daemons,
      linkRateBytesPerSec: options.rateBytesPerSec,
      aloneSeconds: alone.seconds,
      pooledSeconds: pooled.seconds,
      speedup: alone.seconds / pooled.seconds,
      limitSeconds,
      pooledVsLimit: pooled.seconds / limitSeconds,
      sha256: pooled.sha256,
      identical: alone.sha256 === pooled.sha256,
      pooledBySource: pooled.bySource,
    };
    if (options.json) console.log(JSON.stringify(summary, null, 2));
    else {
      console.log(`alone:   ${alone.seconds.toFixed(1)} s`);
      console.log(
        `pooled:  ${pooled.seconds.toFixed(1)} s  (limit ${limitSeconds.toFixed(1)} s, ` +
          `${summary.pooledVsLimit.toFixed(2)}x of it)`,
      );
      console.log(`speedup: ${summary.speedup.toFixed(2)}x with ${options.daemons} devices`);
      console.log(
        `sha256:  ${pooled.sha256} (${summary.identical ? 'both identical' : 'DIFFERENT'})`,
      );
    }
    return summary.identical ? 0 : 1;
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map((child) =>
        child.exitCode !== null ? undefined : new Promise((r) => child.once('exit', r)),
      ),
    );
    await origin.close();
    await rm(root, { recursive: true, force: true });
  }
}

async function download(
  target: ApiTarget,
  url: string,
  output: string,
  pool: boolean,
  json: boolean,
): Promise<Extract<JobEvent, { type: 'done' }>> {
  const progress = new ProgressLine(process.stderr, { label: pool ? 'pooled' : 'alone ' });
  for await (const event of getEvents(target, { url, output, pool, headers: [] })) {
    if (event.type === 'progress' && !json) {
      progress.update(event.verifiedBytes, event.totalBytes, event.bySource, event.sourceNames);
    }
    if (event.type === 'done') {
      if (!json)
        progress.finish(`${pool ? 'pooled' : 'alone '} done in ${event.seconds.toFixed(1)} s`);
      return event;
    }
    if (event.type === 'error')
      throw new Error(`the ${pool ? 'pooled' : 'single'} download failed: ${event.message}`);
  }
  throw new Error('the daemon closed the connection before the download ended');
}
