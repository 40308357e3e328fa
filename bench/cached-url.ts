/**
 * A URL one pod member downloaded, fetched by a second member (`npm run bench:cached-url`, as
 * root): the second `get` should come over the LAN at the LAN's rate, and the origin should send
 * it no body at all, only the answer to one revalidation (issue 11, "URL downloads become
 * content").
 *
 * Theory of operation
 * - The lab (bench/netns-lab.ts): hosts `ppcu-origin`, `ppcu-a`, `ppcu-b` on one bridge. The
 *   origin's uplink (what it sends) is shaped to `--wan` (default 100 Mbit/s), every other link
 *   direction to `--lan` (default 1 Gbit/s), so what B gets from A crosses only LAN links.
 * - The origin: Debian's nginx serving a file of F bytes (AES-CTR keystream) from the origin
 *   namespace, with its own strong ETag and Last-Modified (a conditional GET of an unchanged
 *   file costs a 304 and no body). Its access log (bench/pooled-origin.ts's format: address,
 *   Range, status, body bytes) tells what it sent to whom.
 * - The pod (bench/lab-pod.ts): A and B, `--allow-private-origins` (the origin is 10.99.1.x).
 * - A runs `peapod get URL -o FILE --json -q` (the origin's link limits it). Then B does the
 *   same. Around B's get the bench reads the access log's new lines and the origin's `eth0`
 *   transmit counter: the requests and body bytes the origin sent during B's get, and every
 *   frame it sent. B's MB/s is F over its `get`'s wall-clock time, beside the LAN limit (and
 *   the TCP-under-tbf floor). Both outputs are checked by SHA-256.
 *
 * Without root, or where `ip netns` or nginx is missing, it says why and exits 0 having run
 * nothing.
 *
 * Usage: npx tsc -b && node bench/dist/cached-url.js [--size 256MiB] [--wan 100Mbit]
 *   [--lan 1Gbit] [--json] [--keep] [--log-level info] [--cli PATH]
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type * as RateLimit from '../packages/node/dist/src/rate-limit.js';
import { LabPod, lastJson } from './lab-pod.js';
import { LinkTimeline, SAMPLER, type LinkSummary } from './link-timeline.js';
import {
  counterDelta,
  FRAME_EFFICIENCY,
  Lab,
  mbit,
  namespacesUnavailable,
  payloadBytes,
  Processes,
  sha256File,
  wasInterrupted,
  withCleanup,
  type LabHost,
} from './netns-lab.js';
import { NGINX, prepareNginx, writeObjectFile } from './pooled-origin.js';

const NODE_DIST = new URL('../../packages/node/dist/src/', import.meta.url);
const { formatBytes, parseRate, parseSize } = (await import(
  new URL('rate-limit.js', NODE_DIST).href
)) as typeof RateLimit;

const ORIGIN_PORT = 8000;

interface Options {
  readonly sizeBytes: number;
  readonly wanBytesPerSec: number;
  readonly lanBytesPerSec: number;
  readonly json: boolean;
  readonly keep: boolean;
  readonly logLevel: string;
  readonly cli: string;
}

function parseArgs(argv: readonly string[]): Options {
  const value = (flag: string, fallback: string): string => {
    const index = argv.indexOf(flag);
    if (index < 0) return fallback;
    const text = argv[index + 1];
    if (text === undefined) throw new Error(`${flag} needs a value`);
    return text;
  };
  const positive = (
    flag: string,
    fallback: string,
    parse: (text: string) => number | undefined,
  ) => {
    const parsed = parse(value(flag, fallback));
    if (parsed === undefined || !(parsed > 0)) throw new Error(`${flag}: e.g. ${fallback}`);
    return parsed;
  };
  return {
    sizeBytes: positive('--size', '256MiB', parseSize),
    wanBytesPerSec: positive('--wan', '100Mbit', parseRate),
    lanBytesPerSec: positive('--lan', '1Gbit', parseRate),
    json: argv.includes('--json'),
    keep: argv.includes('--keep'),
    logLevel: value('--log-level', 'info'),
    cli: value('--cli', fileURLToPath(new URL('cli.js', NODE_DIST))),
  };
}

/** One request in the origin's access log. */
interface OriginRequest {
  readonly address: string;
  readonly range: string;
  readonly status: number;
  readonly bodyBytes: number;
}

function parseAccessLog(text: string): OriginRequest[] {
  return text
    .split('\n')
    .map((line) => /^\S+ (\S+) "([^"]*)" (\d+) (\d+) /.exec(line))
    .filter((match) => match !== null)
    .map((match) => ({
      address: match[1]!,
      range: match[2]!,
      status: Number(match[3]),
      bodyBytes: Number(match[4]),
    }));
}

interface GetResult {
  readonly seconds: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly identical: boolean;
  readonly pooled: boolean | undefined;
  readonly bySource: Readonly<Record<string, number>>;
  readonly sourceNames: Readonly<Record<string, string>>;
  readonly note: string;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const say = (line: string) => {
    if (!options.json) process.stderr.write(`${line}\n`);
  };
  const why =
    namespacesUnavailable() ??
    (existsSync(NGINX) ? undefined : `${NGINX} is missing (apt-get install nginx-light)`);
  if (why !== undefined) {
    say(`cached-url: SKIPPED, ${why}: this bench needs root, network namespaces and nginx`);
    return 0;
  }
  const lab = new Lab('ppcu', '10.99.1');
  const origin = lab.addHost('origin', options.wanBytesPerSec, options.lanBytesPerSec);
  const a = lab.addHost('a', options.lanBytesPerSec, options.lanBytesPerSec);
  const b = lab.addHost('b', options.lanBytesPerSec, options.lanBytesPerSec);
  const root = await mkdtemp(join(tmpdir(), 'peapod-bench-cached-url-'));
  // nginx's worker runs as nobody: its files live outside the 0700 run directory.
  const nginxDir = await mkdtemp(join(tmpdir(), 'peapod-bench-nginx-'));
  const processes = new Processes();
  const cleanup = async () => {
    await processes.stopAll();
    lab.destroy();
    await rm(nginxDir, { recursive: true, force: true });
    if (options.keep) say(`cached-url: kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  };
  const hardStop = () => {
    processes.killAllNow();
    lab.destroy();
  };
  return withCleanup('cached-url', cleanup, hardStop, async () => {
    lab.build();
    say(
      `lab: origin (${mbit(options.wanBytesPerSec)} Mbit/s uplink), devices a and b ` +
        `(${mbit(options.lanBytesPerSec)} Mbit/s each way), one bridge (tc tbf)`,
    );
    const name = 'object.bin';
    const nginx = await prepareNginx(nginxDir, origin.address, ORIGIN_PORT, name);
    const sha256 = await writeObjectFile(nginx.objectPath, options.sizeBytes);
    const server = processes.spawn(origin.ns, NGINX, [
      ...['-p', nginx.prefix, '-c', nginx.config, '-e', join(nginx.prefix, 'error.log')],
    ]);
    const url = `http://${origin.address}:${ORIGIN_PORT}/${name}`;
    await waitForOrigin(processes, a, url, () => server.exitCode !== null);
    say(`origin: nginx at ${url}, ${formatBytes(options.sizeBytes)}`);

    const pod = new LabPod(processes, [a, b], options.cli, root);
    const linkedSeconds = await pod.start(options.logLevel, ['--allow-private-origins']);
    say(`pod: a and b linked (${linkedSeconds.toFixed(1)} s)`);

    const get = async (host: LabHost): Promise<GetResult> => {
      const output = join(root, `get-${host.name}.bin`);
      const started = performance.now();
      const run = await pod.cli(host, ['get', url, '-o', output, '--json', '-q']);
      const seconds = (performance.now() - started) / 1000;
      const summary = lastJson(run.stdout);
      if (run.code !== 0 || summary?.['ok'] !== true) {
        const error = (summary?.['error'] as string | undefined) ?? run.stderr.trim();
        return {
          seconds,
          ok: false,
          error,
          identical: false,
          pooled: undefined,
          bySource: {},
          sourceNames: {},
          note: '',
        };
      }
      return {
        seconds,
        ok: true,
        identical: (await sha256File(output)) === sha256,
        pooled: summary['pooled'] as boolean | undefined,
        bySource: (summary['bySource'] ?? {}) as Record<string, number>,
        sourceNames: (summary['sourceNames'] ?? {}) as Record<string, string>,
        note: (summary['note'] as string | undefined) ?? '',
      };
    };
    const accessLog = () => readFile(nginx.accessLog, 'utf8').catch(() => '');

    const first = await get(a);
    if (!first.ok) throw new Error(`a's peapod get failed: ${first.error ?? ''}`);
    say(`a: peapod get ${first.seconds.toFixed(2)} s (through the origin's link)`);

    const logBefore = (await accessLog()).length;
    const sentBefore = lab.sent(origin);
    const cpuBefore = pod.cpuSeconds();
    // b's downlink (its bridge port, p3, transmits to it) while its get runs.
    const sampler = processes.spawn(lab.bridgeNs, SAMPLER[0], SAMPLER.slice(1));
    const timeline = new LinkTimeline(sampler, ['p3']);
    const second = await get(b);
    const cpu = pod.cpuSeconds().map((seconds, i) => seconds - cpuBefore[i]!);
    await processes.stop(sampler);
    const downlink = timeline.summarize(options.lanBytesPerSec)[0]!;
    if (options.keep) await writeFile(join(root, 'b-downlink.csv'), timeline.csv());
    const originSent = counterDelta(sentBefore, lab.sent(origin));
    const requests = parseAccessLog((await accessLog()).slice(logBefore));
    const bodyBytes = requests.reduce((sum, request) => sum + request.bodyBytes, 0);
    if (!second.ok) throw new Error(`b's peapod get failed: ${second.error ?? ''}`);
    say(`b: peapod get ${second.seconds.toFixed(2)} s`);

    if (wasInterrupted()) return 130; // the figures of a run cut short mean nothing
    const bytesPerSec = options.sizeBytes / second.seconds;
    const sources = Object.entries(second.bySource).map(([key, bytes]) => ({
      source: second.sourceNames[key] ?? key,
      bytes,
    }));
    const report = {
      benchmark: 'cached-url',
      node: process.version,
      sizeBytes: options.sizeBytes,
      wanBitsPerSec: options.wanBytesPerSec * 8,
      lanBitsPerSec: options.lanBytesPerSec * 8,
      a: { seconds: first.seconds, identical: first.identical },
      b: {
        seconds: second.seconds,
        bytesPerSec,
        vsLan: bytesPerSec / options.lanBytesPerSec,
        vsTcpFloor: bytesPerSec / (options.lanBytesPerSec * FRAME_EFFICIENCY),
        identical: second.identical,
        pooled: second.pooled,
        sources,
        note: second.note,
        /** CPU seconds the daemons of a and b used during b's get (a shared machine). */
        daemonCpuSeconds: { a: cpu[0]!, b: cpu[1]! },
        downlink,
      },
      originDuringB: {
        requests,
        bodyBytes,
        frameBytes: originSent.bytes,
        payloadBytes: payloadBytes(originSent),
      },
      met: { noBody: bodyBytes === 0 },
    };
    if (options.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(
        `Cached URL: ${formatBytes(options.sizeBytes)} fetched by a (origin link ` +
          `${mbit(options.wanBytesPerSec)} Mbit/s), then by b over a ${mbit(options.lanBytesPerSec)} ` +
          `Mbit/s LAN (network namespaces + tc tbf, nginx, Node ${process.version})`,
      );
      console.log(
        `  a: ${first.seconds.toFixed(2)} s (${(options.sizeBytes / first.seconds / 1e6).toFixed(2)} MB/s)` +
          `, SHA-256 ${first.identical ? 'ok' : 'MISMATCH'}`,
      );
      console.log(
        `  b: ${second.seconds.toFixed(2)} s = ${(bytesPerSec / 1e6).toFixed(2)} MB/s, ` +
          `${(report.b.vsLan * 100).toFixed(1)}% of the LAN limit ` +
          `(${(options.lanBytesPerSec / 1e6).toFixed(1)} MB/s; TCP under tbf carries at most ` +
          `${(FRAME_EFFICIENCY * 100).toFixed(1)}%), SHA-256 ${second.identical ? 'ok' : 'MISMATCH'}; ` +
          `sources ${sources.map((s) => `${s.source} ${formatBytes(s.bytes)}`).join(', ') || 'none reported'}` +
          `; its downlink ${downlinkSpan(downlink, options.sizeBytes)}` +
          `; daemon CPU during it: a ${cpu[0]!.toFixed(1)} s, b ${cpu[1]!.toFixed(1)} s, ` +
          `load ${loadavg()[0]!.toFixed(2)} after` +
          `${second.note === '' ? '' : `; note: ${second.note}`}`,
      );
      console.log(
        `  origin during b's get: ${requests.length} requests ` +
          `(${byStatus(requests) || 'none'}), ` +
          `body ${bodyBytes} bytes ${bodyBytes === 0 ? '(revalidation only: met)' : '(MISSED: the origin sent body bytes)'}; ` +
          `its link sent ${originSent.bytes} bytes in ${originSent.packets} frames`,
      );
    }
    return first.identical && second.identical ? 0 : 1;
  });
}

/** `281.2 MB (1.05x the object), 0.4-12.9 s, 93% of that at >= 80% of the LAN rate`. */
function downlinkSpan(link: LinkSummary, sizeBytes: number): string {
  const carried = `${(link.bytes / 1e6).toFixed(1)} MB (${(link.bytes / sizeBytes).toFixed(2)}x the object)`;
  if (link.firstBusySeconds === undefined || link.lastByteSeconds === undefined) {
    return `${carried}, never at half the LAN rate`;
  }
  return (
    `${carried}, ${link.firstBusySeconds.toFixed(1)}-` +
    `${link.lastByteSeconds.toFixed(1)} s, ${(link.busyShare * 100).toFixed(0)}% of that at >= 80% of the LAN rate`
  );
}

/** `304 x1 0 B, 206 x12 33.6 MB`: the requests grouped by status, with their body bytes. */
function byStatus(requests: readonly OriginRequest[]): string {
  const groups = new Map<number, { count: number; bytes: number }>();
  for (const request of requests) {
    const group = groups.get(request.status) ?? { count: 0, bytes: 0 };
    groups.set(request.status, { count: group.count + 1, bytes: group.bytes + request.bodyBytes });
  }
  return [...groups]
    .map(([status, { count, bytes }]) => `${status} x${count} ${bytes} B`)
    .join(', ');
}

/** Polls a HEAD of `url` from `host`'s namespace until it answers (or the origin exited). */
async function waitForOrigin(
  processes: Processes,
  host: LabHost,
  url: string,
  gone: () => boolean,
): Promise<void> {
  const script =
    "fetch(process.argv[1],{method:'HEAD'}).then(r=>process.exit(r.ok?0:4),()=>process.exit(3))";
  const deadline = performance.now() + 15_000;
  for (;;) {
    if (gone()) throw new Error('nginx exited (its error.log is in the nginx directory)');
    if ((await processes.run(host.ns, process.execPath, ['-e', script, url])).code === 0) return;
    if (performance.now() > deadline) throw new Error(`nginx never answered at ${url}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    if (wasInterrupted()) return;
    process.stderr.write(`cached-url: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
