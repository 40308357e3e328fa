/**
 * The PeaPod half of bench/swarm.ts: the seed shares the file, every peer fetches it by its
 * content ID at once, all as a user would, through the `peapod` command line.
 *
 * Theory of operation
 * - The pod (bench/lab-pod.ts): `peapod init` on the seed, `peapod join CODE` on each peer, one
 *   `peapod daemon --bind <lab address>` per namespace, all linked before anything is timed.
 * - Share: `peapod share FILE --json` on the seed (-> `{contentId}`), not timed: it hashes the
 *   file into the seed's store. Then every peer runs `peapod fetch ID -o FILE --json -q` at the
 *   same moment; a peer's time is from that moment to its command's exit, and its file is
 *   checked by SHA-256. The daemons keep running until every fetch ended (a finished peer
 *   keeps serving, as a pod member does).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LabPod, lastJson, mustSucceed } from './lab-pod.js';
import { sha256File, type LabHost, type Processes } from './netns-lab.js';
import type { PeerResult } from './swarm-result.js';

export interface PeapodSwarm {
  readonly processes: Processes;
  readonly seed: LabHost;
  readonly peers: readonly LabHost[];
  /** packages/node/dist/src/cli.js (or `--cli`). */
  readonly cli: string;
  readonly contentPath: string;
  readonly sha256: string;
  readonly root: string;
  /** Where the peers write their copies. */
  readonly outputDir: string;
  readonly logLevel: string;
  readonly say: (line: string) => void;
}

/** Same as `runBitTorrent`: `measure` right before the fetches start and after the last. */
export async function runPeapod(
  swarm: PeapodSwarm,
  measure: (moment: 'start' | 'end') => void,
): Promise<{ peers: PeerResult[]; note: string }> {
  const pod = new LabPod(swarm.processes, [swarm.seed, ...swarm.peers], swarm.cli, swarm.root);
  try {
    const linkedSeconds = await pod.start(swarm.logLevel);
    swarm.say(
      `peapod: ${pod.hosts.length} daemons up, each linked to the ${pod.hosts.length - 1} ` +
        `others (${linkedSeconds.toFixed(1)} s)`,
    );
    const share = mustSucceed(
      'peapod share',
      await pod.cli(swarm.seed, ['share', swarm.contentPath, '--json']),
    );
    const contentId = lastJson(share.stdout)?.['contentId'];
    if (typeof contentId !== 'string') throw new Error('peapod share --json printed no contentId');
    swarm.say(`peapod: shared as ${contentId} (${share.seconds.toFixed(1)} s)`);

    measure('start');
    const cpuBefore = pod.cpuSeconds();
    const started = performance.now();
    const peers = await Promise.all(
      swarm.peers.map(async (peer): Promise<PeerResult> => {
        const output = join(swarm.outputDir, `fetched-${peer.name}.bin`);
        const run = await pod.cli(peer, ['fetch', contentId, '-o', output, '--json', '-q']);
        const seconds = (performance.now() - started) / 1000;
        const summary = lastJson(run.stdout);
        if (run.code !== 0 || summary?.['ok'] === false || summary?.['type'] === 'error') {
          const error =
            (summary?.['error'] as string | undefined) ??
            (summary?.['message'] as string | undefined) ??
            (run.stderr.trim() || `exit ${run.code}`);
          return { name: peer.name, seconds, ok: false, error };
        }
        const sha256 = await sha256File(output);
        const bySource = named(summary?.['bySource'], summary?.['sourceNames']);
        return {
          name: peer.name,
          seconds,
          ok: sha256 === swarm.sha256,
          sha256,
          ...(typeof summary?.['seconds'] === 'number' ? { jobSeconds: summary['seconds'] } : {}),
          ...(bySource === undefined ? {} : { bySource }),
        };
      }),
    );
    measure('end');
    const cpu = pod.cpuSeconds().map((seconds, i) => (seconds - cpuBefore[i]!).toFixed(1));
    const exited = pod.exited();
    return {
      peers,
      note:
        `peapod share + fetch --json; daemon CPU seconds during the fetches: seed ${cpu[0]}, ` +
        `peers ${cpu.slice(1).join(' + ')}${exited > 0 ? `; ${exited} daemons EXITED during the run` : ''}`,
    };
  } finally {
    await pod.stop();
  }
}

/** `bySource` keyed by device name (`sourceNames`) where the summary names the source. */
function named(bySource: unknown, sourceNames: unknown): Record<string, number> | undefined {
  if (typeof bySource !== 'object' || bySource === null) return undefined;
  const names = (
    typeof sourceNames === 'object' && sourceNames !== null ? sourceNames : {}
  ) as Record<string, string>;
  const result: Record<string, number> = {};
  for (const [key, bytes] of Object.entries(bySource as Record<string, number>)) {
    const name = names[key]?.split(' ')[0] ?? key;
    result[name] = (result[name] ?? 0) + bytes;
  }
  return result;
}
