/**
 * Cache hits through the gateway beside nginx's `proxy_cache` (`npm run bench:cache-hit`):
 * throughput and p99 latency of 32 concurrent clients reading one cached object, 1 MiB and
 * 16 MiB, from the gateway's memory layer (L1) and from its store (L2), in the same run as
 * nginx serving the same objects from its proxy cache (issue 13, "bench/cache-hit").
 *
 * Theory of operation
 * - The origin: a Node HTTP server in this process, answering GET /o/<size> with a fixed random
 *   body, a strong ETag and `Cache-Control: max-age=3600`, so both caches hold each object fresh
 *   and never ask again (the origin counts its requests; the bench prints them).
 * - nginx (Debian's package, `worker_processes 1`: one process, as the daemon is one): a
 *   `proxy_cache` in front of the origin, `proxy_cache_valid 200 1h`, `sendfile on`.
 * - PeaPod: two `peapod daemon --gateway` processes with a route `/o=http://origin`: one with a
 *   256 MiB memory layer (hits come from L1), one with a 1-byte memory layer (every hit reads
 *   the store, which checks each chunk's SHA-256 on every read).
 * - Each object is fetched twice through each server (the fill, then a hit), checked byte for
 *   byte; then wrk (Debian's, a separate process, 2 threads) runs 32 connections for `--seconds`
 *   against each.
 *   The figure is body bytes per second and p99 latency; the ratio is PeaPod over nginx.
 * - On this machine nginx's proxy cache files sit in the page cache after the first read, so
 *   "nginx" is its memory case in both rows; "disk" for PeaPod means the store's verified read
 *   path (its files are in the page cache too). The honest reading is "what a hit costs".
 *
 * Without nginx or wrk it says so and exits 0 having run nothing.
 *
 * Usage: npx tsc -b && node bench/dist/cache-hit.js [--seconds 8] [--connections 32] [--json]
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type * as LocalPod from '../packages/node/dist/src/local-pod.js';

type LocalDaemon = LocalPod.LocalDaemon;
const { freeTcpPort, freeUdpPort, spawnLocalDaemon, waitFor } = (await import(
  new URL('../../packages/node/dist/src/local-pod.js', import.meta.url).href
)) as typeof LocalPod;

const NGINX = '/usr/sbin/nginx';
const WRK = '/usr/bin/wrk';
const SIZES = [2 ** 20, 16 * 2 ** 20];

interface Figure {
  readonly bytesPerSecond: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly errors: number;
}

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);

async function main(): Promise<void> {
  const missing = [NGINX, WRK].filter((path) => !existsSync(path));
  if (missing.length > 0) {
    console.log(`cache-hit: SKIPPED, ${missing.join(' and ')} missing (apt-get install nginx wrk)`);
    return;
  }
  const root = await mkdtemp(join(tmpdir(), 'peapod-bench-cache-hit-'));
  const children: ChildProcess[] = [];
  let origin: Server | undefined;
  try {
    const bodies = new Map(SIZES.map((size) => [size, randomBytes(size)]));
    let originRequests = 0;
    origin = createServer((req, res) => {
      const size = Number(req.url?.split('/').pop());
      const body = bodies.get(size);
      if (body === undefined) return void res.writeHead(404).end(); // readiness probes
      originRequests++;
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(body.length),
        etag: `"${size}-v1"`,
        'cache-control': 'max-age=3600',
      });
      res.end(body);
    });
    await new Promise<void>((resolve) => origin!.listen(0, '127.0.0.1', resolve));
    const originPort = (origin.address() as AddressInfo).port;

    const nginxPort = await freeTcpPort();
    const nginxDir = join(root, 'nginx');
    await writeNginxConfig(nginxDir, nginxPort, originPort);
    const nginx = spawn(NGINX, ['-p', nginxDir, '-c', join(nginxDir, 'nginx.conf')], {
      stdio: 'inherit',
    });
    children.push(nginx);

    const discoveryPort = await freeUdpPort();
    const secret = randomBytes(32);
    const gateways: { name: string; port: number; daemon: LocalDaemon }[] = [];
    for (const [index, [name, memory]] of [
      ['memory', '256MiB'],
      ['disk', '1'],
    ].entries()) {
      const port = await freeTcpPort();
      const daemon = await spawnLocalDaemon({
        root,
        index,
        secret,
        discoveryPort,
        logLevel: 'warn',
        stdio: 'ignore',
        flags: [
          ...['--gateway', `127.0.0.1:${port}`],
          ...['--route', `/o=http://127.0.0.1:${originPort}`],
          ...['--cache-size', '1GiB', '--cache-memory', memory!],
        ],
      });
      children.push(daemon.child);
      gateways.push({ name: name!, port, daemon });
    }
    const servers = [
      { name: 'nginx', port: nginxPort },
      ...gateways.map((g) => ({ name: `peapod-${g.name}`, port: g.port })),
    ];
    for (const server of servers) {
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${server.port}/o/0`)).status > 0,
        20_000,
        `${server.name} to listen`,
      );
    }
    // Fill every cache once, and check what comes back.
    for (const server of servers) {
      for (const size of SIZES) {
        for (let i = 0; i < 2; i++) {
          const got = Buffer.from(
            await (await fetch(`http://127.0.0.1:${server.port}/o/${size}`)).arrayBuffer(),
          );
          if (!got.equals(bodies.get(size)!))
            throw new Error(`${server.name} served the ${size}-byte object wrongly`);
        }
      }
    }
    const filledRequests = originRequests;

    const rows: {
      size: number;
      layer: string;
      nginx: Figure;
      peapod: Figure;
      ratio: number;
    }[] = [];
    for (const size of SIZES) {
      const nginxFigure = loadTest(nginxPort, size);
      for (const gateway of gateways) {
        const figure = loadTest(gateway.port, size);
        rows.push({
          size,
          layer: gateway.name,
          nginx: nginxFigure,
          peapod: figure,
          ratio: figure.bytesPerSecond / nginxFigure.bytesPerSecond,
        });
      }
    }
    const result = {
      connections,
      seconds,
      originRequests: { fill: filledRequests, afterLoad: originRequests },
      rows,
    };
    if (values.json) return void console.log(JSON.stringify(result, null, 2));
    console.log(
      `cache-hit: ${connections} connections, ${seconds} s each; one nginx worker, one daemon process`,
    );
    for (const row of rows) {
      console.log(
        `  ${mib(row.size).padStart(6)} ${row.layer.padEnd(6)}  peapod ${mbps(row.peapod)} ` +
          `p99 ${row.peapod.p99Ms} ms   nginx ${mbps(row.nginx)} p99 ${row.nginx.p99Ms} ms   ` +
          `ratio ${row.ratio.toFixed(2)}x${row.peapod.errors + row.nginx.errors > 0 ? `  (errors: peapod ${row.peapod.errors}, nginx ${row.nginx.errors})` : ''}`,
      );
    }
    console.log(
      `  origin requests: ${filledRequests} to fill the three caches, ${originRequests - filledRequests} during the load`,
    );
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map(
        (child) =>
          new Promise((resolve) =>
            child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
          ),
      ),
    );
    origin?.close();
    await rm(root, { recursive: true, force: true });
  }
}

/** wrk's figure for `connections` clients reading `/o/<size>` for `seconds` (2 threads). */
function loadTest(port: number, size: number): Figure {
  const out = execFileSync(
    WRK,
    [
      ...['-t', '2', '-c', String(connections), '-d', `${seconds}s`, '--latency'],
      `http://127.0.0.1:${port}/o/${size}`,
    ],
    { encoding: 'utf8', maxBuffer: 16 * 2 ** 20, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const field = (pattern: RegExp): RegExpExecArray => {
    const match = pattern.exec(out);
    if (match === null) throw new Error(`wrk printed no ${pattern.source}:\n${out}`);
    return match;
  };
  const [, count, unit] = field(/Transfer\/sec:\s+([\d.]+)([KMGT]?B)/);
  const [, p99, p99Unit] = field(/\s99%\s+([\d.]+)(us|ms|s)/);
  const [, requests] = field(/(\d+) requests in/);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const scale = { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 }[unit!]!;
  const toMs = { us: 1e-3, ms: 1, s: 1000 }[p99Unit as 'us' | 'ms' | 's'];
  return {
    bytesPerSecond: Number(count) * scale,
    p99Ms: Math.round(Number(p99) * toMs * 10) / 10,
    requests: Number(requests),
    errors:
      Number(errors) + (socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0)),
  };
}

async function writeNginxConfig(dir: string, port: number, originPort: number): Promise<void> {
  await mkdir(join(dir, 'cache'), { recursive: true });
  // nginx's worker runs as nobody when started as root: its cache must be writable to it.
  for (const path of [dir, join(dir, 'cache')]) await chmod(path, 0o777);
  await chmod(join(dir, '..'), 0o755);
  const temp = (name: string) => `${name}_temp_path ${join(dir, `${name}-temp`)};`;
  await writeFile(
    join(dir, 'nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30s;
  keepalive_requests 100000;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
  proxy_cache_path ${join(dir, 'cache')} levels=1:2 keys_zone=bench:10m max_size=2g inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:${port};
    location /o/ {
      proxy_pass http://127.0.0.1:${originPort};
      proxy_cache bench;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_http_version 1.1;
    }
  }
}
`,
  );
}

function mib(bytes: number): string {
  return `${bytes / 2 ** 20} MiB`;
}

function mbps(figure: Figure): string {
  return `${(figure.bytesPerSecond / 2 ** 20).toFixed(0).padStart(5)} MiB/s`;
}

main().catch((error: Error) => {
  console.error(`cache-hit: ${error.message}`);
  process.exitCode = 1;
});
