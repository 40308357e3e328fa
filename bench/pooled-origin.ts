/**
 * The origins of bench/pooled.ts, one per validator kind, and the check that each really sends
 * what its kind says (issue 9: PeaPod must pool from every range-capable origin, whatever
 * validator it gives).
 *
 * Theory of operation
 * - Kinds. `strong-etag` (a strong ETag only), `weak-etag` (a `W/` ETag only), `last-modified`
 *   (`Last-Modified` only), `none` (neither): the dev origin (packages/node/src/dev-origin.ts)
 *   with `--etag` and `--no-last-modified`, and `--no-digest` unless the bench asks for
 *   `Repr-Digest` (most static servers state no digest, so by default the daemon cannot verify
 *   the object end to end and relies on pinning and spot checks). All of them answer ranges with
 *   206 and a total length. `nginx`: Debian's nginx serving a file from a temporary directory
 *   with a temporary config (its own strong ETag and Last-Modified, no digest), a server nobody
 *   here wrote.
 * - Where. In the netns mode every origin is a process in the origin namespace, on its own port,
 *   started before its kind's runs and stopped after them; in the loopback mode the dev origin
 *   runs in the bench process with the same switches and a per-source-address rate limit (no
 *   nginx there: nothing would shape its links).
 * - nginx's access log (`$msec $remote_addr "$http_range" $status $body_bytes_sent
 *   $request_time`) shows what the origin really sent each device: `summarizeAccessLog` counts
 *   the requests, the spot-check samples, the ranges cut short (cancelled) and the ranges two
 *   devices both fetched, and the bytes each cost.
 * - Check. `checkKind` compares the headers of a HEAD (sent from a device's namespace) with the
 *   kind, so a figure is never reported for an origin that sent something else.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The four kinds `--origin all` runs, in this order. */
export const VALIDATOR_KINDS = ['strong-etag', 'weak-etag', 'last-modified', 'none'] as const;
export type OriginKind = (typeof VALIDATOR_KINDS)[number] | 'nginx';
const KINDS: readonly OriginKind[] = [...VALIDATOR_KINDS, 'nginx'];

/** Where Debian puts nginx. */
export const NGINX = '/usr/sbin/nginx';

/**
 * `--origin` text: kinds separated by commas, `all` for the four validator kinds.
 * @throws Error naming the unknown kind.
 */
export function parseOriginKinds(text: string): OriginKind[] {
  const kinds: OriginKind[] = [];
  for (const word of text.split(',').map((part) => part.trim())) {
    const add = word === 'all' ? VALIDATOR_KINDS : [word as OriginKind];
    for (const kind of add) {
      if (!KINDS.includes(kind)) {
        throw new Error(`--origin: ${word} is not one of ${KINDS.join(', ')} or all`);
      }
      if (!kinds.includes(kind)) kinds.push(kind);
    }
  }
  return kinds;
}

/** The dev origin's fault switches for a validator kind (in-process, loopback mode). */
export function devOriginFaults(
  kind: Exclude<OriginKind, 'nginx'>,
  digest: boolean,
): { etag: 'strong' | 'weak' | 'none'; lastModified: boolean; digest: boolean } {
  return {
    etag: kind === 'strong-etag' ? 'strong' : kind === 'weak-etag' ? 'weak' : 'none',
    lastModified: kind === 'last-modified',
    digest,
  };
}

/** The same switches as dev-origin.js CLI flags (netns mode). */
export function devOriginFlags(kind: Exclude<OriginKind, 'nginx'>, digest: boolean): string[] {
  const faults = devOriginFaults(kind, digest);
  return [
    '--etag',
    faults.etag,
    ...(faults.lastModified ? [] : ['--no-last-modified']),
    ...(faults.digest ? [] : ['--no-digest']),
  ];
}

/** What an origin's response said about validators and digests, e.g. `ETag W/"…", Last-Modified`. */
export function validatorsSent(headers: Readonly<Record<string, string>>): string {
  const sent: string[] = [];
  const etag = headers.etag;
  if (etag !== undefined) sent.push(`ETag ${etag.startsWith('W/') ? 'W/' : 'strong'}`);
  if (headers['last-modified'] !== undefined) sent.push('Last-Modified');
  if (headers['repr-digest'] !== undefined) sent.push('Repr-Digest');
  return sent.length === 0 ? 'nothing' : sent.join(' + ');
}

/**
 * Why a HEAD's headers (and its status as `:status`) do not fit `kind` (undefined when they
 * do): the ETag and Last-Modified it must and must not send, and a 200 with
 * `Accept-Ranges: bytes` and a length.
 */
export function checkKind(
  kind: OriginKind,
  headers: Readonly<Record<string, string>>,
): string | undefined {
  const etag = headers.etag;
  const strong = etag !== undefined && !etag.startsWith('W/');
  const weak = etag !== undefined && etag.startsWith('W/');
  const dated = headers['last-modified'] !== undefined;
  const fits = {
    'strong-etag': strong && !dated,
    'weak-etag': weak && !dated,
    'last-modified': etag === undefined && dated,
    none: etag === undefined && !dated,
    nginx: true,
  }[kind];
  if (
    headers[':status'] !== '200' ||
    headers['accept-ranges'] !== 'bytes' ||
    headers['content-length'] === undefined
  ) {
    return `it does not answer 200 with byte ranges and a length (${JSON.stringify(headers)})`;
  }
  return fits ? undefined : `a ${kind} origin sent ${validatorsSent(headers)}`;
}

/**
 * Writes `sizeBytes` of AES-256-CTR keystream under a fixed key (deterministic, incompressible)
 * to `path`; resolves with its SHA-256 in hex.
 */
export async function writeObjectFile(path: string, sizeBytes: number): Promise<string> {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 0x50), Buffer.alloc(16, 0));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(Math.min(sizeBytes, 4 * 2 ** 20));
  const out = createWriteStream(path, { mode: 0o644 });
  const closed = new Promise<void>((resolve, reject) => {
    out.once('close', resolve);
    out.once('error', reject);
  });
  for (let offset = 0; offset < sizeBytes; offset += zeros.length) {
    const part = cipher.update(zeros.subarray(0, Math.min(zeros.length, sizeBytes - offset)));
    hash.update(part);
    if (!out.write(part)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await closed;
  return hash.digest('hex');
}

/**
 * Prepares an nginx prefix under `directory`: `served/` (0755, so nginx's unprivileged worker
 * reads it) and `nginx.conf` listening on `host:port`. Returns the config path, the prefix and
 * where the object file goes.
 */
export async function prepareNginx(
  directory: string,
  host: string,
  port: number,
  objectName: string,
): Promise<{ config: string; prefix: string; objectPath: string; accessLog: string }> {
  const served = join(directory, 'served');
  await mkdir(served, { recursive: true });
  await chmod(directory, 0o755);
  await chmod(served, 0o755);
  const config = join(directory, 'nginx.conf');
  const accessLog = join(directory, 'access.log');
  const temp = (name: string) => `${name}_temp_path ${join(directory, `${name}-temp`)};`;
  await writeFile(
    config,
    `# bench/pooled: Debian's nginx, as it serves static files by default (ETag, Last-Modified)
daemon off;
worker_processes 1;
pid ${join(directory, 'nginx.pid')};
error_log ${join(directory, 'error.log')} warn;
events { worker_connections 256; }
http {
  log_format pooled '$msec $remote_addr "$http_range" $status $body_bytes_sent $request_time';
  access_log ${accessLog} pooled;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30s;
  default_type application/octet-stream;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
  server {
    listen ${host}:${port};
    root ${served};
  }
}
`,
  );
  return { config, prefix: directory, objectPath: join(served, objectName), accessLog };
}

/** What the origin sent one client address during a download, from nginx's access log. */
export interface ClientRequests {
  readonly address: string;
  readonly requests: number;
  readonly bodyBytes: number;
  /** Ranges of at most 64 KiB (spot-check samples, probes). */
  readonly small: number;
  /** Ranges whose body stopped short of their length: cancelled or failed. */
  readonly cutShort: number;
  readonly cutShortBytes: number;
  /** Bytes of ranges (over 64 KiB) another request of the download also asked for. */
  readonly repeatedBytes: number;
}

/** Per client address, from the lines of `log_format pooled` (see `prepareNginx`). */
export function summarizeAccessLog(text: string): ClientRequests[] {
  const parsed = text
    .split('\n')
    .map((line) => /^\S+ (\S+) "bytes=(\d+)-(\d+)" (\d+) (\d+) /.exec(line))
    .filter((match) => match !== null)
    .map((match) => ({
      address: match[1]!,
      start: Number(match[2]),
      length: Number(match[3]) - Number(match[2]) + 1,
      sent: Number(match[5]),
    }));
  const seen = new Map<string, number>();
  for (const request of parsed) {
    const key = `${request.start}-${request.length}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  const byAddress = new Map<string, ClientRequests>();
  for (const request of parsed) {
    const before = byAddress.get(request.address) ?? {
      address: request.address,
      requests: 0,
      bodyBytes: 0,
      small: 0,
      cutShort: 0,
      cutShortBytes: 0,
      repeatedBytes: 0,
    };
    const small = request.length <= 64 * 1024;
    const short = request.sent < request.length;
    const repeated = !small && (seen.get(`${request.start}-${request.length}`) ?? 0) > 1;
    byAddress.set(request.address, {
      ...before,
      requests: before.requests + 1,
      bodyBytes: before.bodyBytes + request.sent,
      small: before.small + (small ? 1 : 0),
      cutShort: before.cutShort + (short ? 1 : 0),
      cutShortBytes: before.cutShortBytes + (short ? request.sent : 0),
      repeatedBytes: before.repeatedBytes + (repeated ? request.sent : 0),
    });
  }
  return [...byAddress.values()].sort((a, b) => a.address.localeCompare(b.address));
}
