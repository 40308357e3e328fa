/**
 * A cluster's gateways reading one object at once through a slow origin, beside a BitTorrent
 * swarm on the same lab in the same run (`npm run bench:cluster`, as root; issue 13): N nodes
 * (default 4) on a 1 Gbit/s LAN, each GETting the same F bytes (default 256 MiB) through its own
 * `peapod daemon --gateway` at the same moment, from an origin whose uplink is 200 Mbit/s. The
 * goals: the last client done within 1.10x the limit F / origin rate, and the origin sending at
 * most 1.02x the object. (Measured earlier for BitTorrent on this topology: about 1.40x the
 * limit, the seed sending about 1.18x.)
 *
 * Theory of operation
 * - The lab (bench/netns-lab.ts): namespaces `ppcl-origin` and `ppcl-node1..N` on one bridge in
 *   `ppcl-lan`. The origin's uplink (what it sends) is a tbf at the origin rate, every other link
 *   direction one at the LAN rate; offloads off, so the link counters count frames. Removed at
 *   the end, on an error and on SIGINT/SIGTERM.
 * - The object: F bytes of AES-CTR keystream (bench/pooled-origin.ts) in a directory that
 *   Debian's nginx serves from the origin namespace, with the `Cache-Control: max-age=3600`
 *   this bench's config adds, nginx's own strong ETag and a Content-Length (checked with one
 *   HEAD before anything is timed). The same file is what the BitTorrent seed seeds.
 * - PeaPod: a pod of daemons (bench/lab-pod.ts: `peapod init` on node1, `peapod join` on the
 *   others, all linked before anything is timed), each with `--gateway 127.0.0.1:8081 --route
 *   /o=http://<origin>:8000`: the gateway listens on its own namespace's loopback. Then every
 *   node's client, curl in that namespace piped into sha256sum, GETs
 *   `http://127.0.0.1:8081/o/object.bin` at the same moment. On a miss a gateway asks the
 *   members who holds the object; nobody does, so the key's rendezvous owner fills it from the
 *   origin and the others fetch it from the members segment by segment (8 MiB contents the
 *   owner publishes as it fills), each by content ID (packages/node's gateway/cluster.ts). Afterwards each gateway's `GET /metrics` gives its bytes from the
 *   origin (`peapod_gateway_bytes_total{source="origin"}`) and from each member
 *   (`peapod_gateway_peer_bytes_total{peer=...}`), named here by device.
 * - BitTorrent (bench/swarm-bittorrent.ts, unchanged): the seed is aria2c on the origin host
 *   (so limited to the origin rate), the N nodes are the leechers, opentracker on the bridge.
 * - Figures: the time from the common start until the last client has every byte (each
 *   checked by SHA-256), against the limit F / origin rate; and the origin's sent TCP payload
 *   (its `eth0` transmit counters minus 66 bytes of headers per frame) against F. PeaPod's are
 *   printed next to BitTorrent's of the same run, as ratios. Also per node: its time, its first
 *   byte (PeaPod), when its downlink carried data (a 100 ms sampler of the bridge ports, at a
 *   tenth of the origin rate or more), what it sent into the LAN, and what its gateway's metrics
 *   say it got from where. A BitTorrent leecher's time is to its aria2c's exit, as bench/swarm.ts
 *   counts it: later than its downlink's last data by aria2c's own start and stop.
 * - When the gateways did not share (not exactly one fetched from the origin) or a client
 *   failed, the daemons' warnings and gateway lines are printed.
 *
 * Without root, where `ip netns` fails, or without nginx (or aria2c and opentracker for the
 * baseline), it says why and exits 0 having run nothing.
 *
 * Usage: npx tsc -b && node bench/dist/cluster.js, with the environment:
 *   CLUSTER_MIB=256 (object size), CLUSTER_ORIGIN_MBIT=200, CLUSTER_LAN_MBIT=1000,
 *   CLUSTER_NODES=4, CLUSTER_SYSTEMS=peapod,bittorrent (one of them runs one half only),
 *   CLUSTER_PIECE_KIB=256 (BitTorrent pieces), CLUSTER_LOG_LEVEL=info (the daemons'),
 *   CLUSTER_JSON=1 (one JSON report on stdout), CLUSTER_KEEP=1 (leave the run's directory:
 *   daemon, aria2c and opentracker logs, link timelines).
 *   A quick run: CLUSTER_MIB=64 npm run bench:cluster
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseDeviceId, toHex } from '@peapod/core';
import { LabPod, mustSucceed } from './lab-pod.js';
import { LinkTimeline, SAMPLER, type LinkSummary } from './link-timeline.js';
import {
  counterDelta,
  FRAME_EFFICIENCY,
  Lab,
  mbit,
  namespacesUnavailable,
  payloadBytes,
  Processes,
  wasInterrupted,
  withCleanup,
  type LabHost,
  type LinkCounters,
} from './netns-lab.js';
import { NGINX, writeObjectFile } from './pooled-origin.js';
import { runBitTorrent } from './swarm-bittorrent.js';

const CLI = fileURLToPath(new URL('../../packages/node/dist/src/cli.js', import.meta.url));
const ORIGIN_PORT = 8000;
const GATEWAY_PORT = 8081;
const OBJECT_NAME = 'object.bin';
const GOAL_TIME_VS_LIMIT = 1.1;
const GOAL_ORIGIN_VS_OBJECT = 1.02;
const SYSTEMS = ['peapod', 'bittorrent'] as const;
type System = (typeof SYSTEMS)[number];

interface Options {
  readonly sizeBytes: number;
  readonly originBytesPerSec: number;
  readonly lanBytesPerSec: number;
  readonly nodes: number;
  readonly systems: readonly System[];
  readonly pieceLengthBytes: number;
  readonly logLevel: string;
  readonly json: boolean;
  readonly keep: boolean;
}

function readOptions(env: NodeJS.ProcessEnv): Options {
  const number = (name: string, fallback: number): number => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!(value > 0)) throw new Error(`${name}: a positive number, e.g. ${fallback}`);
    return value;
  };
  const nodes = number('CLUSTER_NODES', 4);
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 30)
    throw new Error('CLUSTER_NODES: 2 to 30');
  const pieceKib = number('CLUSTER_PIECE_KIB', 256);
  if (!Number.isInteger(pieceKib) || (pieceKib & (pieceKib - 1)) !== 0 || pieceKib < 16)
    throw new Error('CLUSTER_PIECE_KIB: a power of two of at least 16');
  const systems = (env['CLUSTER_SYSTEMS'] || SYSTEMS.join(',')).split(',') as System[];
  const unknown = systems.filter((system) => !SYSTEMS.includes(system));
  if (unknown.length > 0)
    throw new Error(`CLUSTER_SYSTEMS: ${unknown.join(', ')} is not peapod or bittorrent`);
  return {
    sizeBytes: Math.round(number('CLUSTER_MIB', 256) * 2 ** 20),
    originBytesPerSec: (number('CLUSTER_ORIGIN_MBIT', 200) * 1e6) / 8,
    lanBytesPerSec: (number('CLUSTER_LAN_MBIT', 1000) * 1e6) / 8,
    nodes,
    systems,
    pieceLengthBytes: pieceKib * 1024,
    logLevel: env['CLUSTER_LOG_LEVEL'] || 'info',
    json: env['CLUSTER_JSON'] === '1',
    keep: env['CLUSTER_KEEP'] === '1',
  };
}

/** One node's read of the object. */
interface ClientResult {
  readonly name: string;
  /** From the common start until its client exited (it had every byte, or failed). */
  readonly seconds: number;
  /** Its first body byte, from the common start (PeaPod's curl only). */
  readonly firstByteSeconds?: number;
  readonly ok: boolean;
  readonly error?: string;
}

/** What one node's gateway `/metrics` says it got, with members named by device. */
interface GatewayFigures {
  readonly originBytes: number;
  readonly peerBytes: Readonly<Record<string, number>>;
}

interface SystemRun {
  readonly system: System;
  readonly clients: readonly ClientResult[];
  /** The origin's `eth0` over the transfer (what it sent). */
  readonly originSent: LinkCounters;
  /** Each node's `eth0` over the transfer (what it sent into the LAN). */
  readonly nodesSent: readonly LinkCounters[];
  readonly originUplink: LinkSummary;
  /** When each node's downlink carried data (see `dataSpan`), seconds from the start. */
  readonly downlinks: readonly DataSpan[];
  readonly gateways?: readonly GatewayFigures[];
  readonly note: string;
  /** Daemon log lines that say why the gateways did not share, when they did not. */
  readonly trouble?: readonly string[];
}

/** From the first to the last 100 ms interval a link carried data in. */
interface DataSpan {
  readonly from?: number;
  readonly to?: number;
}

/**
 * The span of a LinkTimeline CSV's column at `minBytesPerSec` or more: well above the ACKs a
 * node's downlink carries while it uploads to members (LinkSummary's last byte counts those).
 */
function dataSpan(csv: string, column: number, minBytesPerSec: number): DataSpan {
  let previous = 0;
  let from: number | undefined;
  let to: number | undefined;
  for (const row of csv.trim().split('\n').slice(1)) {
    const fields = row.split(',').map(Number);
    const end = fields[0]!;
    if (fields[column + 1]! / Math.max(0.001, end - previous) >= minBytesPerSec) {
      from ??= previous;
      to = end;
    }
    previous = end;
  }
  return { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) };
}

/** Takes the links' counters and timelines around exactly the transfer. */
class Measurement {
  private before: LinkCounters[] = [];
  private samplers: ChildProcess[] = [];
  private timelines: LinkTimeline[] = [];
  private sent: LinkCounters[] = [];

  constructor(
    private readonly lab: Lab,
    private readonly processes: Processes,
    private readonly origin: LabHost,
    private readonly nodes: readonly LabHost[],
  ) {}

  private hosts(): LabHost[] {
    return [this.origin, ...this.nodes];
  }

  readonly measure = (moment: 'start' | 'end'): void => {
    const counters = this.hosts().map((host) => this.lab.sent(host));
    if (moment === 'start') {
      this.before = counters;
      this.samplers = [this.origin.ns, this.lab.bridgeNs].map((ns) =>
        this.processes.spawn(ns, SAMPLER[0], SAMPLER.slice(1)),
      );
      this.timelines = [
        new LinkTimeline(this.samplers[0]!, ['eth0']),
        // The bridge port pI transmits to host I (p1 is the origin's downlink).
        new LinkTimeline(
          this.samplers[1]!,
          this.nodes.map((_, i) => `p${i + 2}`),
        ),
      ];
    } else {
      this.sent = counters.map((after, i) => counterDelta(this.before[i]!, after));
    }
  };

  /** After `measure('end')`: stops the samplers, gives the figures. */
  async finish(
    originBytesPerSec: number,
    keepDir: string | undefined,
  ): Promise<Pick<SystemRun, 'originSent' | 'nodesSent' | 'originUplink' | 'downlinks'>> {
    await Promise.all(this.samplers.map((sampler) => this.processes.stop(sampler)));
    if (keepDir !== undefined) {
      await writeFile(join(keepDir, 'origin-uplink.csv'), this.timelines[0]!.csv());
      await writeFile(join(keepDir, 'downlinks.csv'), this.timelines[1]!.csv());
    }
    return {
      originSent: this.sent[0]!,
      nodesSent: this.sent.slice(1),
      originUplink: this.timelines[0]!.summarize(originBytesPerSec)[0]!,
      // Data at a tenth of the origin's rate or more (ACKs are a few percent of what they ack).
      downlinks: this.nodes.map((_, i) =>
        dataSpan(this.timelines[1]!.csv(), i, originBytesPerSec / 10),
      ),
    };
  }
}

/** An nginx prefix serving `served/` with `Cache-Control: max-age=3600` (and its strong ETag). */
async function prepareOrigin(
  directory: string,
  host: string,
): Promise<{ config: string; served: string; errorLog: string }> {
  const served = join(directory, 'served');
  await mkdir(served, { recursive: true });
  // nginx's worker runs as nobody.
  await chmod(directory, 0o755);
  await chmod(served, 0o755);
  const config = join(directory, 'nginx.conf');
  const errorLog = join(directory, 'error.log');
  const temp = (name: string) => `${name}_temp_path ${join(directory, `${name}-temp`)};`;
  await writeFile(
    config,
    `# bench/cluster: a plain static origin, fresh for an hour
daemon off;
worker_processes 1;
pid ${join(directory, 'nginx.pid')};
error_log ${errorLog} warn;
events { worker_connections 256; }
http {
  access_log ${join(directory, 'access.log')};
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30s;
  default_type application/octet-stream;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
  server {
    listen ${host}:${ORIGIN_PORT};
    root ${served};
    add_header Cache-Control "max-age=3600";
  }
}
`,
  );
  return { config, served, errorLog };
}

/** HEADs `url` from `host` until nginx answers; checks the headers a shared cache needs. */
async function checkOrigin(
  processes: Processes,
  host: LabHost,
  url: string,
  sizeBytes: number,
  gone: () => boolean,
): Promise<string> {
  const script =
    "fetch(process.argv[1],{method:'HEAD'}).then(r=>console.log(JSON.stringify(" +
    '{status:r.status,headers:Object.fromEntries(r.headers)})),()=>process.exit(3))';
  const deadline = performance.now() + 15_000;
  for (;;) {
    if (gone()) throw new Error('nginx exited (its error.log is in the nginx directory)');
    const run = await processes.run(host.ns, process.execPath, ['-e', script, url]);
    if (run.code === 0) {
      const { status, headers } = JSON.parse(run.stdout) as {
        status: number;
        headers: Record<string, string>;
      };
      const etag = headers['etag'] ?? '';
      if (
        status !== 200 ||
        headers['cache-control'] !== 'max-age=3600' ||
        !/^"[^"]+"$/.test(etag) ||
        headers['content-length'] !== String(sizeBytes)
      ) {
        throw new Error(`the origin's answer is not what this bench needs: ${run.stdout.trim()}`);
      }
      return `ETag ${etag}, Cache-Control ${headers['cache-control']}, Content-Length ${sizeBytes}`;
    }
    if (performance.now() > deadline) throw new Error(`nginx never answered at ${url}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Each daemon's device ID as hex (`peapod peers --json`, parsed), in the order of `hosts`. */
async function deviceIds(pod: LabPod, hosts: readonly LabHost[]): Promise<string[]> {
  return Promise.all(
    hosts.map(async (host) => {
      const run = mustSucceed(
        `peapod peers (${host.name})`,
        await pod.cli(host, ['peers', '--json']),
      );
      return toHex(parseDeviceId((JSON.parse(run.stdout) as { deviceId: string }).deviceId));
    }),
  );
}

/** `GET /metrics` from the gateway in `host`'s namespace; undefined while it does not answer. */
async function readMetrics(processes: Processes, host: LabHost): Promise<string | undefined> {
  const run = await processes.run(host.ns, 'curl', [
    ...['-sS', '--fail', '--max-time', '5'],
    `http://127.0.0.1:${GATEWAY_PORT}/metrics`,
  ]);
  return run.code === 0 ? run.stdout : undefined;
}

/** The two families this bench prints, with each member's label turned into its host's name. */
function gatewayFigures(
  text: string,
  hosts: readonly LabHost[],
  ids: readonly string[],
): GatewayFigures {
  const origin = /^peapod_gateway_bytes_total\{source="origin"\} (\S+)$/m.exec(text);
  const peerBytes: Record<string, number> = {};
  for (const match of text.matchAll(
    /^peapod_gateway_peer_bytes_total\{peer="([^"]*)"\} (\S+)$/gm,
  )) {
    // The label is the member's device ID in hex (the content job's source key).
    const at = ids.indexOf(match[1]!.toLowerCase());
    const name = at >= 0 ? hosts[at]!.name : match[1]!;
    peerBytes[name] = (peerBytes[name] ?? 0) + Number(match[2]);
  }
  return { originBytes: Number(origin?.[1] ?? Number.NaN), peerBytes };
}

/** Warnings and errors, and the lines about the gateway's sharing, from a daemon's JSON log. */
async function logExcerpt(path: string, max: number): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => {
      const level = /"level":(\d+)/.exec(line);
      return (
        (level !== null && Number(level[1]) >= 40) ||
        /gateway|cluster|lookup|fill|member/i.test(line)
      );
    })
    .slice(0, max);
}

interface GatewayRun {
  readonly processes: Processes;
  readonly origin: LabHost;
  readonly nodes: readonly LabHost[];
  readonly sha256: string;
  readonly root: string;
  readonly logLevel: string;
  readonly say: (line: string) => void;
}

/** The PeaPod half: a pod of gateways, every node's client at once. */
async function runGateways(
  run: GatewayRun,
  measure: (moment: 'start' | 'end') => void,
): Promise<Pick<SystemRun, 'clients' | 'gateways' | 'note' | 'trouble'>> {
  const { processes, nodes, say } = run;
  const pod = new LabPod(processes, nodes, CLI, run.root);
  try {
    const route = `/o=http://${run.origin.address}:${ORIGIN_PORT}`;
    const linkedSeconds = await pod.start(run.logLevel, [
      ...['--gateway', `127.0.0.1:${GATEWAY_PORT}`, '--route', route],
    ]);
    const ids = await deviceIds(pod, nodes);
    const deadline = performance.now() + 30_000;
    for (const node of nodes) {
      while ((await readMetrics(processes, node)) === undefined) {
        if (pod.exited() > 0 || performance.now() > deadline) {
          throw new Error(`${node.name}'s gateway never answered GET /metrics`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    say(
      `peapod: ${nodes.length} daemons with --gateway 127.0.0.1:${GATEWAY_PORT} --route ${route}, ` +
        `each linked to the ${nodes.length - 1} others (${linkedSeconds.toFixed(1)} s)`,
    );
    const url = `http://127.0.0.1:${GATEWAY_PORT}/o/${OBJECT_NAME}`;
    measure('start');
    const cpuBefore = pod.cpuSeconds();
    const started = performance.now();
    const clients = await Promise.all(
      nodes.map(async (node): Promise<ClientResult> => {
        // The body straight into sha256sum: no disk in the client's path.
        const client = await processes.run(node.ns, 'bash', [
          '-c',
          'set -o pipefail; curl -sS --fail -o - -w "%{stderr}curl %{http_code} ' +
            '%{size_download} %{time_starttransfer}\\n" "$1" | sha256sum',
          'client',
          url,
        ]);
        const seconds = (performance.now() - started) / 1000;
        const line = /curl (\d+) (\d+) ([\d.]+)\s*$/.exec(client.stderr);
        const spawnDelay = seconds - client.seconds; // ~0: the clients start together
        const firstByteSeconds = line === null ? undefined : Number(line[3]) + spawnDelay;
        const sha256 = client.stdout.split(' ')[0];
        const ok = client.code === 0 && sha256 === run.sha256;
        return {
          name: node.name,
          seconds,
          ...(firstByteSeconds === undefined ? {} : { firstByteSeconds }),
          ok,
          ...(ok
            ? {}
            : {
                error:
                  client.code !== 0
                    ? `exit ${client.code}: ${client.stderr.trim()}`
                    : `SHA-256 mismatch (${line?.[2] ?? '?'} bytes, status ${line?.[1] ?? '?'})`,
              }),
        };
      }),
    );
    measure('end');
    const cpu = pod.cpuSeconds().map((seconds, i) => (seconds - cpuBefore[i]!).toFixed(1));
    const gateways = await Promise.all(
      nodes.map(async (node) => {
        const text = await readMetrics(processes, node);
        return text === undefined
          ? { originBytes: Number.NaN, peerBytes: {} }
          : gatewayFigures(text, nodes, ids);
      }),
    );
    const fillers = gateways.filter((gateway) => gateway.originBytes > 0).length;
    const exited = pod.exited();
    let trouble: string[] | undefined;
    if (fillers !== 1 || clients.some((client) => !client.ok) || exited > 0) {
      trouble = [];
      for (const node of nodes) {
        const lines = await logExcerpt(join(run.root, `peapod-${node.name}.log`), 12);
        trouble.push(...lines.map((line) => `${node.name}: ${line}`));
      }
    }
    return {
      clients,
      gateways,
      note:
        `curl | sha256sum in each node's namespace; daemon CPU seconds during the reads: ` +
        `${cpu.join(' + ')}${exited > 0 ? `; ${exited} daemons EXITED during the run` : ''}`,
      ...(trouble === undefined ? {} : { trouble }),
    };
  } finally {
    await pod.stop();
  }
}

async function main(): Promise<number> {
  const options = readOptions(process.env);
  const say = (line: string) => {
    if (!options.json) process.stderr.write(`${line}\n`);
  };
  const needed = [
    NGINX,
    'curl',
    ...(options.systems.includes('bittorrent') ? ['aria2c', 'opentracker'] : []),
  ];
  const missing = needed.filter((program) =>
    program.startsWith('/')
      ? !existsSync(program)
      : !['/usr/bin', '/usr/local/bin', '/bin'].some((dir) => existsSync(join(dir, program))),
  );
  const why =
    namespacesUnavailable() ?? (missing.length === 0 ? undefined : `${missing.join(', ')} missing`);
  if (why !== undefined) {
    say(
      `cluster: SKIPPED, ${why}: this bench needs root, network namespaces, nginx, curl` +
        `${options.systems.includes('bittorrent') ? ', aria2c and opentracker' : ''}`,
    );
    return 0;
  }
  const lab = new Lab('ppcl', '10.99.2');
  const origin = lab.addHost('origin', options.originBytesPerSec, options.lanBytesPerSec);
  const nodes = Array.from({ length: options.nodes }, (_, i) =>
    lab.addHost(`node${i + 1}`, options.lanBytesPerSec, options.lanBytesPerSec),
  );
  const root = await mkdtemp(join(tmpdir(), 'peapod-bench-cluster-'));
  // nginx's worker runs as nobody: its files live outside the 0700 run directory.
  const nginxDir = await mkdtemp(join(tmpdir(), 'peapod-bench-cluster-nginx-'));
  const processes = new Processes();
  const cleanup = async () => {
    await processes.stopAll();
    lab.destroy();
    await rm(nginxDir, { recursive: true, force: true });
    if (options.keep) say(`cluster: kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  };
  const hardStop = () => {
    processes.killAllNow();
    lab.destroy();
  };
  return withCleanup('cluster', cleanup, hardStop, async () => {
    lab.build();
    say(
      `lab: origin (${mbit(options.originBytesPerSec)} Mbit/s uplink) + ${options.nodes} nodes, ` +
        `every other link ${mbit(options.lanBytesPerSec)} Mbit/s each way, one bridge (tc tbf)` +
        `${lab.framesExact ? ', offloads off' : '; ethtool missing, so packet counts are not frames'}`,
    );
    const nginx = await prepareOrigin(nginxDir, origin.address);
    const sha256 = await writeObjectFile(join(nginx.served, OBJECT_NAME), options.sizeBytes);
    const server = processes.spawn(origin.ns, NGINX, [
      ...['-p', nginxDir, '-c', nginx.config, '-e', nginx.errorLog],
    ]);
    const originUrl = `http://${origin.address}:${ORIGIN_PORT}/${OBJECT_NAME}`;
    const headers = await checkOrigin(
      processes,
      nodes[0]!,
      originUrl,
      options.sizeBytes,
      () => server.exitCode !== null,
    );
    say(`origin: nginx at ${originUrl} (${headers}), sha-256 ${sha256}`);

    const runs: SystemRun[] = [];
    for (const system of options.systems) {
      const runDir = join(root, system);
      const outputDir = join(root, `${system}-out`);
      await mkdir(runDir, { recursive: true });
      await mkdir(outputDir, { recursive: true });
      const measurement = new Measurement(lab, processes, origin, nodes);
      const load = loadavg()[0]!;
      let result: Pick<SystemRun, 'clients' | 'gateways' | 'note' | 'trouble'>;
      if (system === 'peapod') {
        result = await runGateways(
          {
            processes,
            origin,
            nodes,
            sha256,
            root: runDir,
            logLevel: options.logLevel,
            say,
          },
          measurement.measure,
        );
      } else {
        const swarm = await runBitTorrent(
          {
            processes,
            seed: origin,
            peers: nodes,
            trackerNs: lab.bridgeNs,
            trackerAddress: lab.bridgeAddress,
            contentDir: nginx.served,
            contentName: OBJECT_NAME,
            sha256,
            root: runDir,
            outputDir,
            pieceLengthBytes: options.pieceLengthBytes,
            say,
          },
          measurement.measure,
        );
        result = {
          clients: swarm.peers.map((peer) => ({
            name: peer.name,
            seconds: peer.seconds,
            ok: peer.ok,
            ...(peer.error === undefined ? {} : { error: peer.error }),
          })),
          note: swarm.note,
        };
      }
      const links = await measurement.finish(
        options.originBytesPerSec,
        options.keep ? runDir : undefined,
      );
      await rm(outputDir, { recursive: true, force: true });
      if (wasInterrupted()) break;
      const worst = Math.max(...result.clients.map((client) => client.seconds));
      say(`${system}: ${result.clients.length} clients done, the last at ${worst.toFixed(2)} s`);
      runs.push({
        system,
        ...result,
        ...links,
        note: `${result.note}; load ${load.toFixed(2)} before`,
      });
    }
    if (wasInterrupted()) return 130; // the figures of a run cut short mean nothing
    return report(options, runs);
  });
}

const dataSpanText = (span: DataSpan) =>
  span.from === undefined || span.to === undefined
    ? 'never'
    : `${span.from.toFixed(1)}-${span.to.toFixed(1)} s`;

function report(options: Options, runs: readonly SystemRun[]): number {
  const limit = options.sizeBytes / options.originBytesPerSec;
  const figures = runs.map((run) => {
    const worst = Math.max(...run.clients.map((client) => client.seconds));
    const originPayload = payloadBytes(run.originSent);
    return {
      system: run.system,
      ok: run.clients.every((client) => client.ok),
      lastSeconds: worst,
      vsLimit: worst / limit,
      originPayloadBytes: originPayload,
      originVsObject: originPayload / options.sizeBytes,
      originFrameBytes: run.originSent.bytes,
      met: {
        time: worst / limit <= GOAL_TIME_VS_LIMIT,
        originBytes: originPayload / options.sizeBytes <= GOAL_ORIGIN_VS_OBJECT,
      },
      run,
    };
  });
  const peapod = figures.find((figure) => figure.system === 'peapod');
  const bittorrent = figures.find((figure) => figure.system === 'bittorrent');
  const ok = figures.every((figure) => figure.ok);
  if (options.json) {
    console.log(
      JSON.stringify(
        {
          benchmark: 'cluster',
          node: process.version,
          sizeBytes: options.sizeBytes,
          originBitsPerSec: options.originBytesPerSec * 8,
          lanBitsPerSec: options.lanBytesPerSec * 8,
          nodes: options.nodes,
          limitSeconds: limit,
          goals: { timeVsLimit: GOAL_TIME_VS_LIMIT, originVsObject: GOAL_ORIGIN_VS_OBJECT },
          systems: figures,
          ...(peapod !== undefined && bittorrent !== undefined
            ? {
                peapodVsBittorrent: {
                  time: peapod.lastSeconds / bittorrent.lastSeconds,
                  originBytes: peapod.originPayloadBytes / bittorrent.originPayloadBytes,
                },
              }
            : {}),
          ok,
        },
        null,
        2,
      ),
    );
    return ok ? 0 : 1;
  }
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  console.log(
    `Cluster: ${mib(options.sizeBytes)} read by ${options.nodes} nodes at once through a ` +
      `${mbit(options.originBytesPerSec)} Mbit/s origin, the nodes on a ${mbit(options.lanBytesPerSec)} ` +
      `Mbit/s LAN (network namespaces + tc tbf, nginx origin, Node ${process.version})`,
  );
  console.log(
    `  limit: size / origin rate = ${limit.toFixed(2)} s (TCP under tbf carries at most ` +
      `${(FRAME_EFFICIENCY * 100).toFixed(1)}% of the rate: ${(limit / FRAME_EFFICIENCY).toFixed(2)} s); ` +
      `goals: last client <= ${GOAL_TIME_VS_LIMIT.toFixed(2)}x the limit, origin payload <= ` +
      `${GOAL_ORIGIN_VS_OBJECT.toFixed(2)}x the object`,
  );
  const label = (system: System) =>
    system === 'peapod' ? 'peapod gateways' : 'bittorrent (aria2c)';
  console.log(
    `  ${'system'.padEnd(20)} ${'last client'.padStart(11)} ${'vs limit'.padStart(9)} ` +
      `${'origin sent'.padStart(13)} ${'vs object'.padStart(9)}  verified`,
  );
  for (const figure of figures) {
    console.log(
      `  ${label(figure.system).padEnd(20)} ${`${figure.lastSeconds.toFixed(2)} s`.padStart(11)} ` +
        `${`${figure.vsLimit.toFixed(2)}x`.padStart(9)} ${mib(figure.originPayloadBytes).padStart(13)} ` +
        `${`${figure.originVsObject.toFixed(3)}x`.padStart(9)}  ` +
        `${figure.ok ? 'all SHA-256 ok' : 'FAILED'}`,
    );
  }
  if (peapod !== undefined && bittorrent !== undefined) {
    console.log(
      `  peapod / bittorrent (same run): time ${(peapod.lastSeconds / bittorrent.lastSeconds).toFixed(2)}x, ` +
        `origin bytes ${(peapod.originPayloadBytes / bittorrent.originPayloadBytes).toFixed(3)}x`,
    );
  }
  if (peapod !== undefined) {
    console.log(
      `  goals (peapod): time ${peapod.vsLimit.toFixed(2)}x ${peapod.met.time ? 'met' : 'MISSED'}, ` +
        `origin bytes ${peapod.originVsObject.toFixed(3)}x ${peapod.met.originBytes ? 'met' : 'MISSED'}`,
    );
  }
  for (const figure of figures) {
    const run = figure.run;
    const span = (link: LinkSummary) =>
      link.firstBusySeconds === undefined || link.lastByteSeconds === undefined
        ? 'never at half the origin rate'
        : `${link.firstBusySeconds.toFixed(1)}-${link.lastByteSeconds.toFixed(1)} s`;
    console.log(
      `  ${run.system}: origin link ${span(run.originUplink)}, ` +
        `${(run.originUplink.busyShare * 100).toFixed(0)}% of that at >= 80% of its rate; ` +
        `${run.note}`,
    );
    run.clients.forEach((client, i) => {
      const gateway = run.gateways?.[i];
      const peers =
        gateway === undefined
          ? ''
          : `; gateway metrics: origin ${mib(gateway.originBytes)}, peers ${
              Object.entries(gateway.peerBytes)
                .map(([name, bytes]) => `${name} ${mib(bytes)}`)
                .join(', ') || 'none'
            }`;
      console.log(
        `    ${client.name}: ${client.seconds.toFixed(2)} s (${(client.seconds / limit).toFixed(2)}x)` +
          `${client.firstByteSeconds === undefined ? '' : `, first byte ${client.firstByteSeconds.toFixed(2)} s`}` +
          `, data on its downlink ${dataSpanText(run.downlinks[i]!)}, sent into the LAN ${mib(payloadBytes(run.nodesSent[i]!))}` +
          `${client.ok ? ', SHA-256 ok' : `, FAILED: ${client.error ?? ''}`}${peers}`,
      );
    });
    for (const line of run.trouble ?? []) console.log(`    log ${line}`);
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    if (wasInterrupted()) return;
    process.stderr.write(`cluster: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
